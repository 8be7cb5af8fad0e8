/**
 * `pnpm train`: the training worker's command line. Known failures (bad data,
 * a busy run directory, an unavailable backend) print one line and exit 1;
 * SIGINT/SIGTERM finish the current step, write a checkpoint and exit 0.
 */
import { CorpusError } from '@hanmadi/corpus';
import { BackendUnavailableError, ModelDirError, SafetensorsError } from '@hanmadi/model';
import { ModelFileError, VocabSizeError } from '@hanmadi/tokenizer';
import { exitCodeFor, onStopSignals } from '@hanmadi/cli-kit';
import { createReporter } from './report.js';
import { RunDirError } from './run-dir.js';
import { parseTrainArgs } from './settings.js';
import { train, type ServedModel, type StopSignal } from './train.js';

export interface TrainIo {
  interactive: boolean;
  /** Where logs and the progress bar go. */
  stdout: NodeJS.WritableStream;
  /** Where one-line errors go. */
  err: (line: string) => void;
}

/** Failures a user can fix, reported in one line (exit 1); a bad flag exits 2. */
const KNOWN_ERRORS = [CorpusError, RunDirError, ModelDirError, ModelFileError, VocabSizeError, BackendUnavailableError, SafetensorsError];

const processIo = (): TrainIo => ({ interactive: Boolean(process.stdout.isTTY), stdout: process.stdout, err: (line) => process.stderr.write(`${line}\n`) });

export async function runTrainCli(argv: string[], io: TrainIo = processIo()): Promise<number> {
  let request;
  try {
    request = parseTrainArgs(
      argv,
      (text) => io.err(text.trimEnd()),
      (text) => io.stdout.write(text),
    );
  } catch (error) {
    return exitCodeFor(error, KNOWN_ERRORS, io.err);
  }
  const report = createReporter(io.interactive, io.stdout);
  const stop: StopSignal = { requested: false };
  // A later second signal exits at once, losing this step (`onStopSignals`).
  const stopListening = onStopSignals({
    onStop: (signal) => {
      stop.requested = true;
      stop.reason = signal;
      report.info(`${signal}: finishing this step, then writing a checkpoint (again to exit now)`);
    },
  });
  try {
    const summary = await train(request, report, stop);
    const v = summary.validation;
    report.info(
      `done: ${summary.steps} steps in ${summary.trainSeconds.toFixed(0)} s of training on ${summary.backend}` +
        (v ? `; last step: validation perplexity ${v.perplexity.toFixed(2)}, BLEU ${v.bleu.toFixed(2)}, chrF ${v.chrf.toFixed(2)}` : ''),
      { runDir: summary.runDir },
    );
    // The replies worth showing are the served model's: the last step's may be better or worse.
    const served = summary.served;
    if (served) {
      report.info(`${summary.runDir} serves ${servedDescription(served)}`);
      const r = served.report;
      if (r) {
        report.info(
          `  on the report half of validation (not used to choose): perplexity ${r.perplexity.toFixed(2)}, BLEU ${r.bleu.toFixed(2)}, chrF ${r.chrf.toFixed(2)} ` +
            `(${r.decoded} replies, ${r.lengthRatio.toFixed(2)}× the references' length)`,
        );
      }
      for (const reply of (r ?? served.validation)?.replies ?? []) report.info(`  ${reply.prompt} → ${reply.reply}`);
    }
    return 0;
  } catch (error) {
    report.stop();
    return exitCodeFor(error, KNOWN_ERRORS, io.err);
  } finally {
    stopListening();
  }
}

/** "step 450 (validation perplexity 116.50, …): the lowest validation loss", or the checkpoints averaged. */
function servedDescription(served: ServedModel): string {
  const averaged = served.averaged;
  const which = !averaged ? `step ${served.step}` : averaged.length === 1 ? `the last checkpoint, ${averaged[0]}` : `the average of ${averaged.join(', ')}`;
  const v = served.validation;
  const figures = v
    ? `perplexity ${v.perplexity.toFixed(2)}, BLEU ${v.bleu.toFixed(2)}, chrF ${v.chrf.toFixed(2)}`
    : `perplexity ${Math.exp(served.validLoss).toFixed(2)}`;
  return `${which} (validation ${figures}): ${served.why}`;
}
