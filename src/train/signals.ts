// Interrupting a training run: the first SIGINT (Ctrl-C) or SIGTERM asks the loop to stop after the current
// step, save a checkpoint and exit 130 / 143; a second one ends the process at once.
//
// Node runs signal handlers from its event loop, and a training loop of synchronous kernels and already-resolved
// promises never returns to it: the loop must `yieldToEventLoop()` between steps or a signal waits until the
// run ends. The second signal must work even while a long step or save holds the thread, so the first one
// removes our listeners: the operating system's default action (terminate) is back, and the atomic checkpoint
// and file writes make dying at any instant safe.

export type StopSignalName = "SIGINT" | "SIGTERM";

/** The shell convention: 128 + the signal number. */
export const SIGNAL_EXIT_CODE: Record<StopSignalName, number> = { SIGINT: 130, SIGTERM: 143 };

export class StopRequest {
  /** The signal that asked to stop, once one has. */
  received: StopSignalName | null = null;
  private installed = false;
  private readonly handler = (sig: NodeJS.Signals) => this.receive(sig as StopSignalName);

  /** `onSignal` runs once, when the first signal arrives (a line telling the user what happens next). */
  constructor(private readonly onSignal: (sig: StopSignalName) => void = () => {}) {}

  /** Start listening (the CLI does; library callers and tests usually do not). */
  install(): this {
    if (!this.installed && this.received === null) {
      process.on("SIGINT", this.handler);
      process.on("SIGTERM", this.handler);
      this.installed = true;
    }
    return this;
  }

  /** Stop listening; the default action of both signals is restored. */
  uninstall(): void {
    if (!this.installed) return;
    process.off("SIGINT", this.handler);
    process.off("SIGTERM", this.handler);
    this.installed = false;
  }

  /** Ask to stop as a signal would (also what the handler calls). */
  receive(sig: StopSignalName): void {
    if (this.received !== null) return;
    this.received = sig;
    this.uninstall();
    this.onSignal(sig);
  }

  get requested(): boolean {
    return this.received !== null;
  }
}

/**
 * Let the event loop run pending callbacks (signals above all). setImmediate costs a few microseconds, nothing
 * next to a training step.
 */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
