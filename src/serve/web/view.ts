// Drawing a text with its hierarchy: every character in a cell, the cells of a word in a bracket of the first
// stage's colour, the words of a pair in a bracket of the second stage's colour, and so on. A unit that the text
// has not closed yet (no boundary after it) is drawn dashed. With scores, each cell's background is its
// surprisal in bits.

import type { ScoredPosition } from "../analysis.js";

export const STAGE_COLORS = ["#888888", "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"];

export interface CharCell {
  /** The character as shown (newline and tab made visible). */
  shown: string;
  /** Its bytes: [start, end) in the text's UTF-8. */
  start: number;
  end: number;
}

/** The characters of a text with their UTF-8 byte ranges. */
export function charCells(text: string): CharCell[] {
  const enc = new TextEncoder();
  const cells: CharCell[] = [];
  let at = 0;
  for (const ch of text) {
    const n = enc.encode(ch).length;
    const shown = ch === "\n" ? "↵" : ch === "\t" ? "→" : ch === " " ? "\u00a0" : ch;
    cells.push({ shown, start: at, end: at + n });
    at += n;
  }
  return cells;
}

/** Background colour for a surprisal in bits: white at 0, deep red at 8 bits and beyond. */
export function heat(bits: number): string {
  const t = Math.max(0, Math.min(1, bits / 8));
  const g = Math.round(255 - 200 * t);
  const b = Math.round(255 - 215 * t);
  return `rgb(255, ${g}, ${b})`;
}

/**
 * The cells of `text` nested in units per stage. `levels` has one entry per byte; a character closes the units
 * of stages 1..level of its last byte. Returns the container's new content.
 */
export function drawHierarchy(
  doc: Document,
  text: string,
  levels: ArrayLike<number>,
  nLevels: number,
  scores?: readonly ScoredPosition[],
): HTMLElement {
  const cells = charCells(text);
  const levelOf = (c: CharCell) => (c.end > c.start ? Math.min(levels[c.end - 1] ?? 0, nLevels) : 0);
  const build = (from: number, to: number, k: number): Node[] => {
    if (k === 0) return cells.slice(from, to).map((c, j) => cellNode(doc, c, from + j, levelOf(c), scores));
    const out: Node[] = [];
    let start = from;
    for (let i = from; i < to; i++) {
      const closed = levelOf(cells[i]) >= k;
      if (!closed && i < to - 1) continue;
      const unit = doc.createElement("span");
      unit.className = `u u${k}${closed ? "" : " open"}`;
      unit.style.borderColor = STAGE_COLORS[k % STAGE_COLORS.length];
      unit.append(...build(start, i + 1, k - 1));
      out.push(unit);
      start = i + 1;
    }
    return out;
  };
  const root = doc.createElement("div");
  root.className = "hier";
  root.append(...build(0, cells.length, nLevels));
  return root;
}

function cellNode(
  doc: Document,
  c: CharCell,
  index: number,
  level: number,
  scores?: readonly ScoredPosition[],
): HTMLElement {
  const span = doc.createElement("span");
  span.className = `c lv${level}`;
  span.textContent = c.shown;
  span.dataset.i = String(index);
  span.dataset.bytes = `${c.start}:${c.end}`;
  if (scores && c.end <= scores.length) {
    let nats = 0;
    for (let b = c.start; b < c.end; b++) nats -= scores[b].logProb;
    span.style.background = heat(nats / Math.LN2);
  }
  return span;
}

/** How a byte id reads in a list of candidates. */
export function byteLabel(id: number): string {
  if (id === 256) return "BOS";
  if (id === 257) return "EOS";
  if (id === 10) return "↵";
  if (id === 32) return "␣";
  if (id >= 33 && id < 127) return String.fromCharCode(id);
  return `\\x${id.toString(16).padStart(2, "0")}`;
}

/** The hover card of a character: for each of its bytes the level, log-probability, bits and top-5. */
export function tooltip(doc: Document, bytes: readonly ScoredPosition[], nLevels: number): HTMLElement {
  const box = doc.createElement("div");
  for (const b of bytes) {
    const t = doc.createElement("table");
    const row = (k: string, label: string, value: string) => {
      const tr = t.insertRow();
      const th = doc.createElement("th");
      th.textContent = label;
      const td = tr.insertCell();
      td.dataset.k = k;
      td.textContent = value;
      tr.prepend(th);
    };
    row("byte", "byte", `${byteLabel(b.byte)} (${b.byte})`);
    row("level", "level", `${b.level} (stages 0..${Math.min(b.level, nLevels)} run after it)`);
    row("logprob", "log-prob", b.logProb.toFixed(4));
    row("bits", "bits", (-b.logProb / Math.LN2).toFixed(3));
    row(
      "top",
      "top 5 here",
      b.top.map((c) => `${byteLabel(c.id)} ${(100 * Math.exp(c.logProb)).toFixed(1)}%`).join("  "),
    );
    box.append(t);
  }
  return box;
}
