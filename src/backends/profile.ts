// A backend wrapper that times every kernel call, for per-op profiles (bench/, `--profile`). Kernels of the
// CPU backends are synchronous, so wall time around each call is the kernel's time.
import type { Backend } from "../engine/backend.js";

export interface OpStat {
  op: string;
  calls: number;
  ms: number;
}

export class Profiler {
  private readonly stats = new Map<string, { calls: number; ns: bigint }>();

  /** `inner` with every method timed into this profiler. */
  wrap(inner: Backend): Backend {
    const stats = this.stats;
    return new Proxy(inner, {
      get(target, prop, receiver) {
        const v: unknown = Reflect.get(target, prop, receiver);
        if (typeof v !== "function" || typeof prop !== "string") return v;
        const fn = v as (...args: unknown[]) => unknown;
        return (...args: unknown[]) => {
          const t0 = process.hrtime.bigint();
          try {
            return fn.apply(target, args);
          } finally {
            const s = stats.get(prop) ?? { calls: 0, ns: 0n };
            s.calls++;
            s.ns += process.hrtime.bigint() - t0;
            stats.set(prop, s);
          }
        };
      },
    });
  }

  reset(): void {
    this.stats.clear();
  }

  /** Ops by time spent, largest first. */
  report(): OpStat[] {
    return [...this.stats.entries()]
      .map(([op, s]) => ({ op, calls: s.calls, ms: Number(s.ns) / 1e6 }))
      .sort((a, b) => b.ms - a.ms);
  }
}
