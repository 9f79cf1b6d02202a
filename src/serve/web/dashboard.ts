// The training dashboard: every run under the server's --runs directory, overlaid in one colour each, updated
// while they train. Each poll asks for the metrics appended since the last one (a byte offset per run), so a
// long run costs its new lines only. Charts are drawn with the same SVG code as a run's curve.svg.

import { field, renderChart, smooth, type RunRecord, type Series } from "../../train/plot.js";

const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"];

interface Run {
  name: string;
  color: string;
  offset: number;
  records: RunRecord[];
}

const runs = new Map<string, Run>();
const $ = (id: string) => document.getElementById(id)!;
const params = new URLSearchParams(location.search);
const POLL_MS = Math.max(200, Number(params.get("poll") ?? 2000));

async function getJson<T>(url: string): Promise<T> {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return (await r.json()) as T;
}

async function poll(): Promise<boolean> {
  const list = await getJson<{ data: { name: string; size: number }[] }>("v1/runs");
  let changed = false;
  for (const { name, size } of list.data) {
    let run = runs.get(name);
    if (!run) {
      run = { name, color: COLORS[runs.size % COLORS.length], offset: 0, records: [] };
      runs.set(name, run);
      changed = true;
    }
    // Read until caught up (a long run arrives in several chunks).
    while (run.offset !== size) {
      const got = await getJson<{ records: RunRecord[]; offset: number }>(
        `v1/runs/metrics?run=${encodeURIComponent(name)}&offset=${run.offset}`,
      );
      if (got.offset < run.offset) run.records = []; // the file was restarted
      if (got.offset === run.offset && got.records.length === 0) break; // only a half-written line
      run.records.push(...got.records.filter((r) => typeof r.step === "number"));
      run.offset = got.offset;
      changed = true;
    }
  }
  return changed;
}

function last(records: readonly RunRecord[], kind: "train" | "val", key: string): number | undefined {
  const pts = field(records, kind, key);
  return pts.length ? pts[pts.length - 1][1] : undefined;
}

function fmt(v: number | undefined, digits: number): string {
  return v === undefined ? "–" : v.toFixed(digits);
}

function drawTable(): void {
  const rows = [...runs.values()].map((r) => {
    const steps = r.records.reduce((m, x) => Math.max(m, x.step), 0);
    const cells = [
      `<span class="swatch" style="background:${r.color}"></span>${escapeHtml(r.name)}`,
      String(steps),
      fmt(last(r.records, "train", "bpb"), 3),
      fmt(last(r.records, "val", "bpb"), 3),
      last(r.records, "train", "lr")?.toExponential(2) ?? "–",
      fmt(last(r.records, "train", "grad_norm"), 3),
      fmt(last(r.records, "train", "bytes_per_s"), 0),
      fmt(100 * (last(r.records, "train", "mfu") ?? NaN), 1),
    ];
    return `<tr data-run="${escapeHtml(r.name)}">${cells.map((c, i) => `<td data-k="${KEYS[i]}">${c}</td>`).join("")}</tr>`;
  });
  $("runs").innerHTML =
    `<tr>${HEADERS.map((h) => `<th>${h}</th>`).join("")}</tr>` +
    (rows.length
      ? rows.join("")
      : `<tr><td colspan="8">no runs yet (a directory with metrics.jsonl)</td></tr>`);
}

const HEADERS = ["run", "step", "train bpb", "val bpb", "lr", "grad norm", "bytes/s", "MFU %"];
const KEYS = ["run", "step", "train_bpb", "val_bpb", "lr", "grad_norm", "bytes_per_s", "mfu"];

function escapeHtml(s: string): string {
  return s.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

function drawCharts(): void {
  const all = [...runs.values()];
  const chart = (
    id: string,
    title: string,
    yLabel: string,
    make: (r: Run) => Series[],
    opts: { yLog?: boolean; yMin?: number } = {},
  ) => {
    $(id).innerHTML = renderChart(all.flatMap(make), {
      title,
      xLabel: "optimizer step",
      yLabel,
      width: 560,
      height: 300,
      legend: false, // the table above names each run's colour
      ...opts,
    });
  };
  chart(
    "c-bpb",
    "bits per byte (lines: train, smoothed; dots: validation)",
    "bits per byte",
    (r) => [
      {
        name: `${r.name} train`,
        points: smooth(field(r.records, "train", "bpb"), 0.1),
        color: r.color,
        width: 1.5,
      },
      {
        name: `${r.name} val`,
        points: field(r.records, "val", "bpb"),
        color: r.color,
        dots: true,
        dash: "4 3",
      },
    ],
    { yLog: true },
  );
  chart(
    "c-lr",
    "learning rate",
    "lr",
    (r) => [{ name: r.name, points: field(r.records, "train", "lr"), color: r.color }],
    {
      yMin: 0,
    },
  );
  chart(
    "c-grad",
    "gradient norm (smoothed)",
    "norm",
    (r) => [{ name: r.name, points: smooth(field(r.records, "train", "grad_norm"), 0.1), color: r.color }],
    { yLog: true },
  );
  chart(
    "c-speed",
    "training speed",
    "bytes/s",
    (r) => [{ name: r.name, points: smooth(field(r.records, "train", "bytes_per_s"), 0.1), color: r.color }],
    { yMin: 0 },
  );
  chart(
    "c-mfu",
    "model FLOPs utilisation",
    "MFU",
    (r) => [{ name: r.name, points: smooth(field(r.records, "train", "mfu"), 0.1), color: r.color }],
    { yMin: 0 },
  );
}

async function loop(): Promise<void> {
  try {
    if (await poll()) {
      drawTable();
      drawCharts();
    }
    $("status").textContent = `updated ${new Date().toLocaleTimeString()}; polling every ${POLL_MS / 1000} s`;
    $("status").className = "";
  } catch (e) {
    $("status").textContent = `cannot read the runs: ${(e as Error).message}`;
    $("status").className = "error";
  }
  document.body.dataset.polls = String(Number(document.body.dataset.polls ?? 0) + 1);
  setTimeout(() => void loop(), POLL_MS);
}

drawTable();
void loop();
