// The end of a training session: the loss curve (curve.svg) and the lines that sum the session up.

import type { EvalResult } from "./evaluate.js";
import { renderRunFigure } from "./plot.js";
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

/** The curves of a run directory's metrics.jsonl as an SVG figure (bits per byte, learning rate, gradient norm). */
export function curveSvg(records: readonly MetricRecord[], title: string): string {
  return renderRunFigure(records, title);
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
