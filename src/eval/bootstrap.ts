// Bootstrap confidence intervals for per-item means (accuracies): items are resampled with replacement and the
// interval is read off the resampled means by percentile. Seeded, so a report can be reproduced exactly.

import { Rng } from "../util/rng.js";

export interface Estimate {
  /** The mean over all items. */
  value: number;
  /** Percentile bootstrap interval (NaN without items). */
  low: number;
  high: number;
}

export interface BootstrapOptions {
  /** Resamples (default 1000; 0 gives no interval). */
  samples?: number;
  seed?: number;
  /** Coverage of the interval (default 0.95). */
  level?: number;
}

/** Linear-interpolation quantile of sorted values (numpy's default), q in [0, 1]. */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  const h = (n - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, n - 1);
  return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
}

/**
 * Mean and bootstrap interval of several per-item columns (equal lengths). Every column is resampled with the
 * same item draws, so intervals of metrics computed on the same items stay comparable.
 */
export function bootstrapMeans(
  columns: readonly ArrayLike<number>[],
  opts: BootstrapOptions = {},
): Estimate[] {
  const samples = opts.samples ?? 1000;
  const level = opts.level ?? 0.95;
  if (!Number.isInteger(samples) || samples < 0) throw new RangeError(`samples must be an integer >= 0`);
  if (!(level > 0 && level < 1)) throw new RangeError(`level must lie in (0, 1), got ${level}`);
  const n = columns.length > 0 ? columns[0].length : 0;
  if (columns.some((c) => c.length !== n)) throw new RangeError("bootstrap columns differ in length");
  const mean = (c: ArrayLike<number>) => {
    let s = 0;
    for (let i = 0; i < n; i++) s += c[i];
    return n > 0 ? s / n : NaN;
  };
  if (n === 0 || samples === 0) return columns.map((c) => ({ value: mean(c), low: NaN, high: NaN }));
  const rng = new Rng(opts.seed ?? 0);
  const means = columns.map(() => new Float64Array(samples));
  const sums = new Float64Array(columns.length);
  for (let s = 0; s < samples; s++) {
    sums.fill(0);
    for (let k = 0; k < n; k++) {
      const i = rng.int(n);
      for (let c = 0; c < columns.length; c++) sums[c] += columns[c][i];
    }
    for (let c = 0; c < columns.length; c++) means[c][s] = sums[c] / n;
  }
  const alpha = (1 - level) / 2;
  return columns.map((c, k) => {
    const sorted = means[k].sort();
    return { value: mean(c), low: quantile(sorted, alpha), high: quantile(sorted, 1 - alpha) };
  });
}
