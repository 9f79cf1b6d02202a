// Ctrl-C and SIGTERM for the commands that read a stream of work (eval): the first signal asks the work to stop
// at its next yield point, after which the command prints one line and exits 130 (SIGINT) or 143 (SIGTERM); a
// second signal exits at once. Work that never yields to the event loop (generate, score: one synchronous
// loop) installs no handler, so Node's default applies there: the process ends at once, as killed by the
// signal (a shell reports 130 or 143).

const CODES: Record<string, number> = { SIGINT: 130, SIGTERM: 143 };

export class Interrupt {
  signal: NodeJS.Signals | null = null;
  private readonly onSignal = (sig: NodeJS.Signals) => {
    if (this.signal !== null) process.exit(CODES[sig]);
    this.signal = sig;
  };

  constructor() {
    process.on("SIGINT", this.onSignal);
    process.on("SIGTERM", this.onSignal);
  }

  /** Lets a pending signal be delivered (one turn of the event loop); true once one has arrived. */
  async stopRequested(): Promise<boolean> {
    await new Promise<void>((resolve) => setImmediate(resolve));
    return this.signal !== null;
  }

  /** The exit code for the signal received (0 if none). */
  get exitCode(): number {
    return this.signal === null ? 0 : CODES[this.signal];
  }

  dispose(): void {
    process.off("SIGINT", this.onSignal);
    process.off("SIGTERM", this.onSignal);
  }
}
