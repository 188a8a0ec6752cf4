// Next-hop reachability (RFC 4271 §9.1.2.1) from kernel routes and addresses, on captured `ip -json` output.
import { describe, expect, it } from 'vitest';
import { ReachabilityTable, resolvingRoute } from './reachability.js';

const v4 = JSON.stringify([
  { dst: 'default', gateway: '192.0.2.254', dev: 'up0', flags: [] },
  { dst: '192.0.2.0/24', dev: 'up0', protocol: 'kernel', scope: 'link', prefsrc: '192.0.2.1', flags: [] },
  { dst: '198.51.100.0/24', gateway: '192.0.2.254', dev: 'up0', protocol: 'static', flags: [] },
  { dst: '10.99.0.0/16', gateway: '192.0.2.7', dev: 'up0', protocol: 'lightly', flags: [] },
  { dst: '10.98.0.5', gateway: '192.0.2.7', dev: 'up0', protocol: '201', flags: [] },
  { type: 'blackhole', dst: '203.0.113.0/24', protocol: 'static', flags: [] },
  { dst: '100.64.0.0/24', dev: 'down0', protocol: 'kernel', scope: 'link', flags: ['linkdown'] },
  { dst: '172.16.0.9', dev: 'up0', protocol: 'static', scope: 'link', flags: [] },
]);
const v6 = JSON.stringify([
  { dst: 'fd00:1::/64', dev: 'up0', protocol: 'kernel', metric: 256, flags: [] },
  { dst: 'fe80::/64', dev: 'up0', protocol: 'kernel', metric: 256, flags: [] },
  { dst: 'fe80::/64', dev: 'down0', protocol: 'kernel', metric: 256, flags: ['linkdown'] },
  { dst: 'default', gateway: 'fd00:1::fe', dev: 'up0', flags: [] },
]);
const addrs = JSON.stringify([
  { ifname: 'lo', addr_info: [{ family: 'inet', local: '127.0.0.1' }, { family: 'inet6', local: '::1' }] },
  { ifname: 'up0', addr_info: [{ family: 'inet', local: '192.0.2.1' }, { family: 'inet6', local: 'fd00:1::1' }, { family: 'inet6', local: 'fe80::1' }] },
]);

describe('ReachabilityTable (RFC 4271 §9.1.2.1)', () => {
  const table = ReachabilityTable.fromIpJson([v4, v6], addrs);

  it.each([
    ['192.0.2.9', 'reachable'], // connected subnet
    ['198.51.100.3', 'reachable'], // a specific route
    ['172.16.0.9', 'reachable'], // a host route
    ['8.8.8.8', 'unreachable'], // only the default route covers it
    ['10.99.1.1', 'unreachable'], // only through a route of ours (BGP): not used to resolve
    ['10.98.0.5', 'unreachable'],
    ['203.0.113.5', 'unreachable'], // blackhole
    ['100.64.0.3', 'unreachable'], // link down
    ['192.0.2.1', 'local'], // our own address (RFC 4271 §6.3)
    ['127.0.0.1', 'local'],
    ['fd00:1::7', 'reachable'],
    ['fd00:2::7', 'unreachable'],
    ['fd00:1::1', 'local'],
    ['not an address', 'unreachable'],
    // Link-local next hops (RFC 2545 §3): on their own link only, never through another link's fe80::/64.
    ['fe80::7', 'unreachable'], // no link: the kernel could not use it
    ['fe80::7%up0', 'reachable'],
    ['fe80::7%down0', 'unreachable'], // link down
    ['fe80::7%eth9', 'unreachable'], // no such link
    ['fe80::1%up0', 'local'],
    ['fe80::1%down0', 'unreachable'], // the same address on another link is not ours
    ['fd00:1::7%up0', 'unreachable'], // a zone on a global address means nothing
  ])('%s is %s', (address, expected) => {
    expect(table.resolve(address)).toBe(expected);
  });

  it('the key changes with the routes that resolve, not with routes of ours', () => {
    const ours = JSON.stringify([...JSON.parse(v4), { dst: '10.97.0.0/24', gateway: '192.0.2.7', protocol: 'lightly', flags: [] }]);
    expect(ReachabilityTable.fromIpJson([ours, v6], addrs).key).toBe(table.key);
    const more = JSON.stringify([...JSON.parse(v4), { dst: '10.97.0.0/24', gateway: '192.0.2.7', protocol: 'static', flags: [] }]);
    expect(ReachabilityTable.fromIpJson([more, v6], addrs).key).not.toBe(table.key);
  });

  it('the key changes when a link comes up: the speaker then looks at the addresses of its sessions\' links again', () => {
    const routes = [{ dst: 'fd00:2::/64', dev: 'eb', protocol: 'kernel' }];
    const addresses = (operstate: string): string => JSON.stringify([{ ifname: 'eb', operstate, addr_info: [{ local: 'fd00:2::2' }, { local: 'fe80::2' }] }]);
    const before = ReachabilityTable.fromRows(routes, addresses('LOWERLAYERDOWN'));
    const after = ReachabilityTable.fromRows(routes, addresses('UP'));
    expect(after.key).not.toBe(before.key);
    expect(ReachabilityTable.fromRows(routes, addresses('UP')).key).toBe(after.key);
    expect(after.resolve('fd00:2::9')).toBe(before.resolve('fd00:2::9'));
  });

  it('a default route never resolves, in either family', () => {
    expect(resolvingRoute({ dst: 'default' })).toBe(false);
    expect(resolvingRoute({ dst: '0.0.0.0/0' })).toBe(false);
    expect(resolvingRoute({ dst: '::/0' })).toBe(false);
  });
});
