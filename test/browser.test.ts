// The pages in a real browser (the system's headless Chromium driven by playwright-core; nothing downloaded),
// checked the way a person reads them: the brackets drawn over a text are `aunet split`'s levels, the hover
// card's numbers are `aunet score --json`'s, the streamed continuation is the non-streamed greedy text, the
// static site runs the model in the page (from a URL or dropped files; greedy bytes equal the CLI on the same
// backend), and the dashboard shows each run's last values and follows new ones.
// Skipped (with a note) only where no Chromium is installed; CI installs one (.ci/run).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { AunetServer } from "../src/serve/server.js";
import { type Browser, type Page, serveFiles } from "./browser-helpers.js";
import { loadServedModel } from "../src/serve/model.js";

const CLI = resolve("dist/src/cli/main.js");
const MODEL = resolve("models/aunet-moby");
const TEXT = "Call me Ishmael. Some years ago, I went to sea.";

const launcher = (await import(pathToFileURL(resolve("scripts/chromium.mjs")).href)) as {
  findChromium(): string | null;
  launchChromium(): Promise<Browser | null>;
};
const skip = launcher.findChromium() === null ? "no Chromium installed (apt-get install chromium)" : false;

let browser: Browser | null = null;
let server: AunetServer;
let base: string;
let tmp: string;
const errors: string[] = [];

before(async () => {
  if (skip) return;
  tmp = mkdtempSync(join(tmpdir(), "aunet-browser-"));
  mkdirSync(join(tmp, "runs", "alpha"), { recursive: true });
  mkdirSync(join(tmp, "runs", "beta"), { recursive: true });
  server = new AunetServer({ model: loadServedModel(MODEL), runsDir: join(tmp, "runs") });
  base = `http://127.0.0.1:${await server.listen(0, "127.0.0.1")}`;
  browser = await launcher.launchChromium();
});

after(async () => {
  await browser?.close();
  if (server) await server.drain();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

async function newPage(): Promise<Page> {
  const page = await browser!.context.newPage();
  page.on("pageerror", (e: Error) => errors.push(e.message));
  return page;
}

function cli(...args: string[]): any {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", input: "" });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

/**
 * The level of each drawn character, read from the drawing: a character closes every bracket (closed unit) it
 * ends, so its level is the number of closed brackets it is the last character of.
 */
const DRAWN_LEVELS = `(() => [...document.querySelectorAll("#view .c")].map((c) => {
  let level = 0, node = c;
  while (node.parentElement && node.parentElement.classList.contains("u") && node === node.parentElement.lastElementChild
         && !node.parentElement.classList.contains("open")) { level++; node = node.parentElement; }
  return level;
}))()`;

/** The hover card's numbers for character i. */
async function hoverValues(page: Page, i: number): Promise<{ level: number; logprob: number; top: string }> {
  await page.hover(`#view .c[data-i="${i}"]`);
  await page.waitForSelector("#tip:not([hidden])");
  return page.evaluate(`(() => {
    const cell = (k) => document.querySelector('#tip td[data-k="' + k + '"]').textContent;
    return { level: parseInt(cell("level")), logprob: Number(cell("logprob")), top: cell("top") };
  })()`);
}

test(
  "browser: the playground draws `aunet split`'s levels and hovers `aunet score --json`'s numbers",
  { skip },
  async () => {
    const page = await newPage();
    await page.goto(`${base}/`);
    await page.waitForSelector("body[data-ready]", { timeout: 60_000 });
    await page.fill("#text", TEXT);
    await page.waitForFunction(
      `document.querySelector("#view").dataset.state === "scored" &&
    document.querySelectorAll("#view .c").length === ${TEXT.length}`,
      undefined,
      { timeout: 60_000 },
    );

    const strategy = (await page.evaluate(`document.querySelector("#strategy").value`)) as string;
    const split = spawnSync(process.execPath, [CLI, "split", "--strategy", strategy], {
      input: TEXT,
      encoding: "utf8",
    });
    assert.equal(split.status, 0, split.stderr);
    const masks: number[] = JSON.parse(split.stdout).masks;
    const drawn: number[] = await page.evaluate(DRAWN_LEVELS);
    // The model has one pooling level: deeper levels count as its top.
    assert.deepEqual(
      drawn,
      masks.map((m) => Math.min(m, 1)),
    );
    assert.ok(masks.filter((m) => m > 0).length >= 9, "the text has many words");

    const score = cli("score", "--ckpt", MODEL, "--text", TEXT, "--json");
    for (const i of [0, 5, 8, 17, 30, TEXT.length - 1]) {
      const v = await hoverValues(page, i);
      const ref = score.per_byte[i];
      assert.equal(v.level, ref.level, `level of byte ${i}`);
      // Shown with 4 decimals: within half a unit of the last digit.
      assert.ok(
        Math.abs(v.logprob - ref.logprob) <= 5e-5 + 1e-9,
        `byte ${i}: ${v.logprob} vs ${ref.logprob}`,
      );
      assert.equal(v.top.trim().split(/\s{2,}/).length, 5, "five candidates");
    }
    const summary = await page.textContent("#summary");
    assert.ok(summary!.includes(`${score.bits_per_byte.toFixed(3)} bits per byte`), summary!);
    await page.close();
  },
);

test(
  "browser: without a model, the brackets of every stage of a typed strategy equal `aunet split`",
  { skip },
  async () => {
    const page = await newPage();
    await page.goto(`${base}/`);
    await page.waitForSelector("body[data-ready]", { timeout: 60_000 });
    await page.evaluate(
      `(() => { const s = document.querySelector("#engine"); s.value = ""; s.dispatchEvent(new Event("change")); })()`,
    );
    const strategy = "word1=1@1,word2=2@1,word3=4@1";
    await page.fill("#strategy", strategy);
    const text = "The cat sat on the mat, and the whale swam by.\nCall me Ishmael";
    await page.fill("#text", text);
    await page.waitForFunction(
      `document.querySelector("#view").dataset.state === "split" && document.querySelectorAll("#view .c").length === ${text.length}
     && document.querySelectorAll("#view .u3").length > 0`,
      undefined,
      { timeout: 30_000 },
    );
    const split = spawnSync(process.execPath, [CLI, "split", "--strategy", strategy], {
      input: text,
      encoding: "utf8",
    });
    assert.equal(split.status, 0, split.stderr);
    const masks: number[] = JSON.parse(split.stdout).masks;
    assert.ok(masks.includes(3), "the text reaches the third level");
    assert.deepEqual(await page.evaluate(DRAWN_LEVELS), masks);
    await page.close();
  },
);

test(
  "browser: streamed generation shows the non-streamed greedy text and a stage column per byte",
  { skip },
  async () => {
    const page = await newPage();
    await page.goto(`${base}/`);
    await page.waitForSelector("body[data-ready]", { timeout: 60_000 });
    await page.fill("#text", "The whale");
    await page.fill("#temperature", "0");
    await page.fill("#max-bytes", "40");
    await page.click("#generate");
    await page.waitForSelector('#gen[data-state^="done"]', { timeout: 60_000 });
    const shown = (await page.evaluate(
      `[...document.querySelectorAll("#gen .out .t")].map((e) => e.textContent).join("")`,
    )) as string;
    const columns = (await page.evaluate(
      `[...document.querySelectorAll("#gen .col")].map((c) => Number(c.dataset.level))`,
    )) as number[];
    const r = await fetch(`${base}/v1/completions`, {
      method: "POST",
      body: JSON.stringify({ prompt: "The whale", max_tokens: 40, temperature: 0 }),
    });
    const plain = (await r.json()).choices[0];
    assert.equal(shown.replace(/↵\n/g, "\n"), plain.text);
    assert.deepEqual(columns, plain.levels);
    const stats = await page.textContent("#gen-stats");
    assert.match(stats!, new RegExp(`stage 1 ${plain.levels.filter((l: number) => l >= 1).length} `));
    await page.close();
  },
);

test(
  "browser: the static site runs the model in the page (wasm backend), from its URL or dropped files",
  { skip },
  async () => {
    const site = join(tmp, "site");
    const { buildSite } = (await import(pathToFileURL(resolve("scripts/build-site.mjs")).href)) as {
      buildSite(out: string, model?: string): { modules: number };
    };
    buildSite(site, MODEL);
    const host = await serveFiles(site);
    try {
      const page = await newPage();
      await page.goto(`${host.url}/`);
      await page.waitForSelector("body[data-ready]", { timeout: 60_000 });
      const label = (await page.evaluate(
        `document.querySelector("#engine").selectedOptions[0].textContent`,
      )) as string;
      // The fastest backend headless Chromium runs without a GPU.
      assert.match(label, /in the page \(WebAssembly SIMD\)/);
      const text = "Call me Ishmael.";
      await page.fill("#text", text);
      await page.waitForFunction(
        `document.querySelector("#view").dataset.state === "scored" &&
      document.querySelectorAll("#view .c").length === ${text.length}`,
        undefined,
        { timeout: 120_000 },
      );
      const score = cli("score", "--ckpt", MODEL, "--text", text, "--json");
      for (const i of [0, 7, text.length - 1]) {
        const v = await hoverValues(page, i);
        assert.equal(v.level, score.per_byte[i].level);
        // The page runs the wasm backend, the CLI the native one (or another): float32 sums in another order
        // differ by ~1e-5 at most on this model; 1e-3 leaves room and still catches any real difference.
        assert.ok(Math.abs(v.logprob - score.per_byte[i].logprob) < 1e-3, `byte ${i}`);
      }

      // A model's two files dropped on the page load as another in-page model, which then scores the text.
      await page.evaluate(`(async () => {
      document.querySelector("#view").dataset.state = "";
      const dt = new DataTransfer();
      for (const name of ["params.json", "model.safetensors"])
        dt.items.add(new File([await (await fetch("model/" + name)).blob()], name));
      document.body.dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
    })()`);
      await page.waitForFunction(
        `document.querySelector("#engine").value === "file:model.safetensors"`,
        undefined,
        {
          timeout: 60_000,
        },
      );
      assert.match((await page.textContent("#status"))!, /loaded model\.safetensors/);
      await page.waitForFunction(`document.querySelector("#view").dataset.state === "scored"`, undefined, {
        timeout: 120_000,
      });
      const v = await hoverValues(page, 7);
      assert.ok(Math.abs(v.logprob - score.per_byte[7].logprob) < 1e-3);

      // Generation in the page: the greedy bytes of the CLI on the same (wasm) backend.
      await page.fill("#temperature", "0");
      await page.fill("#max-bytes", "20");
      await page.click("#generate");
      await page.waitForSelector('#gen[data-state^="done"]', { timeout: 120_000 });
      const shown = (await page.evaluate(
        `[...document.querySelectorAll("#gen .out .t")].map((e) => e.textContent).join("")`,
      )) as string;
      const ref = spawnSync(
        process.execPath,
        [
          CLI,
          "generate",
          "--ckpt",
          MODEL,
          "--prompt",
          text,
          "--max-bytes",
          "20",
          "--temperature",
          "0",
          "--json",
        ],
        { encoding: "utf8", env: { ...process.env, AUNET_BACKEND: "wasm" } },
      );
      assert.equal(ref.status, 0, ref.stderr);
      assert.equal(shown.replace(/↵\n/g, "\n"), JSON.parse(ref.stdout).text);
      await page.close();
    } finally {
      await host.close();
    }
  },
);

function metricsLine(kind: "train" | "val", step: number, bpb: number): string {
  const r =
    kind === "train"
      ? {
          kind,
          step,
          loss: bpb * Math.LN2,
          bpb,
          lr: 1e-3 * step,
          grad_norm: 0.5 + step / 100,
          bytes_per_s: 1000 + step,
          mfu: 0.01 * step,
        }
      : { kind, step, loss: bpb * Math.LN2, bpb };
  return JSON.stringify(r) + "\n";
}

test(
  "browser: the dashboard shows each run's last values and follows a run in training",
  { skip },
  async () => {
    const alpha = join(tmp, "runs", "alpha", "metrics.jsonl");
    const beta = join(tmp, "runs", "beta", "metrics.jsonl");
    writeFileSync(
      alpha,
      metricsLine("val", 0, 8.8) +
        metricsLine("train", 1, 8.5) +
        metricsLine("train", 2, 6.25) +
        metricsLine("val", 2, 6.5),
    );
    writeFileSync(beta, metricsLine("train", 1, 7.125) + metricsLine("train", 3, 4.75));
    const page = await newPage();
    await page.goto(`${base}/dashboard?poll=200`);
    await page.waitForSelector('#runs tr[data-run="beta"]', { timeout: 60_000 });
    const row = (run: string) =>
      page.evaluate(
        `Object.fromEntries([...document.querySelectorAll('#runs tr[data-run="${run}"] td')].map((td) => [td.dataset.k, td.textContent]))`,
      ) as Promise<Record<string, string>>;
    assert.deepEqual(
      { ...(await row("alpha")), run: undefined },
      {
        run: undefined,
        step: "2",
        train_bpb: "6.250",
        val_bpb: "6.500",
        lr: "2.00e-3",
        grad_norm: "0.520",
        bytes_per_s: "1002",
        mfu: "2.0",
      },
    );
    const b = await row("beta");
    assert.equal(b.step, "3");
    assert.equal(b.train_bpb, "4.750");
    assert.equal(b.val_bpb, "–");
    const lines = (await page.evaluate(`document.querySelectorAll("#c-bpb polyline").length`)) as number;
    assert.ok(lines >= 2, "a train curve per run");

    // The run trains on: a new step and a validation appear without reloading the page.
    appendFileSync(alpha, metricsLine("train", 3, 5.5) + metricsLine("val", 3, 5.625));
    await page.waitForFunction(
      `document.querySelector('#runs tr[data-run="alpha"] td[data-k="step"]').textContent === "3"`,
      undefined,
      {
        timeout: 30_000,
      },
    );
    const a = await row("alpha");
    assert.equal(a.train_bpb, "5.500");
    assert.equal(a.val_bpb, "5.625");
    await page.close();
    assert.deepEqual(errors, [], "no script errors on any page");
  },
);
