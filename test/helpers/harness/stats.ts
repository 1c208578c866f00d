// The one percentile definition of the tests and the benchmarks.

/** Nearest-rank percentile of an ascending array (NaN when empty). */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] ?? Number.NaN;
}

/** p50, p99 and max of unsorted values, rounded to `digits` decimals. */
export function percentiles(values: readonly number[], digits: number): { p50: number; p99: number; max: number } {
  const sorted = Float64Array.from(values).sort();
  const scale = 10 ** digits;
  const r = (n: number) => Math.round(n * scale) / scale;
  return { p50: r(percentile(sorted, 50)), p99: r(percentile(sorted, 99)), max: r(sorted.at(-1) ?? Number.NaN) };
}
