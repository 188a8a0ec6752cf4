// The CNI server's request counters (latency by verb, errors by CNI code), kept here and sent to the
// agent, which exports them on its /metrics: the server has no port of its own to be scraped on.

/** Seconds; an ADD costs ~16 ms through the server (MEASUREMENTS.md), a stuck one up to its deadlines. */
export const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export interface VerbStats {
  /** Cumulative counts per bucket of LATENCY_BUCKETS (le), as Prometheus histograms have them; +Inf is `count`. */
  buckets: number[];
  count: number;
  sum: number;
}

/** What the server sends its parent: cumulative since the server started. */
export interface CniStatsSnapshot {
  le: number[];
  verbs: Record<string, VerbStats>;
  /** verb → CNI error code (or `internal` for a failure of the server itself) → count. */
  errors: Record<string, Record<string, number>>;
}

export class CniStats {
  private readonly verbs: Record<string, VerbStats> = {};
  private readonly errors: Record<string, Record<string, number>> = {};

  record(verb: string, seconds: number, errorCode?: string): void {
    const v = (this.verbs[verb] ??= { buckets: LATENCY_BUCKETS.map(() => 0), count: 0, sum: 0 });
    LATENCY_BUCKETS.forEach((le, i) => {
      if (seconds <= le) v.buckets[i]!++;
    });
    v.count++;
    v.sum += seconds;
    if (errorCode !== undefined) {
      const byCode = (this.errors[verb] ??= {});
      byCode[errorCode] = (byCode[errorCode] ?? 0) + 1;
    }
  }

  snapshot(): CniStatsSnapshot {
    return structuredClone({ le: LATENCY_BUCKETS, verbs: this.verbs, errors: this.errors });
  }
}

/** The CNI error code of a failed invocation's stdout (`{"code": 7, …}`), or `unknown`. */
export function errorCodeOf(stdout: string): string {
  try {
    const code = (JSON.parse(stdout) as { code?: unknown }).code;
    return typeof code === 'number' ? String(code) : 'unknown';
  } catch {
    return 'unknown';
  }
}
