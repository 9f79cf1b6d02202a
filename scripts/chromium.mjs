// Headless Chromium from the system (Debian's chromium-headless-shell or chromium), driven by playwright-core:
// no browser is ever downloaded. Used by the browser tests and `npm run screenshots`.
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const CANDIDATES = [
  "/usr/lib/chromium/chromium-headless-shell",
  "/usr/bin/chromium-headless-shell",
  "/usr/bin/chromium",
  "/usr/lib/chromium/chromium",
];

/** The Chromium executable to drive, or null (set AUNET_CHROMIUM to choose one). */
export function findChromium() {
  const env = process.env.AUNET_CHROMIUM;
  if (env) return existsSync(env) ? env : null;
  return CANDIDATES.find((p) => existsSync(p)) ?? null;
}

const ARGS = [
  "--no-sandbox",
  "--headless",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--no-first-run",
  "--disable-sync",
  "--disable-quic",
];

/**
 * A browser context in a fresh profile directory; close() ends the browser and removes the profile.
 * Resolves to null when no Chromium or playwright-core is installed. With `webgpu`, pages get navigator.gpu:
 * without a GPU, Chromium offers its SwiftShader adapter (a software fallback).
 */
export async function launchChromium(viewport = { width: 1100, height: 800 }, { webgpu = false } = {}) {
  const executablePath = findChromium();
  if (!executablePath) return null;
  let chromium;
  try {
    ({ chromium } = await import("playwright-core"));
  } catch {
    return null;
  }
  const profile = mkdtempSync(join(tmpdir(), "aunet-chromium-"));
  try {
    const context = await chromium.launchPersistentContext(profile, {
      executablePath,
      headless: true,
      args: webgpu ? [...ARGS.filter((a) => a !== "--disable-gpu"), "--enable-unsafe-webgpu"] : ARGS,
      viewport,
      timeout: 60_000,
    });
    return {
      context,
      async close() {
        await context.close().catch(() => {});
        rmSync(profile, { recursive: true, force: true });
      },
    };
  } catch (e) {
    rmSync(profile, { recursive: true, force: true });
    throw e;
  }
}
