// Fitting the schedule to a time limit (the demo's autoSteps) and deciding when to validate.
//
// The step count is first set after CALIBRATION_STEPS steps from the time per step measured since step 2 began
// (step 1 pays for JIT compilation and allocator warm-up), then refitted every tenth of the time limit until 80%
// of it has passed: drifting step times (other processes, a warming allocator) then change the cosine only a
// little while the run is young, and never near its end. Not reproducible across machines by nature; the
// checkpoint records the steps planned, and a resume keeps them.

/** Session steps after which the first fit is made. */
export const CALIBRATION_STEPS = 4;
/** Validations during a fitted run whose config sets no interval (plus the one at the start and at the end). */
export const AUTO_VALIDATIONS = 4;

export class ScheduleFitter {
  private calibStart = 0;
  private nextFitAt = Infinity;

  /**
   * `reservedValidations`: validations the fitted run will make during its time, each costing about as long as
   * the first one did.
   */
  constructor(
    readonly limitSec: number,
    private readonly reservedValidations: number,
  ) {}

  /** Called as session step `done + 1` starts, at performance.now() `t0`. */
  stepStarts(done: number, t0: number): void {
    if (done === 1) this.calibStart = t0;
  }

  /**
   * After `done` steps of this session (optimizer step `step`), `elapsed` seconds into it: the new number of
   * steps when it is time to (re)fit, else null.
   */
  fit(
    done: number,
    step: number,
    elapsed: number,
    valSeconds: number,
  ): { steps: number; msPerStep: number } | null {
    const first = done === CALIBRATION_STEPS;
    if (!first && !(done > CALIBRATION_STEPS && elapsed >= this.nextFitAt && elapsed < 0.8 * this.limitSec))
      return null;
    // Wall time per step since step 2 began covers everything the loop does (validations included once they
    // have happened); the first fit, before any periodic validation, reserves room for them explicitly.
    const perStep = (performance.now() - this.calibStart) / 1000 / (done - 1);
    const reserve = first ? this.reservedValidations : 0;
    const left = this.limitSec - elapsed - (reserve + 1) * valSeconds - 2;
    this.nextFitAt = elapsed + 0.1 * this.limitSec;
    return {
      steps: Math.max(step + 1, step + Math.floor((0.97 * left) / perStep)),
      msPerStep: perStep * 1000,
    };
  }
}

/**
 * When to validate during a run (besides the start and the end): every `every` steps, or, for a fitted run,
 * `count` times spread evenly over the steps planned. Each next validation is placed an equal share of the way
 * from the last one to the planned end, so that with a fixed plan they fall at 1/(count+1), 2/(count+1), ... of
 * it, and a refit moves only the validations still to come (never two at once to catch up).
 */
export class ValidationPlan {
  private done = 0;
  private lastAt = 0;

  constructor(
    private readonly every: number,
    private readonly count = 0,
  ) {}

  static evenly(count: number): ValidationPlan {
    return new ValidationPlan(0, count);
  }

  due(step: number, steps: number): boolean {
    if (step >= steps) return false; // the final validation follows the loop
    if (this.every > 0) return step % this.every === 0;
    const left = this.count - this.done;
    if (left <= 0 || step < this.lastAt + (steps - this.lastAt) / (left + 1)) return false;
    this.done++;
    this.lastAt = step;
    return true;
  }
}
