// The pages' code stays browser-portable (no Node built-ins anywhere in their import graphs, which the static
// site copies as is), and the training figure draws what it says: bits per byte on a log axis with validation
// where it was measured, learning rate and gradient norm panels.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { logTicks, renderRunFigure, type RunRecord } from "../src/train/plot.js";

test("web: the playground and dashboard import no Node built-ins", () => {
  for (const root of ["src/serve/web/playground.ts", "src/serve/web/dashboard.ts"]) {
    const seen = new Set<string>();
    const stack = [resolve(root)];
    while (stack.length > 0) {
      const file = stack.pop()!;
      if (seen.has(file)) continue;
      seen.add(file);
      const src = readFileSync(file, "utf8");
      for (const m of src.matchAll(/^\s*(?:import|export)\b[^;]*?from\s+"([^"]+)"/gm)) {
        assert.ok(m[1].startsWith("."), `${file} imports ${m[1]}`);
        stack.push(resolve(dirname(file), m[1].replace(/\.js$/, ".ts")));
      }
      assert.ok(
        !/\bprocess\.|\bBuffer\b|\brequire\(/.test(src.replace(/\/\/.*$/gm, "")),
        `${file} uses a Node global`,
      );
    }
    assert.ok(seen.size >= 2, `${root}: ${seen.size} modules`);
  }
});

test("plot: log ticks are 1-2-5 powers of ten, or nice linear ticks over a narrow range", () => {
  assert.deepEqual(logTicks(0.3, 60), [0.5, 1, 2, 5, 10, 20, 50]);
  assert.deepEqual(logTicks(2.1, 8.9), [3, 4, 5, 6, 7, 8]);
});

test("plot: the run figure has the bits-per-byte panel on a log axis, validation dots, lr and grad-norm panels", () => {
  const records: RunRecord[] = [{ kind: "val", step: 0, bpb: 8.8 }];
  for (let step = 1; step <= 100; step++)
    records.push({
      kind: "train",
      step,
      bpb: 8 / Math.sqrt(step),
      lr: 1e-3 * Math.min(1, step / 10),
      grad_norm: 1 / step,
    });
  records.push({ kind: "val", step: 50, bpb: 1.5 }, { kind: "val", step: 100, bpb: 1.2 });
  const svg = renderRunFigure(records, "test run");
  assert.match(svg, /bits per byte \(log\)/);
  assert.match(svg, />learning rate</);
  assert.match(svg, /gradient norm/);
  // Validation is drawn where it was measured: one dot per validation record, nowhere else.
  const dots = [...svg.matchAll(/<circle [^>]*fill="#d94801"/g)].length;
  assert.equal(dots, 3);
  assert.equal((svg.match(/<svg /g) ?? []).length, 1, "one document");
  assert.equal(
    new Set([...svg.matchAll(/clipPath id="(\w+)"/g)].map((m) => m[1])).size,
    3,
    "a clip per panel",
  );
});
