// The command line as a user meets it: every mistake is one line on stderr and exit code 1, never a trace.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { FIXTURES, hasFixtures } from "./helpers.js";

const MAIN = resolve("dist/src/cli/main.js");

function run(args: string[], input?: string): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { input, encoding: "utf8", timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function assertUserError(args: string[], re: RegExp, input?: string): void {
  const r = run(args, input);
  assert.equal(r.code, 1, `${args.join(" ")}: exit ${r.code}, stderr ${r.stderr}`);
  const first = r.stderr.split("\n")[0];
  assert.match(first, /^aunet: /, `${args.join(" ")}: ${r.stderr}`);
  assert.match(first, re);
  assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
}

test("help lists the commands", () => {
  const r = run(["--help"]);
  assert.equal(r.code, 0);
  for (const c of ["check-fixture", "split", "train", "eval", "generate", "score", "convert", "demo"])
    assert.match(r.stdout, new RegExp(`\\b${c}\\b`));
});

test("bad inputs give one clear line", () => {
  const dir = mkdtempSync(join(tmpdir(), "aunet-cli-"));
  const bad = join(dir, "bad");
  mkdirSync(bad);
  for (const f of ["inputs.json", "expected.safetensors", "model.safetensors"])
    writeFileSync(join(bad, f), "");
  writeFileSync(join(bad, "config.json"), '{"model":{"dimensions":[32,64],"head_dims":[16],"layers":[1,1]}}');
  assertUserError(["nonsense"], /unknown command/);
  assertUserError(["check-fixture", join(dir, "missing")], /no such fixture directory/);
  assertUserError(["check-fixture", bad], /head_dims has 1 entries/);
  writeFileSync(join(bad, "config.json"), "{not json");
  assertUserError(["check-fixture", bad], /not valid JSON/);
  assertUserError(["split", "--strategy", "sentence1=1@1"], /word|pretok|punct/, "text");
  assertUserError(["split", "--strategy", "word1=1@1", "--file", join(dir, "nope.txt")], /nope\.txt/);
  assertUserError(["generate", "--ckpt", join(dir, "missing"), "--prompt", "x"], /missing/);
  assertUserError(
    ["train", "--config", "no-such-preset", "--data", "corpus", "--out", join(dir, "run")],
    /no-such-preset/,
  );
  assertUserError(["eval", "--ckpt", bad, "--data", join(dir, "none.txt")], /.+/);
});

test("check-fixture exits 0 and reports JSON", (t) => {
  if (!hasFixtures) return t.skip(`no fixtures under ${FIXTURES}`);
  const r = run(["check-fixture", join(FIXTURES, "2stage_word_english"), "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout) as { pass: boolean; logitsMaxAbsErr: number };
  assert.equal(report.pass, true);
  assert.ok(report.logitsMaxAbsErr < 1e-4);
});
