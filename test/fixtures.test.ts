// The proof that travels with the repo: the in-repo subset of the official fixtures (test/fixtures/SUBSET.md)
// is intact and, where the full set is present, made of the official bytes; a parity check whose fixture is
// missing is a visible skip, or a failure under CI; temporary directories of the tests go away.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { IN_REPO_FIXTURES, MODEL_FIXTURES, SHARED_FIXTURES, tempDir } from "./helpers.js";

const HELPERS = fileURLToPath(new URL("./helpers.js", import.meta.url));
const MAX_SUBSET_BYTES = 25 * 1024 * 1024;

/** Every tensor of a safetensors file: dtype, shape and its bytes as hex (any dtype, I64 included). */
function tensorBytes(file: string): Map<string, { dtype: string; shape: number[]; hex: string }> {
  const buf = readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString("utf8")) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  const out = new Map<string, { dtype: string; shape: number[]; hex: string }>();
  for (const [name, e] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const [from, to] = e.data_offsets;
    out.set(name, {
      dtype: e.dtype,
      shape: e.shape,
      hex: buf.subarray(8 + n + from, 8 + n + to).toString("hex"),
    });
  }
  return out;
}

interface Manifest {
  files: Record<string, string>;
  trimmed: Record<string, string>;
}
const manifest = JSON.parse(readFileSync(join(IN_REPO_FIXTURES, "MANIFEST.json"), "utf8")) as Manifest;

test("the in-repo fixtures are intact: every file of the manifest, with its hash, within 25 MiB", () => {
  let total = 0;
  for (const [file, sha] of Object.entries(manifest.files)) {
    const bytes = readFileSync(join(IN_REPO_FIXTURES, file));
    total += bytes.length;
    // A checkout that rewrote line ends or left a Git LFS pointer would fail here, not in a parity check.
    assert.equal(createHash("sha256").update(bytes).digest("hex"), sha, file);
  }
  assert.ok(total <= MAX_SUBSET_BYTES, `${total} bytes`);
  // One model fixture per feature path, with its generation traces, one trajectory, the splitter cases.
  for (const name of MODEL_FIXTURES)
    for (const f of ["model.safetensors", "expected.safetensors", "inputs.json", "generate/generate.json"])
      assert.ok(`${name}/${f}` in manifest.files, `${name}/${f}`);
  assert.ok("2stage_word_english/trajectory/trajectory.safetensors" in manifest.files);
  assert.equal(
    readFileSync(join(IN_REPO_FIXTURES, "split_cases.jsonl"), "utf8").trim().split("\n").length,
    210,
  );
});

test("the in-repo fixtures are the official bytes (checked against the full set where it is present)", (t) => {
  if (SHARED_FIXTURES === null) {
    // Nothing to compare with; the manifest check above still holds the subset to what was copied.
    t.diagnostic("the full fixture set is absent: compared with MANIFEST.json only");
    return;
  }
  for (const file of Object.keys(manifest.files)) {
    const mine = join(IN_REPO_FIXTURES, file),
      official = join(SHARED_FIXTURES, file);
    if (!(file in manifest.trimmed)) {
      assert.ok(readFileSync(mine).equals(readFileSync(official)), `${file} differs from the official file`);
      continue;
    }
    const a = tensorBytes(mine),
      b = tensorBytes(official);
    const keep = new RegExp(manifest.trimmed[file]);
    assert.deepEqual([...a.keys()].sort(), [...b.keys()].filter((n) => keep.test(n)).sort(), file);
    for (const [name, x] of a) assert.deepEqual(x, b.get(name), `${file} ${name} differs`);
  }
});

/** Runs a one-test file that needs a fixture nobody has, with the given CI variable. */
function runMissingFixture(ci: string | undefined): { status: number | null; out: string } {
  const dir = tempDir("aunet-fixtures-");
  const file = join(dir, "missing.test.mjs");
  writeFileSync(
    file,
    `import { test } from "node:test";\n` +
      `import { needFixtures } from ${JSON.stringify(HELPERS)};\n` +
      `test("parity on a fixture nobody has", { skip: needFixtures("no_such_fixture/model.safetensors") }, () => {});\n`,
  );
  const env = { ...process.env };
  delete env.CI;
  delete env.NODE_TEST_CONTEXT; // else the child thinks it runs inside this test runner
  if (ci !== undefined) env.CI = ci;
  const r = spawnSync(process.execPath, ["--test", file], { env, encoding: "utf8", timeout: 60_000 });
  return { status: r.status, out: r.stdout + r.stderr };
}

test("a missing fixture: a skip with its reason, and a failure under CI=true", () => {
  const local = runMissingFixture(undefined);
  assert.equal(local.status, 0, local.out);
  assert.match(local.out, /# SKIP fixture missing: no_such_fixture\/model\.safetensors/);
  const ci = runMissingFixture("true");
  assert.equal(ci.status, 1, ci.out);
  assert.match(ci.out, /under CI a parity check may not be skipped/);
});

test("tempDir: the directories are gone when the test process ends, even after a failure", () => {
  const dir = tempDir("aunet-fixtures-");
  const file = join(dir, "temp.test.mjs");
  writeFileSync(
    file,
    `import { tempDir } from ${JSON.stringify(HELPERS)};\n` +
      `const d = tempDir("aunet-probe-");\n` +
      `console.log(d);\n` +
      `if (process.argv[2] === "fail") throw new Error("a failing test file");\n`,
  );
  for (const mode of ["pass", "fail"]) {
    const r = spawnSync(process.execPath, [file, mode], { encoding: "utf8", timeout: 60_000 });
    assert.equal(r.status, mode === "pass" ? 0 : 1, r.stderr);
    const made = r.stdout.trim();
    assert.match(made, /aunet-probe-/);
    assert.equal(existsSync(made), false, `${made} was left behind`);
  }
});
