// The native addon and its TypeScript description agree: the addon exports exactly the utilities and the
// kernels that src/backends/native.ts declares, each kernel with the signature of the TypeScript table (from
// which the `Addon` interface's types are derived), and every kernel checks its arguments against that
// signature before running.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { existsSync } from "node:fs";
import { ADDON_UTILITIES, KERNEL_SIGNATURES, nativeAddonPath, type Addon } from "../src/backends/native.js";

const file = nativeAddonPath();

function addon(): Addon {
  return createRequire(import.meta.url)(file) as Addon;
}

test("the addon exports what the TypeScript interface declares, with the same kernel signatures", (t) => {
  if (!existsSync(file)) {
    t.skip(`native addon not built (${file})`);
    return;
  }
  const a = addon();
  const declared = [...ADDON_UTILITIES, ...Object.keys(KERNEL_SIGNATURES)].sort();
  assert.deepEqual(Object.keys(a).sort(), declared);
  assert.deepEqual({ ...a.kernelSignatures() }, { ...KERNEL_SIGNATURES });
});

test("every kernel refuses a call that does not match its signature", (t) => {
  if (!existsSync(file)) {
    t.skip(`native addon not built (${file})`);
    return;
  }
  const a = addon() as unknown as Record<string, (...args: unknown[]) => unknown>;
  const s = (a.alloc as (n: number) => object)(4);
  // A well-typed argument for each signature letter, and one of the wrong type.
  const good: Record<string, unknown> = {
    S: s,
    N: 0.5,
    I: 1,
    B: false,
    A: new Int32Array(1),
    P: null,
    L: [s],
  };
  const bad: Record<string, unknown> = { S: 1, N: "x", I: -1, B: 0, A: new Float32Array(1), P: [0], L: s };
  for (const [name, sig] of Object.entries(KERNEL_SIGNATURES)) {
    const args = [...sig].map((c) => good[c]);
    assert.throws(() => a[name](...args.slice(0, -1)), /takes \d+ arguments/, `${name}: too few arguments`);
    for (let i = 0; i < sig.length; i++) {
      const wrong = args.slice();
      wrong[i] = bad[sig[i]];
      assert.throws(
        () => a[name](...wrong),
        new RegExp(`${name}: argument ${i} must be`),
        `${name} argument ${i}`,
      );
    }
  }
});
