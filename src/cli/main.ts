#!/usr/bin/env node
// The `aunet` command line. Each subcommand lives in its own module and returns an exit code; a UserError
// (bad flag, bad config, unreadable input) is printed as one line, anything else is a bug and keeps its trace.

import { UserError } from "../util/errors.js";

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
  return `usage: aunet <command> [options]\n\ncommands:\n${rows.join("\n")}\n\nRun 'aunet <command> --help' for a command's options.`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "--help" || name === "-h" || name === "help") {
    process.stdout.write(usage() + "\n");
    return name ? 0 : 1;
  }
  const cmd = COMMANDS[name];
  if (!cmd) throw new UserError(`unknown command '${name}'\n${usage()}`);
  return (await cmd.load())(rest);
}

const isEntry =
  process.argv[1] !== undefined &&
  import.meta.url ===
    (await import("node:url")).pathToFileURL((await import("node:fs")).realpathSync(process.argv[1])).href;
if (isEntry) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      if (err instanceof UserError) {
        process.stderr.write(`aunet: ${err.message}\n`);
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
