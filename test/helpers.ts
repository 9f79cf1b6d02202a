// Shared test helpers: locating the official fixtures (the full set in ../shared, else the subset kept in
// test/fixtures), parity checks that may not be skipped under CI, self-removing temporary directories, seeded
// random data.
import { test } from "node:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Rng } from "../src/util/rng.js";

export const SHARED = process.env.AUNET_SHARED ?? resolve(process.cwd(), "../shared");
/** The subset of the official fixtures that travels with the repo (test/fixtures/SUBSET.md). */
export const IN_REPO_FIXTURES = fileURLToPath(new URL("../../test/fixtures", import.meta.url));
/**
 * The full fixture set, when present. AUNET_SHARED_FIXTURES=none hides it (the suite then runs as in a fresh
 * clone, on the in-repo subset); a path names another copy.
 */
export const SHARED_FIXTURES: string | null = (() => {
  const env = process.env.AUNET_SHARED_FIXTURES;
  if (env === "none") return null;
  const dir = env ? resolve(env) : resolve(SHARED, "fixtures");
  return existsSync(dir) ? dir : null;
})();
/** Where fixtures are read from: the full set first, then the in-repo subset. */
export const FIXTURES = SHARED_FIXTURES ?? IN_REPO_FIXTURES;
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

/** The official model fixtures; the in-repo subset has each of them (test/fixtures/SUBSET.md). */
export const MODEL_FIXTURES = [
  "2stage_word_english",
  "3stage_word_2words_mixed",
  "2stage_sliding_code",
] as const;

/** A fixture file or directory (path relative to the fixture root): the full set's, else the in-repo one, else null. */
export function fixturePath(rel: string): string | null {
  for (const root of [SHARED_FIXTURES, IN_REPO_FIXTURES])
    if (root !== null && existsSync(join(root, rel))) return join(root, rel);
  return null;
}

const CI = !["", "0", "false"].includes((process.env.CI ?? "").toLowerCase());

/**
 * The skip option of a parity check that needs `rels` (fixture paths): false when they all exist, else the
 * reason, so the skip is visible with its cause. Under CI=true a missing fixture is not a skip: a failing
 * test is registered in its place, so the run fails.
 */
export function needFixtures(...rels: string[]): string | false {
  const missing = rels.filter((r) => fixturePath(r) === null);
  if (missing.length === 0) return false;
  const reason = `fixture missing: ${missing.join(", ")} (looked in ${[SHARED_FIXTURES, IN_REPO_FIXTURES].filter((r) => r).join(" and ")})`;
  if (CI)
    test(`parity fixtures present: ${missing.join(", ")}`, () => {
      throw new Error(`${reason}; under CI a parity check may not be skipped`);
    });
  return reason;
}

const tempDirs: string[] = [];
/** A fresh temporary directory, removed when the test process exits (passing or failing). */
export function tempDir(prefix = "aunet-test-"): string {
  if (tempDirs.length === 0)
    process.on("exit", () => {
      for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
    });
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}
