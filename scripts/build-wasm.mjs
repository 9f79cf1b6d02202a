#!/usr/bin/env node
// Builds the WebAssembly SIMD kernels (wasm/*.c) with clang into one freestanding module: no libc, no
// emscripten, 128-bit SIMD and bulk memory, its own allocator growing the exported memory.
//
//   node scripts/build-wasm.mjs             install time: build/wasm/aunet.wasm when clang can target wasm32,
//                                           else a one-line note and exit 0 (the prebuilt wasm/aunet.wasm is
//                                           used then)
//   node scripts/build-wasm.mjs --prebuilt  rebuild the committed wasm/aunet.wasm and its manifest
//                                           (wasm/aunet.wasm.json: compiler, source and module hashes),
//                                           and refresh build/wasm (npm run build:wasm)
//   node scripts/build-wasm.mjs --out FILE  build into FILE (tests); fails loudly
//
// AUNET_SKIP_WASM=1 skips the install-time build; AUNET_CLANG names the compiler (default clang).
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, copyFileSync, mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const srcDir = path.join(root, "wasm");
const clang = process.env.AUNET_CLANG || "clang";

export const FLAGS = [
  "--target=wasm32",
  "-msimd128",
  "-mbulk-memory",
  "-O3",
  "-std=c11",
  "-nostdlib",
  "-ffreestanding",
  "-fno-exceptions",
  "-Wall",
  "-Werror",
  "-Wl,--no-entry",
  "-Wl,--strip-all",
  "-Wl,-z,stack-size=1048576",
];

/** The kernel sources in a fixed order: every .c and .h under wasm/. */
export function sources() {
  return readdirSync(srcDir)
    .filter((f) => f.endsWith(".c") || f.endsWith(".h"))
    .sort();
}

/** sha256 over the sources' names and contents and the flags: what the module is built from. */
export function sourcesHash() {
  const h = createHash("sha256");
  h.update(FLAGS.join(" ") + "\n");
  for (const f of sources()) h.update(`${f}\n${readFileSync(path.join(srcDir, f), "utf8")}\n`);
  return h.digest("hex");
}

/** The compiler's version line, or null when there is no clang. */
export function clangVersion() {
  const r = spawnSync(clang, ["--version"], { encoding: "utf8" });
  if (r.error || r.status !== 0) return null;
  return r.stdout.split("\n")[0].trim();
}

/** Compiles to `out` (written atomically); returns null on success, else the compiler's complaint. */
export function build(out) {
  mkdirSync(path.dirname(out), { recursive: true });
  const tmp = `${out}.tmp${process.pid}`;
  const cfiles = sources()
    .filter((f) => f.endsWith(".c"))
    .map((f) => path.join(srcDir, f));
  const r = spawnSync(clang, [...FLAGS, ...cfiles, "-o", tmp], { encoding: "utf8" });
  if (r.error) return r.error.message;
  if (r.status !== 0) return (r.stderr || r.stdout || `exit ${r.status}`).trim();
  chmodSync(tmp, 0o644); // wasm-ld marks its output executable; a module is data
  renameSync(tmp, out);
  return null;
}

function sha256(file) {
  return createHash("sha256").update(readFileSync(file)).digest("hex");
}

function main(args) {
  if (args[0] === "--out") {
    const err = build(path.resolve(args[1]));
    if (err) {
      console.error(err);
      process.exit(1);
    }
    return;
  }
  if (args[0] === "--prebuilt") {
    const version = clangVersion();
    if (!version) {
      console.error(`build-wasm: ${clang} not found`);
      process.exit(1);
    }
    const out = path.join(srcDir, "aunet.wasm");
    const err = build(out);
    if (err) {
      console.error(err);
      process.exit(1);
    }
    const manifest = { clang: version, flags: FLAGS, sources: sourcesHash(), wasm: sha256(out) };
    const mf = path.join(srcDir, "aunet.wasm.json");
    writeFileSync(`${mf}.tmp`, JSON.stringify(manifest, null, 2) + "\n");
    renameSync(`${mf}.tmp`, mf);
    // The install-time build, which the loader prefers, must not stay behind the committed module.
    const local = path.join(root, "build", "wasm", "aunet.wasm");
    mkdirSync(path.dirname(local), { recursive: true });
    copyFileSync(out, `${local}.tmp`);
    renameSync(`${local}.tmp`, local);
    console.log(
      `wrote ${path.relative(root, out)} (${readFileSync(out).length} bytes), its manifest and a copy in build/wasm`,
    );
    return;
  }
  // Install time: never fails the installation.
  const note = (msg) => {
    console.warn(`aunet: wasm kernels not rebuilt (${msg}); the prebuilt wasm/aunet.wasm is used`);
    process.exit(0);
  };
  if (process.env.AUNET_SKIP_WASM === "1") note("AUNET_SKIP_WASM=1");
  if (!clangVersion()) note(`no ${clang}`);
  const err = build(path.join(root, "build", "wasm", "aunet.wasm"));
  if (err) note(err.split("\n")[0]);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url))
  main(process.argv.slice(2));
