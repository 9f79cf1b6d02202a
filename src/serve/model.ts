// The model behind `aunet serve --ckpt`: the one place the server turns a checkpoint path into a model, so that
// a different resolver (any checkpoint form) can be switched in here alone.

import fs from "node:fs";
import path from "node:path";
import { defaultBackend } from "../backends/index.js";
import { Generator } from "../generate/generator.js";
import { loadModel } from "../io/checkpoint-resolver.js";
import { AUNet } from "../model/aunet.js";
import type { AUNetConfig } from "../model/config.js";
import { countParams } from "../model/config.js";

export interface ServedModel {
  /** The name clients use (`model` in the API). */
  id: string;
  /** The directory it was loaded from (its model.safetensors and config are offered to the in-browser playground). */
  dir: string;
  /** params.json or config.json in `dir`; "" when the config came from the weights file's metadata. */
  configFile: string;
  /** When the weights were written (the API's `created`), in seconds. */
  created: number;
  config: AUNetConfig;
  generator: Generator;
  params: number;
}

export function loadServedModel(ckpt: string, id?: string): ServedModel {
  // Any checkpoint form the CLI accepts (src/io/checkpoint-resolver.ts).
  const { source, config, weights } = loadModel(ckpt);
  const st = fs.statSync(source.path);
  const dir = st.isDirectory() ? source.path : path.dirname(source.path);
  const configFile =
    ["params.json", "config.json"].map((n) => path.join(dir, n)).find((f) => fs.existsSync(f)) ?? "";
  const model = new AUNet(config.model, defaultBackend(), weights);
  return {
    id: id ?? path.basename(path.resolve(ckpt)),
    dir,
    configFile,
    created: Math.floor(st.mtimeMs / 1000),
    config,
    generator: new Generator(model, config.strategy),
    params: countParams(config.model).total,
  };
}
