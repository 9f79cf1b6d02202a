// `aunet generate` and `aunet score` on a shared fixture model.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeModelDir } from "./checkpoint-forms.js";
import { Writable } from "node:stream";
import { generateCommand } from "../src/cli/generate.js";
import { scoreCommand } from "../src/cli/score.js";
import { UserError } from "../src/util/errors.js";
import { readJsonFile } from "../src/io/model-dir.js";
import { decodeBytes } from "../src/data/bytes.js";
import { FIXTURES } from "./helpers.js";

const CKPT = join(FIXTURES, "2stage_word_english");
const skip = !existsSync(join(CKPT, "model.safetensors"));

class Collect extends Writable {
  text = "";
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    this.text += chunk.toString("utf8");
    cb();
  }
}

test("generate streams the greedy continuation of the official trace", { skip }, async () => {
  const meta = readJsonFile(join(CKPT, "generate", "generate.json")) as {
    prompt: string;
    generated_tokens: number[];
  };
  const out = new Collect();
  const n = meta.generated_tokens.length;
  const code = await generateCommand(
    ["--ckpt", CKPT, "--prompt", meta.prompt, "--temperature", "0", "--max-bytes", String(n)],
    out,
  );
  assert.equal(code, 0);
  assert.equal(out.text, decodeBytes(meta.generated_tokens)); // piped: the text exactly
});

test("on a terminal the generated text ends with a newline, and only one", async () => {
  const dir = mkdtempSync(join(tmpdir(), "aunet-gencli-"));
  try {
    makeModelDir(dir);
    const args = ["--ckpt", dir, "--prompt", "The", "--max-bytes", "9", "--temperature", "0"];
    const piped = new Collect();
    await generateCommand(args, piped);
    const tty = Object.assign(new Collect(), { isTTY: true });
    await generateCommand(args, tty);
    assert.equal(tty.text, piped.text.endsWith("\n") ? piped.text : piped.text + "\n");
    const nl = Object.assign(new Collect(), { isTTY: true });
    await generateCommand([...args, "--stop", "zzz", "--prompt", "x"], nl); // two prompts: labelled lines
    assert.ok(nl.text.endsWith("\n"));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test(
  "generate --json gives every byte's level and log-probability; several prompts form a batch",
  { skip },
  async () => {
    const out = new Collect();
    await generateCommand(
      ["--ckpt", CKPT, "--prompt", "The cat", "--prompt", "A", "--max-bytes", "12", "--seed", "4", "--json"],
      out,
    );
    const lines = out.text
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(lines.length, 2);
    for (const r of lines) {
      const bytes = r.bytes as { id: number; level: number; logprob: number }[];
      assert.ok(bytes.length >= 1 && bytes.length <= 12);
      for (const b of bytes)
        assert.ok(b.logprob <= 0 && b.level >= 0 && b.level <= 1 && b.id >= 0 && b.id < 258);
      assert.ok(["eos", "stop", "max_bytes"].includes(r.stop_reason as string));
    }
  },
);

test("score reports log-likelihood and bits per byte, per byte with --json", { skip }, async () => {
  const out = new Collect();
  await scoreCommand(["--ckpt", CKPT, "--prompt", "The old", "--text", " lighthouse", "--json"], out);
  const r = JSON.parse(out.text) as {
    bytes: number;
    log_likelihood: number;
    bits_per_byte: number;
    per_byte: { byte: number; level: number; logprob: number }[];
  };
  assert.equal(r.bytes, 11);
  assert.equal(r.per_byte.length, 11);
  const sum = r.per_byte.reduce((a, b) => a + b.logprob, 0);
  assert.ok(Math.abs(sum - r.log_likelihood) < 1e-9);
  assert.ok(Math.abs(r.bits_per_byte - -sum / Math.LN2 / 11) < 1e-9);
  const plain = new Collect();
  await scoreCommand(["--ckpt", CKPT, "--prompt", "The old", "--text", " lighthouse"], plain);
  assert.match(plain.text, /^11 bytes: log-likelihood -\d+\.\d{4} nats, \d+\.\d{4} bits per byte\n$/);
});

test("mistakes are user errors", { skip }, async () => {
  const out = new Collect();
  await assert.rejects(generateCommand(["--prompt", "x"], out), UserError);
  await assert.rejects(generateCommand(["--ckpt", CKPT], out), UserError);
  await assert.rejects(generateCommand(["--ckpt", CKPT, "--prompt", "x", "--top-p", "1.5"], out), UserError);
  await assert.rejects(
    generateCommand(["--ckpt", CKPT, "--prompt", "x", "--max-bytes", "ten"], out),
    UserError,
  );
  await assert.rejects(generateCommand(["--ckpt", CKPT, "--prompt", "x", "--bogus"], out), UserError);
  await assert.rejects(scoreCommand(["--ckpt", CKPT], out), UserError);
  await assert.rejects(scoreCommand(["--ckpt", CKPT, "--text", ""], out), UserError);
  await assert.rejects(scoreCommand(["--ckpt", "/nonexistent", "--text", "a"], out), UserError);
});
