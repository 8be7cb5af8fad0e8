/**
 * `hanmadi start` (`pnpm start`): the quickstart. Serves the shipped base model
 * (models/hanmadi-base, the `tutorial` preset trained on ChatbotData) and
 * prints the chat page's URL. With --fine-tune it first fine-tunes the base on
 * the bundled corpus into runs/hanmadi, unless a model is already there
 * (resuming a run that was interrupted), and serves that instead.
 * Flags are the serve command's (`pnpm start --port 8080`), plus --base,
 * --fine-tune, --out and --epochs.
 */
import { existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import { API_KEY_ENV, cliExitCode, serveOptions, serveUntilSignal, type ServeSettings } from '@hanmadi/api';
import { BUNDLED_CORPUS, REPO_ROOT } from '@hanmadi/corpus';
import { isModelDir } from '@hanmadi/model';
import { runTrainCli, trainingFinished } from '@hanmadi/trainer';
import { onStopSignals } from '@hanmadi/cli-kit';
import { Command, InvalidArgumentError } from 'commander';
import { pino } from 'pino';

const TRAIN_STATE = 'train.json';
/** Epochs of the quickstart's fine-tuning: about a minute on two CPU cores (docs/chatbot-quality.md). */
const START_EPOCHS = '8';
/**
 * Whether `pnpm start` fine-tunes unless told: off, because fine-tuning the
 * base on the bundled corpus measured no better on the probe set
 * (docs/chatbot-quality.md, "Fine-tuning").
 */
const FINE_TUNE_BY_DEFAULT = false;

export async function runStartCli(argv: string[]): Promise<number> {
  const program = serveOptions(
    new Command('pnpm start')
      .description('Serve the shipped base model; with --fine-tune, fine-tune it on the bundled corpus first (once) and serve the result')
      .exitOverride()
      .option('--base <dir>', 'the base model', join(REPO_ROOT, 'models', 'hanmadi-base'))
      .option('--fine-tune', `fine-tune the base on the bundled corpus and serve the result${FINE_TUNE_BY_DEFAULT ? ' (the default)' : ''}`)
      .option('--no-fine-tune', `serve the base model as it is${FINE_TUNE_BY_DEFAULT ? '' : ' (the default)'}`)
      .option('--out <dir>', 'where the fine-tuned model lives', join(REPO_ROOT, 'runs', 'hanmadi'))
      .option('--epochs <n>', 'epochs of the quickstart fine-tuning', START_EPOCHS),
  );
  try {
    program.parse(argv, { from: 'user' });
    const o = program.opts<Omit<ServeSettings, 'model'> & { out: string; base: string; epochs: string; fineTune?: boolean }>();
    const shown = (dir: string) => relative(process.cwd(), dir) || '.';
    if (!(await isModelDir(o.base))) {
      throw new InvalidArgumentError(
        `--base: ${shown(o.base)} is not a model directory; the repository ships models/hanmadi-base (restore it with git checkout -- models), or train one with pnpm train`,
      );
    }
    let model = o.out;
    if (!(o.fineTune ?? FINE_TUNE_BY_DEFAULT)) {
      model = o.base;
      process.stdout.write(
        `Serving the base model in ${shown(o.base)} as it is (pnpm start --fine-tune fine-tunes it on ${relative(process.cwd(), BUNDLED_CORPUS)} first).\n`,
      );
    } else if ((await isModelDir(o.out)) && !(existsSync(join(o.out, TRAIN_STATE)) && !(await trainingFinished(o.out)))) {
      process.stdout.write(`Serving the model in ${shown(o.out)} (delete it to fine-tune anew).\n`);
    } else {
      // A run that was stopped (Ctrl-C, SIGTERM, kill -9) continues where its last checkpoint left it.
      const resume = existsSync(join(o.out, TRAIN_STATE));
      process.stdout.write(
        `${resume ? 'Resuming' : 'Fine-tuning'} ${shown(o.base)} on ${relative(process.cwd(), BUNDLED_CORPUS)} into ${shown(o.out)} — about a minute on 2 CPU cores.\n`,
      );
      // The last checkpoint: 16 validation pairs are too few to choose a model by.
      const trainArgs = [
        '--data',
        BUNDLED_CORPUS,
        '--init-from',
        o.base,
        '--out',
        o.out,
        '--epochs',
        o.epochs,
        '--average',
        '1',
        ...(resume ? ['--resume'] : []),
      ];
      if (o.backend) trainArgs.push('--backend', o.backend);
      // Ctrl-C during fine-tuning stops the whole command, not just the training.
      let stopped = false;
      const stopListening = onStopSignals({ onStop: () => (stopped = true), onForce: () => {} });
      const code = await runTrainCli(trainArgs).finally(stopListening);
      if (code !== 0) return code;
      if (stopped) {
        process.stdout.write(`Fine-tuning stopped; its last checkpoint is in ${shown(o.out)}.\n`);
        return 0;
      }
      if (!(await isModelDir(o.out))) {
        process.stdout.write(`Fine-tuning stopped before a model was saved; run pnpm start again to resume.\n`);
        return 0;
      }
    }
    const { out, base, epochs, fineTune, ...serve } = o;
    const log = pino({ level: serve.logLevel });
    if (process.env[API_KEY_ENV]) log.info(`${API_KEY_ENV} is set: /v1 requires it as a bearer key`);
    await serveUntilSignal({ ...serve, model }, log, (url) => {
      process.stdout.write(`\n  한마디 is ready: open ${url} to chat (API docs: ${url}docs). Ctrl-C stops it.\n\n`);
    });
    return 0;
  } catch (error) {
    return cliExitCode(error);
  }
}
