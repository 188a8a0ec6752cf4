// The doctor's pure core: facts of a healthy two-node path, each hop broken in turn, must name that hop first.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { diagnose, formatDiagnosis } from './checks.js';
import { type NodeFacts, nodeFactsSchema } from './facts.js';
import { FROM, TO, healthy } from '../../test/support/doctor-facts.js';

const run = (src: NodeFacts, dst: NodeFacts) => diagnose(FROM, TO, src, { facts: dst });

describe('doctor: the pure diagnosis', () => {
  it('a healthy path: every check ok, in the packet order, and the schema takes the facts', () => {
    const { src, dst } = healthy();
    expect(nodeFactsSchema.parse(src)).toEqual(src);
    const d = run(src, dst);
    expect(d.ok).toBe(true);
    expect(d.firstBroken).toBeUndefined();
    expect(d.checks.map((c) => c.id)).toEqual([
      'source-pod-eth0', 'source-pod-default-route', 'source-veth', 'source-host-route', 'bgp-session', 'rib', 'kernel-route', 'next-hop',
      'destination-ingress', 'destination-pod-eth0', 'destination-pod-default-route', 'destination-veth', 'destination-host-route', 'return-route',
      'reply-ingress', 'mtu', 'nat',
    ]);
    expect(formatDiagnosis(d)).toContain('is good');
  });

  // Each break touches one fact as the kernel or the speaker would show it; the hop named must be that one.
  const breaks: [string, string, string, (f: { src: NodeFacts; dst: NodeFacts }) => void][] = [
    ['source pod eth0 down', 'source-pod-eth0', 'node-1', ({ src }) => void (src.local.eth0!.up = false)],
    ['source pod not found', 'source-pod-eth0', 'node-1', ({ src }) => void delete src.local.netns],
    ['no default route in the pod', 'source-pod-default-route', 'node-1', ({ src }) => void delete src.local.defaultGateway],
    ['ARP for the gateway failed', 'source-pod-default-route', 'node-1', ({ src }) => void (src.local.gatewayNeighbor = 'FAILED')],
    ['source veth without proxy ARP', 'source-veth', 'node-1', ({ src }) => void (src.local.veth!.proxyArp = 0)],
    ['session not Established', 'bgp-session', 'node-1', ({ src }) => void (src.peers[0]!.state = 'Active')],
    ['prefix refused by the import filter', 'rib', 'node-1', ({ src }) => void (src.remote.rib = { importAllowed: false })],
    ['prefix never received', 'rib', 'node-1', ({ src }) => void (src.remote.rib = { importAllowed: true })],
    ['a blackhole shadows the route', 'kernel-route', 'node-1', ({ src }) => {
      src.remote.route = { dst: `${TO}`, type: 'blackhole', gateways: [], protocol: 'boot' };
      src.remote.routeGet = { ok: false, error: 'Invalid argument' };
    }],
    ['route programmed elsewhere (via the default)', 'kernel-route', 'node-1', ({ src }) => {
      src.remote.route = { dst: 'default', type: 'unicast', gateways: ['192.0.2.254'], dev: 'eth0' };
    }],
    ['next hop behind a gateway', 'next-hop', 'node-1', ({ src }) => void (src.remote.nextHops[0]!.routeGet.gateway = '192.0.2.254')],
    ['strict rp_filter on the destination', 'destination-ingress', 'node-2', ({ dst }) => {
      dst.remote.ingress!.rpFilter = 1;
      dst.remote.ingress!.routeGet = { ok: false, error: 'Invalid argument' };
    }],
    ['destination veth down', 'destination-veth', 'node-2', ({ dst }) => {
      dst.local.veth!.up = false;
      delete dst.local.hostRoute;
      dst.remote.ingress!.routeGet = dst.remote.ingress!.unvalidated = { ok: false, error: 'Invalid argument' };
    }],
    ['destination host route deleted', 'destination-host-route', 'node-2', ({ dst }) => void delete dst.local.hostRoute],
    ['destination pod eth0 down', 'destination-pod-eth0', 'node-2', ({ dst }) => void (dst.local.eth0!.up = false)],
    ['no route back', 'return-route', 'node-2', ({ dst }) => {
      delete dst.remote.route;
      dst.remote.routeGet = { ok: false, error: 'Network is unreachable' };
    }],
    ['strict rp_filter on the source for the reply', 'reply-ingress', 'node-1', ({ src }) => void (src.remote.ingress!.routeGet = { ok: false, error: 'Invalid argument' })],
    ['pod MTU above the uplink', 'mtu', 'node-1', ({ src }) => void (src.remote.ingress!.mtu = 1450)],
  ];

  it.each(breaks)('%s: names %s on %s', (_, id, nodeName, mutate) => {
    const facts = healthy();
    mutate(facts);
    const d = run(facts.src, facts.dst);
    expect(d.ok).toBe(false);
    expect(d.firstBroken).toMatchObject({ id, node: nodeName, status: 'FAIL' });
    expect(d.firstBroken!.fix).toBeTruthy();
    expect(d.summary).toMatch(new RegExp(`^The path ${FROM} → ${TO} breaks at ${nodeName}: .*Fix: `));
  });

  it('a kernel route missing is the agent not programming it: the default route that catches the packets is not to be deleted', () => {
    const { src, dst } = healthy();
    src.remote.route = { dst: 'default', type: 'unicast', gateways: ['192.0.2.254'], dev: 'eth0' };
    const wider = run(src, dst).firstBroken!;
    expect(wider).toMatchObject({ id: 'kernel-route' });
    expect(wider.fix).toMatch(/has not programmed 10\.244\.2\.0\/24/);
    src.remote.route = { dst: `${TO}`, type: 'unicast', gateways: ['192.0.2.9'], dev: 'eth0', protocol: 'static' };
    expect(run(src, dst).firstBroken!.fix).toBe(`route ${TO} (proto static) shadows Lightly's: delete it`);
  });

  it('an unreachable destination agent: a failed check saying what to run there', () => {
    const { src } = healthy();
    const d = diagnose(FROM, TO, src, { unreachable: 'cannot reach the lightly agent', node: 'node-2', fix: 'run this on node-2 and pass its output with --dest-facts FILE: lightlyctl doctor-facts 10.244.2.2 10.244.1.2' });
    expect(d.firstBroken).toMatchObject({ id: 'destination-agent', node: 'node-2' });
    expect(d.firstBroken!.fix).toContain('lightlyctl doctor-facts');
  });

  it('pods on the same node: no BGP, next hop or ingress checks', () => {
    const { src } = healthy();
    const d = diagnose(FROM, '10.244.1.3', src, { facts: { ...src, local: { ...src.local, ip: '10.244.1.3' } } });
    expect(d.ok).toBe(true);
    expect(d.checks.map((c) => c.id)).not.toContain('bgp-session');
    expect(d.checks.map((c) => c.id)).not.toContain('destination-ingress');
  });

  it('natOutgoing: an address outside the cluster is masqueraded, one inside is not (never a failure)', () => {
    const { src, dst } = healthy();
    src.natOutgoing = true;
    expect(run(src, dst).checks.find((c) => c.id === 'nat')).toMatchObject({ status: 'ok', evidence: expect.stringContaining('not masqueraded') });
  });

  it('any MTU the whole path shares is fine; one hop below the pods is not', () => {
    fc.assert(fc.property(fc.integer({ min: 576, max: 9000 }), (mtu) => {
      const { src, dst } = healthy();
      for (const f of [src, dst]) {
        f.local.eth0!.mtu = mtu;
        f.remote.ingress!.mtu = mtu;
      }
      if (!run(src, dst).ok) return false;
      dst.remote.ingress!.mtu = mtu - 1;
      return run(src, dst).firstBroken?.id === 'mtu';
    }));
  });
});
