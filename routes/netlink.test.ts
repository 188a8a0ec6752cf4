// The netlink writer's bookkeeping over a fake addon (which messages, which acknowledgements, which
// refusals go back to which change), and the reconciler's deliberate fallback when the addon is missing.
import { describe, expect, it } from 'vitest';
import type { Route, RouteWrite } from './desired.js';
import { NLM_F_ACK } from './netlink-codec.js';
import { type NetlinkSocketApi, NetlinkRouteShell } from './netlink.js';
import { RouteReconciler } from './reconciler.js';

/** Answers like the kernel: an NLMSG_ERROR (capped) for each message whose prefix is refused. */
class FakeKernel implements NetlinkSocketApi {
  sent: { seq: number; type: number; ack: boolean; third: number }[] = [];
  refuse = new Set<number>(); // third octet of refused prefixes
  netlinkOpen(): number {
    return 7;
  }
  closed: number[] = [];
  netlinkClose(fd: number): void {
    this.closed.push(fd);
  }
  netlinkPortId(): number {
    return 4242;
  }
  netlinkIfIndex(_fd: number, name: string): number {
    return name === 'va' ? 3 : 0;
  }
  async netlinkSend(_fd: number, messages: Buffer): Promise<Buffer> {
    const replies: Buffer[] = [];
    for (let at = 0; at < messages.length; at += messages.readUInt32LE(at)) {
      const seq = messages.readUInt32LE(at + 8);
      const third = messages[at + 16 + 12 + 4 + 2]!; // RTA_DST's third octet
      this.sent.push({ seq, type: messages.readUInt16LE(at + 4), ack: (messages.readUInt16LE(at + 6) & NLM_F_ACK) !== 0, third });
      if (!this.refuse.has(third)) continue;
      const reply = Buffer.alloc(36);
      reply.writeUInt32LE(36, 0);
      reply.writeUInt16LE(2, 4);
      reply.writeUInt16LE(0x100, 6);
      reply.writeUInt32LE(seq, 8);
      reply.writeInt32LE(-17, 16); // EEXIST
      replies.push(reply);
    }
    return Buffer.concat(replies);
  }
}

const u = (prefix: string, ...nextHops: string[]): Route => ({ prefix, type: 'unicast', nextHops });
const add = (route: Route): RouteWrite => ({ op: 'add', prefix: route.prefix, route, have: undefined });

describe('NetlinkRouteShell (fake kernel)', () => {
  it('asks for an acknowledgement every 256 messages and at the end, sequence numbers never reused', async () => {
    const kernel = new FakeKernel();
    const shell = new NetlinkRouteShell({ addon: kernel });
    await shell.write(Array.from({ length: 600 }, (_, i) => add(u(`10.${i >> 8}.${i & 255}.0/24`, '192.0.2.2'))));
    await shell.write([add(u('10.9.9.0/24', '192.0.2.2'))]);
    expect(kernel.sent).toHaveLength(601);
    expect(kernel.sent.flatMap((m, i) => (m.ack ? [i + 1] : []))).toEqual([256, 512, 600, 601]);
    expect(new Set(kernel.sent.map((m) => m.seq)).size).toBe(601);
  });

  it('maps each refusal back to its change, a flush\'s to the flush', async () => {
    const kernel = new FakeKernel();
    kernel.refuse.add(5);
    const shell = new NetlinkRouteShell({ addon: kernel });
    const flush: RouteWrite = { op: 'flush', prefix: '10.0.4.0/24', route: undefined, have: u('10.0.4.0/24', '192.0.2.9'), gateway: '192.0.2.9', covers: ['10.0.4.0/24', '10.0.5.0/24', '10.0.6.0/24'] };
    const failures = await shell.write([add(u('10.0.1.0/24', '192.0.2.2')), add(u('10.0.5.0/24', '192.0.2.2')), flush, add({ ...u('10.0.7.0/24', '192.0.2.2'), dev: 'gone0' })]);
    expect(failures).toEqual([
      { line: 2, command: 'route add 10.0.5.0/24 proto 201 via 192.0.2.2', error: 'RTNETLINK answers: File exists' },
      { line: 3, command: 'route flush proto 201 via 192.0.2.9 table main', error: 'RTNETLINK answers: File exists' },
      { line: 4, command: 'route add 10.0.7.0/24 proto 201 via 192.0.2.2 dev gone0', error: 'Cannot find device "gone0"' },
    ]);
    expect(kernel.sent.map((m) => m.type)).toEqual([24, 24, 25, 25, 25]);
  });
  it('closes its socket after the writes already queued', async () => {
    const kernel = new FakeKernel();
    const shell = new NetlinkRouteShell({ addon: kernel });
    const write = shell.write([add(u('10.0.1.0/24', '192.0.2.2'))]);
    shell.close();
    expect(kernel.closed).toEqual([]);
    await write;
    await new Promise((resolve) => setImmediate(resolve));
    expect(kernel.closed).toEqual([7]);
    expect(kernel.sent).toHaveLength(1);
  });
});

describe('RouteReconciler writer choice', () => {
  it('falls back to ip -batch, and says why, when the addon cannot be loaded', () => {
    const reasons: string[] = [];
    const missing = (): NetlinkSocketApi => {
      throw new Error('lightly native addon not built: run npm run build');
    };
    new RouteReconciler({ netns: 'lt-none', netlink: missing, onWriterFallback: (err) => reasons.push(err.message) }).stop();
    expect(reasons).toEqual(['lightly native addon not built: run npm run build']);
    new RouteReconciler({ netns: 'lt-none', onWriterFallback: (err) => reasons.push(err.message) }).stop(); // ip asked for
    expect(reasons).toHaveLength(1);
  });
});
