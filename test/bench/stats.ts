// Percentiles and ratio lines for benchmarks: ratios against a reference measured in the same run.
export function percentile(samples: number[], p: number): number {
  if (samples.length === 0) return NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

export function summary(name: string, samples: number[]): { name: string; p50: number; p95: number; n: number } {
  return { name, p50: percentile(samples, 50), p95: percentile(samples, 95), n: samples.length };
}

export function ratioLine(what: string, ours: number, reference: number, goal: string): string {
  return `${what}: ratio ${(ours / reference).toFixed(2)}x (ours ${ours.toFixed(1)} vs reference ${reference.toFixed(1)}; goal ${goal})`;
}
