// `aunet convert SRC DST`: move a model between an aunet model directory, a lingua consolidated directory and a
// bare safetensors file, or write the lingua training YAML for its config.

import fs from "node:fs";
import path from "node:path";
import { UserError } from "../util/errors.js";
import { resolveCheckpoint } from "../io/checkpoint-resolver.js";
import { parseFlags, showHelp, str } from "./flags.js";
import {
  TARGET_FORMATS,
  detectFormat,
  readModel,
  readSourceConfig,
  writeModel,
  type SourceFormat,
  type TargetFormat,
} from "../io/convert.js";
import { countParams } from "../model/config.js";

export const CONVERT_HELP = `usage: aunet convert SRC DST [--to FORMAT] [--from FORMAT] [--config FILE] [--force]

Converts a model between formats; the float32 weights are copied bit for bit.

SRC is one of
  a training run directory       its newest complete checkpoint
  an aunet model directory       model.safetensors + params.json (or config.json)
  a lingua consolidated dir      consolidated.pth + params.json, as lingua's consolidate_checkpoints writes it
  a safetensors file             its config from --config, a params.json/config.json beside it, or its metadata
  a torch file (.pth/.pt)        torch.save of {"model": state_dict} or of a bare state dict; config as above
  a config .json                 (only with --to lingua-yaml)

options:
  --to FORMAT      aunet (directory), lingua (directory: consolidated.pth + params.json), safetensors (file,
                   config embedded in its metadata) or lingua-yaml (training config for apps.aunet.train).
                   Default: from DST's extension (.safetensors, .yaml/.yml), else lingua for an aunet source
                   and aunet for anything else
  --from FORMAT    aunet, lingua, safetensors or torch, when SRC's layout is ambiguous
  --config FILE    the config (official layout) for a bare weights file
  --force          replace DST if it exists (without it, an existing file or non-empty directory is refused)
  -h, --help       show this text
`;

const SPEC = {
  to: { kind: "string" },
  from: { kind: "string" },
  config: { kind: "string" },
  force: { kind: "bool" },
  help: { kind: "bool" },
} as const;

const SOURCE_FORMATS: readonly SourceFormat[] = ["aunet", "lingua", "safetensors", "torch"];

/** Where the command reports; tests pass their own. */
export interface ConvertIO {
  stdout?: { write(chunk: string): unknown };
}

/** Nothing is overwritten without --force: an existing file, or a directory with anything in it. */
function checkDestination(dst: string, force: boolean): void {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(dst);
  } catch {
    return;
  }
  if (force) return;
  if (st.isDirectory() && fs.readdirSync(dst).length === 0) return;
  throw new UserError(`convert: ${dst} already exists; add --force to replace it`);
}

/** A run directory converts from its newest complete checkpoint. */
function sourcePath(src: string, from: SourceFormat | undefined): string {
  if (from !== undefined || !fs.existsSync(src) || !fs.statSync(src).isDirectory()) return src;
  const r = resolveCheckpoint(src);
  return r.form === "run" ? r.path : src;
}

function defaultTarget(dst: string, from: SourceFormat | "config"): TargetFormat {
  if (/\.safetensors$/i.test(dst)) return "safetensors";
  if (/\.ya?ml$/i.test(dst)) return "lingua-yaml";
  return from === "aunet" ? "lingua" : "aunet";
}

export async function convertCommand(argv: string[], io: ConvertIO = {}): Promise<number> {
  const stdout = io.stdout ?? process.stdout;
  const f = parseFlags("aunet convert", argv, SPEC, { positionals: true });
  if (showHelp(f, CONVERT_HELP, stdout)) return 0;
  const { positionals } = f;
  const values = { to: str(f, "to"), from: str(f, "from"), config: str(f, "config") };
  if (positionals.length !== 2)
    throw new UserError("convert: expected SRC and DST (see 'aunet convert --help')");
  const [srcArg, dst] = positionals;
  if (values.to !== undefined && !TARGET_FORMATS.includes(values.to as TargetFormat))
    throw new UserError(`convert: --to must be one of ${TARGET_FORMATS.join(", ")}`);
  if (values.from !== undefined && !SOURCE_FORMATS.includes(values.from as SourceFormat))
    throw new UserError(`convert: --from must be one of ${SOURCE_FORMATS.join(", ")}`);
  const from = values.from as SourceFormat | undefined;
  const opts = { from, config: values.config };
  const configOnly = /\.json$/i.test(srcArg);
  const src = configOnly ? srcArg : sourcePath(srcArg, from);

  const to =
    (values.to as TargetFormat | undefined) ??
    defaultTarget(dst, configOnly ? "config" : (from ?? detectFormat(src)));
  if (path.resolve(src) === path.resolve(dst)) throw new UserError(`convert: ${dst} is the source itself`);
  checkDestination(dst, f.has("force"));
  if (to === "lingua-yaml") {
    writeModel(dst, to, readSourceConfig(src, opts));
    stdout.write(`wrote ${dst}: lingua training config (fill in the data paths it names before training)\n`);
    return 0;
  }
  if (configOnly)
    throw new UserError(`convert: ${src} is a config file; only --to lingua-yaml can start from one`);
  const model = readModel(src, opts);
  writeModel(dst, to, model);
  const { total } = countParams(model.config.model);
  stdout.write(
    `converted ${src === srcArg ? src : `${srcArg} (${src})`} (${model.format}) -> ${dst} (${to}): ${model.weights.size} tensors, ${total} parameters\n`,
  );
  if (model.ignored.length > 0)
    stdout.write(
      `left out ${model.ignored.length} entries that are not parameters of this config: ` +
        `${model.ignored.slice(0, 8).join(", ")}${model.ignored.length > 8 ? ", ..." : ""}\n`,
    );
  return 0;
}
