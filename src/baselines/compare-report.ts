// The reports of `aunet compare`: a markdown table and an SVG plot of validation bits per byte against training
// FLOPs (log scale on x, since budgets are usually a few factors apart).

import { renderChart, type Series } from "../train/plot.js";
import type { BaselineKind, CompareResult, CompareRow } from "./compare.js";

const COLORS: Record<BaselineKind, string> = {
  byte: "#6a51a3",
  aunet2: "#2171b5",
  aunet3: "#238b45",
  bpe: "#d94801",
};

const LABELS: Record<BaselineKind, string> = {
  byte: "byte transformer",
  aunet2: "AU-Net 2",
  aunet3: "AU-Net 3",
  bpe: "BPE transformer",
};

function sci(x: number): string {
  return x.toExponential(2).replace("e+", "e");
}

function millions(x: number): string {
  return `${(x / 1e6).toFixed(3)}M`;
}

export function compareMarkdown(r: CompareResult): string {
  const head =
    "| budget (FLOPs) | model | shape | params (non-emb.) | bytes/position per stage | FLOPs/byte | batch | steps | bytes trained | lr (law) | val bits/byte | train time |";
  const sep = "|" + "---|".repeat(12);
  // Bold marks the best (lowest) validation bits per byte of each budget, and only that.
  const best = new Map<number, number>();
  for (const x of r.rows)
    if (Number.isFinite(x.valBpb)) best.set(x.budget, Math.min(best.get(x.budget) ?? Infinity, x.valBpb));
  const bpb = (x: CompareRow) =>
    x.valBpb === best.get(x.budget) ? `**${x.valBpb.toFixed(4)}**` : x.valBpb.toFixed(4);
  const line = (x: CompareRow) => {
    const unit = x.model === "bpe" ? "tokens" : "bytes";
    return `| ${sci(x.budget)} | ${LABELS[x.model]} | ${x.shape} | ${millions(x.params)} (${millions(x.nonEmbeddingParams)}) | ${x.bytesPerPosition.map((k) => k.toFixed(2)).join(" / ")} | ${sci(x.flopsPerByte)} | ${x.batchRows}x${x.seqLen} ${unit} | ${x.steps} | ${(x.bytesTrained / 1e6).toFixed(2)}M | ${x.lr.toPrecision(3)} (${x.law.rawLr.toPrecision(3)}) | ${bpb(x)} | ${x.trainSeconds.toFixed(0)}s |`;
  };
  const cmd = r.command ? `\n\`${r.command}\`\n` : "";
  return `# AU-Net vs baselines at equal training compute\n${cmd}\nTraining text ${r.corpus.trainBytes} bytes, validation ${r.corpus.valBytes} bytes${r.corpus.bpeBytesPerToken ? `; BPE ${r.corpus.bpeBytesPerToken.toFixed(3)} bytes per token` : ""}.\n\n${head}\n${sep}\n${r.rows.map(line).join("\n")}\n`;
}

export function compareSvg(rows: readonly CompareRow[]): string {
  const kinds = [...new Set(rows.map((r) => r.model))];
  const series: Series[] = kinds.map((k) => ({
    name: LABELS[k],
    color: COLORS[k],
    dots: true,
    width: 2,
    // At the nominal budget: the FLOPs actually trained differ a little by model (whole steps), and with one
    // budget those slivers would become the whole x axis.
    points: rows.filter((r) => r.model === k).map((r) => [Math.log10(r.budget), r.valBpb] as const),
  }));
  return renderChart(series, {
    title: "Validation bits per byte at equal training compute",
    subtitle: "training FLOPs by the paper's formula (6N + 6dLS per position, over bytes per position)",
    xLabel: "log10(training FLOPs budget)",
    yLabel: "validation bits per byte",
  });
}
