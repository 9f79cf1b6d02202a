// `aunet serve`: the HTTP server (src/serve) with the playground and the training dashboard.

import { UserError } from "../util/errors.js";
import { num, parseFlags, showHelp, str } from "./flags.js";
import { AunetServer } from "../serve/server.js";
import { loadServedModel } from "../serve/model.js";
import fs from "node:fs";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const HELP = `usage: aunet serve [--ckpt DIR] [--runs DIR] [--host H] [--port P] [options]

Serves an OpenAI-compatible API (POST /v1/completions, GET /v1/models), POST /v1/score and POST /v1/split,
the playground at / and the training dashboard at /dashboard. Concurrent completions share one batched
generator. SIGTERM or Ctrl-C stops accepting, finishes the requests in flight, then exits.

  --ckpt DIR         model to serve: a model directory or a training run (its latest checkpoint)
  --runs DIR         training runs to show on the dashboard (every directory with a metrics.jsonl)
  --host H           address to listen on (default 127.0.0.1)
  --port P           port (default 8080; 0 picks a free one)
  --name NAME        the model's id in the API (default: the --ckpt directory's name)
  --max-batch N      sequences generated together (default 32)
  --max-queue N      sequences waiting for a place before requests get 429 (default 2 x max-batch)
  --quiet            no line per request on stderr`;

const SPEC = {
  ckpt: { kind: "string" },
  runs: { kind: "string" },
  host: { kind: "string" },
  port: { kind: "string" },
  name: { kind: "string" },
  "max-batch": { kind: "string" },
  "max-queue": { kind: "string" },
  quiet: { kind: "bool" },
  help: { kind: "bool" },
} as const;

export async function serveCommand(argv: string[]): Promise<number> {
  const f = parseFlags("aunet serve", argv, SPEC);
  if (showHelp(f, HELP, process.stdout)) return 0;
  const ckpt = str(f, "ckpt");
  const runs = str(f, "runs");
  if (!ckpt && !runs)
    throw new UserError("serve needs --ckpt DIR and/or --runs DIR (see 'aunet serve --help')");
  if (runs && !fs.existsSync(runs)) throw new UserError(`no such runs directory: ${runs}`);
  const port = num(f, "port", { int: true, min: 0 }) ?? 8080;
  if (port > 65535) throw new UserError(`--port must be at most 65535, got ${port}`);
  const host = str(f, "host") ?? "127.0.0.1";
  const model = ckpt ? loadServedModel(ckpt, str(f, "name")) : undefined;
  const quiet = f.has("quiet");
  const server = new AunetServer({
    model,
    runsDir: runs,
    maxBatch: num(f, "max-batch", { int: true, min: 1 }),
    maxQueue: num(f, "max-queue", { int: true, min: 0 }),
    log: quiet ? undefined : (line) => process.stderr.write(`${line}\n`),
  });
  let bound: number;
  try {
    bound = await server.listen(port, host);
  } catch (e) {
    throw new UserError(
      `cannot listen on ${host}:${port}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`,
    );
  }
  const shown = host.includes(":") ? `[${host}]` : host;
  process.stdout.write(
    `aunet serve: listening on http://${shown}:${bound}/` +
      (model ? ` (model ${model.id}, ${(model.params / 1e6).toFixed(2)}M parameters)` : "") +
      (runs ? ` (dashboard: ${runs})` : "") +
      "\n",
  );
  await new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      process.stderr.write(`aunet serve: ${sig}: finishing the requests in flight\n`);
      process.off("SIGTERM", onTerm);
      process.off("SIGINT", onInt);
      server.drain().then(resolve);
    };
    const onTerm = () => stop("SIGTERM");
    const onInt = () => stop("SIGINT");
    process.on("SIGTERM", onTerm);
    process.on("SIGINT", onInt);
    // Started by `aunet train --dashboard`: stdin is a pipe from the trainer, and its end (the trainer exited,
    // however it exited) ends the server too.
    if (process.env.AUNET_SERVE_LIFELINE === "stdin")
      process.stdin.on("end", () => stop("trainer exited")).resume();
  });
  process.stdout.write("aunet serve: stopped\n");
  return 0;
}

/**
 * `aunet train --dashboard`: the dashboard over the run's parent directory (so sibling runs are overlaid) in a
 * child process, which keeps answering however busy the training loop keeps this one. Resolves to its URL and
 * a function that stops it; the child also stops by itself when this process exits.
 */
export async function startDashboard(runsDir: string): Promise<{ url: string; stop: () => void }> {
  const main = fileURLToPath(new URL("./main.js", import.meta.url));
  const child = spawn(process.execPath, [main, "serve", "--runs", runsDir, "--port", "0", "--quiet"], {
    stdio: ["pipe", "pipe", "inherit"],
    env: { ...process.env, AUNET_SERVE_LIFELINE: "stdin" },
  });
  let out = "";
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.on("data", (b: Buffer) => {
      out += b.toString();
      const m = /listening on (http:\/\/\S+\/)/.exec(out);
      if (m) resolve(`${m[1]}dashboard`);
    });
    child.on("exit", () => reject(new UserError("the dashboard server could not start")));
  });
  child.stdout!.resume();
  return { url, stop: () => child.stdin!.end() };
}
