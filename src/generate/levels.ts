// The level each token has when it is fed to the model during generation or scoring.
//
// A prompt is split as a whole (the official get_levels_mask_prefill), which is what training saw. Every byte
// after it gets its incremental level: the level of the last byte of the text so far, since later bytes are
// not known yet (spec section 6; it can differ from the whole-text level, e.g. `word \n`). A BOS anywhere
// starts a new document at the top level. Levels above the model's number of pooling levels count as the top.

import { BOS } from "../data/bytes.js";
import { IncrementalSplitter } from "../data/incremental.js";
import { prefillLevels, type SplitStrategy } from "../data/splitter.js";

export class ByteLevels {
  private readonly splitter: IncrementalSplitter;

  constructor(
    private readonly strategy: SplitStrategy,
    private readonly nLevels: number,
  ) {
    this.splitter = new IncrementalSplitter(strategy);
  }

  /** Levels of a prompt (which should start with BOS); the incremental splitter is brought up to its end. */
  prompt(tokens: ArrayLike<number>): Int32Array {
    const levels = prefillLevels(tokens, this.strategy);
    for (let i = 0; i < tokens.length; i++) {
      this.splitter.push(tokens[i]);
      levels[i] = tokens[i] === BOS ? this.nLevels : Math.min(levels[i], this.nLevels);
    }
    return levels;
  }

  /** Level of the next token, given every token before it. */
  next(token: number): number {
    const level = this.splitter.push(token);
    return token === BOS ? this.nLevels : Math.min(level, this.nLevels);
  }
}
