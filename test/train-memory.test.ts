// A configuration whose weights, optimiser state and activations exceed the machine's memory is refused in one
// line before anything is allocated (it would otherwise run for minutes and then die out of memory).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadRawConfig } from "../src/train/run-config.js";
import { tempDir } from "./helpers.js";

test("train: a config larger than the machine's memory is refused at once", () => {
  const dir = tempDir("aunet-mem-");
  const raw = loadRawConfig("tiny") as { model: Record<string, unknown> };
  // About 6e10 parameters: inside every shape limit, far beyond any memory this suite runs on.
  raw.model = { ...raw.model, dimensions: [4096, 8192], layers: [64, 64], head_dims: [128, 128] };
  const cfg = join(dir, "huge.json");
  writeFileSync(cfg, JSON.stringify(raw));
  const data = join(dir, "text.txt");
  writeFileSync(data, "some words to train on\n".repeat(50));
  const r = spawnSync(
    process.execPath,
    ["dist/src/cli/main.js", "train", "--config", cfg, "--data", data, "--out", join(dir, "run")],
    { encoding: "utf8", env: { ...process.env, AUNET_BACKEND: "ref" }, timeout: 60_000 },
  );
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /^aunet: .*training this config would need about [\d.]+ (GiB|TiB)/m);
  assert.equal(
    r.stderr
      .trim()
      .split("\n")
      .filter((l) => l.startsWith("aunet")).length,
    1,
  );
});
