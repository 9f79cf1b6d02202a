// Load test of `aunet serve` (npm run bench:serve): one client alone, then N concurrent streaming clients, each
// sending streamed completions back to back for a fixed time. Loopback only, bounded in clients and time; it
// starts its own server and stops it (and itself) when done.
//
//   node dist/bench/serve-load.js [--clients 32] [--seconds 60] [--single-seconds 20] [--max-tokens 200]
//                                 [--ckpt models/aunet-moby]
//
// Reports errors (non-200 answers, streams without [DONE], broken connections), time to first byte p50/p99 (the
// first streamed text), bytes/s per client and in total against the single client (the batching gain), and the
// server's RSS before and after.
import { spawn } from "node:child_process";
import { resolve } from "node:path";

const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const CLIENTS = Math.min(256, Number(opt("clients", "32")));
const SECONDS = Math.min(600, Number(opt("seconds", "60")));
const SINGLE_SECONDS = Math.min(600, Number(opt("single-seconds", "20")));
const MAX_TOKENS = Number(opt("max-tokens", "200"));
const CKPT = resolve(opt("ckpt", "models/aunet-moby"));
const PROMPTS = ["Call me Ishmael. ", "The whale ", "It was the ", "Queequeg and I ", "The sea "];

interface ClientStats {
  bytes: number;
  requests: number;
  errors: string[];
  ttfb: number[];
}

async function startServer(): Promise<{ url: string; stop: () => Promise<number | null> }> {
  const proc = spawn(
    process.execPath,
    [
      resolve("dist/src/cli/main.js"),
      "serve",
      "--ckpt",
      CKPT,
      "--port",
      "0",
      "--quiet",
      "--max-batch",
      String(CLIENTS),
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  const exited = new Promise<number | null>((r) => proc.on("exit", (c) => r(c)));
  let out = "";
  const url = await new Promise<string>((ok, fail) => {
    proc.stdout!.on("data", (b: Buffer) => {
      out += b.toString();
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)\//.exec(out);
      if (m) ok(m[1]);
    });
    proc.on("exit", () => fail(new Error("the server exited")));
  });
  // A hard stop in case the run hangs: never outlive the planned time by much.
  const guard = setTimeout(() => proc.kill("SIGKILL"), (SECONDS + SINGLE_SECONDS + 120) * 1000);
  return {
    url,
    stop: async () => {
      clearTimeout(guard);
      proc.kill("SIGTERM");
      return exited;
    },
  };
}

async function rss(url: string): Promise<number> {
  return ((await (await fetch(`${url}/health`)).json()) as { rss: number }).rss;
}

/** One client: streamed completions back to back until `until` (ms, performance.now()). */
async function client(url: string, id: number, until: number, stats: ClientStats): Promise<void> {
  let seed = id * 1000;
  while (performance.now() < until) {
    const t0 = performance.now();
    let first = true;
    try {
      const r = await fetch(`${url}/v1/completions`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({
          prompt: PROMPTS[(id + stats.requests) % PROMPTS.length],
          max_tokens: MAX_TOKENS,
          temperature: 0.8,
          top_p: 0.95,
          seed: seed++,
          stream: true,
        }),
        signal: AbortSignal.timeout(120_000),
      });
      if (r.status !== 200 || !r.body) {
        stats.errors.push(`HTTP ${r.status}: ${await r.text()}`);
        continue;
      }
      let buf = "";
      let done = false;
      const decoder = new TextDecoder();
      for await (const chunk of r.body) {
        buf += decoder.decode(chunk as Uint8Array, { stream: true });
        let cut: number;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          const ev = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          if (ev === "data: [DONE]") {
            done = true;
            continue;
          }
          const text = (JSON.parse(ev.slice(6)) as { choices: { text: string }[] }).choices[0].text;
          if (text.length > 0 && first) {
            stats.ttfb.push(performance.now() - t0);
            first = false;
          }
          stats.bytes += Buffer.byteLength(text);
        }
      }
      stats.requests++;
      if (!done) stats.errors.push("stream ended without [DONE]");
    } catch (e) {
      stats.errors.push(String(e));
    }
  }
}

async function phase(url: string, n: number, seconds: number) {
  const stats = Array.from(
    { length: n },
    () => ({ bytes: 0, requests: 0, errors: [], ttfb: [] }) as ClientStats,
  );
  const t0 = performance.now();
  await Promise.all(stats.map((s, i) => client(url, i, t0 + seconds * 1000, s)));
  const secs = (performance.now() - t0) / 1000;
  const ttfb = stats.flatMap((s) => s.ttfb).sort((a, b) => a - b);
  const q = (p: number) => ttfb[Math.min(ttfb.length - 1, Math.floor(p * ttfb.length))] ?? NaN;
  const bytes = stats.reduce((a, s) => a + s.bytes, 0);
  return {
    clients: n,
    seconds: secs,
    requests: stats.reduce((a, s) => a + s.requests, 0),
    errors: stats.flatMap((s) => s.errors),
    ttfb_p50_ms: q(0.5),
    ttfb_p99_ms: q(0.99),
    bytes_per_s_total: bytes / secs,
    bytes_per_s_per_client: bytes / secs / n,
  };
}

const server = await startServer();
try {
  const rssBefore = await rss(server.url);
  const single = await phase(server.url, 1, SINGLE_SECONDS);
  const many = await phase(server.url, CLIENTS, SECONDS);
  const rssAfter = await rss(server.url);
  const exit = await server.stop();
  const mb = (x: number) => `${(x / 2 ** 20).toFixed(0)} MiB`;
  const line = (name: string, p: typeof single) =>
    `| ${name} | ${p.requests} | ${p.errors.length} | ${p.ttfb_p50_ms.toFixed(0)} / ${p.ttfb_p99_ms.toFixed(0)} ms | ` +
    `${p.bytes_per_s_per_client.toFixed(0)} | ${p.bytes_per_s_total.toFixed(0)} |`;
  process.stdout.write(
    `| clients | requests | errors | time to first byte p50 / p99 | bytes/s per client | bytes/s total |\n` +
      `|---|---|---|---|---|---|\n` +
      `${line("1", single)}\n${line(String(CLIENTS), many)}\n\n` +
      `batching gain (total bytes/s, ${CLIENTS} clients vs 1): ${(many.bytes_per_s_total / single.bytes_per_s_total).toFixed(1)}x; ` +
      `server RSS ${mb(rssBefore)} before, ${mb(rssAfter)} after; server exit code ${exit}\n`,
  );
  for (const e of [...single.errors, ...many.errors].slice(0, 5)) process.stdout.write(`error: ${e}\n`);
  process.stdout.write(JSON.stringify({ single, many, rss_before: rssBefore, rss_after: rssAfter }) + "\n");
  process.exitCode = single.errors.length + many.errors.length === 0 && exit === 0 ? 0 : 1;
} catch (e) {
  await server.stop();
  throw e;
}
