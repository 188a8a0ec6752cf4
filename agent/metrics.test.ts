import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMetricsServer } from './metrics.js';
import type { BgpStatus, StatusSource } from './status.js';

const status: BgpStatus = {
  node: 'node-1', routerId: '192.0.2.1', asn: 64512,
  announced: [
    { prefix: '10.244.1.0/24', origin: 'pod-cidr' },
    { prefix: '10.96.0.0/12', origin: 'service-cluster-ip-range' },
    { prefix: '203.0.113.10/32', origin: 'service-load-balancer-ip', services: ['default/web'] },
    { prefix: '203.0.113.11/32', origin: 'service-load-balancer-ip', services: ['default/api'] },
  ],
  peers: [
    { address: '192.0.2.2', asn: 64512, type: 'node-mesh', state: 'Established', uptimeSeconds: 5, prefixesReceived: 3, prefixesAdvertised: 1 },
    { address: '192.0.2.3', asn: 64512, type: 'node-mesh', state: 'Active', uptimeSeconds: 0, prefixesReceived: 0, prefixesAdvertised: 0 },
  ],
};
const source: StatusSource = {
  bgpStatus: () => status,
  routes: () => [{ prefix: '10.244.1.0/24', type: 'blackhole', nextHops: [] }, { prefix: '10.244.2.0/24', type: 'unicast', nextHops: ['192.0.2.2'] }],
  node: () => ({ nodeName: 'node-1', podCIDRs: ['10.244.1.0/24'] }),
};
let server: Awaited<ReturnType<typeof startMetricsServer>>;
const url = (path: string): string => `http://127.0.0.1:${server.port}${path}`;
beforeAll(async () => {
  server = await startMetricsServer(0, '127.0.0.1', source);
});
afterAll(() => server.close());

describe('metrics and health', () => {
  it('exports session state, prefix counts and installed routes', async () => {
    const text = await (await fetch(url('/metrics'))).text();
    expect(text).toContain('lightly_bgp_session_state{peer="192.0.2.2",type="node-mesh"} 6');
    expect(text).toContain('lightly_bgp_session_state{peer="192.0.2.3",type="node-mesh"} 3');
    expect(text).toContain('lightly_bgp_prefixes_received{peer="192.0.2.2"} 3');
    expect(text).toContain('lightly_bgp_prefixes_advertised{peer="192.0.2.2"} 1');
    expect(text).toContain('lightly_service_prefixes_announced{origin="service-load-balancer-ip"} 2');
    expect(text).toContain('lightly_service_prefixes_announced{origin="service-cluster-ip-range"} 1');
    expect(text).toContain('lightly_service_prefixes_announced{origin="service-external-ip"} 0');
    expect(text).toContain('lightly_routes_installed{type="unicast"} 1');
  });
  it('exports the event-loop delay, which a blocked event loop raises', async () => {
    const until = Date.now() + 150;
    while (Date.now() < until); // hold the event loop, as a full table once did
    await new Promise((resolve) => setTimeout(resolve, 30));
    const text = await (await fetch(url('/metrics'))).text();
    const max = Number(/lightly_event_loop_delay_seconds\{stat="max"\} (\S+)/.exec(text)?.[1]);
    expect(max).toBeGreaterThanOrEqual(0.1);
    expect(text).toMatch(/lightly_event_loop_delay_seconds\{stat="p99"\} \d/);
  });
  it('is live always; ready once one session is Established and our blackhole is in the kernel, not when every peer is', async () => {
    expect((await fetch(url('/healthz'))).status).toBe(200);
    expect((await fetch(url('/readyz'))).status).toBe(200); // 192.0.2.3 is still Active: one node down elsewhere must not unready us
    status.peers[0]!.state = 'Connect';
    const notReady = await fetch(url('/readyz'));
    expect(notReady.status).toBe(503);
    expect(await notReady.text()).toMatch(/^NoBGPSessionEstablished: .*192\.0\.2\.3 Active/);
    status.peers[1]!.state = 'Established';
    expect((await fetch(url('/readyz'))).status).toBe(200);
  });
});
