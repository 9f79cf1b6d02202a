// Shared test helpers: locating the shared fixtures, seeded random data.
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { Rng } from "../src/util/rng.js";

export const SHARED = process.env.AUNET_SHARED ?? resolve(process.cwd(), "../shared");
export const FIXTURES = resolve(SHARED, "fixtures");
export const hasFixtures = existsSync(FIXTURES);

export function randn(rng: Rng, n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal() * scale;
  return a;
}

export function randInts(rng: Rng, n: number, hi: number): Int32Array {
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.int(hi);
  return a;
}

/** A tiny seeded uniform generator in [0, 1) (mulberry32), so that a failing case reproduces. */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
