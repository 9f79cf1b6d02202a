// The model behind a --ckpt option: any checkpoint form (src/io/checkpoint-resolver.ts) loaded onto the default
// backend.

import { loadModel as loadCheckpointForm, type LoadedModel } from "../io/checkpoint-resolver.js";
import { AUNet } from "../model/aunet.js";
import { defaultBackend } from "../backends/index.js";

export function loadModel(ckpt: string): LoadedModel & { model: AUNet } {
  const loaded = loadCheckpointForm(ckpt);
  return { ...loaded, model: new AUNet(loaded.config.model, defaultBackend(), loaded.weights) };
}
