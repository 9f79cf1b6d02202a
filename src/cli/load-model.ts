// The model behind a --ckpt option: a model directory (training checkpoint, converted lingua checkpoint or a
// shared fixture) loaded onto the default backend.

import { loadModelDir } from "../io/model-dir.js";
import { AUNet } from "../model/aunet.js";
import type { AUNetConfig } from "../model/config.js";
import { defaultBackend } from "../backends/index.js";

export function loadModel(dir: string): { model: AUNet; config: AUNetConfig } {
  const { config, weights } = loadModelDir(dir);
  return { model: new AUNet(config.model, defaultBackend(), weights), config };
}
