// The layers of the source tree (README, "Layout"): each directory of src/ may import only from the layers
// below it. A static check of every import keeps the order, the way portable.test.ts keeps the core free of Node.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const BELOW: Record<string, string[]> = {
  util: [],
  engine: ["util"],
  backends: ["engine", "util"],
  data: ["engine", "util"],
  model: ["engine", "backends", "data", "util"],
  // io reads and writes formats beside the layers: model directories and checkpoints, hence the model.
  io: ["engine", "backends", "data", "model", "util"],
  train: ["engine", "backends", "data", "model", "io", "util"],
  generate: ["engine", "backends", "data", "model", "io", "util"],
  eval: ["engine", "backends", "data", "model", "io", "util", "train", "generate"],
  baselines: ["engine", "backends", "data", "model", "io", "util", "train", "generate"],
  // The server sits beside the CLI: everything but the CLI.
  serve: ["engine", "backends", "data", "model", "io", "util", "train", "generate", "eval", "baselines"],
};

function* walk(dir: string): Generator<string> {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* walk(p);
    else if (p.endsWith(".ts")) yield p;
  }
}

test("layers: nothing imports from a higher layer", () => {
  const src = resolve("src");
  const bad: string[] = [];
  let files = 0;
  for (const file of walk(src)) {
    const layer = relative(src, file).split("/")[0];
    if (layer === "cli" || layer.endsWith(".ts")) continue; // the CLI and the package entry sit on top
    files++;
    const allowed = BELOW[layer];
    assert.ok(allowed, `src/${layer} is not a known layer: add it to BELOW in test/layers.test.ts`);
    const text = readFileSync(file, "utf8");
    for (const m of text.matchAll(
      /(?:^|\n)\s*(?:import|export)\b[^;]*?from\s+"(\.[^"]+)"|import\("(\.[^"]+)"\)/g,
    )) {
      const spec = m[1] ?? m[2];
      const target = relative(src, resolve(dirname(file), spec)).split("/")[0];
      if (target !== layer && !allowed.includes(target))
        bad.push(`${relative(".", file)} (${layer}) imports ${spec} (${target})`);
    }
  }
  assert.ok(files > 50, `only ${files} files checked`);
  assert.deepEqual(bad, []);
});
