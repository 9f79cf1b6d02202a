// The model behind `aunet serve --ckpt`: the one place the server turns a checkpoint path into a model, so that
// a different resolver (any checkpoint form) can be switched in here alone.

import path from "node:path";
import { defaultBackend } from "../backends/index.js";
import { Generator } from "../generate/generator.js";
import { findConfigFile, loadModelDir } from "../io/model-dir.js";
import { AUNet } from "../model/aunet.js";
import type { AUNetConfig } from "../model/config.js";
import { countParams } from "../model/config.js";
import { resolveCheckpointDir } from "../train/checkpoint.js";

export interface ServedModel {
  /** The name clients use (`model` in the API). */
  id: string;
  /** The model directory it was loaded from (its files are offered to the in-browser playground). */
  dir: string;
  configFile: string;
  config: AUNetConfig;
  generator: Generator;
  params: number;
}

export function loadServedModel(ckpt: string, id?: string): ServedModel {
  const dir = resolveCheckpointDir(ckpt);
  const { config, weights } = loadModelDir(dir);
  const model = new AUNet(config.model, defaultBackend(), weights);
  return {
    id: id ?? path.basename(path.resolve(ckpt)),
    dir,
    configFile: findConfigFile(dir),
    config,
    generator: new Generator(model, config.strategy),
    params: countParams(config.model).total,
  };
}
