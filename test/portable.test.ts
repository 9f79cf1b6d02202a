// The engine, the reference backend, the model, the splitter and the generator must run in a browser: their
// whole import graph stays free of Node built-ins and of `process`. A static check keeps it that way.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";

const ROOTS = [
  "src/engine/ops.ts",
  "src/backends/ref.ts",
  "src/model/aunet.ts",
  "src/data/splitter.ts",
  "src/data/incremental.ts",
  "src/generate/generator.ts",
];

test("browser-portable core: no Node built-ins in the import graph", () => {
  const seen = new Set<string>();
  const stack = ROOTS.map((r) => resolve(r));
  while (stack.length > 0) {
    const file = stack.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const src = readFileSync(file, "utf8");
    for (const m of src.matchAll(/^\s*(?:import|export)\b[^;]*?from\s+"([^"]+)"/gm)) {
      const spec = m[1];
      assert.ok(!spec.startsWith("node:"), `${file} imports ${spec}`);
      assert.ok(spec.startsWith("."), `${file} imports the package ${spec}`);
      stack.push(resolve(dirname(file), spec.replace(/\.js$/, ".ts")));
    }
    assert.ok(
      !/\bprocess\.|\bBuffer\b|\brequire\(/.test(src.replace(/\/\/.*$/gm, "")),
      `${file} uses a Node global`,
    );
  }
  assert.ok(seen.size >= ROOTS.length);
});
