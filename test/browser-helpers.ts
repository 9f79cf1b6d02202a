// What the browser tests share: the slice of playwright-core's page and browser they use, and a static file
// server on an ephemeral loopback port (what any web host would do for the static site or the compiled modules).
import http from "node:http";
import { readFileSync } from "node:fs";
import { extname, join } from "node:path";

export interface Page {
  goto(url: string): Promise<unknown>;
  fill(sel: string, v: string): Promise<void>;
  click(sel: string): Promise<void>;
  hover(sel: string): Promise<void>;
  waitForSelector(sel: string, o?: { timeout?: number; state?: string }): Promise<unknown>;
  waitForFunction(fn: string, arg?: unknown, o?: { timeout?: number }): Promise<unknown>;
  evaluate<T>(fn: string | ((arg: any) => T), arg?: unknown): Promise<T>;
  textContent(sel: string): Promise<string | null>;
  on(ev: string, fn: (x: any) => void): void;
  setDefaultTimeout(ms: number): void;
  close(): Promise<void>;
}

export interface Browser {
  context: { newPage(): Promise<Page> };
  close(): Promise<void>;
}

const TYPES: Record<string, string> = {
  ".html": "text/html",
  ".js": "text/javascript",
  ".css": "text/css",
  ".json": "application/json",
  // WebAssembly.compileStreaming needs this type.
  ".wasm": "application/wasm",
};

/** An empty page to import modules into, served at / when the directory has no index.html. */
const BLANK = "<!doctype html><meta charset=utf-8><title>aunet test</title>";

/**
 * Serves the files of `dir` on http://127.0.0.1 at an ephemeral port; with `only`, just the paths under those
 * prefixes (relative to dir, a trailing / for a folder).
 */
export function serveFiles(
  dir: string,
  only?: string[],
): Promise<{ url: string; close: () => Promise<void> }> {
  const s = http.createServer((req, res) => {
    const p = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    const rel = p === "/" ? "index.html" : p.slice(1);
    const allowed =
      !rel.split("/").some((s) => s === ".." || s === "") && (!only || only.some((o) => rel.startsWith(o)));
    try {
      if (!allowed) throw new Error("not served");
      const data = readFileSync(join(dir, rel));
      res.writeHead(200, { "Content-Type": TYPES[extname(rel)] ?? "application/octet-stream" });
      res.end(data);
    } catch {
      if (p === "/") res.writeHead(200, { "Content-Type": "text/html" }).end(BLANK);
      else res.writeHead(404).end();
    }
  });
  return new Promise((r) =>
    s.listen(0, "127.0.0.1", () =>
      r({
        url: `http://127.0.0.1:${(s.address() as { port: number }).port}`,
        close: () =>
          new Promise((c) => {
            s.closeAllConnections();
            s.close(() => c());
          }),
      }),
    ),
  );
}
