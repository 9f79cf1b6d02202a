// The shared flag parser of the `aunet` commands (src/cli/flags.ts): values, lists, positionals, help.
import { test } from "node:test";
import assert from "node:assert/strict";
import { list, num, parseFlags, showHelp, str } from "../src/cli/flags.js";
import { UserError } from "../src/util/errors.js";

const SPEC = {
  ckpt: { kind: "string" },
  prompt: { kind: "list" },
  stop: { kind: "list" },
  seed: { kind: "string" },
  json: { kind: "bool" },
  help: { kind: "bool" },
} as const;

function oneLineError(fn: () => unknown, re: RegExp): void {
  assert.throws(
    fn,
    (e: unknown) => e instanceof UserError && re.test(e.message) && !e.message.includes("\n"),
  );
}

test("repeated and multi-value list flags accumulate; awkward values stay whole", () => {
  const f = parseFlags(
    "aunet generate",
    ["--prompt", "The", "--prompt", "A b", "c", "--stop", "\n\n", "-x", "--json"],
    SPEC,
  );
  assert.deepEqual(list(f, "prompt"), ["The", "A b", "c"]);
  assert.deepEqual(list(f, "stop"), ["\n\n", "-x"]);
  assert.equal(f.has("json"), true);
  assert.deepEqual(f.positionals, []);
});

test("a value may start with a single dash, be empty, or come after '='", () => {
  const f = parseFlags("cmd", ["--seed", "-3", "--prompt", "", "--ckpt=--odd"], SPEC);
  assert.equal(num(f, "seed", { int: true }), -3);
  assert.deepEqual(list(f, "prompt"), [""]);
  assert.equal(str(f, "ckpt"), "--odd");
});

test("positionals only when asked for", () => {
  oneLineError(() => parseFlags("cmd", ["dir"], SPEC), /cmd: unexpected argument 'dir' \(see 'cmd --help'\)/);
  const f = parseFlags("cmd", ["a", "--ckpt", "c", "b", "-", "--", "--json", "-h"], SPEC, {
    positionals: true,
  });
  assert.deepEqual(f.positionals, ["a", "b", "-", "--json", "-h"]);
  assert.equal(str(f, "ckpt"), "c");
  assert.equal(f.has("json"), false);
  oneLineError(() => parseFlags("cmd", ["a", "-q"], SPEC, { positionals: true }), /unknown option -q/);
});

test("mistakes are one-line user errors", () => {
  oneLineError(() => parseFlags("cmd", ["--bogus"], SPEC), /cmd: unknown option --bogus/);
  oneLineError(() => parseFlags("cmd", ["--ckpt"], SPEC), /--ckpt needs a value/);
  oneLineError(() => parseFlags("cmd", ["--ckpt", "--json"], SPEC), /--ckpt needs a value/);
  oneLineError(() => parseFlags("cmd", ["--ckpt", "a", "--ckpt", "b"], SPEC), /--ckpt given twice/);
  oneLineError(() => parseFlags("cmd", ["--json=1"], SPEC), /--json takes no value/);
  oneLineError(() => parseFlags("cmd", ["--toString"], SPEC), /unknown option --toString/);
});

test("-h and --help print the text once, with a final newline", () => {
  for (const argv of [["-h"], ["--help"]]) {
    let text = "";
    assert.equal(
      showHelp(parseFlags("cmd", argv, SPEC), "usage: cmd", { write: (s: string) => (text += s) }),
      true,
    );
    assert.equal(text, "usage: cmd\n");
  }
  assert.equal(showHelp(parseFlags("cmd", [], SPEC), "usage", { write: () => assert.fail() }), false);
});
