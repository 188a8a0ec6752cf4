// One process per lab pod for the network policy model: serves TCP and UDP on the model's ports and,
// on request, probes other pods from inside this pod's namespace. The test reaches it over a unix
// socket (the file system crosses namespaces):
//   ip netns exec POD node --import tsx test/support/netpol-probe.ts --socket PATH [--ports 80,81] [--ipv6]
// --ipv6 (a dual-stack pod) serves on the pod's IPv6 addresses as well.
// POST /probe {"timeoutMs": 1000, "targets": [{"ip","port","protocol"}]} answers [true|false, ...].
import { createSocket } from 'node:dgram';
import { createServer as createHttpServer } from 'node:http';
import { connect, createServer } from 'node:net';
import { rmSync } from 'node:fs';

export interface ProbeTarget {
  ip: string;
  port: number;
  protocol: 'tcp' | 'udp';
}

const flag = (name: string): string | undefined => {
  const at = process.argv.indexOf(name);
  return at >= 0 ? process.argv[at + 1] : undefined;
};

/** A TCP connection that completes is reachable: the SYN and SYN-ACK both passed. */
function probeTcp(t: ProbeTarget, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: t.ip, port: t.port, timeout: timeoutMs });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('connect', () => done(true));
    socket.once('timeout', () => done(false));
    socket.once('error', () => done(false));
  });
}

/**
 * UDP source ports, each used once per run: a random ephemeral port that repeats an earlier probe's
 * 5-tuple within conntrack's UDP timeout would ride that earlier, allowed flow (replies and later
 * packets of a flow pass by design), and a probe must always be a new flow. Below the kernel's
 * ephemeral range, so nothing else takes them.
 */
const UDP_PORTS = { first: 20_000, last: 32_000 };
let nextUdpPort = UDP_PORTS.first;

/** UDP: the server echoes; an answer within the deadline is reachable. */
function probeUdp(t: ProbeTarget, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const v6 = t.ip.includes(':');
    const socket = createSocket(v6 ? 'udp6' : 'udp4');
    const timer = setTimeout(() => done(false), timeoutMs);
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      socket.close();
      resolve(ok);
    };
    socket.once('message', () => done(true));
    socket.once('error', () => done(false));
    const port = nextUdpPort;
    nextUdpPort = port >= UDP_PORTS.last ? UDP_PORTS.first : port + 1;
    socket.bind(port, v6 ? '::' : '0.0.0.0', () => socket.send('probe', t.port, t.ip));
  });
}

async function main(): Promise<void> {
  const socketPath = flag('--socket');
  if (!socketPath) throw new Error('--socket PATH is required');
  const ports = (flag('--ports') ?? '80,81').split(',').map(Number);
  // Each family its own sockets (IPv6 ones v6-only), so the IPv4 servers are the same with or without --ipv6.
  const families = process.argv.includes('--ipv6') ? (['0.0.0.0', '::'] as const) : (['0.0.0.0'] as const);
  for (const port of ports) {
    for (const host of families) {
      const ipv6Only = host === '::';
      await new Promise<void>((resolve) => createServer((s) => s.end('ok').on('error', () => undefined)).listen({ port, host, ipv6Only }, resolve));
      const udp = createSocket({ type: ipv6Only ? 'udp6' : 'udp4', ipv6Only });
      udp.on('message', (msg, from) => udp.send(msg, from.port, from.address));
      await new Promise<void>((resolve) => udp.bind(port, host, resolve));
    }
  }
  rmSync(socketPath, { force: true });
  const control = createHttpServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c));
    req.on('end', () => {
      const { targets, timeoutMs } = JSON.parse(body) as { targets: ProbeTarget[]; timeoutMs: number };
      void Promise.all(targets.map((t) => (t.protocol === 'tcp' ? probeTcp(t, timeoutMs) : probeUdp(t, timeoutMs)))).then((results) =>
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(results)),
      );
    });
  });
  await new Promise<void>((resolve) => control.listen(socketPath, resolve));
  console.log('ready');
  // Dies with the test: its stdin is a pipe from the test process.
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
}

await main();
