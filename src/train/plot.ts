// A minimal SVG line chart for training curves (no dependencies, browser-portable: the dashboard draws with it
// too): one panel, a linear or logarithmic y axis with "nice" ticks, any number of series drawn as lines and/or
// dots, and a legend; and the stacked panels of a training run (bits per byte, learning rate, gradient norm).

export interface Series {
  name: string;
  points: readonly (readonly [number, number])[];
  color: string;
  /** Draw a polyline (default) and/or a dot per point. */
  line?: boolean;
  dots?: boolean;
  /** Stroke width and opacity of the line. */
  width?: number;
  opacity?: number;
  /** SVG stroke-dasharray of the line, e.g. "5 3". */
  dash?: string;
}

export interface ChartOptions {
  title: string;
  subtitle?: string;
  xLabel: string;
  yLabel: string;
  width?: number;
  height?: number;
  /** Force the y range (e.g. start at 0). */
  yMin?: number;
  yMax?: number;
  /** Logarithmic y axis (values <= 0 are not drawn). */
  yLog?: boolean;
  /** Legend position: top right (default) or none. */
  legend?: boolean;
}

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** About `count` round tick values covering [lo, hi] (steps of 1, 2 or 5 times a power of ten). */
export function niceTicks(lo: number, hi: number, count = 6): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((f) => f * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step)
    out.push(Number(v.toPrecision(12)));
  return out;
}

/** Ticks for a logarithmic axis over [lo, hi] (lo > 0): 1, 2, 5 times powers of ten, thinned to about 8. */
export function logTicks(lo: number, hi: number): number[] {
  if (!(lo > 0) || !(hi > lo)) return [lo];
  const out: number[] = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++)
    for (const f of [1, 2, 5]) {
      const v = Number((f * 10 ** e).toPrecision(12));
      if (v >= lo && v <= hi) out.push(v);
    }
  if (out.length < 3) {
    // A narrow range (bits per byte from 2 to 3, say): nice linear ticks, placed on the log scale.
    return niceTicks(lo, hi, 8).filter((v) => v > 0);
  }
  return out.length > 9 ? out.filter((v) => /^1/.test(v.toExponential())) : out;
}

function fmt(v: number): string {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e6) return `${(v / 1e6).toPrecision(3)}M`;
  if (a >= 1e4) return `${(v / 1e3).toPrecision(3)}k`;
  if (a < 1e-3) return v.toExponential(0);
  return String(Number(v.toPrecision(4)));
}

let clipIds = 0;

export function renderChart(series: readonly Series[], o: ChartOptions): string {
  // Several charts may share one page (the dashboard, the stacked panels): each needs its own clip path id.
  const clip = `plot${clipIds++}`;
  const W = o.width ?? 720,
    H = o.height ?? 420;
  const left = 64,
    right = 20,
    top = o.subtitle ? 58 : 40,
    bottom = 52;
  const pw = W - left - right,
    ph = H - top - bottom;
  const log = o.yLog === true;
  const ok = ([x, y]: readonly [number, number]) =>
    Number.isFinite(x) && Number.isFinite(y) && (!log || y > 0);
  const all = series.flatMap((s) => s.points).filter(ok);
  let x0 = Math.min(...all.map((p) => p[0])),
    x1 = Math.max(...all.map((p) => p[0]));
  let y0 = o.yMin ?? Math.min(...all.map((p) => p[1])),
    y1 = o.yMax ?? Math.max(...all.map((p) => p[1]));
  if (all.length === 0) [x0, x1, y0, y1] = [0, 1, log ? 1 : 0, log ? 10 : 1];
  if (x1 === x0) [x0, x1] = [x0 - 0.5, x0 + 0.5]; // one x (a single budget, say): centred, not on the edge
  if (y1 === y0) y1 = log ? y0 * 2 : y0 + 1;
  // The y axis maps g(y): y itself, or log10 y; padding is 5% of the range either way.
  const g = (y: number) => (log ? Math.log10(y) : y);
  let g0 = g(y0),
    g1 = g(y1);
  const pad = (g1 - g0) * 0.05;
  if (o.yMin === undefined) g0 -= pad;
  if (o.yMax === undefined) g1 += pad;
  const X = (x: number) => left + ((x - x0) / (x1 - x0)) * pw;
  const Y = (y: number) => top + (1 - (g(y) - g0) / (g1 - g0)) * ph;
  const yTicks = log ? logTicks(10 ** g0, 10 ** g1) : niceTicks(g0, g1);
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="#ffffff"/>`,
    `<text x="${left}" y="22" font-size="15" font-weight="bold">${esc(o.title)}</text>`,
  );
  if (o.subtitle) parts.push(`<text x="${left}" y="40" fill="#555">${esc(o.subtitle)}</text>`);
  for (const t of yTicks) {
    const y = Y(t).toFixed(1);
    parts.push(
      `<line x1="${left}" x2="${left + pw}" y1="${y}" y2="${y}" stroke="#e5e5e5"/>`,
      `<text x="${left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle" fill="#444">${fmt(t)}</text>`,
    );
  }
  for (const t of niceTicks(x0, x1)) {
    const x = X(t).toFixed(1);
    parts.push(
      `<line x1="${x}" x2="${x}" y1="${top}" y2="${top + ph}" stroke="#f0f0f0"/>`,
      `<text x="${x}" y="${top + ph + 16}" text-anchor="middle" fill="#444">${fmt(t)}</text>`,
    );
  }
  parts.push(
    `<rect x="${left}" y="${top}" width="${pw}" height="${ph}" fill="none" stroke="#888"/>`,
    `<text x="${left + pw / 2}" y="${H - 12}" text-anchor="middle">${esc(o.xLabel)}</text>`,
    `<text transform="translate(16 ${top + ph / 2}) rotate(-90)" text-anchor="middle">${esc(o.yLabel + (log ? " (log)" : ""))}</text>`,
  );
  parts.push(
    `<g clip-path="url(#${clip})"><clipPath id="${clip}"><rect x="${left}" y="${top}" width="${pw}" height="${ph}"/></clipPath>`,
  );
  for (const s of series) {
    const pts = s.points.filter(ok);
    if (pts.length === 0) continue;
    if (s.line !== false && pts.length > 1) {
      const d = pts.map(([x, y]) => `${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join(" ");
      parts.push(
        `<polyline points="${d}" fill="none" stroke="${s.color}" stroke-width="${s.width ?? 1.5}" stroke-opacity="${s.opacity ?? 1}" stroke-linejoin="round"${s.dash ? ` stroke-dasharray="${s.dash}"` : ""}/>`,
      );
    }
    if (s.dots || pts.length === 1)
      for (const [x, y] of pts)
        parts.push(`<circle cx="${X(x).toFixed(1)}" cy="${Y(y).toFixed(1)}" r="3" fill="${s.color}"/>`);
  }
  parts.push(`</g>`);
  const shown = o.legend === false ? [] : series.filter((s) => s.points.length > 0);
  shown.forEach((s, i) => {
    const y = top + 14 + i * 16;
    const x = left + pw - 170;
    parts.push(
      `<line x1="${x}" x2="${x + 18}" y1="${y}" y2="${y}" stroke="${s.color}" stroke-width="2.5"/>`,
      `<text x="${x + 24}" y="${y}" dominant-baseline="middle">${esc(s.name)}</text>`,
    );
  });
  parts.push(`</svg>`);
  return parts.join("\n") + "\n";
}

/** Exponential moving average of a curve (for a readable trend over noisy per-step losses). */
export function smooth(points: readonly (readonly [number, number])[], alpha: number): [number, number][] {
  const out: [number, number][] = [];
  let m = NaN;
  for (const [x, y] of points) {
    if (!Number.isFinite(y)) continue;
    m = Number.isNaN(m) ? y : alpha * y + (1 - alpha) * m;
    out.push([x, m]);
  }
  return out;
}

/** One line of a run's metrics.jsonl (the fields the figures use; others are ignored). */
export interface RunRecord {
  kind: "train" | "val";
  step: number;
  bpb?: number;
  lr?: number;
  grad_norm?: number;
  bytes_per_s?: number;
  mfu?: number;
  [k: string]: unknown;
}

/** The (step, value) points of one field of the records of a kind. */
export function field(records: readonly RunRecord[], kind: "train" | "val", key: string): [number, number][] {
  const out: [number, number][] = [];
  for (const r of records) {
    const v = r[key];
    if (r.kind === kind && typeof v === "number" && Number.isFinite(v)) out.push([r.step, v]);
  }
  return out;
}

/**
 * The figure of a training run (curve.svg): bits per byte on a log axis (each step, smoothed, and validation
 * where it was measured), then the learning rate and the gradient norm, stacked with the same step axis.
 */
export function renderRunFigure(records: readonly RunRecord[], title: string): string {
  const train = field(records, "train", "bpb");
  const val = field(records, "val", "bpb");
  const last = val.length ? val[val.length - 1][1] : train.length ? train[train.length - 1][1] : NaN;
  const W = 720;
  const panels = [
    renderChart(
      [
        { name: "train (per step)", points: train, color: "#9ecae1", width: 1 },
        { name: "train (smoothed)", points: smooth(train, 0.1), color: "#08519c", width: 2 },
        { name: "validation", points: val, color: "#d94801", dots: true, width: 2 },
      ],
      {
        title,
        subtitle: `bits per byte (8 = uniform over 256 bytes); latest ${val.length ? "validation" : "train"} ${last.toFixed(3)}`,
        xLabel: "optimizer step",
        yLabel: "bits per byte",
        yLog: true,
        width: W,
        height: 380,
      },
    ),
    renderChart(
      [{ name: "learning rate", points: field(records, "train", "lr"), color: "#2ca02c", width: 1.5 }],
      {
        title: "learning rate",
        xLabel: "optimizer step",
        yLabel: "lr",
        yMin: 0,
        width: W,
        height: 200,
        legend: false,
      },
    ),
    renderChart(
      [
        { name: "per step", points: field(records, "train", "grad_norm"), color: "#c7b3e0", width: 1 },
        {
          name: "smoothed",
          points: smooth(field(records, "train", "grad_norm"), 0.1),
          color: "#6a3d9a",
          width: 2,
        },
      ],
      {
        title: "gradient norm (before clipping)",
        xLabel: "optimizer step",
        yLabel: "norm",
        yLog: true,
        width: W,
        height: 200,
      },
    ),
  ];
  let y = 0;
  const body = panels.map((svg) => {
    const h = Number(/height="(\d+)"/.exec(svg)![1]);
    const inner = svg.replace(/^<svg[^>]*>/, "").replace(/<\/svg>\s*$/, "");
    const g = `<g transform="translate(0 ${y})">${inner}</g>`;
    y += h;
    return g;
  });
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${y}" viewBox="0 0 ${W} ${y}" font-family="Helvetica, Arial, sans-serif" font-size="12">\n` +
    body.join("\n") +
    "\n</svg>\n"
  );
}
