// `aunet serve` as a client sees it: the OpenAI-compatible completions (plain and streamed), /v1/score equal to
// `aunet score --json`, /v1/split equal to `aunet split`, 4xx JSON errors naming the field, 413, 429 with
// Retry-After, a disconnect cancelling its sequence, and SIGTERM finishing what is in flight before exiting.
// The servers are real `aunet serve` processes on ephemeral loopback ports, serving the shipped model.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import http from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const CLI = resolve("dist/src/cli/main.js");
const MODEL = resolve("models/aunet-moby");

interface Server {
  proc: ChildProcess;
  url: string;
  exited: Promise<number | null>;
  stdout: () => string;
}

async function startServer(...args: string[]): Promise<Server> {
  const proc = spawn(process.execPath, [CLI, "serve", "--ckpt", MODEL, "--port", "0", "--quiet", ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, AUNET_THREADS: "1" },
  });
  let out = "";
  let err = "";
  proc.stderr!.on("data", (b: Buffer) => (err += b.toString()));
  const exited = new Promise<number | null>((r) => proc.on("exit", (code) => r(code)));
  const url = await new Promise<string>((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start: ${err}`)), 60_000);
    proc.stdout!.on("data", (b: Buffer) => {
      out += b.toString();
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)\//.exec(out);
      if (m) {
        clearTimeout(timer);
        resolveUrl(m[1]);
      }
    });
    proc.on("exit", () => reject(new Error(`server exited: ${err}`)));
  });
  return { proc, url, exited, stdout: () => out };
}

async function stopServer(s: Server): Promise<void> {
  if (s.proc.exitCode === null) s.proc.kill("SIGKILL");
  await s.exited;
}

async function postJson(
  url: string,
  body: unknown,
): Promise<{ status: number; json: any; headers: Headers }> {
  const r = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: r.status, json: await r.json(), headers: r.headers };
}

/** The server-sent events of a streamed completion, as parsed objects, plus whether it ended with [DONE]. */
async function streamEvents(url: string, body: unknown): Promise<{ events: any[]; done: boolean }> {
  const r = await fetch(url, { method: "POST", body: JSON.stringify({ ...(body as object), stream: true }) });
  assert.equal(r.status, 200);
  assert.match(r.headers.get("content-type") ?? "", /text\/event-stream/);
  const text = await r.text();
  const blocks = text.split("\n\n").filter((b) => b.length > 0);
  const done = blocks[blocks.length - 1] === "data: [DONE]";
  const events = blocks
    .filter((b) => b !== "data: [DONE]")
    .map((b) => {
      assert.ok(b.startsWith("data: "), `not an SSE data line: ${b}`);
      return JSON.parse(b.slice(6));
    });
  return { events, done };
}

let A: Server;

before(async () => {
  A = await startServer();
});

after(async () => {
  if (A) await stopServer(A);
});

test("serve: /v1/models lists the model", async () => {
  const r = await (await fetch(`${A.url}/v1/models`)).json();
  assert.equal(r.object, "list");
  assert.equal(r.data.length, 1);
  assert.equal(r.data[0].id, "aunet-moby");
  assert.equal(r.data[0].object, "model");
});

test("serve: streamed greedy text equals the non-streamed text and `aunet generate`", async () => {
  const body = { prompt: "Call me Ishmael. ", max_tokens: 48, temperature: 0 };
  const plain = await postJson(`${A.url}/v1/completions`, body);
  assert.equal(plain.status, 200);
  const choice = plain.json.choices[0];
  assert.equal(plain.json.object, "text_completion");
  assert.equal(choice.finish_reason, "length");
  assert.equal(plain.json.usage.completion_tokens, 48);
  assert.equal(choice.levels.length, 48);
  assert.ok(choice.text.length > 0);

  const { events, done } = await streamEvents(`${A.url}/v1/completions`, body);
  assert.ok(done, "the stream ends with data: [DONE]");
  assert.ok(events.length > 2, "several chunks");
  for (const e of events) {
    assert.equal(e.object, "text_completion");
    assert.equal(e.choices[0].index, 0);
  }
  assert.equal(events.map((e) => e.choices[0].text).join(""), choice.text);
  assert.deepEqual(
    events.flatMap((e) => e.choices[0].levels),
    choice.levels,
  );
  assert.equal(events[events.length - 1].choices[0].finish_reason, "length");

  const cli = spawnSync(
    process.execPath,
    [
      CLI,
      "generate",
      "--ckpt",
      MODEL,
      "--prompt",
      body.prompt,
      "--max-bytes",
      "48",
      "--temperature",
      "0",
      "--json",
    ],
    { encoding: "utf8" },
  );
  assert.equal(cli.status, 0, cli.stderr);
  const gen = JSON.parse(cli.stdout);
  assert.equal(gen.text, choice.text);
  assert.deepEqual(
    gen.bytes.map((b: { level: number }) => b.level),
    choice.levels,
  );
});

test("serve: seeded sampling repeats; a prompt array gives one choice per prompt; stop strings are cut", async () => {
  const body = { prompt: "The whale", max_tokens: 30, temperature: 0.9, top_p: 0.95, top_k: 40, seed: 7 };
  const a = await postJson(`${A.url}/v1/completions`, body);
  const b = await postJson(`${A.url}/v1/completions`, body);
  assert.equal(a.json.choices[0].text, b.json.choices[0].text);

  const two = await postJson(`${A.url}/v1/completions`, { ...body, prompt: ["The whale", "Call me"] });
  assert.equal(two.status, 200);
  assert.deepEqual(
    two.json.choices.map((c: { index: number }) => c.index),
    [0, 1],
  );

  const greedy = await postJson(`${A.url}/v1/completions`, {
    prompt: "The whale",
    max_tokens: 60,
    temperature: 0,
  });
  const text: string = greedy.json.choices[0].text;
  const stop = text.slice(10, 13);
  const cut = await postJson(`${A.url}/v1/completions`, {
    prompt: "The whale",
    max_tokens: 60,
    temperature: 0,
    stop: [stop],
  });
  assert.equal(cut.json.choices[0].finish_reason, "stop");
  assert.equal(cut.json.choices[0].text, text.slice(0, text.indexOf(stop)));
});

test("serve: logprobs of a completion equal /v1/score of its text, which equals `aunet score --json`", async () => {
  const prompt = "It was the ";
  const gen = await postJson(`${A.url}/v1/completions`, {
    prompt,
    max_tokens: 20,
    temperature: 0,
    logprobs: 3,
  });
  const c = gen.json.choices[0];
  assert.equal(c.logprobs.tokens.length, 20);
  assert.ok(c.logprobs.top_logprobs.every((t: object) => Object.keys(t).length === 3));

  const s = await postJson(`${A.url}/v1/score`, { prompt, text: c.text, top: 5 });
  assert.equal(s.status, 200);
  assert.equal(s.json.bytes, Buffer.byteLength(c.text));
  s.json.per_byte.forEach((b: { logprob: number; level: number; top: unknown[] }, i: number) => {
    // The same incremental path, one sequence each time: the same float operations.
    assert.ok(Math.abs(b.logprob - c.logprobs.token_logprobs[i]) < 1e-6, `byte ${i}`);
    assert.equal(b.level, c.levels[i]);
    assert.equal(b.top.length, 5);
  });

  const cli = spawnSync(
    process.execPath,
    [CLI, "score", "--ckpt", MODEL, "--prompt", prompt, "--text", c.text, "--json"],
    {
      encoding: "utf8",
    },
  );
  assert.equal(cli.status, 0, cli.stderr);
  const ref = JSON.parse(cli.stdout);
  // `aunet score` feeds the text in chunks (several positions per pass, src/generate/score.ts), the server one
  // byte at a time as generation does: the same values up to float32 rounding (measured 1.0e-7 relative; 100x margin).
  const rel = Math.abs(ref.bits_per_byte - s.json.bits_per_byte) / ref.bits_per_byte;
  assert.ok(rel <= 1e-5, `bits per byte: relative difference ${rel}`);
  assert.deepEqual(
    ref.per_byte.map((b: { byte: number; level: number }) => [b.byte, b.level]),
    s.json.per_byte.map((b: { byte: number; level: number }) => [b.byte, b.level]),
  );
});

test("serve: /v1/split equals `aunet split`", async () => {
  const text = "The cat sat on the mat.\nCall me Ishmael, said he; 42 whales!";
  const strategy = "word1=1@1,word2=2@1";
  const s = await postJson(`${A.url}/v1/split`, { text, strategy });
  const cli = spawnSync(process.execPath, [CLI, "split", "--strategy", strategy], {
    input: text,
    encoding: "utf8",
  });
  assert.equal(cli.status, 0, cli.stderr);
  assert.deepEqual(s.json.levels, JSON.parse(cli.stdout).masks);
  assert.equal(s.json.n_levels, 2);
});

test("serve: bad requests get 4xx JSON errors naming the field, and the server stays up", async () => {
  const url = `${A.url}/v1/completions`;
  const cases: [unknown, number, string | null][] = [
    ["{not json", 400, null],
    ["[1, 2]", 400, null],
    [{ prompt: 5 }, 400, "prompt"],
    [{ prompt: "x", temperature: "hot" }, 400, "temperature"],
    [{ prompt: "x", temperature: -1 }, 400, "temperature"],
    [{ prompt: "x", top_p: 0 }, 400, "top_p"],
    [{ prompt: "x", top_k: 1.5 }, 400, "top_k"],
    [{ prompt: "x", max_tokens: -1 }, 400, "max_tokens"],
    [{ prompt: "x", max_tokens: 1e9 }, 400, "max_tokens"],
    [{ prompt: "x", stop: [""] }, 400, "stop"],
    [{ prompt: "x", logprobs: 9 }, 400, "logprobs"],
    [{ prompt: "x", stream: "yes" }, 400, "stream"],
    [{ prompt: "x", n: 2 }, 400, "n"],
    [{ prompt: "x".repeat(20000) }, 400, "prompt"],
  ];
  for (const [body, status, param] of cases) {
    const r = await postJson(url, body);
    assert.equal(r.status, status, JSON.stringify(body).slice(0, 60));
    assert.equal(typeof r.json.error.message, "string");
    assert.equal(r.json.error.param, param, r.json.error.message);
    if (param) assert.match(r.json.error.message, new RegExp(`'${param}'`));
  }
  const noText = await postJson(`${A.url}/v1/score`, { prompt: "x" });
  assert.equal(noText.status, 400);
  assert.equal(noText.json.error.param, "text");
  const badStrategy = await postJson(`${A.url}/v1/split`, { text: "x", strategy: "nonsense=1" });
  assert.equal(badStrategy.status, 400);
  assert.equal(badStrategy.json.error.param, "strategy");

  const big = await postJson(url, { prompt: "x".repeat(2 << 20) });
  assert.equal(big.status, 413);
  assert.match(big.json.error.message, /larger than/);

  assert.equal((await fetch(`${A.url}/v1/completions`)).status, 405);
  const missing = await fetch(`${A.url}/v1/nothing`);
  assert.equal(missing.status, 404);
  assert.equal(typeof (await missing.json()).error.message, "string");
  assert.equal((await fetch(`${A.url}/js/../../package.json`)).status, 404);

  const health = await (await fetch(`${A.url}/health`)).json();
  assert.equal(health.status, "ok");
});

/** Open a streamed completion and resolve once its first chunk has arrived. */
function openStream(
  url: string,
  body: unknown,
): Promise<{ req: http.ClientRequest; res: http.IncomingMessage; text: () => string }> {
  return new Promise((resolveStream, reject) => {
    const req = http.request(`${url}/v1/completions`, { method: "POST" }, (res) => {
      let text = "";
      let resolved = false;
      res.on("data", (b: Buffer) => {
        text += b.toString();
        if (!resolved && text.includes("\n\n")) {
          resolved = true;
          resolveStream({ req, res, text: () => text });
        }
      });
      res.on("error", () => {});
    });
    req.on("error", reject);
    req.end(JSON.stringify({ ...(body as object), stream: true }));
  });
}

async function waitFor(what: string, cond: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`timed out waiting for ${what}`);
}

test("serve: a full batch and queue answer 429 with Retry-After; a disconnect cancels; SIGTERM drains", async () => {
  const B = await startServer("--max-batch", "1", "--max-queue", "0");
  try {
    const health = async () => (await fetch(`${B.url}/health`)).json();
    const first = await openStream(B.url, { prompt: "The", max_tokens: 4000, temperature: 0.8, seed: 1 });
    const busy = await postJson(`${B.url}/v1/completions`, { prompt: "x", max_tokens: 5 });
    assert.equal(busy.status, 429);
    assert.equal(busy.json.error.type, "rate_limit_error");
    assert.ok(Number(busy.headers.get("retry-after")) >= 1);
    assert.equal((await health()).active, 1);

    first.req.destroy();
    await waitFor("the cancelled sequence to leave", async () => (await health()).active === 0);

    // SIGTERM while a request is in flight: it finishes (all 40 bytes and [DONE]), then the process exits 0.
    const second = await openStream(B.url, { prompt: "The", max_tokens: 40, temperature: 0 });
    const ended = new Promise<void>((r) => second.res.on("end", () => r()));
    B.proc.kill("SIGTERM");
    await ended;
    const events = second
      .text()
      .split("\n\n")
      .filter((e) => e.startsWith("data: {"))
      .map((e) => JSON.parse(e.slice(6)));
    assert.ok(second.text().trimEnd().endsWith("data: [DONE]"));
    assert.equal(events[events.length - 1].choices[0].finish_reason, "length");
    assert.equal(
      events.reduce((n, e) => n + e.choices[0].levels.length, 0),
      40,
    );
    assert.equal(await B.exited, 0);
    assert.match(B.stdout(), /stopped/);
    await assert.rejects(fetch(`${B.url}/health`));
  } finally {
    await stopServer(B);
  }
});

test("serve: `aunet train --dashboard` serves the runs while it trains and stops with it", async () => {
  const dir = mkdtempSync(join(tmpdir(), "aunet-dash-"));
  try {
    const proc = spawn(
      process.execPath,
      [
        CLI,
        "train",
        "--config",
        "tiny",
        "--data",
        "corpus/moby-dick.txt",
        "--out",
        join(dir, "r1"),
        "--steps",
        "200",
        "--dashboard",
      ],
      { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, AUNET_THREADS: "1" } },
    );
    const exited = new Promise<number | null>((r) => proc.on("exit", (c) => r(c)));
    let err = "";
    const url = await new Promise<string>((ok, fail) => {
      proc.stderr!.on("data", (b: Buffer) => {
        err += b.toString();
        const m = /dashboard: (http:\/\/127\.0\.0\.1:\d+\/)dashboard/.exec(err);
        if (m) ok(m[1]);
      });
      proc.on("exit", () => fail(new Error(err)));
    });
    const page = await fetch(`${url}dashboard`);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /training dashboard/);
    assert.equal((await fetch(`${url}v1/runs`)).status, 200);
    assert.equal(await exited, 0, err);
    await waitFor("the dashboard to stop with the trainer", () =>
      fetch(`${url}v1/runs`).then(
        () => false,
        () => true,
      ),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
