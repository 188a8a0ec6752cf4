import { afterEach, describe, expect, it } from 'vitest';
import { grCapability, unicast } from './raw-peer.js';
import { ASN, Loopback, routesOf, sleep, until } from './loopback.js';

const loopback = new Loopback();
afterEach(() => loopback.cleanup());
const PEER = '127.0.0.2';

describe('explore', () => {
  it('flap 100', async () => {
    const s = await loopback.speaker({}, [{ address: PEER, asn: ASN }]);
    const caps = { capabilities: [{ code: 1 as const, family: unicast(1) }, { code: 1 as const, family: unicast(2) }, { code: 65 as const, asn: ASN }, grCapability(60, [{ afi: 1 }, { afi: 2 }])] };
    const res = () => process.getActiveResourcesInfo().reduce((m: Record<string, number>, r) => ((m[r] = (m[r] ?? 0) + 1), m), {});
    let p = await loopback.connect(s, { localAddress: PEER, asn: ASN, ...caps });
    p.drop();
    global.gc?.();
    const before = { res: res(), heap: process.memoryUsage().heapUsed };
    for (let k = 0; k < 100; k++) {
      p = await loopback.connect(s, { localAddress: PEER, asn: ASN, ...caps });
      p.announce([`10.${k}.0.0/24`], PEER);
      await until('learned', () => routesOf(s)[`10.${k}.0.0/24`] === PEER);
      p.drop();
    }
    await sleep(1500);
    const session = (s as any).peers.get(PEER).session;
    console.log('before', JSON.stringify(before.res), 'after', JSON.stringify(res()), 'heap MB', ((process.memoryUsage().heapUsed - before.heap) / 1e6).toFixed(1),
      'listeners', session.listenerCount('down'), 'timers', session.timers.size, 'routes', Object.keys(routesOf(s)).length);
  }, 120_000);
});
