// The command line as a user meets it: every mistake is one line on stderr and exit code 1, never a trace.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { FIXTURES, hasFixtures } from "./helpers.js";

const MAIN = resolve("dist/src/cli/main.js");

function run(args: string[], input?: string): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { input, encoding: "utf8", timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function assertUserError(args: string[], re: RegExp, input?: string, env?: Record<string, string>): void {
  const r = env
    ? spawnSync(process.execPath, [MAIN, ...args], {
        input,
        encoding: "utf8",
        timeout: 60_000,
        env: { ...process.env, ...env },
      })
    : spawnSync(process.execPath, [MAIN, ...args], { input, encoding: "utf8", timeout: 60_000 });
  assert.equal(r.status, 1, `${args.join(" ")}: exit ${r.status}, stderr ${r.stderr}`);
  const first = r.stderr.split("\n")[0];
  assert.match(first, /^aunet[ :]/, `${args.join(" ")}: ${r.stderr}`);
  assert.doesNotMatch(first, /^aunet: aunet/, "one prefix");
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
  rmSync(dir, { recursive: true, force: true });
});

test("check-fixture exits 0 and reports JSON", (t) => {
  if (!hasFixtures) return t.skip(`no fixtures under ${FIXTURES}`);
  const r = run(["check-fixture", join(FIXTURES, "2stage_word_english"), "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout) as { pass: boolean; logitsMaxAbsErr: number };
  assert.equal(report.pass, true);
  assert.ok(report.logitsMaxAbsErr < 1e-4);
});

test("--version, help CMD, and unknown commands that are Object's own names", () => {
  const pkg = JSON.parse(readFileSync("package.json", "utf8")) as { version: string };
  assert.equal(run(["--version"]).stdout, `aunet ${pkg.version}\n`);
  const help = run(["help", "score"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^usage: aunet score /);
  for (const name of ["constructor", "__proto__", "toString", "hasOwnProperty"]) {
    assertUserError([name], new RegExp(`^aunet: unknown command '${name}' \\(see 'aunet --help'\\)$`));
    assertUserError(["help", name], /unknown command/);
  }
});

test("a closed stdout ends any command quietly (EPIPE)", () => {
  const dir = mkdtempSync(join(tmpdir(), "aunet-cli-"));
  try {
    const big = join(dir, "big.txt");
    writeFileSync(big, "The whale. ".repeat(300_000));
    const r = spawnSync(
      "bash",
      [
        "-o",
        "pipefail",
        "-c",
        `"${process.execPath}" "${MAIN}" split --strategy word1=1@1 --file "${big}" | head -c 10`,
      ],
      { encoding: "utf8", timeout: 60_000 },
    );
    assert.equal(r.stdout, '{"masks":[');
    assert.equal(r.stderr, "");
    assert.equal(r.status, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("invalid AUNET_* variables are one-line errors, not silent fallbacks", () => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ AUNET_BACKEND: "gpu" }, /AUNET_BACKEND must be auto, cpu, webgpu, wasm or ref, got "gpu"/],
    [{ AUNET_THREADS: "0" }, /AUNET_THREADS must be an integer from 1 to 1024, got "0"/],
    [{ AUNET_THREADS: "two" }, /AUNET_THREADS must be an integer .* got "two"/],
    [{ AUNET_ISA: "avx9" }, /AUNET_ISA must be one of generic, avx2, avx512, got "avx9"/],
    [{ AUNET_POOL_MB: "-1" }, /AUNET_POOL_MB must be a number of megabytes >= 0/],
    [{ AUNET_POOL_MB: "lots" }, /AUNET_POOL_MB must be a number/],
  ];
  for (const [env, re] of cases) assertUserError(["split", "--strategy", "word1=1@1"], re, "text", env);
});

test("absurd numbers are refused up front, before any work", () => {
  const dir = mkdtempSync(join(tmpdir(), "aunet-cli-"));
  try {
    const out = join(dir, "run");
    const train = ["train", "--config", "tiny", "--data", "corpus/moby-dick.val.txt", "--out", out];
    assertUserError([...train, "--grad-acc", "1000000000"], /--grad-acc must be an integer >= 1 and <= 4096/);
    assertUserError([...train, "--seq", "1e9"], /--seq must be an integer .*<= 1048576, got '1e9'/);
    assertUserError([...train, "--seed", "1e300"], /--seed must be an integer >= 0 and <= 4294967295/);
    assert.equal(existsSync(out), false, "nothing was started");
    const gen = ["generate", "--ckpt", join(dir, "none"), "--prompt", "x"];
    assertUserError([...gen, "--seed", "-1"], /--seed must be an integer >= 0 and <= 4294967295, got '-1'/);
    assertUserError([...gen, "--seed", "1e300"], /--seed must be an integer >= 0/);
    assertUserError([...gen, "--seed", "4294967296"], /--seed must be/);
    assertUserError([...gen, "--max-bytes", "1e9"], /--max-bytes must be an integer >= 0 and <= 16777216/);
    assertUserError(
      ["eval", "--ckpt", join(dir, "none"), "--data", "x", "--batch", "1e9"],
      /--batch must be/,
    );
    assertUserError(
      ["eval", "--task", "mcq", "--ckpt", join(dir, "none"), "--file", "x", "--seed", "-1"],
      /--seed must be an integer >= 0/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
