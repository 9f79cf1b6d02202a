#!/usr/bin/env node
// The playground as a static site that runs the model in the page: node scripts/build-site.mjs OUT [MODEL_DIR]
// copies the page, its style, the compiled modules it imports (nothing else), the wasm kernels and a model
// directory's two files into OUT (which must not exist, or be empty). Serve OUT with any static file server. Needs `npm run build`.
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** The compiled modules reachable from `entry` through relative imports. */
export function moduleGraph(entry) {
  const seen = new Set();
  const stack = [resolve(entry)];
  while (stack.length > 0) {
    const file = stack.pop();
    if (seen.has(file)) continue;
    seen.add(file);
    const src = readFileSync(file, "utf8");
    // Static imports and re-exports, side-effect imports, and dynamic imports of a literal path.
    for (const m of src.matchAll(
      /(?:^|\n)\s*(?:import|export)\b[^;]*?from\s+"(\.[^"]+)"|(?:^|\n)\s*import\s+"(\.[^"]+)"|\bimport\(\s*"(\.[^"]+)"\s*\)/g,
    ))
      stack.push(resolve(dirname(file), m[1] ?? m[2] ?? m[3]));
  }
  return [...seen];
}

export function buildSite(out, modelDir = join(ROOT, "models", "aunet-moby")) {
  if (existsSync(out) && readdirSync(out).length > 0) throw new Error(`${out} exists and is not empty`);
  const js = join(ROOT, "dist", "src");
  const entry = join(js, "serve", "web", "playground.js");
  if (!existsSync(entry)) throw new Error("build first: npm run build");
  const copy = (from, to) => {
    mkdirSync(dirname(to), { recursive: true });
    copyFileSync(from, to);
  };
  copy(join(ROOT, "web", "index.html"), join(out, "index.html"));
  copy(join(ROOT, "web", "style.css"), join(out, "static", "style.css"));
  // The wasm backend's kernels, which the page fetches from wasm/aunet.wasm.
  copy(join(ROOT, "wasm", "aunet.wasm"), join(out, "wasm", "aunet.wasm"));
  const modules = moduleGraph(entry);
  for (const f of modules) copy(f, join(out, "js", relative(js, f)));
  const config = ["params.json", "config.json"].find((n) => existsSync(join(modelDir, n)));
  if (!config) throw new Error(`${modelDir} has no params.json or config.json`);
  copy(join(modelDir, config), join(out, "model", "params.json"));
  copy(join(modelDir, "model.safetensors"), join(out, "model", "model.safetensors"));
  writeFileSync(join(out, "site.json"), JSON.stringify({ server: false, model: { url: "model/" } }) + "\n");
  return { modules: modules.length };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [out, model] = process.argv.slice(2);
  if (!out) {
    process.stderr.write("usage: node scripts/build-site.mjs OUT [MODEL_DIR]\n");
    process.exit(1);
  }
  try {
    const { modules } = buildSite(resolve(out), model ? resolve(model) : undefined);
    process.stdout.write(`wrote ${out}: index.html, ${modules} modules, model/\n`);
  } catch (e) {
    process.stderr.write(`build-site: ${e.message}\n`);
    process.exit(1);
  }
}
