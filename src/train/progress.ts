// Console progress for training: a live bar redrawn in place on a terminal, plain lines otherwise (logs, CI,
// pipes), so that the same run reads well both ways.

export interface ProgressSink {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export function formatDuration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return "?";
  if (s < 60) return `${Math.round(s)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

export function formatRate(bytesPerSec: number): string {
  if (!Number.isFinite(bytesPerSec)) return "?";
  if (bytesPerSec >= 1e6) return `${(bytesPerSec / 1e6).toFixed(2)} MB/s`;
  if (bytesPerSec >= 1e3) return `${(bytesPerSec / 1e3).toFixed(1)} kB/s`;
  return `${bytesPerSec.toFixed(0)} B/s`;
}

export interface ProgressFields {
  step: number;
  total: number;
  loss: number;
  bpb: number;
  bytesPerSec: number;
  etaSec: number;
  valBpb: number | null;
}

export class Progress {
  private barShown = false;
  private lastPlain = -Infinity;
  // Fast steps (a few ms) would flood a log or redraw the bar thousands of times a second: plain lines come
  // at most every PLAIN_MS, bar redraws at most every BAR_MS.
  private lastPlainAt = -Infinity;
  private lastBarAt = -Infinity;
  static readonly PLAIN_MS = 5000;
  static readonly BAR_MS = 100;

  constructor(
    private readonly out: ProgressSink,
    /** Plain-line mode prints one line every `every` steps (and the last). */
    private readonly every: number,
    private readonly quiet = false,
  ) {}

  get live(): boolean {
    return this.out.isTTY === true;
  }

  private text(f: ProgressFields): string {
    const val = f.valBpb === null ? "" : `  val ${f.valBpb.toFixed(3)}`;
    return `step ${f.step}/${f.total}  loss ${f.loss.toFixed(4)}  bpb ${f.bpb.toFixed(3)}${val}  ${formatRate(f.bytesPerSec)}  ETA ${formatDuration(f.etaSec)}`;
  }

  update(f: ProgressFields): void {
    if (this.quiet) return;
    const now = Date.now();
    if (this.live) {
      if (now - this.lastBarAt < Progress.BAR_MS && f.step !== f.total) return;
      this.lastBarAt = now;
      const width = Math.max(10, Math.min(30, (this.out.columns ?? 100) - 90));
      const filled = Math.round((width * Math.min(f.step, f.total)) / Math.max(1, f.total));
      const bar = `[${"#".repeat(filled)}${".".repeat(width - filled)}]`;
      this.out.write(`\r\x1b[2K${bar} ${this.text(f)}`);
      this.barShown = true;
    } else if (
      (f.step - this.lastPlain >= this.every && now - this.lastPlainAt >= Progress.PLAIN_MS) ||
      f.step === f.total
    ) {
      this.out.write(this.text(f) + "\n");
      this.lastPlain = f.step;
      this.lastPlainAt = now;
    }
  }

  /** A line of its own (validation results, checkpoints, notes), printed above the live bar. */
  line(s: string): void {
    if (this.quiet) return;
    if (this.barShown) this.out.write("\r\x1b[2K");
    this.out.write(s + "\n");
    this.barShown = false;
  }

  done(): void {
    if (this.barShown && !this.quiet) this.out.write("\n");
    this.barShown = false;
  }
}
