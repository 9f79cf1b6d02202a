// `aunet check-fixture DIR`: the command-line wrapper of eval/check-fixture.ts.

import { UserError } from "../util/errors.js";
import { parseFlags, showHelp } from "./flags.js";
import { checkFixture, TOLERANCE } from "../eval/check-fixture.js";
import { TRAJECTORY_TOLERANCE as TT, type TrajectoryReport } from "../eval/trajectory.js";

const HELP = `usage: aunet check-fixture DIR [--json]

Runs forward + backward of the model in DIR (model.safetensors, config.json/params.json, inputs.json) and
compares with expected.safetensors: logits (max abs error <= ${TOLERANCE.logitsAbs}), loss (relative error <=
${TOLERANCE.lossRel}), every parameter gradient (error relative to the tensor's max |value| <= ${TOLERANCE.gradRel}),
activations (<= ${TOLERANCE.actRel}), pooling indices (exactly equal); then replays generate_teacher/ and
generate/ with a full forward per step, and trajectory/ (the official training loop's optimizer steps) with
this project's AdamW, schedule, clipping and gradient accumulation: losses (relative error <= ${TT.lossRel}),
gradient norms (<= ${TT.gradNormRel}), learning rates (<= ${TT.lrAbs} absolute), final weights (error relative
to each tensor's max |value| <= ${TT.finalWeightsRel}) and, where present, AdamW moments (<= ${TT.momentsRel}).
The tolerances are about 10x the worst error measured on the official fixtures. AUNET_BACKEND=ref|cpu
picks the backend. Exits 1 when anything is past tolerance.`;

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
  const report = await checkFixture(f.positionals[0]);
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
        ...trajectoryLines(report.trajectory, f),

        report.pass ? "PASS" : "FAIL",
      ].join("\n") + "\n",
    );
  }
  return report.pass ? 0 : 1;
}

function trajectoryLines(t: TrajectoryReport | null, f: (x: number) => string): string[] {
  if (!t) return [];
  const moments = t.momentsMaxRelErr === null ? "" : `, AdamW moments ${f(t.momentsMaxRelErr)}`;
  return [
    `trajectory ${t.steps} steps (${t.microBatches} micro-batches, accumulation ${t.gradAccSteps}): loss ` +
      `${f(t.lossMaxRelErr)}, gradient norm ${f(t.gradNormMaxRelErr)}, lr ${f(t.lrMaxAbsErr)} abs, final ` +
      `weights ${f(t.finalWeightsMaxRelErr)} (${t.worstWeight})${moments} ${t.pass ? "pass" : "FAIL"}`,
  ];
}
