// A minimal SVG line chart for training curves (no dependencies): one panel, linear axes with "nice" ticks,
// any number of series drawn as lines and/or dots, and a legend.

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

function fmt(v: number): string {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e6) return `${(v / 1e6).toPrecision(3)}M`;
  if (a >= 1e4) return `${(v / 1e3).toPrecision(3)}k`;
  return String(Number(v.toPrecision(4)));
}

export function renderChart(series: readonly Series[], o: ChartOptions): string {
  const W = o.width ?? 720,
    H = o.height ?? 420;
  const left = 64,
    right = 20,
    top = o.subtitle ? 58 : 40,
    bottom = 52;
  const pw = W - left - right,
    ph = H - top - bottom;
  const all = series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  let x0 = Math.min(...all.map((p) => p[0])),
    x1 = Math.max(...all.map((p) => p[0]));
  let y0 = o.yMin ?? Math.min(...all.map((p) => p[1])),
    y1 = o.yMax ?? Math.max(...all.map((p) => p[1]));
  if (all.length === 0) [x0, x1, y0, y1] = [0, 1, 0, 1];
  if (x1 === x0) [x0, x1] = [x0 - 0.5, x0 + 0.5]; // one x (a single budget, say): centred, not on the edge
  if (y1 === y0) y1 = y0 + 1;
  const pad = (y1 - y0) * 0.05;
  if (o.yMin === undefined) y0 -= pad;
  if (o.yMax === undefined) y1 += pad;
  const X = (x: number) => left + ((x - x0) / (x1 - x0)) * pw;
  const Y = (y: number) => top + (1 - (y - y0) / (y1 - y0)) * ph;
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="#ffffff"/>`,
    `<text x="${left}" y="22" font-size="15" font-weight="bold">${esc(o.title)}</text>`,
  );
  if (o.subtitle) parts.push(`<text x="${left}" y="40" fill="#555">${esc(o.subtitle)}</text>`);
  for (const t of niceTicks(y0, y1)) {
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
    `<text transform="translate(16 ${top + ph / 2}) rotate(-90)" text-anchor="middle">${esc(o.yLabel)}</text>`,
  );
  parts.push(
    `<g clip-path="url(#plot)"><clipPath id="plot"><rect x="${left}" y="${top}" width="${pw}" height="${ph}"/></clipPath>`,
  );
  for (const s of series) {
    const pts = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
    if (pts.length === 0) continue;
    if (s.line !== false && pts.length > 1) {
      const d = pts.map(([x, y]) => `${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join(" ");
      parts.push(
        `<polyline points="${d}" fill="none" stroke="${s.color}" stroke-width="${s.width ?? 1.5}" stroke-opacity="${s.opacity ?? 1}" stroke-linejoin="round"/>`,
      );
    }
    if (s.dots || pts.length === 1)
      for (const [x, y] of pts)
        parts.push(`<circle cx="${X(x).toFixed(1)}" cy="${Y(y).toFixed(1)}" r="3" fill="${s.color}"/>`);
  }
  parts.push(`</g>`);
  const shown = series.filter((s) => s.points.length > 0);
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
