#!/usr/bin/env node
// Builds the native CPU backend (build/Release/aunet_native.node) with node-gyp at install time.
// Installation must never fail because of it: if the compiler, the headers or node-gyp are missing, this
// prints one warning and exits 0, and the library falls back to the reference backend at run time.
// AUNET_SKIP_NATIVE=1 skips the build; AUNET_NATIVE_VERBOSE=1 shows the compiler output.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, realpathSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const verbose = process.env.AUNET_NATIVE_VERBOSE === "1";

function warn(msg) {
  console.warn(`aunet: native CPU backend not built (${msg}); using the slower reference backend`);
  process.exit(0);
}

if (process.env.AUNET_SKIP_NATIVE === "1") warn("AUNET_SKIP_NATIVE=1");

// node-gyp: the copy npm runs lifecycle scripts with, else the one bundled next to npm, else npx.
function findNodeGyp() {
  const cands = [];
  if (process.env.npm_config_node_gyp) cands.push(process.env.npm_config_node_gyp);
  if (process.env.npm_execpath) {
    cands.push(
      path.join(
        path.dirname(process.env.npm_execpath),
        "..",
        "node_modules",
        "node-gyp",
        "bin",
        "node-gyp.js",
      ),
    );
  }
  const prefix = path.dirname(path.dirname(process.execPath));
  for (const lib of ["lib/node_modules", "node_modules"])
    cands.push(path.join(prefix, lib, "npm", "node_modules", "node-gyp", "bin", "node-gyp.js"));
  for (const c of cands) {
    try {
      if (existsSync(c)) return [process.execPath, realpathSync(c)];
    } catch {
      // try the next one
    }
  }
  return ["npx", "--yes", "node-gyp"];
}

// Use the headers installed with this Node when npm has not been told where headers are: then node-gyp
// needs no download.
function nodedirArgs() {
  if (process.env.npm_config_nodedir) return [];
  const prefix = path.dirname(path.dirname(process.execPath));
  const ver = path.join(prefix, "include", "node", "node_version.h");
  if (!existsSync(ver) || !existsSync(path.join(prefix, "include", "node", "common.gypi"))) return [];
  const src = readFileSync(ver, "utf8");
  const num = (k) => (src.match(new RegExp(`#define ${k} (\\d+)`)) ?? [])[1];
  const v = `v${num("NODE_MAJOR_VERSION")}.${num("NODE_MINOR_VERSION")}.${num("NODE_PATCH_VERSION")}`;
  return v === process.version ? [`--nodedir=${prefix}`] : [];
}

const [cmd, ...pre] = findNodeGyp();
const args = [...pre, "rebuild", "--jobs=max", ...nodedirArgs()];
const r = spawnSync(cmd, args, {
  cwd: root,
  stdio: verbose ? "inherit" : "pipe",
  encoding: "utf8",
  shell: process.platform === "win32" && cmd === "npx",
});
if (r.error || r.status !== 0) {
  let where = "";
  if (!verbose) {
    try {
      mkdirSync(path.join(root, "build"), { recursive: true });
      const log = path.join(root, "build", "build-native.log");
      writeFileSync(log, `${cmd} ${args.join(" ")}\n${r.stdout ?? ""}\n${r.stderr ?? ""}`);
      where = `, see ${path.relative(process.cwd(), log) || log}`;
    } catch {
      // no log then
    }
  }
  warn(r.error ? `${r.error.message}` : `node-gyp exited with ${r.status}${where}`);
}
if (!existsSync(path.join(root, "build", "Release", "aunet_native.node"))) warn("node-gyp produced no addon");
