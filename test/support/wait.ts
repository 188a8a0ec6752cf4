// Waiting with a bound, for tests and the scripts they run (no vitest here: scripts import it too).

/**
 * Polls `check` every `pollMs` (100) until it holds; returns how long that took, throws past
 * `timeoutMs`, with `context()` in the message when given (what the test saw last).
 */
export async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs: number, options: { pollMs?: number; context?: () => string } = {}): Promise<number> {
  const start = Date.now();
  while (!(await check())) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${options.context ? `; ${options.context()}` : ''}`);
    await new Promise((r) => setTimeout(r, options.pollMs ?? 100));
  }
  return Date.now() - start;
}
