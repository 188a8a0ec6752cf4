// natOutgoing in throwaway namespaces: pods reach a network with no route back only through masquerade.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NetnsPool, execIn, ipIn, ping, requireNetworkTools } from '../test/support/netns.js';
import { NAT_TABLE, applyNat, natRuleset, removeNat } from './nat.js';

const pool = new NetnsPool();
let node = '';
let pod = '';
let outside = '';

beforeAll(async () => {
  await requireNetworkTools(['ip', 'nft', 'ping']);
  node = await pool.create('natnode');
  pod = await pool.create('natpod');
  outside = await pool.create('natout');
  // pod 10.244.1.2 —veth— node —veth— outside (203.0.113.2), which has no route to 10.244.0.0/16
  await ipIn(node, ['link', 'add', 'lxc0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', pod]);
  await ipIn(node, ['link', 'add', 'up0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', outside]);
  await ipIn(node, ['addr', 'add', '203.0.113.1/24', 'dev', 'up0']);
  await ipIn(node, ['link', 'set', 'up0', 'up']);
  await ipIn(node, ['link', 'set', 'lxc0', 'up']);
  await ipIn(node, ['route', 'add', '10.244.1.2/32', 'dev', 'lxc0']);
  await execIn(node, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1', 'net.ipv4.conf.lxc0.proxy_arp=1']);
  await ipIn(node, ['route', 'add', 'default', 'via', '203.0.113.2']);
  await ipIn(pod, ['addr', 'add', '10.244.1.2/32', 'dev', 'eth0']);
  await ipIn(pod, ['link', 'set', 'eth0', 'up']);
  await ipIn(pod, ['route', 'add', '169.254.1.1', 'dev', 'eth0', 'scope', 'link']);
  await ipIn(pod, ['route', 'add', 'default', 'via', '169.254.1.1']);
  await ipIn(outside, ['addr', 'add', '203.0.113.2/24', 'dev', 'eth0']);
  await ipIn(outside, ['link', 'set', 'eth0', 'up']);
  // IPv6 beside it: pod fd00:244:1::2 through the node's fe80::1 on lxc0; outside 2001:db8:113::2, no route back either.
  await ipIn(node, ['-6', 'addr', 'add', 'fe80::1/64', 'dev', 'lxc0', 'nodad']);
  await ipIn(node, ['-6', 'addr', 'add', '2001:db8:113::1/64', 'dev', 'up0', 'nodad']);
  await ipIn(node, ['-6', 'route', 'add', 'fd00:244:1::2/128', 'dev', 'lxc0']);
  await ipIn(node, ['-6', 'route', 'add', 'default', 'via', '2001:db8:113::2']);
  await execIn(node, 'sysctl', ['-qw', 'net.ipv6.conf.all.forwarding=1']);
  await ipIn(pod, ['-6', 'addr', 'add', 'fd00:244:1::2/128', 'dev', 'eth0', 'nodad']);
  await ipIn(pod, ['-6', 'route', 'add', 'default', 'via', 'fe80::1', 'dev', 'eth0']);
  await ipIn(outside, ['-6', 'addr', 'add', '2001:db8:113::2/64', 'dev', 'eth0', 'nodad']);
});
afterAll(() => pool.cleanup());

describe('natOutgoing', () => {
  it('masquerades pod traffic leaving the cluster, and removing the table stops it', async () => {
    expect(await ping(pod, '203.0.113.2', 2)).toBe(false); // no route back: needs NAT
    await applyNat(['10.244.1.0/24'], ['10.244.0.0/16'], node);
    await applyNat(['10.244.1.0/24'], ['10.244.0.0/16'], node); // idempotent swap
    const listed = await execIn(node, 'nft', ['list', 'table', 'ip', NAT_TABLE]);
    expect(String(listed.stdout)).toContain('masquerade');
    expect(await ping(pod, '203.0.113.2')).toBe(true);
    await removeNat(node);
    await removeNat(node); // removing twice is fine
    expect((await execIn(node, 'nft', ['list', 'tables'])).stdout).not.toContain(NAT_TABLE);
  });

  it('natOutgoingV6: IPv6 pod traffic is masqueraded only through its own ip6 table, which the IPv4 one never touches', async () => {
    expect(await ping(pod, '2001:db8:113::2', 2)).toBe(false); // no route back
    await applyNat(['10.244.1.0/24', 'fd00:244:1::/64'], ['10.244.0.0/16', 'fd00:244::/48'], node); // IPv4 only
    expect(await ping(pod, '2001:db8:113::2', 2)).toBe(false);
    await applyNat(['10.244.1.0/24', 'fd00:244:1::/64'], ['10.244.0.0/16', 'fd00:244::/48'], node, 6);
    expect(String((await execIn(node, 'nft', ['list', 'table', 'ip6', NAT_TABLE])).stdout)).toContain('ip6 saddr @pod_cidrs ip6 daddr != @cluster_cidrs masquerade');
    expect(await ping(pod, '2001:db8:113::2')).toBe(true);
    await removeNat(node, 6);
    await removeNat(node);
    expect((await execIn(node, 'nft', ['list', 'tables'])).stdout).not.toContain(NAT_TABLE);
  });

  it('keeps traffic inside the cluster unmasqueraded', () => {
    const rules = natRuleset(['10.244.1.0/24', 'fd00::/64'], ['10.244.0.0/16']);
    expect(rules).toContain('elements = { 10.244.1.0/24 }');
    expect(rules).toContain('elements = { 10.244.0.0/16, 10.244.1.0/24 }');
    expect(rules).toContain('ip daddr != @cluster_cidrs masquerade');
    expect(rules).not.toContain('fd00');
  });
});
