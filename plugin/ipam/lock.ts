// One operation at a time per attachment (container id + interface), across every process that
// shares the data dir: the CNI server and in-process plugins of the runtime.
//
// Why: ADD, DEL and GC of one attachment read and write both the IPAM record and the interfaces, so
// two of them interleaved can leave an address in use with no record (duplicate-IP risk). A lock
// file made with O_EXCL names its owner (pid namespace, pid, start time). It is stale when that
// process is gone, which is known at once in our own pid namespace (the CNI server runs in the
// agent's container, the fallback in the runtime's), and otherwise after a lease far longer than any
// operation can last: every step of one has its own deadline.
import { createHash, randomBytes } from 'node:crypto';
import { linkSync, mkdirSync, openSync, closeSync, readFileSync, readlinkSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { CniCode, CniError } from '../errors.js';

const LEASE_MS = 120_000;
const WAIT_MS = 8_000;
const POLL_MS = 10;

/**
 * A file name for a key: the key itself, or its hash when too long for a file name (container ids
 * have no length limit in the spec). Hashed names start with '#', which no container id does.
 */
export function fileNameOf(key: string): string {
  return Buffer.byteLength(key) <= 200 ? key : `#${createHash('sha256').update(key).digest('hex')}`;
}

function readQuiet(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

function startTimeOf(pid: number): string | undefined {
  const stat = readQuiet(`/proc/${pid}/stat`);
  // Field 22, counted after the command name, which may itself hold spaces and parentheses.
  return stat?.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
}

let self: string | undefined;
function owner(): string {
  self ??= JSON.stringify({ pidns: readlinkSync('/proc/self/ns/pid'), pid: process.pid, start: startTimeOf(process.pid) });
  return self;
}

function isStale(path: string, content: string): boolean {
  try {
    if (Date.now() - statSync(path).mtimeMs > LEASE_MS) return true;
  } catch {
    return false; // gone already: the next try creates it
  }
  try {
    const o = JSON.parse(content) as { pidns?: string; pid?: number; start?: string };
    const ours = JSON.parse(owner()) as { pidns: string };
    return o.pidns === ours.pidns && typeof o.pid === 'number' && startTimeOf(o.pid) !== o.start;
  } catch {
    return false; // half-written by a live owner, or garbage: only the lease ends it
  }
}

/** Removes a stale lock, unless another process replaced it since we read it. */
function breakStale(path: string, content: string): void {
  const aside = `${path}.stale-${randomBytes(6).toString('hex')}`;
  try {
    renameSync(path, aside);
  } catch {
    return;
  }
  if (readQuiet(aside) !== content) {
    try {
      linkSync(aside, path); // not the one judged stale: put it back
    } catch {
      // someone locked meanwhile; theirs stands
    }
  }
  try {
    unlinkSync(aside);
  } catch {
    // already gone
  }
}

const held = new Map<string, Promise<unknown>>();

/** Runs `fn` holding the attachment's lock; code 11 (try again later) when it stays held. */
export async function withAttachmentLock<T>(dir: string, key: string, fn: () => Promise<T>): Promise<T> {
  const path = join(dir, 'locks', fileNameOf(key));
  // Same process first (the CNI server runs many operations), then the file for other processes.
  const before = held.get(path) ?? Promise.resolve();
  const mine = before.catch(() => undefined).then(async () => {
    await acquire(path);
    try {
      return await fn();
    } finally {
      if (readQuiet(path) === owner()) {
        try {
          unlinkSync(path);
        } catch {
          // gone: nothing to release
        }
      }
    }
  });
  held.set(path, mine);
  try {
    return await mine;
  } finally {
    if (held.get(path) === mine) held.delete(path);
  }
}

async function acquire(path: string): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  for (let madeDir = false; ; ) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      try {
        writeSync(fd, owner());
      } finally {
        closeSync(fd);
      }
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' && !madeDir) {
        // The directory is made on first use only: the hot path is one open.
        madeDir = true;
        try {
          mkdirSync(join(path, '..'), { recursive: true, mode: 0o700 });
        } catch (mkdirErr) {
          throw new CniError(CniCode.IO_FAILURE, `cannot create ${join(path, '..')}`, String(mkdirErr));
        }
        continue;
      }
      if (code !== 'EEXIST') throw new CniError(CniCode.IO_FAILURE, `cannot lock ${path}`, String(err));
    }
    const content = readQuiet(path);
    if (content !== undefined && isStale(path, content)) {
      breakStale(path, content);
      continue;
    }
    if (Date.now() > deadline) throw new CniError(CniCode.TRY_AGAIN_LATER, `another operation holds ${path}`, content ?? '');
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}
