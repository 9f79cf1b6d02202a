// The playground page: type text, see the splitter's hierarchy over it and (with a model) each byte's surprisal;
// hover a character for its level, log-probability and the model's top 5; generate, and see for every new byte
// which stages ran. The model is the server's when there is one, else one loaded into the page (a URL or
// dropped files) on the fastest backend of BACKENDS this browser runs.

import {
  LocalEngine,
  ServerEngine,
  loadLocalEngine,
  modelFromFiles,
  pickBackend,
  type BackendChoice,
  type Engine,
} from "./engines.js";
import type { Backend } from "../../engine/backend.js";
import { STAGE_COLORS, drawHierarchy, tooltip } from "./view.js";
import { splitLevels, type TextScore } from "../analysis.js";
import { parseStrategy } from "../../data/splitter.js";

/** Longest text scored as you type (the reference backend in a page scores a few hundred bytes per second). */
const MAX_SCORED_BYTES = 4096;

interface SiteConfig {
  server: boolean;
  model: { id?: string; url: string } | null;
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

const ui = {
  engine: $<HTMLSelectElement>("engine"),
  modelUrl: $<HTMLInputElement>("model-url"),
  load: $<HTMLButtonElement>("load"),
  status: $<HTMLSpanElement>("status"),
  text: $<HTMLTextAreaElement>("text"),
  strategy: $<HTMLInputElement>("strategy"),
  legend: $<HTMLDivElement>("legend"),
  view: $<HTMLDivElement>("view"),
  summary: $<HTMLDivElement>("summary"),
  tip: $<HTMLDivElement>("tip"),
  maxBytes: $<HTMLInputElement>("max-bytes"),
  temperature: $<HTMLInputElement>("temperature"),
  topK: $<HTMLInputElement>("top-k"),
  topP: $<HTMLInputElement>("top-p"),
  seed: $<HTMLInputElement>("seed"),
  generate: $<HTMLButtonElement>("generate"),
  stop: $<HTMLButtonElement>("stop"),
  gen: $<HTMLDivElement>("gen"),
  genStats: $<HTMLDivElement>("gen-stats"),
};

const engines = new Map<string, Engine>();
let engine: Engine | null = null;
let scores: TextScore | null = null;
let revision = 0;

function setStatus(s: string, error = false): void {
  ui.status.textContent = s;
  ui.status.className = error ? "error" : "";
}

function addEngine(key: string, e: Engine): void {
  engines.set(key, e);
  let opt = [...ui.engine.options].find((o) => o.value === key);
  if (!opt) {
    opt = document.createElement("option");
    opt.value = key;
    // Models first, "no model" last.
    ui.engine.insertBefore(opt, [...ui.engine.options].find((o) => o.value === "") ?? null);
  }
  opt.textContent = e.label;
  ui.engine.value = key;
  selectEngine(key);
}

function selectEngine(key: string): void {
  engine = engines.get(key) ?? null;
  scores = null;
  ui.generate.disabled = engine === null;
  ui.strategy.readOnly = engine !== null;
  drawLegend();
  void refresh();
}

/** Levels above the model's number of stages count as its top; without a model, as many as the strategy has. */
function levelCount(): number {
  if (engine) return engine.nLevels;
  try {
    return parseStrategy(ui.strategy.value).numLevels;
  } catch {
    return 1;
  }
}

function drawLegend(): void {
  ui.legend.replaceChildren();
  const n = levelCount();
  const names = ["byte", "word", "pair of words", "4 words", "8 words"];
  for (let k = 0; k <= n; k++) {
    const item = document.createElement("span");
    item.className = "key";
    item.style.borderColor = STAGE_COLORS[k % STAGE_COLORS.length];
    item.textContent = `stage ${k}: ${names[k] ?? `level ${k}`}`;
    ui.legend.append(item);
  }
}

/** Redraw the text's hierarchy now, then its scores when they arrive (dropping answers to older text). */
async function refresh(): Promise<void> {
  const rev = ++revision;
  const text = ui.text.value;
  if (!engine) {
    // No model: the splitter alone, with the strategy typed in.
    try {
      const strategy = parseStrategy(ui.strategy.value);
      ui.view.replaceChildren(drawHierarchy(document, text, splitLevels(text, strategy), strategy.numLevels));
      ui.summary.textContent = "";
      ui.view.dataset.state = "split";
    } catch (e) {
      ui.summary.textContent = `strategy: ${(e as Error).message}`;
    }
    return;
  }
  ui.strategy.value = engine.strategy.toString();
  const levels = await engine.split(text);
  if (rev !== revision) return;
  const keep = scores && scores.bytes.length === levels.length ? scores : null;
  ui.view.replaceChildren(drawHierarchy(document, text, levels, engine.nLevels, keep?.bytes));
  ui.view.dataset.state = "split";
  const n = levels.length;
  if (n === 0 || n > MAX_SCORED_BYTES) {
    ui.summary.textContent = n > MAX_SCORED_BYTES ? `${n} bytes: too long to score as you type` : "";
    ui.view.dataset.state = "scored";
    return;
  }
  try {
    const s = await engine.score(text);
    if (rev !== revision) return;
    scores = s;
    ui.view.replaceChildren(drawHierarchy(document, text, levels, engine.nLevels, s.bytes));
    const perStage = Array.from(
      { length: engine.nLevels + 1 },
      (_, k) => s.bytes.filter((b) => b.level >= k).length,
    );
    ui.summary.textContent =
      `${n} bytes, ${s.bitsPerByte.toFixed(3)} bits per byte; positions per stage: ` +
      perStage.map((c, k) => `stage ${k}: ${c}`).join(", ");
    ui.view.dataset.state = "scored";
  } catch (e) {
    if (rev === revision) setStatus(`scoring failed: ${(e as Error).message}`, true);
  }
}

function showTip(ev: MouseEvent): void {
  const cell = (ev.target as HTMLElement).closest<HTMLElement>(".c");
  if (!cell || !scores || !engine || !ui.view.contains(cell)) {
    ui.tip.hidden = true;
    return;
  }
  const [a, b] = cell.dataset.bytes!.split(":").map(Number);
  if (b > scores.bytes.length) return;
  ui.tip.replaceChildren(tooltip(document, scores.bytes.slice(a, b), engine.nLevels));
  ui.tip.hidden = false;
  const r = cell.getBoundingClientRect();
  ui.tip.style.left = `${r.left + window.scrollX}px`;
  ui.tip.style.top = `${r.bottom + window.scrollY + 6}px`;
}

let abort: AbortController | null = null;

async function generate(): Promise<void> {
  if (!engine) return;
  abort?.abort();
  const ctl = new AbortController();
  abort = ctl;
  ui.gen.replaceChildren();
  ui.gen.dataset.state = "running";
  ui.generate.disabled = true;
  ui.stop.disabled = false;
  const n = engine.nLevels;
  const runs = new Array<number>(n + 1).fill(0);
  let bytes = 0;
  const out = document.createElement("span");
  out.className = "out";
  const prompt = document.createElement("span");
  prompt.className = "prompt";
  prompt.textContent = ui.text.value;
  ui.gen.append(prompt, out);
  const t0 = performance.now();
  try {
    const reason = await engine.generate(
      {
        prompt: ui.text.value,
        maxBytes: Number(ui.maxBytes.value),
        temperature: Number(ui.temperature.value),
        topK: Number(ui.topK.value),
        topP: Number(ui.topP.value),
        seed: Number(ui.seed.value),
      },
      (piece) => {
        // One cell per piece of text; under it a column per byte, a filled box for each stage that ran.
        const cell = document.createElement("span");
        cell.className = "g";
        const ch = document.createElement("span");
        ch.className = "t";
        ch.textContent = piece.text.replace(/\n/g, "↵\n");
        const bars = document.createElement("span");
        bars.className = "bars";
        for (const t of piece.tokens) {
          if (t.id > 255) continue;
          const col = document.createElement("span");
          col.className = "col";
          col.dataset.level = String(t.level);
          for (let k = n; k >= 0; k--) {
            const box = document.createElement("i");
            if (k <= t.level) box.style.background = STAGE_COLORS[k % STAGE_COLORS.length];
            col.append(box);
          }
          bars.append(col);
          bytes++;
          for (let k = 0; k <= Math.min(t.level, n); k++) runs[k]++;
        }
        cell.append(ch, bars);
        out.append(cell);
        const secs = (performance.now() - t0) / 1000;
        ui.genStats.textContent =
          `${bytes} bytes, ${(bytes / Math.max(secs, 1e-3)).toFixed(0)} bytes/s; stage runs: ` +
          runs
            .map(
              (c, k) => `stage ${k} ${c}${k > 0 && bytes > 0 ? ` (${((100 * c) / bytes).toFixed(0)}%)` : ""}`,
            )
            .join(", ");
      },
      ctl.signal,
    );
    ui.gen.dataset.state = `done:${reason}`;
  } catch (e) {
    if (!ctl.signal.aborted) setStatus(`generation failed: ${(e as Error).message}`, true);
    ui.gen.dataset.state = "error";
  } finally {
    ui.generate.disabled = false;
    ui.stop.disabled = true;
  }
}

let picked: ReturnType<typeof pickBackend> | null = null;

/**
 * The backend in-page models run on, chosen once: the fastest this browser runs, or the one `?backend=` names
 * (webgpu, wasm, reference). The status line says which runs and why faster ones were passed over.
 */
async function pageBackend(): Promise<{ choice: BackendChoice; backend: Backend }> {
  picked ??= pickBackend(new URLSearchParams(location.search).get("backend"));
  const p = await picked;
  ui.status.title = p.skipped.length > 0 ? `passed over: ${p.skipped.join("; ")}` : "";
  return p;
}

async function loadFromUrl(url: string): Promise<void> {
  setStatus(`loading ${url} ...`);
  try {
    const { choice, backend } = await pageBackend();
    const e = await loadLocalEngine(url, choice, backend);
    addEngine(`local:${url}`, e);
    setStatus(`loaded ${url} (runs on ${choice.label})`);
  } catch (e) {
    setStatus(`cannot load ${url}: ${(e as Error).message}`, true);
  }
}

async function loadDropped(files: FileList): Promise<void> {
  const list = [...files];
  const cfg = list.find((f) => f.name.endsWith(".json"));
  const st = list.find((f) => f.name.endsWith(".safetensors"));
  if (!cfg || !st)
    return setStatus("drop a params.json (or config.json) and a model.safetensors together", true);
  try {
    const { choice, backend } = await pageBackend();
    const { config, weights } = modelFromFiles(await cfg.text(), await st.arrayBuffer());
    addEngine(
      `file:${st.name}`,
      new LocalEngine(`in the page (${choice.label}): ${st.name}`, config, weights, backend),
    );
    setStatus(`loaded ${st.name} (runs on ${choice.label})`);
  } catch (e) {
    setStatus(`cannot load the dropped files: ${(e as Error).message}`, true);
  }
}

async function main(): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  ui.text.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => void refresh(), 120);
  });
  ui.view.addEventListener("mouseover", showTip);
  ui.view.addEventListener("mouseleave", () => (ui.tip.hidden = true));
  ui.strategy.addEventListener("input", () => {
    drawLegend();
    void refresh();
  });
  ui.engine.addEventListener("change", () => selectEngine(ui.engine.value));
  ui.generate.addEventListener("click", () => void generate());
  ui.stop.addEventListener("click", () => abort?.abort());
  ui.load.addEventListener("click", () => void loadFromUrl(ui.modelUrl.value));
  document.body.addEventListener("dragover", (e) => e.preventDefault());
  document.body.addEventListener("drop", (e) => {
    e.preventDefault();
    if (e.dataTransfer?.files.length) void loadDropped(e.dataTransfer.files);
  });

  // Always offered: the splitter alone, with a strategy typed in (to see deeper hierarchies than the model's).
  const none = document.createElement("option");
  none.value = "";
  none.textContent = "no model (splitter only)";
  ui.engine.append(none);

  const site = (await fetch("site.json")
    .then((r) => (r.ok ? r.json() : null))
    .catch(() => null)) as SiteConfig | null;
  const params = new URLSearchParams(location.search);
  const wantLocal = params.get("engine") === "local";
  if (site?.model) ui.modelUrl.value = site.model.url;
  if (params.get("text")) ui.text.value = params.get("text")!;
  if (site?.server && site.model && !wantLocal) {
    try {
      addEngine("server", await ServerEngine.connect());
      setStatus("connected to the server");
    } catch (e) {
      setStatus(`no server model: ${(e as Error).message}`, true);
    }
  } else if (site?.model) await loadFromUrl(site.model.url);
  else {
    setStatus("no model: enter a model URL or drop params.json + model.safetensors on the page");
    drawLegend();
    void refresh();
  }
  document.body.dataset.ready = "1";
}

void main();
