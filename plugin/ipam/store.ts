// On-disk IPAM store: one file per address and one per attachment, claimed with O_EXCL.
//
// Why no lock file: creating a file with O_EXCL is atomic across processes, so two concurrent ADDs
// can never both own an address, and a crashed ADD blocks nothing but its own attachment. Layout:
//   <dataDir>/<network>/ips/<address>             owner "<containerId>:<ifname>"
//   <dataDir>/<network>/attachments/<cid>:<if>    JSON {"ips": [...]}; empty while being allocated
//   <dataDir>/<network>/last-reserved-<set>       where the next search starts (host-local style)
import { mkdirSync, openSync, closeSync, writeSync, readFileSync, readdirSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CniCode, CniError } from '../errors.js';
import { type AddressRange, type RangeSet, candidates, formatAddress, parseAddress, rangeSize } from './pool.js';

export interface Attachment {
  containerId: string;
  ifname: string;
}

export interface Allocation extends Attachment {
  /** Bare addresses (no prefix length), one per range set, each with the range it came from. */
  ips: { address: string; range: AddressRange }[];
}

/** How long an unfinished attachment claim is respected before it is taken to be a crashed ADD's. */
const STALE_CLAIM_MS = 10_000;
const CLAIM_WAIT_MS = 2_000;

function attachmentKey(a: Attachment): string {
  return `${a.containerId}:${a.ifname}`;
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException)?.code;
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
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

  /**
   * Returns the attachment's addresses, allocating them on first call. Idempotent: a repeated ADD
   * for the same container and interface gets the same addresses back.
   */
  allocate(attachment: Attachment): Allocation {
    this.ensureDirs();
    const claimPath = join(this.attachmentsDir, attachmentKey(attachment));
    const existing = this.claim(claimPath);
    if (existing) return this.toAllocation(attachment, existing);

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
      writeFileSync(tmp, JSON.stringify({ ips: taken }));
      renameSync(tmp, claimPath);
      return this.toAllocation(attachment, taken);
    } catch (err) {
      for (const address of taken) this.unlinkOwned(address, attachment);
      rmQuiet(claimPath);
      throw err;
    }
  }

  /** Creates the attachment claim, or returns the addresses of one that already exists. */
  private claim(claimPath: string): string[] | undefined {
    const deadline = Date.now() + CLAIM_WAIT_MS;
    for (;;) {
      try {
        closeSync(openSync(claimPath, 'wx', 0o600));
        return undefined;
      } catch (err) {
        if (errno(err) !== 'EEXIST') throw new CniError(CniCode.IO_FAILURE, `cannot write ${claimPath}`, String(err));
      }
      const ips = readAttachmentFile(claimPath);
      if (ips) return ips;
      // Empty claim: another ADD for this attachment is allocating right now, or crashed doing so.
      if (claimAgeMs(claimPath) > STALE_CLAIM_MS) {
        rmQuiet(claimPath);
        continue;
      }
      if (Date.now() > deadline) {
        throw new CniError(CniCode.TRY_AGAIN_LATER, `another operation holds the allocation for ${claimPath}`);
      }
      sleepSync(20);
    }
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
    const claimPath = join(this.attachmentsDir, attachmentKey(attachment));
    const ips = readAttachmentFile(claimPath) ?? [];
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
    return readAttachmentFile(join(this.attachmentsDir, attachmentKey(attachment)));
  }

  /** Every attachment that owns at least one address (by the address files, the source of truth). */
  listAttachments(): Attachment[] {
    const owners = new Set<string>();
    for (const address of this.listAddresses()) {
      const owner = this.ownerOf(address);
      if (owner) owners.add(owner);
    }
    for (const key of safeReaddir(this.attachmentsDir)) if (!key.includes('.tmp-')) owners.add(key);
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

  private toAllocation(attachment: Attachment, ips: string[]): Allocation {
    return {
      ...attachment,
      ips: ips.map((address) => {
        const { family, value } = parseAddress(address);
        const range = this.rangeSets.flat().find((r) => r.family === family && value >= r.first && value <= r.last);
        if (!range) throw new CniError(CniCode.INVALID_CONFIG, `allocated ${address} is outside the configured ranges`);
        return { address, range };
      }),
    };
  }
}

function readAttachmentFile(path: string): string[] | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  if (!text) return undefined;
  try {
    const parsed = JSON.parse(text) as { ips?: unknown };
    return Array.isArray(parsed.ips) ? parsed.ips.filter((x): x is string => typeof x === 'string') : undefined;
  } catch {
    return undefined;
  }
}

function claimAgeMs(path: string): number {
  try {
    return Date.now() - statSync(path).mtimeMs;
  } catch {
    return 0;
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
