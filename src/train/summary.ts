// The end of a training session: the loss curve (curve.svg) and the lines that sum the session up.

import type { EvalResult } from "./evaluate.js";
import { renderChart, smooth } from "./plot.js";
import { formatDuration, formatRate } from "./progress.js";
import type { MetricRecord } from "./run-dir.js";
import type { StopSignalName } from "./signals.js";

export interface ValPoint {
  step: number;
  bpb: number;
}

export interface TrainSummary {
  step: number;
  steps: number;
  stoppedBy: "steps" | "time" | "stop-after" | "signal";
  /** The signal that stopped the run (stoppedBy "signal"). */
  signal: StopSignalName | null;
  /** Bytes (input positions) trained on in this session and in total. */
  sessionBytes: number;
  totalBytes: number;
  trainSeconds: number;
  bytesPerSec: number;
  finalLoss: number;
  finalBpb: number;
  val: ValPoint[];
  checkpoint: string;
  metricsPath: string;
  curvePath: string;
  params: number;
  backend: string;
  finalVal: EvalResult | null;
}

/** The loss/bpb curve of a run directory's metrics.jsonl as an SVG chart. */
export function curveSvg(records: readonly MetricRecord[], title: string): string {
  const train = records
    .filter((r) => r.kind === "train" && typeof r.bpb === "number")
    .map((r) => [r.step, r.bpb as number] as const);
  const val = records
    .filter((r) => r.kind === "val" && typeof r.bpb === "number")
    .map((r) => [r.step, r.bpb as number] as const);
  const last = val.length ? val[val.length - 1][1] : train.length ? train[train.length - 1][1] : NaN;
  return renderChart(
    [
      { name: "train bpb (per step)", points: train, color: "#9ecae1", width: 1 },
      { name: "train bpb (smoothed)", points: smooth(train, 0.1), color: "#08519c", width: 2 },
      { name: "validation bpb", points: val, color: "#d94801", dots: true, width: 2 },
    ],
    {
      title,
      subtitle: `bits per byte (8 = uniform over 256 bytes); latest ${val.length ? "validation" : "train"} ${last.toFixed(3)}`,
      xLabel: "optimizer step",
      yLabel: "bits per byte",
      yMin: 0,
    },
  );
}

/** What the session prints when it ends: one line when a signal stopped it, else the summary and the paths. */
export function summaryLines(s: TrainSummary, sessionSeconds: number, trainBpb: number): string[] {
  if (s.stoppedBy === "signal")
    return [
      `stopped by ${s.signal} at step ${s.step}/${s.steps}: checkpoint ${s.checkpoint} (continue with --resume)`,
    ];
  const v = s.val;
  const valLine =
    v.length > 0 ? `; validation ${v[0].bpb.toFixed(3)} -> ${v[v.length - 1].bpb.toFixed(3)} bits/byte` : "";
  const how = s.stoppedBy === "steps" ? "finished" : `stopped: ${s.stoppedBy}`;
  return [
    `done: step ${s.step}/${s.steps} (${how}), ${s.totalBytes} bytes seen, ${formatDuration(sessionSeconds)} this session, ${formatRate(s.bytesPerSec)}; train ${Number.isNaN(trainBpb) ? "-" : trainBpb.toFixed(3)} bits/byte${valLine}`,
    `checkpoint: ${s.checkpoint}\nmetrics: ${s.metricsPath}\ncurve: ${s.curvePath}`,
  ];
}
