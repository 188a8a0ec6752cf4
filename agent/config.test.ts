import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadAgentConfig, parseAgentConfig, peerType } from './config.js';

const example = `
nodeName: node-1
routerId: 192.0.2.1
asn: 64512
podCIDRs: [10.244.1.0/24]
listen: { address: 0.0.0.0, port: 179 }
peers:
  - { address: 192.0.2.2, asn: 64512 }              # iBGP to another node
  - { address: 192.0.2.254, asn: 65000, holdTime: 9 } # eBGP to a top-of-rack router
importCIDRs: [10.244.0.0/16]
maxPrefixes: 10000
statusSocket: /run/lightly/agent.sock
natOutgoing: true
`;

describe('agent config', () => {
  it('reads the architecture example (YAML) with defaults filled in', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lt-config-'));
    try {
      writeFileSync(join(dir, 'agent.yaml'), example);
      const c = loadAgentConfig(join(dir, 'agent.yaml'));
      expect(c.nodeName).toBe('node-1');
      expect(c.peers).toHaveLength(2);
      expect(c.peers[0]).toMatchObject({ address: '192.0.2.2', asn: 64512, port: 179, passive: false });
      expect(c.peers[1]!.holdTime).toBe(9);
      expect(c.holdTime).toBe(90);
      expect(c.gracefulRestart).toEqual({ enabled: true, restartTime: 120 });
      expect(peerType(c.peers[0]!, c.asn)).toBe('node-mesh');
      expect(peerType(c.peers[1]!, c.asn)).toBe('global');
      writeFileSync(join(dir, 'agent.json'), JSON.stringify({ nodeName: 'n', routerId: '10.0.0.1' }));
      expect(loadAgentConfig(join(dir, 'agent.json')).asn).toBe(64512);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.each([
    [{ nodeName: 'n', routerId: '10.0.0.300' }, 'routerId: must be an IPv4 address'],
    [{ nodeName: 'n', routerId: '10.0.0.1', peers: [{ address: '10.0.0.2', asn: 'x' }] }, 'peers.0.asn'],
    [{ nodeName: 'n', routerId: '10.0.0.1', peers: [{ address: '10.0.0.2', asn: 1, holdTime: 2 }] }, 'peers.0.holdTime: must be 0 or between 3'],
    [{ nodeName: 'n', routerId: '10.0.0.1', podCIDRs: ['10.0.0.0'] }, 'podCIDRs.0: must be a CIDR'],
    [{ routerId: '10.0.0.1' }, 'nodeName'],
  ])('names the bad field: %j', (raw, field) => {
    expect(() => parseAgentConfig(raw)).toThrow(ConfigError);
    expect(() => parseAgentConfig(raw)).toThrow(field);
  });

  it('dual stack (issue 14): both pod CIDRs, per-peer families, our IPv6 next hop; IPv6 NAT off unless asked', () => {
    const base = { nodeName: 'n', routerId: '192.0.2.1', podCIDRs: ['10.244.1.0/24', 'fd00:10:244:1::/64'] };
    const c = parseAgentConfig({ ...base, peers: [{ address: '2001:db8:2::2', asn: 64512, families: ['ipv6'] }], nextHopSelf: { ipv6: '2001:db8:2::1' } });
    expect(c).toMatchObject({ podCIDRs: base.podCIDRs, natOutgoing: false, natOutgoingV6: false, nextHopSelf: { ipv6: '2001:db8:2::1' } });
    expect(c.peers[0]!.families).toEqual(['ipv6']);
    expect(() => parseAgentConfig({ ...base, nextHopSelf: { ipv6: '192.0.2.1' } })).toThrow(/nextHopSelf\.ipv6: must be an IPv6 address/);
    expect(() => parseAgentConfig({ ...base, nextHopSelf: { ipv4: 'fd00::1' } })).toThrow(/nextHopSelf\.ipv4: must be an IPv4 address/);
    expect(() => parseAgentConfig({ ...base, peers: [{ address: '192.0.2.2', asn: 1, families: ['ipv5'] }] })).toThrow(/peers\.0\.families\.0/);
    expect(() => parseAgentConfig({ ...base, routerId: '2001:db8:2::1' })).toThrow(/routerId: must be an IPv4 address/); // 32 bits, even on IPv6-only nodes
  });

  it('reports unreadable and unparsable files clearly', () => {
    expect(() => loadAgentConfig('/nonexistent/agent.yaml')).toThrow(/cannot read config \/nonexistent\/agent.yaml/);
    const dir = mkdtempSync(join(tmpdir(), 'lt-config-'));
    try {
      writeFileSync(join(dir, 'bad.yaml'), 'peers: [ { address: ');
      expect(() => loadAgentConfig(join(dir, 'bad.yaml'))).toThrow(/cannot parse config/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
