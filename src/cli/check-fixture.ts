// `aunet check-fixture DIR`: the command-line wrapper of eval/check-fixture.ts.

import { UserError } from "../util/errors.js";
import { parseFlags, showHelp } from "./flags.js";
import { checkFixture, TOLERANCE } from "../eval/check-fixture.js";

const HELP = `usage: aunet check-fixture DIR [--json]

Runs forward + backward of the model in DIR (model.safetensors, config.json/params.json, inputs.json) and
compares with expected.safetensors: logits (max abs error <= ${TOLERANCE.logitsAbs}), loss (relative error <=
${TOLERANCE.lossRel}), every parameter gradient (error relative to the tensor's max |value| <= ${TOLERANCE.gradRel}),
pooling indices (exactly equal); then replays generate_teacher/ and generate/ with a full forward per step.
Exits 1 when anything is past tolerance.`;

const SPEC = { json: { kind: "bool" }, help: { kind: "bool" } } as const;

export async function checkFixtureCommand(
  argv: string[],
  out: NodeJS.WritableStream = process.stdout,
): Promise<number> {
  const f = parseFlags("aunet check-fixture", argv, SPEC, { positionals: true });
  if (showHelp(f, HELP, out)) return 0;
  if (f.positionals.length !== 1)
    throw new UserError(
      `check-fixture needs exactly one fixture directory, got ${f.positionals.length} (see 'aunet check-fixture --help')`,
    );
  const report = checkFixture(f.positionals[0]);
  if (f.has("json")) out.write(JSON.stringify(report, null, 2) + "\n");
  else {
    const f = (x: number) => x.toExponential(2);
    out.write(
      [
        `fixture   ${report.fixture} (backend ${report.backend})`,
        `logits    max abs error ${f(report.logitsMaxAbsErr)}`,
        `loss      ${report.loss} vs ${report.lossExpected} (relative error ${f(report.lossRelErr)})`,
        `gradients ${report.gradients}, worst ${report.worstGrad.name} (relative error ${f(report.worstGrad.relErr)})`,
        `acts      ${report.activations.checked}, worst ${report.activations.worst} (${f(report.activations.relErr)})`,
        `integers  ${Object.entries(report.integers)
          .map(([k, v]) => `${k} ${v ? "equal" : "DIFFER"}`)
          .join(", ")}`,
        ...report.generate.map(
          (g) =>
            `${g.trace.padEnd(9)} ${g.steps} steps, logits max abs error ${f(g.logitsMaxAbsErr)}, levels ${g.levelsEqual ? "equal" : "DIFFER"}` +
            (g.greedyEqual === null ? "" : `, greedy ${g.greedyEqual ? "equal" : "DIFFER"}`),
        ),
        report.pass ? "PASS" : "FAIL",
      ].join("\n") + "\n",
    );
  }
  return report.pass ? 0 : 1;
}
