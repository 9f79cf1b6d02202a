#!/usr/bin/env node
// The `aunet` command line. Each subcommand lives in its own module and returns an exit code; a UserError
// (bad flag, bad config, unreadable input) is printed as one line, anything else is a bug and keeps its trace.
// What every command shares is handled here once: a closed stdout (`aunet split ... | head`) ends the program
// quietly, and error lines are printed with a single "aunet" prefix, control characters escaped.

import { readFileSync } from "node:fs";
import { UserError } from "../util/errors.js";
import { readBackendEnv } from "../backends/env.js";
import { setDefaultBackend } from "../backends/index.js";

type Command = (argv: string[]) => Promise<number>;

const COMMANDS: Record<string, { summary: string; load: () => Promise<Command> }> = {
  "check-fixture": {
    summary: "compare the model against a golden fixture from the official code",
    load: async () => (await import("./check-fixture.js")).checkFixtureCommand,
  },
  split: {
    summary: "print the level mask (word boundaries per stage) of some text",
    load: async () => (await import("./split.js")).splitCommand,
  },
  generate: {
    summary: "continue a prompt byte by byte (incremental, KV-cached), streaming the text",
    load: async () => (await import("./generate.js")).generateCommand,
  },
  score: {
    summary: "log-likelihood and bits per byte of a text, through the generation path",
    load: async () => (await import("./score.js")).scoreCommand,
  },
  train: {
    summary: "train an AU-Net on text/JSONL data (checkpoints, metrics, exact resume)",
    load: async () => (await import("./train.js")).trainCommand,
  },
  eval: {
    summary: "bits per byte of a checkpoint on text/JSONL data",
    load: async () => (await import("./eval.js")).evalCommand,
  },
  demo: {
    summary: "train the small preset on the shipped Moby-Dick corpus for a few minutes, then sample",
    load: async () => (await import("./demo.js")).demoCommand,
  },
  flops: {
    summary: "parameters and training FLOPs per byte of a config (and of a BPE model of its trunk's shape)",
    load: async () => (await import("./flops.js")).flopsCommand,
  },
  compare: {
    summary: "AU-Net vs byte-level and BPE transformers at equal training FLOPs (table, JSON, SVG)",
    load: async () => (await import("./compare.js")).compareCommand,
  },
  convert: {
    summary: "convert a model between aunet, lingua (consolidated.pth) and safetensors; write lingua's yaml",
    load: async () => (await import("./convert.js")).convertCommand,
  },
  serve: {
    summary: "OpenAI-compatible completions API, the playground and the live training dashboard (HTTP)",
    load: async () => (await import("./serve.js")).serveCommand,
  },
};

function usage(): string {
  const rows = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(15)} ${c.summary}`);
  return `usage: aunet <command> [options]\n\ncommands:\n${rows.join("\n")}\n\nEvery command takes --backend auto|cpu|webgpu|wasm|ref (as AUNET_BACKEND; auto: native, then WebGPU on a
hardware adapter, then wasm, then the reference backend). Run 'aunet help <command>' or 'aunet <command> --help'
for a command's options; 'aunet --version' for the version.`;
}

/** The package's version, from its package.json (this file is dist/src/cli/main.js). */
export function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as {
    version: string;
  };
  return pkg.version;
}

function command(name: string): Command | Promise<Command> {
  // Own entries only: `aunet constructor` or `aunet __proto__` are unknown commands, not Object's members.
  if (!Object.hasOwn(COMMANDS, name))
    throw new UserError(`unknown command '${printableName(name)}' (see 'aunet --help')`);
  return COMMANDS[name].load();
}

function printableName(s: string): string {
  return JSON.stringify(s.length > 40 ? s.slice(0, 40) + "..." : s).slice(1, -1);
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "--help" || name === "-h" || (name === "help" && rest.length === 0)) {
    process.stdout.write(usage() + "\n");
    return name ? 0 : 1;
  }
  if (name === "--version" || name === "-V" || name === "version") {
    process.stdout.write(`aunet ${version()}\n`);
    return 0;
  }
  if (name === "help") return (await command(rest[0]))(["--help"]);
  const run = await command(name);
  readBackendEnv(); // a bad AUNET_* variable fails before any work, whatever the command
  const { backend, args } = takeBackendFlag(rest);
  if (backend !== undefined) setDefaultBackend(backend); // a name that is unknown or unavailable: one line
  return run(args);
}

/**
 * `--backend NAME` (or `--backend=NAME`) is understood by every command: it picks the backend as AUNET_BACKEND
 * does (auto, cpu, webgpu, wasm, ref) and wins over it. Taken out here so that no command declares it.
 */
export function takeBackendFlag(argv: readonly string[]): { backend?: string; args: string[] } {
  const args: string[] = [];
  let backend: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--") {
      args.push(...argv.slice(i));
      break;
    }
    if (a === "--backend" || a.startsWith("--backend=")) {
      const v = a === "--backend" ? argv[++i] : a.slice("--backend=".length);
      if (v === undefined || v === "" || v.startsWith("--"))
        throw new UserError("--backend needs a name: auto, cpu, webgpu, wasm or ref");
      backend = v;
    } else args.push(a);
  }
  return { backend, args };
}

/**
 * A UserError's message for the terminal, with one "aunet" prefix (messages may already name their command,
 * "aunet eval: ..."). The message itself is already one safe line (control characters escaped, length bounded:
 * UserError does that for every caller); a `detail` the program wrote (a usage summary) follows on its lines.
 */
export function errorLine(message: string): string {
  return /^aunet[ :]/.test(message) ? message : `aunet: ${message}`;
}

/** A reader that closed stdout early (`| head`) has all it wanted: stop quietly, whatever the command. */
function endOnClosedPipe(stream: NodeJS.WriteStream): void {
  stream.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code === "EPIPE") process.exit(0);
    throw e;
  });
}

const isEntry =
  process.argv[1] !== undefined &&
  import.meta.url ===
    (await import("node:url")).pathToFileURL((await import("node:fs")).realpathSync(process.argv[1])).href;
if (isEntry) {
  endOnClosedPipe(process.stdout);
  endOnClosedPipe(process.stderr);
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      if (err instanceof UserError) {
        process.stderr.write(errorLine(err.message) + "\n");
        process.exitCode = 1;
      } else {
        process.stderr.write(
          `aunet: internal error (please report): ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
        );
        process.exitCode = 2;
      }
    },
  );
}
