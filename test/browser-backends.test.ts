// The backends in a real browser: headless Chromium (the system's, driven by playwright-core, launched with
// --enable-unsafe-webgpu: without a GPU it offers its SwiftShader adapter) loads the compiled modules from dist/
// over http://127.0.0.1 and runs, on the wasm and on the WebGPU backend, (a) the official fixture's forward,
// whose logits must match the fixture's expected ones within the CPU tolerance, and (b) a few AdamW steps of a
// small model, whose losses must follow the reference backend's in the same page. The page's code is
// test/browser-page.ts. Skipped (with a note) only where no Chromium is installed; CI installs one (.ci/run).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { TOLERANCE } from "../src/eval/check-fixture.js";
import { AunetServer, WASM_FILE } from "../src/serve/server.js";
import { trainLosses, type ForwardResult } from "./browser-page.js";
import { type Browser, type Page, serveFiles } from "./browser-helpers.js";

const launcher = (await import(pathToFileURL(resolve("scripts/chromium.mjs")).href)) as {
  findChromium(): string | null;
  launchChromium(viewport?: object, o?: { webgpu?: boolean }): Promise<Browser | null>;
};
const skip = launcher.findChromium() === null ? "no Chromium installed (apt-get install chromium)" : false;

const FIXTURE = "/test/fixtures/2stage_word_english";
const STEPS = 4;
/**
 * Measured over these steps: the wasm kernels reproduce the reference's float32 losses bit for bit; WebGPU
 * (SwiftShader) differs by at most 9e-8 relative (float32 sums in another order). 1e-5 leaves a margin of 100
 * and is still far below the 1e-3 a wrong kernel moves the loss by.
 */
const LOSS_REL = 1e-5;

let browser: Browser | null = null;
let host: { url: string; close: () => Promise<void> } | null = null;
let page: Page;
const errors: string[] = [];

before(async () => {
  if (skip) return;
  // Only what the page needs: the compiled modules, the fixture and the wasm kernels.
  host = await serveFiles(resolve("."), ["dist/", "test/fixtures/", "wasm/aunet.wasm"]);
  browser = await launcher.launchChromium(undefined, { webgpu: true });
  page = await browser!.context.newPage();
  page.on("pageerror", (e: Error) => errors.push(e.message));
  await page.goto(`${host.url}/`);
});

after(async () => {
  await browser?.close();
  await host?.close();
});

/** Calls an export of the page module (dist/test/browser-page.js) in the page. */
function inPage<T>(fn: string, ...args: unknown[]): Promise<T> {
  return page.evaluate(
    `import("/dist/test/browser-page.js").then((m) => m.${fn}(...${JSON.stringify(args)}))`,
  ) as Promise<T>;
}

/** The reference backend's losses in the page, computed once. */
let refLosses: Promise<number[]> | null = null;

for (const id of ["wasm", "webgpu"] as const) {
  test(
    `browser: the official fixture's forward on the ${id} backend matches the expected logits`,
    { skip },
    async (t) => {
      const r = await inPage<ForwardResult>("fixtureForward", id, FIXTURE);
      t.diagnostic(
        `logits max abs err ${r.logitsMaxAbsErr.toExponential(2)}, loss ${r.loss} vs ${r.lossExpected}`,
      );
      assert.equal(r.backend, id);
      assert.equal(r.logits, 2 * 256 * 258);
      assert.ok(
        r.logitsMaxAbsErr <= TOLERANCE.logitsAbs,
        `logits max abs err ${r.logitsMaxAbsErr} > ${TOLERANCE.logitsAbs}`,
      );
      assert.ok(
        Math.abs(r.loss - r.lossExpected) <= TOLERANCE.lossRel * r.lossExpected,
        `loss ${r.loss} vs ${r.lossExpected}`,
      );
    },
  );

  test(
    `browser: training steps on the ${id} backend follow the reference backend's losses`,
    { skip },
    async (t) => {
      refLosses ??= inPage<number[]>("trainLosses", "reference", STEPS);
      const ref = await refLosses;
      const got = await inPage<number[]>("trainLosses", id, STEPS);
      // The page's reference run is Node's, bit for bit (the same code on the same float32 arithmetic).
      assert.deepEqual(ref, await trainLosses("reference", STEPS));
      assert.ok(ref[STEPS - 1] < ref[0], `the loss falls: ${ref}`);
      const rel = got.map((l, i) => Math.abs(l - ref[i]) / ref[i]);
      t.diagnostic(
        `losses ${got.join(", ")}; relative to the reference ${rel.map((e) => e.toExponential(1)).join(", ")}`,
      );
      for (let i = 0; i < STEPS; i++)
        assert.ok(rel[i] <= LOSS_REL, `step ${i + 1}: ${id} ${got[i]} vs reference ${ref[i]}`);
      assert.deepEqual(errors, [], "no script errors in the page");
    },
  );
}

test("serve: the playground's server hands out the wasm kernels the in-page backend fetches", async () => {
  const server = new AunetServer({});
  const url = `http://127.0.0.1:${await server.listen(0, "127.0.0.1")}`;
  try {
    const r = await fetch(`${url}/wasm/aunet.wasm`);
    assert.equal(r.status, 200);
    // WebAssembly.compileStreaming refuses any other type.
    assert.equal(r.headers.get("content-type"), "application/wasm");
    assert.deepEqual(new Uint8Array(await r.arrayBuffer()), new Uint8Array(readFileSync(WASM_FILE)));
  } finally {
    await server.drain();
  }
});
