#!/usr/bin/env node
// npm run screenshots [-- --runs DIR] [-- --out docs/img]: PNGs of each page for the README, taken in the
// system's headless Chromium against a server on a loopback port: the playground (hovering a byte), a streamed
// generation, and the training dashboard over the runs in DIR (default runs/, skipped when it has none).
import { existsSync, mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { launchChromium } from "./chromium.mjs";

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const out = resolve(opt("out", "docs/img"));
const runs = resolve(opt("runs", "runs"));
const model = resolve(opt("ckpt", "models/aunet-moby"));

const { AunetServer } = await import("../dist/src/serve/server.js");
const { loadServedModel } = await import("../dist/src/serve/model.js");
const { listRuns } = await import("../dist/src/serve/runs.js");

const hasRuns = existsSync(runs) && listRuns(runs).length > 0;
const server = new AunetServer({ model: loadServedModel(model), runsDir: hasRuns ? runs : undefined });
const base = `http://127.0.0.1:${await server.listen(0, "127.0.0.1")}`;
const browser = await launchChromium({ width: 1100, height: 620 });
if (!browser) {
  process.stderr.write("screenshots: no Chromium found (apt-get install chromium)\n");
  await server.drain();
  process.exit(1);
}
mkdirSync(out, { recursive: true });
const written = [];
try {
  const page = await browser.context.newPage();
  await page.goto(`${base}/`);
  await page.waitForSelector("body[data-ready]", { timeout: 60_000 });
  await page.waitForSelector('#view[data-state="scored"]', { timeout: 60_000 });
  await page.hover('#view .c[data-i="10"]');
  await page.waitForSelector("#tip:not([hidden])");
  await page.screenshot({
    path: join(out, "playground.png"),
    clip: { x: 0, y: 0, width: 1100, height: 400 },
  });
  written.push("playground.png");

  await page.mouse.move(0, 0);
  await page.fill("#max-bytes", "240");
  await page.click("#generate");
  await page.waitForSelector('#gen[data-state^="done"]', { timeout: 120_000 });
  const box = await page.evaluate(() => {
    const r = document.querySelector("#gen-stats").getBoundingClientRect();
    const top = document.querySelector("#generate").closest("section").getBoundingClientRect().top;
    return { top: top + window.scrollY, bottom: r.bottom + window.scrollY };
  });
  await page.screenshot({
    path: join(out, "generate.png"),
    clip: { x: 0, y: box.top - 4, width: 1100, height: box.bottom - box.top + 12 },
    fullPage: true,
  });
  written.push("generate.png");

  // The splitter alone, three levels deep: words, pairs of words, groups of four words.
  await page.selectOption("#engine", "");
  await page.fill("#strategy", "word1=1@1,word2=2@1,word3=4@1");
  await page.fill(
    "#text",
    "Call me Ishmael. Some years ago, never mind how long precisely, having little or no money in my purse.",
  );
  await page.waitForFunction(
    () =>
      [...document.querySelectorAll("#view .c")].map((c) => c.textContent).join("") ===
      document.querySelector("#text").value.replace(/ /g, "\u00a0"),
  );
  const view = await page.evaluate(() => {
    const r = document.querySelector("#strategy").closest("div").getBoundingClientRect();
    const v = document.querySelector("#view").getBoundingClientRect();
    return { top: r.top + window.scrollY, bottom: v.bottom + window.scrollY };
  });
  await page.screenshot({
    path: join(out, "splitter.png"),
    clip: { x: 0, y: view.top - 4, width: 1100, height: view.bottom - view.top + 8 },
    fullPage: true,
  });
  written.push("splitter.png");

  if (hasRuns) {
    await page.setViewportSize({ width: 1100, height: 900 });
    await page.goto(`${base}/dashboard`);
    await page.waitForSelector("#runs tr[data-run]", { timeout: 60_000 });
    await page.screenshot({ path: join(out, "dashboard.png") });
    written.push("dashboard.png");
  } else process.stderr.write(`screenshots: no runs under ${runs}, dashboard skipped\n`);
} finally {
  await browser.close();
  await server.drain();
}
process.stdout.write(`wrote ${written.map((f) => join(out, f)).join(", ")}\n`);
