// A model directory: `model.safetensors` plus a config in the official layout (`params.json`, or `config.json`
// with `model` and `data` sections). Training checkpoints, the shared fixtures and converted lingua checkpoints
// all load through here.

import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { UserError } from "../util/errors.js";
import { readRegularFile } from "../util/files.js";
import { parseConfig, paramSpecs, type AUNetConfig } from "../model/config.js";
import { readSafetensors } from "./safetensors.js";

const MAX_JSON_BYTES = 64 << 20;

export function readJsonFile(path: string): unknown {
  // Regular files only, of a size a config can have: a symlink to /dev/zero or a FIFO must not hang the load.
  const text = readRegularFile(path, MAX_JSON_BYTES, "a JSON file").toString("utf8");
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new UserError(`${path} is not valid JSON: ${(e as Error).message}`);
  }
}

/** The config file of a model directory: params.json first (official), then config.json. */
export function findConfigFile(dir: string): string {
  for (const name of ["params.json", "config.json"]) {
    const p = join(dir, name);
    if (existsSync(p)) return p;
  }
  throw new UserError(
    `${dir} has no params.json or config.json (a model directory needs one, in the official layout)`,
  );
}

export function loadConfigFromDir(dir: string): AUNetConfig {
  if (!existsSync(dir)) throw new UserError(`no such directory: ${dir}`);
  if (!statSync(dir).isDirectory()) throw new UserError(`${dir} is not a directory`);
  const file = findConfigFile(dir);
  const raw = readJsonFile(file);
  try {
    return parseConfig(raw);
  } catch (e) {
    if (e instanceof UserError) throw new UserError(`${file}: ${e.message}`);
    throw e;
  }
}

/**
 * The model's weights from a safetensors file, each checked against the config's parameter list (present,
 * right shape, finite). Tensors the config does not name are returned in `ignored`.
 */
export function readWeights(
  path: string,
  config: AUNetConfig,
): { weights: Map<string, Float32Array>; ignored: string[] } {
  const file = readSafetensors(path);
  const weights = new Map<string, Float32Array>();
  for (const spec of paramSpecs(config.model)) {
    if (!file.has(spec.name)) throw new UserError(`${path} lacks ${spec.name}: it does not match its config`);
    const e = file.entry(spec.name);
    if (e.shape.length !== spec.shape.length || e.shape.some((v, i) => v !== spec.shape[i]))
      throw new UserError(
        `${path}: ${spec.name} has shape [${e.shape}] but the config needs [${spec.shape}]`,
      );
    const w = file.getFloat32(spec.name);
    for (let i = 0; i < w.length; i++)
      if (!Number.isFinite(w[i])) throw new UserError(`${path}: ${spec.name} contains NaN or infinity`);
    weights.set(spec.name, w);
  }
  const wanted = new Set(weights.keys());
  return { weights, ignored: file.names().filter((n) => !wanted.has(n)) };
}

/**
 * Config and weights (checked against the config's parameter list) of exactly a model directory. The library's
 * `loadModelDir` and every --ckpt take any checkpoint form through src/io/checkpoint-resolver.ts instead.
 */
export function loadModelDir(dir: string): { config: AUNetConfig; weights: Map<string, Float32Array> } {
  const config = loadConfigFromDir(dir);
  const path = join(dir, "model.safetensors");
  if (!existsSync(path)) throw new UserError(`${dir} has no model.safetensors`);
  return { config, weights: readWeights(path, config).weights };
}
