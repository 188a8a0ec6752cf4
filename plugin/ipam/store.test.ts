import { afterEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IpamStore } from './store.js';
import { parseRangeSets } from './pool.js';
import { CniError } from '../errors.js';

const dirs: string[] = [];
function freshDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'lt-ipam-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function store(subnet = '10.244.1.0/29', dir = freshDir()): IpamStore {
  return new IpamStore(dir, parseRangeSets({ subnet }));
}

describe('IpamStore', () => {
  it('hands out distinct addresses, skipping network, gateway and broadcast', () => {
    const s = store('10.244.1.0/29');
    const got = ['a', 'b', 'c', 'd', 'e'].map((id) => s.allocate({ containerId: id, ifname: 'eth0' }).ips[0]!.address);
    expect(got).toEqual(['10.244.1.2', '10.244.1.3', '10.244.1.4', '10.244.1.5', '10.244.1.6']);
  });

  it('is idempotent per container and interface', () => {
    const s = store();
    const a = s.allocate({ containerId: 'a', ifname: 'eth0' });
    expect(s.allocate({ containerId: 'a', ifname: 'eth0' }).ips).toEqual(a.ips);
    expect(s.allocate({ containerId: 'a', ifname: 'net1' }).ips[0]!.address).not.toBe(a.ips[0]!.address);
  });

  it('reports a full pool with code 100 and leaves nothing behind', () => {
    const s = store('10.0.0.0/30'); // one usable address: .2 (.1 is the gateway)
    s.allocate({ containerId: 'a', ifname: 'eth0' });
    try {
      s.allocate({ containerId: 'b', ifname: 'eth0' });
      expect.unreachable();
    } catch (err) {
      expect((err as CniError).code).toBe(100);
      expect((err as CniError).message).toMatch(/no free address in 10.0.0.0\/30/);
    }
    expect(s.listAttachments()).toEqual([{ containerId: 'a', ifname: 'eth0' }]);
    expect(s.freeCounts()).toEqual([0n]);
  });

  it('releases idempotently and persists across instances', () => {
    const dir = freshDir();
    const s1 = store('10.244.1.0/24', dir);
    const ip = s1.allocate({ containerId: 'a', ifname: 'eth0' }).ips[0]!.address;
    const s2 = store('10.244.1.0/24', dir);
    expect(s2.lookup({ containerId: 'a', ifname: 'eth0' })).toEqual([ip]);
    expect(s2.release({ containerId: 'a', ifname: 'eth0' })).toEqual([ip]);
    expect(s2.release({ containerId: 'a', ifname: 'eth0' })).toEqual([]);
    expect(s2.release({ containerId: 'never', ifname: 'eth0' })).toEqual([]);
    expect(s2.listAddresses()).toEqual([]);
  });

  it('does not reuse a freed address at once (round robin like host-local)', () => {
    const s = store('10.244.1.0/24');
    const first = s.allocate({ containerId: 'a', ifname: 'eth0' }).ips[0]!.address;
    s.release({ containerId: 'a', ifname: 'eth0' });
    expect(s.allocate({ containerId: 'b', ifname: 'eth0' }).ips[0]!.address).not.toBe(first);
  });

  it('allocates one address per range set (dual stack)', () => {
    const s = new IpamStore(freshDir(), parseRangeSets({ ranges: [[{ subnet: '10.0.0.0/24' }], [{ subnet: 'fd00::/120' }]] }));
    expect(s.allocate({ containerId: 'a', ifname: 'eth0' }).ips.map((i) => i.address)).toEqual(['10.0.0.2', 'fd00::2']);
  });

  it('takes over at once a claim a crashed ADD left without addresses, freeing what it took (callers hold the lock)', () => {
    const dir = freshDir();
    const s = store('10.244.1.0/24', dir);
    s.allocate({ containerId: 'x', ifname: 'eth0' }); // creates the directories
    writeFileSync(join(dir, 'attachments', 'busy:eth0'), JSON.stringify({ key: 'busy:eth0' }));
    writeFileSync(join(dir, 'ips', '10.244.1.200'), 'busy:eth0');
    const got = s.allocate({ containerId: 'busy', ifname: 'eth0' });
    expect(got.created).toBe(true);
    expect(s.listAddresses()).not.toContain('10.244.1.200');
    expect(s.lookup({ containerId: 'busy', ifname: 'eth0' })).toEqual([got.ips[0]!.address]);
  });

  it('says whether the call allocated: only then may a failing ADD release', () => {
    const s = store();
    expect(s.allocate({ containerId: 'a', ifname: 'eth0' }).created).toBe(true);
    expect(s.allocate({ containerId: 'a', ifname: 'eth0' }).created).toBe(false);
  });

  it('takes container ids longer than a file name (the spec sets no limit)', () => {
    const s = store();
    const long = { containerId: 'c'.repeat(4096), ifname: 'eth0' };
    const ip = s.allocate(long).ips[0]!.address;
    expect(s.lookup(long)).toEqual([ip]);
    expect(s.listAttachments()).toEqual([long]);
    expect(s.release(long)).toEqual([ip]);
    expect(s.listAddresses()).toEqual([]);
  });

  it('releases addresses whose attachment file was lost', () => {
    const dir = freshDir();
    const s = store('10.244.1.0/24', dir);
    const ip = s.allocate({ containerId: 'a', ifname: 'eth0' }).ips[0]!.address;
    rmSync(join(dir, 'attachments', 'a:eth0'));
    expect(s.listAttachments()).toEqual([{ containerId: 'a', ifname: 'eth0' }]);
    s.release({ containerId: 'a', ifname: 'eth0' });
    expect(s.listAddresses()).not.toContain(ip);
  });

  it('never hands out one address twice over random allocate/release sequences', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 9 })), { maxLength: 60 }), (ops) => {
        const s = store('10.9.0.0/28'); // 13 usable
        const owned = new Map<number, string>();
        for (const [alloc, id] of ops) {
          const att = { containerId: `c${id}`, ifname: 'eth0' };
          if (alloc) owned.set(id, s.allocate(att).ips[0]!.address);
          else {
            s.release(att);
            owned.delete(id);
          }
          expect(new Set(owned.values()).size).toBe(owned.size);
          expect(s.listAddresses().sort()).toEqual([...owned.values()].sort());
        }
      }),
      { numRuns: 100 },
    );
  });
});
