// The small pieces behind the command line's promises, tested directly: error lines, numeric flag ranges, the
// AUNET_* variables, byte escapes, CUTE task names inside file names, and compare's table and plot.
import { test } from "node:test";
import assert from "node:assert/strict";
import { errorLine } from "../src/cli/main.js";
import { FLAG_LIMITS, SEED_MAX, checkNumber, intFlag, num, parseFlags } from "../src/cli/flags.js";
import { decodeEscapes, argumentBytes } from "../src/cli/prompts.js";
import { readBackendEnv } from "../src/backends/env.js";
import { cuteTaskFromPath } from "../src/eval/cute-format.js";
import { compareMarkdown, compareSvg } from "../src/baselines/compare-report.js";
import type { CompareResult, CompareRow } from "../src/baselines/compare.js";
import { UserError } from "../src/util/errors.js";

test("error lines: one aunet prefix, control characters escaped, length bounded", () => {
  assert.equal(errorLine("aunet eval: --ckpt is required"), "aunet eval: --ckpt is required");
  assert.equal(errorLine("--seed must be"), "aunet: --seed must be");
  const line = (m: string) => errorLine(new UserError(m).message);
  assert.equal(line("name \x1b]0;pwned\x07 here\ttab"), "aunet: name \\x1b]0;pwned\\x07 here\\ttab");
  assert.ok(line("x".repeat(20_000_000)).length < 2100);
  assert.equal(line("a\nb"), "aunet: a\\nb", "a message is one line");
  assert.equal(
    errorLine(new UserError("unknown command 'x'", { detail: "usage:\n  aunet ..." }).message),
    "aunet: unknown command 'x'\nusage:\n  aunet ...",
    "the program's own detail keeps its lines",
  );
});

test("numeric flags: ranges checked as they are parsed, ceilings by name, seeds are 32-bit", () => {
  const spec = { n: intFlag(1, 10), seed: intFlag(0), seq: { kind: "string" } } as const;
  assert.throws(
    () => parseFlags("cmd", ["--n", "11"], spec),
    /--n must be an integer >= 1 and <= 10, got '11'/,
  );
  assert.throws(() => parseFlags("cmd", ["--n", "2.5"], spec), UserError);
  assert.throws(() => parseFlags("cmd", ["--seed", "-1"], spec), /<= 4294967295/);
  assert.throws(() => parseFlags("cmd", ["--seed", "1e300"], spec), UserError);
  assert.equal(num(parseFlags("cmd", ["--seed", String(SEED_MAX)], spec), "seed", { int: true }), SEED_MAX);
  // A flag of a known name gets its ceiling even where the command gives none.
  const f = parseFlags("cmd", ["--seq", "1e9"], spec);
  assert.throws(() => num(f, "seq", { int: true, min: 2 }), new RegExp(`<= ${FLAG_LIMITS.seq}`));
  assert.throws(() => checkNumber("grad-acc", "1000000000", { int: true, min: 1 }), /<= 4096/);
  assert.equal(checkNumber("grad-acc", "64", { int: true, min: 1 }), 64);
  assert.throws(
    () => checkNumber("x", "\x1b[2J", {}),
    (e: Error) => !e.message.includes("\x1b"),
  );
});

test("AUNET_* variables are validated, empty means unset", () => {
  assert.deepEqual(readBackendEnv({}), { backend: "auto" });
  assert.deepEqual(
    readBackendEnv({ AUNET_BACKEND: "native", AUNET_THREADS: "2", AUNET_ISA: "AVX2", AUNET_POOL_MB: "0.5" }),
    { backend: "cpu", threads: 2, isa: "avx2", poolMb: 0.5 },
  );
  assert.deepEqual(readBackendEnv({ AUNET_BACKEND: " ", AUNET_THREADS: "" }), { backend: "auto" });
  for (const env of [
    { AUNET_BACKEND: "cuda" },
    { AUNET_THREADS: "0" },
    { AUNET_THREADS: "1.5" },
    { AUNET_THREADS: "two" },
    { AUNET_THREADS: "100000" },
    { AUNET_ISA: "sse" },
    { AUNET_POOL_MB: "-3" },
    { AUNET_POOL_MB: "NaN" },
  ])
    assert.throws(() => readBackendEnv(env), UserError, JSON.stringify(env));
});

test("byte escapes", () => {
  assert.deepEqual(
    [...decodeEscapes("a\\xffb\\n\\t\\0\\\\é", "--prompt")],
    [0x61, 0xff, 0x62, 10, 9, 0, 92, 0xc3, 0xa9],
  );
  assert.throws(() => decodeEscapes("\\x4", "--prompt"), /unknown escape/);
  assert.throws(() => argumentBytes("a\uFFFDb", "--prompt", false), /U\+FFFD/);
  assert.deepEqual([...argumentBytes("a\\xff", "--prompt", false)], [...Buffer.from("a\\xff")]);
});

test("CUTE task from any file name that contains a task name", () => {
  const cases: [string, string | null][] = [
    ["data/spell_rand.tsv", "spell"],
    ["cute_spell_test.tsv", "spell"],
    ["/x/CUTE-spell_inverse.dev.tsv", "spell_inverse"],
    ["sub_word.tsv", "sub_word"],
    ["my_del_char_v2.tsv", "del_char"],
    ["spelling.tsv", null],
    ["orthography.tsv", null],
  ];
  for (const [path, task] of cases) assert.equal(cuteTaskFromPath(path), task, path);
});

function row(
  budget: number,
  model: CompareRow["model"],
  valBpb: number,
  trainFlops = budget * 0.99,
): CompareRow {
  return {
    budget,
    model,
    shape: "s",
    params: 1e6,
    nonEmbeddingParams: 9e5,
    seqLen: 64,
    bytesPerPosition: [1],
    flopsPerByte: 1e6,
    batchRows: 2,
    batchBytes: 128,
    steps: 10,
    warmup: 1,
    trainFlops,
    bytesTrained: 1280,
    lr: 1e-3,
    law: { rawLr: 1e-3 } as CompareRow["law"],
    valBpb,
    trainSeconds: 1,
    wallSeconds: 1,
  };
}

test("compare: the table bolds only the best of each budget; one budget plots in the middle", () => {
  const rows = [
    row(1e11, "byte", 3.1),
    row(1e11, "aunet2", 2.9),
    row(1e12, "byte", 2.5),
    row(1e12, "bpe", 2.7),
  ];
  const md = compareMarkdown({
    rows,
    command: "",
    corpus: { trainBytes: 1, valBytes: 1, bpeBytesPerToken: null },
    files: { json: "", markdown: "", svg: "" },
  } as CompareResult);
  assert.deepEqual(md.match(/\*\*[\d.]+\*\*/g), ["**2.9000**", "**2.5000**"]);
  // One budget: the models' trained FLOPs differ by slivers; the dots sit at the centre of the x axis.
  const svg = compareSvg([row(1e11, "byte", 3.1, 0.98e11), row(1e11, "aunet2", 2.9, 0.995e11)]);
  const xs = [...svg.matchAll(/<circle cx="([\d.]+)"/g)].map((m) => Number(m[1]));
  assert.equal(xs.length, 2);
  for (const x of xs) assert.equal(x, 64 + (720 - 64 - 20) / 2);
});
