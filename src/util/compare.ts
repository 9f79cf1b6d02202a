// Error measures between a computed tensor and the expected one (parity checks, fixtures, tests).

/** Largest magnitude. */
export function maxAbs(a: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/** Largest absolute difference; Infinity for different lengths or where either side is NaN. */
export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

/** Error relative to the expected tensor's largest magnitude (meaningful for tensors near zero too). */
export function relErr(got: Float32Array, want: Float32Array): number {
  return maxAbsDiff(got, want) / Math.max(maxAbs(want), 1e-12);
}
