// On-disk IPAM store: one file per address and one per attachment, claimed with O_EXCL.
//
// Creating a file with O_EXCL is atomic across processes, so two ADDs can never both own an
// address. Operations on one attachment run under its lock (lock.ts), so a claim without addresses
// is always one a crashed ADD left. Layout:
//   <dataDir>/<network>/ips/<address>             owner "<containerId>:<ifname>"
//   <dataDir>/<network>/attachments/<name>        JSON {"key", "ips": [...]}; no ips while being allocated
//   <dataDir>/<network>/locks/<name>              the attachment's lock
//   <dataDir>/<network>/last-reserved-<set>       where the next search starts (host-local style)
// <name> is "<cid>:<if>", or its hash when that is too long for a file name (fileNameOf).
import { mkdirSync, openSync, closeSync, writeSync, readFileSync, readdirSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CniCode, CniError } from '../errors.js';
import { type AddressRange, type RangeSet, candidates, formatAddress, parseAddress, rangeSize } from './pool.js';
import { fileNameOf } from './lock.js';

export interface Attachment {
  containerId: string;
  ifname: string;
}

export interface Allocation extends Attachment {
  /** Bare addresses (no prefix length), one per range set, each with the range it came from. */
  ips: { address: string; range: AddressRange }[];
  /** Whether this call allocated them (else an earlier ADD did): only then may a failing ADD free them. */
  created: boolean;
}

export function attachmentKey(a: Attachment): string {
  return `${a.containerId}:${a.ifname}`;
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException)?.code;
}

export class IpamStore {
  private readonly ipsDir: string;
  private readonly attachmentsDir: string;

  constructor(
    readonly dir: string,
    private readonly rangeSets: RangeSet[],
  ) {
    this.ipsDir = join(dir, 'ips');
    this.attachmentsDir = join(dir, 'attachments');
  }

  private ensureDirs(): void {
    try {
      mkdirSync(this.ipsDir, { recursive: true, mode: 0o700 });
      mkdirSync(this.attachmentsDir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new CniError(CniCode.IO_FAILURE, `cannot create IPAM directory ${this.dir}`, String(err));
    }
  }

  private claimPathOf(attachment: Attachment): string {
    return join(this.attachmentsDir, fileNameOf(attachmentKey(attachment)));
  }

  /**
   * Returns the attachment's addresses, allocating them on first call. Idempotent: a repeated ADD
   * for the same container and interface gets the same addresses back. Call under the lock.
   */
  allocate(attachment: Attachment): Allocation {
    this.ensureDirs();
    const claimPath = this.claimPathOf(attachment);
    const key = attachmentKey(attachment);
    const existing = this.claim(claimPath, key);
    if (existing) return this.toAllocation(attachment, existing, false);

    const taken: string[] = [];
    try {
      for (const [setIndex, set] of this.rangeSets.entries()) {
        const address = this.allocateFromSet(setIndex, set, attachment);
        if (!address) {
          const capacity = set.map((r) => `${r.subnet}: ${rangeSize(r)} addresses`).join(', ');
          throw new CniError(CniCode.POOL_EXHAUSTED, `no free address in ${set.map((r) => r.subnet).join(', ')}`, capacity);
        }
        taken.push(address);
      }
      const tmp = `${claimPath}.tmp-${process.pid}`;
      writeFileSync(tmp, JSON.stringify({ key, ips: taken }));
      renameSync(tmp, claimPath);
      return this.toAllocation(attachment, taken, true);
    } catch (err) {
      for (const address of taken) this.unlinkOwned(address, attachment);
      rmQuiet(claimPath);
      throw err;
    }
  }

  /**
   * Creates the attachment claim, or returns the addresses of one that already exists. A claim with
   * no addresses was left by an ADD that crashed while allocating (we hold the lock), before any
   * interface used them: what it took is freed and the claim made again.
   */
  private claim(claimPath: string, key: string): string[] | undefined {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(claimPath, 'wx', 0o600);
        try {
          writeSync(fd, JSON.stringify({ key }));
        } finally {
          closeSync(fd);
        }
        return undefined;
      } catch (err) {
        if (errno(err) !== 'EEXIST') throw new CniError(CniCode.IO_FAILURE, `cannot write ${claimPath}`, String(err));
      }
      const ips = readAttachmentFile(claimPath)?.ips;
      if (ips) return ips;
      for (const address of this.listAddresses()) if (this.ownerOf(address) === key) rmQuiet(join(this.ipsDir, address));
      rmQuiet(claimPath);
    }
    throw new CniError(CniCode.TRY_AGAIN_LATER, `the allocation for ${key} keeps changing`);
  }

  private allocateFromSet(setIndex: number, set: RangeSet, attachment: Attachment): string | undefined {
    const used = new Set(this.listAddresses());
    const hintPath = join(this.dir, `last-reserved-${setIndex}`);
    const hint = readHint(hintPath);
    for (const range of set) {
      const gateway = range.gateway ? parseAddress(range.gateway).value : undefined;
      const lastAllocated = hint && hint.family === range.family ? hint.value : undefined;
      for (const value of candidates(range, lastAllocated, gateway)) {
        const address = formatAddress(range.family, value);
        if (used.has(address)) continue;
        if (this.tryTake(address, attachment)) {
          writeHint(hintPath, address);
          return address;
        }
      }
    }
    return undefined;
  }

  private tryTake(address: string, attachment: Attachment): boolean {
    let fd: number;
    try {
      fd = openSync(join(this.ipsDir, address), 'wx', 0o600);
    } catch (err) {
      if (errno(err) === 'EEXIST') return false;
      throw new CniError(CniCode.IO_FAILURE, `cannot reserve ${address}`, String(err));
    }
    try {
      writeSync(fd, attachmentKey(attachment));
    } finally {
      closeSync(fd);
    }
    return true;
  }

  /** Frees the attachment's addresses. Releasing what is not allocated is not an error. */
  release(attachment: Attachment): string[] {
    const claimPath = this.claimPathOf(attachment);
    const ips = readAttachmentFile(claimPath)?.ips ?? [];
    for (const address of ips) this.unlinkOwned(address, attachment);
    // Addresses whose attachment file was lost (crash between the two writes) are found by owner.
    for (const address of this.listAddresses()) {
      if (!ips.includes(address) && this.ownerOf(address) === attachmentKey(attachment)) this.unlinkOwned(address, attachment);
    }
    rmQuiet(claimPath);
    return ips;
  }

  /** The attachment's addresses, or undefined when it has none. */
  lookup(attachment: Attachment): string[] | undefined {
    return readAttachmentFile(this.claimPathOf(attachment))?.ips;
  }

  /** Every attachment that owns at least one address (by the address files, the source of truth). */
  listAttachments(): Attachment[] {
    const owners = new Set<string>();
    for (const address of this.listAddresses()) {
      const owner = this.ownerOf(address);
      if (owner) owners.add(owner);
    }
    for (const name of safeReaddir(this.attachmentsDir)) {
      if (name.includes('.tmp-')) continue;
      const key = readAttachmentFile(join(this.attachmentsDir, name))?.key ?? (name.startsWith('#') ? undefined : name);
      if (key) owners.add(key);
    }
    return [...owners].map((key) => {
      const at = key.lastIndexOf(':');
      return { containerId: key.slice(0, at), ifname: key.slice(at + 1) };
    });
  }

  listAddresses(): string[] {
    return safeReaddir(this.ipsDir);
  }

  /** Free addresses per range set; STATUS reports an exhausted pool. */
  freeCounts(): bigint[] {
    const used = this.listAddresses().map((a) => parseAddress(a));
    return this.rangeSets.map((set) =>
      set.reduce((free, range) => {
        const inRange = used.filter((u) => u.family === range.family && u.value >= range.first && u.value <= range.last).length;
        const gateway = range.gateway ? parseAddress(range.gateway).value : undefined;
        const gatewayInRange = gateway !== undefined && gateway >= range.first && gateway <= range.last ? 1n : 0n;
        return free + rangeSize(range) - BigInt(inRange) - gatewayInRange;
      }, 0n),
    );
  }

  private ownerOf(address: string): string | undefined {
    try {
      return readFileSync(join(this.ipsDir, address), 'utf8');
    } catch {
      return undefined;
    }
  }

  private unlinkOwned(address: string, attachment: Attachment): void {
    if (this.ownerOf(address) === attachmentKey(attachment)) rmQuiet(join(this.ipsDir, address));
  }

  private toAllocation(attachment: Attachment, ips: string[], created: boolean): Allocation {
    return {
      ...attachment,
      created,
      ips: ips.map((address) => {
        const { family, value } = parseAddress(address);
        const range = this.rangeSets.flat().find((r) => r.family === family && value >= r.first && value <= r.last);
        if (!range) throw new CniError(CniCode.INVALID_CONFIG, `allocated ${address} is outside the configured ranges`);
        return { address, range };
      }),
    };
  }
}

function readAttachmentFile(path: string): { key?: string; ips?: string[] } | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  try {
    const parsed = JSON.parse(text) as { key?: unknown; ips?: unknown };
    return {
      ...(typeof parsed.key === 'string' ? { key: parsed.key } : {}),
      ...(Array.isArray(parsed.ips) ? { ips: parsed.ips.filter((x): x is string => typeof x === 'string') } : {}),
    };
  } catch {
    return {};
  }
}

function readHint(path: string): { family: 4 | 6; value: bigint } | undefined {
  try {
    return parseAddress(readFileSync(path, 'utf8').trim());
  } catch {
    return undefined;
  }
}

function writeHint(path: string, address: string): void {
  try {
    writeFileSync(path, address);
  } catch {
    // The hint only spreads allocations; losing it costs nothing but reuse order.
  }
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function rmQuiet(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone: releasing is idempotent
  }
}
