// Moving one model between the three places its weights live: an aunet model directory (model.safetensors +
// params.json), a lingua consolidated directory (consolidated.pth + params.json) and a bare safetensors file
// (config beside it, given with --config, or embedded in its metadata by `convert --to safetensors`). Weights are
// float32 everywhere, so every conversion is bit-exact.

import fs from "node:fs";
import path from "node:path";
import { UserError } from "../util/errors.js";
import { isObj } from "../util/json.js";
import { openRegularFile } from "../util/files.js";
import { writeJsonAtomic } from "./atomic.js";
import { findConfigFile, readJsonFile, readWeights } from "./model-dir.js";
import { readSafetensors, writeSafetensors, type TensorData } from "./safetensors.js";
import { CONSOLIDATED_NAME, readTorchWeights, writeLinguaDir, writeLinguaYaml } from "./lingua.js";
import { parseConfig, paramSpecs, toOfficialJson, type AUNetConfig } from "../model/config.js";

export type SourceFormat = "aunet" | "lingua" | "safetensors" | "torch";
export type TargetFormat = "aunet" | "lingua" | "safetensors" | "lingua-yaml";
export const TARGET_FORMATS: readonly TargetFormat[] = ["aunet", "lingua", "safetensors", "lingua-yaml"];

/** The safetensors metadata key holding the config (official layout, JSON) of a bare weights file. */
export const CONFIG_METADATA_KEY = "aunet_config";

type Obj = Record<string, unknown>;

export interface ModelBundle {
  format: SourceFormat;
  config: AUNetConfig;
  /** The config file as written (params.json / config.json), carried into the output where it fits. */
  raw: unknown;
  weights: Map<string, Float32Array>;
  /** Checkpoint entries that are not parameters of the config. */
  ignored: string[];
}

function startsWithZip(file: string): boolean {
  const { fd } = openRegularFile(file);
  try {
    const b = Buffer.alloc(2);
    return fs.readSync(fd, b, 0, 2, 0) === 2 && b[0] === 0x50 && b[1] === 0x4b;
  } finally {
    fs.closeSync(fd);
  }
}

/** What `src` is, from its layout (and, for a file, its name or first bytes). */
export function detectFormat(src: string): SourceFormat {
  if (!fs.existsSync(src)) throw new UserError(`no such file or directory: ${src}`);
  if (fs.statSync(src).isDirectory()) {
    const hasSt = fs.existsSync(path.join(src, "model.safetensors"));
    const hasPth = fs.existsSync(path.join(src, CONSOLIDATED_NAME));
    if (hasSt && hasPth)
      throw new UserError(
        `${src} holds both model.safetensors and ${CONSOLIDATED_NAME}: say which with --from`,
      );
    if (hasSt) return "aunet";
    if (hasPth) return "lingua";
    throw new UserError(`${src} holds neither model.safetensors (aunet) nor ${CONSOLIDATED_NAME} (lingua)`);
  }
  if (/\.safetensors$/i.test(src)) return "safetensors";
  if (/\.(pth|pt|bin|ckpt)$/i.test(src) || startsWithZip(src)) return "torch";
  return "safetensors";
}

function parseConfigFile(file: string): { config: AUNetConfig; raw: unknown } {
  const raw = readJsonFile(file);
  try {
    return { config: parseConfig(raw), raw };
  } catch (e) {
    if (e instanceof UserError) throw new UserError(`${file}: ${e.message}`);
    throw e;
  }
}

function siblingConfig(file: string): string | undefined {
  try {
    return findConfigFile(path.dirname(file));
  } catch {
    return undefined;
  }
}

export interface ReadOptions {
  /** Overrides detection. */
  from?: SourceFormat;
  /** A config file in the official layout; required for a bare weights file without one beside it. */
  config?: string;
}

/**
 * The config of `src` without reading its weights. For a bare file: --config, else a params.json/config.json
 * beside it, else (safetensors) the config embedded in its metadata.
 */
export function readSourceConfig(src: string, opts: ReadOptions = {}): { config: AUNetConfig; raw: unknown } {
  if (opts.config !== undefined) return parseConfigFile(opts.config);
  if (/\.json$/i.test(src) && fs.existsSync(src) && fs.statSync(src).isFile()) return parseConfigFile(src);
  const format = opts.from ?? detectFormat(src);
  if (format === "aunet" || format === "lingua") return parseConfigFile(findConfigFile(src));
  const sibling = siblingConfig(src);
  if (sibling) return parseConfigFile(sibling);
  if (format === "safetensors") {
    const embedded = readSafetensors(src).metadata?.[CONFIG_METADATA_KEY];
    if (embedded !== undefined) {
      let raw: unknown;
      try {
        raw = JSON.parse(embedded);
      } catch {
        throw new UserError(`${src}: the ${CONFIG_METADATA_KEY} metadata is not valid JSON`);
      }
      try {
        return { config: parseConfig(raw), raw };
      } catch (e) {
        if (e instanceof UserError)
          throw new UserError(`${src} (${CONFIG_METADATA_KEY} metadata): ${e.message}`);
        throw e;
      }
    }
  }
  throw new UserError(
    `${src} is a bare weights file: give its config with --config (or put a params.json or config.json beside it)`,
  );
}

/** Config and float32 weights of any supported source. */
export function readModel(src: string, opts: ReadOptions = {}): ModelBundle {
  const format = opts.from ?? detectFormat(src);
  const { config, raw } = readSourceConfig(src, { ...opts, from: format });
  const file =
    format === "aunet"
      ? path.join(src, "model.safetensors")
      : format === "lingua"
        ? path.join(src, CONSOLIDATED_NAME)
        : src;
  const w =
    format === "aunet" || format === "safetensors"
      ? readWeights(file, config)
      : readTorchWeights(file, config);
  return { format, config, raw, ...w };
}

/**
 * The params.json of an aunet model directory: `raw` (whatever the source's config file held) with the model
 * and data sections made to describe `config`, so nothing the source recorded is dropped.
 */
export function officialParams(config: AUNetConfig, raw?: unknown): Obj {
  const out: Obj = isObj(raw) ? structuredClone(raw) : {};
  const official = toOfficialJson(config);
  const rawModel = isObj(out.model) ? out.model : {};
  const rawBlock = isObj(rawModel.block) ? rawModel.block : {};
  out.model = { ...official.model, block: { ...rawBlock, ...official.model.block } };
  out.data = { ...(isObj(out.data) ? out.data : {}), ...official.data };
  return out;
}

function tensorMap(config: AUNetConfig, weights: ReadonlyMap<string, Float32Array>): Map<string, TensorData> {
  const out = new Map<string, TensorData>();
  for (const spec of paramSpecs(config.model)) {
    const data = weights.get(spec.name);
    if (!data) throw new UserError(`no weights for ${spec.name}`);
    out.set(spec.name, { dtype: "F32", shape: spec.shape, data });
  }
  return out;
}

function ensureDir(dir: string): void {
  if (fs.existsSync(dir) && !fs.statSync(dir).isDirectory())
    throw new UserError(`${dir} exists and is not a directory`);
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new UserError(`cannot create ${dir}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** Writes `model` to `dst` as `to`; lingua-yaml needs only the config. */
export function writeModel(
  dst: string,
  to: TargetFormat,
  model: Pick<ModelBundle, "config" | "raw"> & { weights?: ReadonlyMap<string, Float32Array> },
): void {
  const { config, raw } = model;
  if (to === "lingua-yaml") return writeLinguaYaml(dst, config, raw);
  const weights = model.weights;
  if (!weights) throw new Error(`writeModel: ${to} needs weights`);
  if (to === "aunet") {
    ensureDir(dst);
    writeSafetensors(path.join(dst, "model.safetensors"), tensorMap(config, weights), { format: "pt" });
    writeJsonAtomic(path.join(dst, "params.json"), officialParams(config, raw));
  } else if (to === "lingua") {
    ensureDir(dst);
    writeLinguaDir(dst, config, weights, raw);
  } else {
    if (fs.existsSync(dst) && fs.statSync(dst).isDirectory())
      throw new UserError(`${dst} is a directory; a safetensors target is a file path`);
    writeSafetensors(dst, tensorMap(config, weights), {
      format: "pt",
      [CONFIG_METADATA_KEY]: JSON.stringify(officialParams(config, raw)),
    });
  }
}
