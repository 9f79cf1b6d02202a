// The command line under awkward and hostile input, on a tiny model in a temp directory: prompts from files,
// stdin and byte escapes, several prompts at once, weights that overflow, data that is not what it says,
// existing destinations, and signals. Each refusal is one line on stderr with exit code 1.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { MAIN, makeModelDir } from "./checkpoint-forms.js";

let root: string;
let model: string;
let huge: string;
before(() => {
  root = mkdtempSync(join(tmpdir(), "aunet-inputs-"));
  model = join(root, "model");
  huge = join(root, "huge");
  makeModelDir(model);
  makeModelDir(huge, 1e18); // finite weights whose products overflow float32
});
after(() => rmSync(root, { recursive: true, force: true }));

function run(args: string[], input?: string): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { input, encoding: "utf8", timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function ok(args: string[], input?: string): string {
  const r = run(args, input);
  assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

function oneLineError(args: string[], re: RegExp, input?: string): void {
  const r = run(args, input);
  assert.equal(r.code, 1, `${args.join(" ")}: exit ${r.code}, stderr ${r.stderr}`);
  assert.equal(r.stderr.trimEnd().split("\n").length, 1, r.stderr);
  assert.match(r.stderr, /^aunet[ :]/);
  assert.doesNotMatch(r.stderr, /^aunet: aunet/);
  assert.match(r.stderr, re);
}

const greedy = () => ["generate", "--ckpt", model, "--max-bytes", "12", "--temperature", "0"];

test("prompts from a file and from stdin generate what the same --prompt does; piped text is exact", () => {
  const prompt = "Call me Ishmael.";
  const file = join(root, "prompt.txt");
  writeFileSync(file, prompt);
  const direct = ok([...greedy(), "--prompt", prompt]);
  const json = JSON.parse(ok([...greedy(), "--prompt", prompt, "--json"])) as { text: string };
  assert.equal(direct, json.text, "no newline added when piped");
  assert.equal(ok([...greedy(), "--prompt-file", file]), direct);
  assert.equal(ok([...greedy(), "--prompt", "-"], prompt), direct);
  oneLineError(
    [...greedy(), "--prompt-file", join(root, "nope.txt")],
    /--prompt-file: cannot read .*nope\.txt/,
  );
});

test("invalid UTF-8 in an argument is refused; --escapes gives the bytes form", () => {
  // The shell passes the byte 0xFF; Node's argv turns it into U+FFFD.
  const r = spawnSync(
    "bash",
    ["-c", `"${process.execPath}" "${MAIN}" score --ckpt "${model}" --text "a$(printf '\\xff')b"`],
    { encoding: "utf8", timeout: 60_000 },
  );
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /^aunet: --text holds U\+FFFD.*--escapes/);
  assert.match(ok(["score", "--ckpt", model, "--text", "a\\xffb", "--escapes"]), /^3 bytes: /);
  assert.match(
    ok(["score", "--ckpt", model, "--text", "a\\xffb"]),
    /^6 bytes: /,
    "no escapes without the flag",
  );
  const fromFile = join(root, "bytes.bin");
  writeFileSync(fromFile, Buffer.from([0x61, 0xff, 0x62]));
  assert.equal(
    ok(["score", "--ckpt", model, "--text-file", fromFile]),
    ok(["score", "--ckpt", model, "--text", "a\\xffb", "--escapes"]),
  );
  oneLineError(["score", "--ckpt", model, "--text", "a\\q", "--escapes"], /unknown escape '\\q'/);
  assert.equal(ok([...greedy(), "--prompt", "x\\x0ay", "--escapes"]), ok([...greedy(), "--prompt", "x\ny"]));
});

test("several prompts stream as whole lines labelled with their prompt", () => {
  const out = ok([
    "generate",
    "--ckpt",
    model,
    "--prompt",
    "The",
    "--prompt",
    "A whale",
    "--prompt",
    "Call",
    "--max-bytes",
    "40",
    "--seed",
    "3",
  ]);
  const lines = out.split("\n");
  assert.equal(lines.pop(), "", "ends with a newline");
  for (const l of lines) assert.match(l, /^\[[123]\] /);
  for (const i of [1, 2, 3]) assert.equal(lines.filter((l) => l.startsWith(`[${i}] (stopped: `)).length, 1);
});

test("non-finite logits are a one-line error naming the cause, not NaN or empty text", () => {
  oneLineError(
    ["score", "--ckpt", huge, "--text", "hello"],
    /^aunet score: the model's logits are not finite/,
  );
  oneLineError(
    ["generate", "--ckpt", huge, "--prompt", "hello"],
    /^aunet generate: the model's logits are not finite/,
  );
  oneLineError(
    ["eval", "--ckpt", huge, "--data", "corpus/moby-dick.val.txt", "--max-bytes", "500"],
    /^aunet eval: the loss is not finite/,
  );
});

test("data that is not what it says: a non-gzip .gz, a --val of blank lines", () => {
  const gz = join(root, "notes.gz");
  writeFileSync(gz, "plain text, not gzip\n");
  oneLineError(
    ["eval", "--ckpt", model, "--data", gz],
    /named \.gz that are not gzip \(no gzip header\): \S*notes\.gz/,
  );
  const blank = join(root, "blank.txt");
  writeFileSync(blank, "\n\n   \n\n");
  const out = join(root, "run-blank");
  // train reports its data first (a progress line), then refuses before the first step.
  const r = run([
    "train",
    "--config",
    "tiny",
    "--data",
    "corpus/moby-dick.val.txt",
    "--val",
    blank,
    "--out",
    out,
    "--steps",
    "1",
  ]);
  assert.equal(r.code, 1, r.stderr);
  const lines = r.stderr.trimEnd().split("\n");
  assert.match(lines[lines.length - 1], /^aunet: no documents in .*blank\.txt/);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
  assert.equal(existsSync(join(out, "checkpoints")), false, "no step was taken");
});

test("convert does not overwrite its destination without --force", () => {
  const dst = join(root, "copy.safetensors");
  ok(["convert", model, dst]);
  oneLineError(["convert", model, dst], /copy\.safetensors already exists; add --force to replace it/);
  assert.match(ok(["convert", model, dst, "--force"]), /converted/);
  const dir = join(root, "lingua-out");
  ok(["convert", model, dir, "--to", "lingua"]);
  oneLineError(["convert", model, dir, "--to", "lingua"], /already exists/);
  oneLineError(["convert", model, model, "--to", "aunet", "--force"], /is the source itself/);
});

/** Resolves once `pid` holds `file` open in two looks 50 ms apart (Linux /proc), i.e. is reading it. */
async function readingFile(pid: number, file: string): Promise<void> {
  const holds = () => {
    try {
      return readdirSync(`/proc/${pid}/fd`).some((fd) => {
        try {
          return readlinkSync(`/proc/${pid}/fd/${fd}`) === file;
        } catch {
          return false;
        }
      });
    } catch {
      return false;
    }
  };
  for (let seen = 0; seen < 2;) {
    seen = holds() ? seen + 1 : 0;
    await new Promise((r) => setTimeout(r, 50));
  }
}

for (const [signal, code] of [
  ["SIGINT", 130],
  ["SIGTERM", 143],
] as const)
  test(
    `eval stops on ${signal}: one line, exit ${code}`,
    { skip: !existsSync("/proc/self/fd"), timeout: 120_000 },
    async () => {
      const data = resolve("corpus/moby-dick.txt");
      const child = spawn(process.execPath, [MAIN, "eval", "--ckpt", model, "--data", data]);
      let stderr = "";
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<number | null>((r) => child.on("exit", (c) => r(c)));
      await readingFile(child.pid!, data);
      child.kill(signal);
      assert.equal(await exited, code, stderr);
      assert.match(stderr, new RegExp(`^aunet eval: stopped by ${signal} after \\d+ bytes.*\\n$`));
    },
  );

test("generate ends at once on SIGINT", { timeout: 120_000 }, async () => {
  const child = spawn(process.execPath, [
    MAIN,
    "generate",
    "--ckpt",
    model,
    "--prompt",
    "x",
    "--max-bytes",
    "16777216",
  ]);
  const exited = new Promise<[number | null, string | null]>((r) => child.on("exit", (c, s) => r([c, s])));
  await new Promise((r) => child.stdout.once("data", r));
  child.kill("SIGINT");
  const [code, sig] = await exited;
  assert.ok(sig === "SIGINT" || code === 130, `exit ${code} ${sig}`);
});
