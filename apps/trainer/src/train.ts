import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { QaPair } from '@hanmadi/corpus';
import { fineTuneSchedule, initBackend, noamSchedule, saveModel } from '@hanmadi/model';
import { epochBatches } from './batching.js';
import { loadBase } from './init-from.js';
import { learningCurvesSvg, type CurvePoint } from './plot.js';
import { MetricsFile, type Reporter } from './report.js';
import {
  checkpointName,
  CURVES_FILE,
  loadLatestCheckpoint,
  METRICS_FILE,
  pruneCheckpoints,
  RunDirError,
  saveCheckpoint,
  type TrainerState,
} from './run-dir.js';
import { chooseServed, isBetter, servedSaved, type ServedModel } from './selection.js';
import { FINE_TUNE, type TrainRequest } from './settings.js';
import { writeDefaultGenerationConfig } from './generation-defaults.js';
import { createModel, prepareData, prepareRunDir, recordRun, startEngine } from './setup.js';
import { validate, type ValidationResult } from './validation.js';

export { MIN_PAIRS } from './setup.js';
export type { ServedModel } from './selection.js';

export interface TrainSummary {
  steps: number;
  epochs: number;
  trainSeconds: number;
  /** The last step's validation. */
  validation: ValidationResult | undefined;
  /** What the run directory serves; undefined if no model was saved yet (stopped before the first validation). */
  served: ServedModel | undefined;
  backend: string;
  stoppedBySignal: boolean;
  runDir: string;
}

/** A shared flag the CLI sets on SIGINT/SIGTERM; the loop checks it between steps. */
export interface StopSignal {
  requested: boolean;
  reason?: string;
}

/** Mixes the run seed and the step into the seed of that step's dropout masks. */
export function dropoutSeed(seed: number, step: number): number {
  let h = (seed ^ Math.imul(step, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  return (h ^ (h >>> 13)) >>> 0;
}

/**
 * Trains a run end to end: data, tokenizer, model, the loop with validation
 * and checkpoints, and the served model in the run directory. Returns when
 * done or when `stop` was requested (after writing a checkpoint).
 */
export async function train(request: TrainRequest, report: Reporter, stop: StopSignal): Promise<TrainSummary> {
  const backend = await initBackend(request.settings.backend, (line) => report.info(line));
  const settings = await prepareRunDir(request, report);
  const out = settings.out;
  // Loaded (and checked) before anything is written, so a bad base leaves no run behind.
  const base = settings.initFrom !== null ? await loadBase(settings.initFrom) : undefined;
  const data = await prepareData(settings, request.resume, report);
  const batchesPerEpoch = epochBatches(data.train, settings.batchTokens, settings.seed, 0, settings.bucketWindow).length;
  const totalSteps = Math.min(settings.maxSteps ?? Infinity, settings.epochs * batchesPerEpoch);
  // Fine-tuning warms up over a tenth of its steps unless told otherwise.
  if (base && !request.resume && !request.given.has('warmup')) settings.warmup = Math.max(1, Math.round(FINE_TUNE.warmupFraction * totalSteps));
  if (!request.resume) await recordRun(settings);
  report.info(`${data.pairs} pairs (${data.duplicates} duplicates removed): ${data.train.length} for training, ${data.valid.length} for validation`);

  const model = createModel(settings, data.tokenizer, base);
  if (base)
    report.info(
      `fine-tuning ${base.dir}: peak learning rate ${settings.peakLr} after ${settings.warmup} warm-up steps, linear decay to 0 at step ${totalSteps}`,
    );
  const { specialIds } = data.tokenizer;
  const engine = await startEngine(model, settings, backend, report);
  const metrics = new MetricsFile(join(out, METRICS_FILE));
  let state: TrainerState = { step: 0, epoch: 0, nextBatch: 0, bestValidLoss: null, bestStep: null, bestChrf: null, trainSeconds: 0, targetTokens: 0 };
  const learningRate = (step: number): number =>
    settings.peakLr !== null ? fineTuneSchedule(step, settings.peakLr, settings.warmup, totalSteps) : noamSchedule(step, model.config.dModel, settings.warmup);

  try {
    if (request.resume) {
      const checkpoint = await loadLatestCheckpoint(out, engine.layout);
      if (checkpoint === undefined) throw new RunDirError(`${out}: no complete checkpoint to resume from`);
      engine.restore(checkpoint.engine);
      state = checkpoint.trainer;
      await metrics.truncateAfter(state.step);
      report.info(`resumed from ${checkpoint.dir} at step ${state.step}, epoch ${state.epoch + 1}`);
    }

    const training = { preset: settings.preset, data: resolve(settings.data), settings };
    const curve: CurvePoint[] = (await metrics.rows()).map((r) => ({
      step: r['step'] as number,
      ...(typeof r['loss'] === 'number' ? { trainLoss: r['loss'] } : {}),
      ...(typeof r['validLoss'] === 'number' ? { validLoss: r['validLoss'], validPerplexity: r['validPerplexity'] as number } : {}),
      ...(typeof r['lr'] === 'number' ? { learningRate: r['lr'] } : {}),
    }));
    let lastValidation: ValidationResult | undefined;
    // The best step's validation, for its sample replies, if this process ran it (not so when resumed past it).
    let bestValidation: ValidationResult | undefined;
    let validatedAt = -1;
    let checkpointedAt = request.resume ? state.step : -1;
    const validateOn = (pairs: readonly QaPair[]): ValidationResult =>
      validate(model, data.tokenizer, data.valid, pairs, { samples: settings.validSamples, batchTokens: settings.batchTokens });

    const checkpoint = async (): Promise<void> => {
      if (checkpointedAt === state.step) return;
      checkpointedAt = state.step;
      engine.syncTo(model);
      const saved = await saveCheckpoint(out, {
        model,
        tokenizerBytes: data.tokenizerBytes,
        specialIds,
        training: { ...training, step: state.step, epoch: state.epoch },
        layout: engine.layout,
        engine: engine.state(),
        trainer: { ...state, trainSeconds: state.trainSeconds },
      });
      await pruneCheckpoints(out, settings.keep, state.bestStep === null ? undefined : checkpointName(state.bestStep));
      report.info(`checkpoint ${saved}`);
    };

    const runValidation = async (): Promise<void> => {
      if (validatedAt === state.step) return;
      validatedAt = state.step;
      engine.syncTo(model);
      const result = validateOn(data.selectionPairs);
      lastValidation = result;
      // chrF and BLEU are of the selection half; `halves` tells a resumed run's rows from an older format's.
      const row = {
        step: state.step,
        epoch: state.epoch + 1,
        validLoss: result.loss,
        validPerplexity: result.perplexity,
        bleu: result.bleu,
        chrf: result.chrf,
        halves: true,
      };
      await metrics.append(row);
      curve.push({ step: state.step, validLoss: result.loss, validPerplexity: result.perplexity });
      report.info('validation', {
        ...row,
        validLoss: round(result.loss),
        validPerplexity: round(result.perplexity),
        bleu: round(result.bleu),
        chrf: round(result.chrf),
      });
      for (const r of result.replies) report.info(`  ${r.prompt} → ${r.reply}`);
      if (isBetter(settings.select, result, state)) {
        state.bestValidLoss = result.loss;
        state.bestChrf = result.chrf;
        state.bestStep = state.step;
        bestValidation = result;
        // The run directory itself serves the best model so far.
        await saveModel(out, model, { tokenizerBytes: data.tokenizerBytes, specialIds, training: { ...training, step: state.step, validation: row } });
        await writeDefaultGenerationConfig(out, base?.dir);
      }
      await writeFile(join(out, CURVES_FILE), learningCurvesSvg(curve, { title: `${settings.preset} preset on ${settings.data}` }));
    };

    // Fine-tuning's step 0 is the base model itself, measured on this corpus.
    if (base && state.step === 0) await runValidation();

    report.start(totalSteps, state.step);
    let stepStarted = performance.now();
    outer: for (let epoch = state.epoch; epoch < settings.epochs; epoch++) {
      const batches = epochBatches(data.train, settings.batchTokens, settings.seed, epoch, settings.bucketWindow);
      for (let b = epoch === state.epoch ? state.nextBatch : 0; b < batches.length; b++) {
        if (stop.requested || state.step >= totalSteps) break outer;
        const step = state.step + 1;
        const lr = learningRate(step);
        stepStarted = performance.now();
        const result = await engine.step(batches[b]!, {
          learningRate: lr,
          labelSmoothing: settings.labelSmoothing,
          clipNorm: settings.clipNorm ?? Infinity,
          dropoutSeed: dropoutSeed(settings.seed, step),
        });
        const seconds = (performance.now() - stepStarted) / 1000;
        state = { ...state, step, epoch, nextBatch: b + 1, trainSeconds: state.trainSeconds + seconds, targetTokens: state.targetTokens + result.targetTokens };
        if (!Number.isFinite(result.loss))
          throw new RunDirError(`the loss became ${result.loss} at step ${step}; lower the learning rate (--warmup) or clip gradients (--clip-norm)`);
        const logged = step % settings.logEvery === 0;
        const info = { epoch, step, loss: result.loss, learningRate: lr, gradNorm: result.gradNorm, tokensPerSecond: result.targetTokens / seconds };
        report.step(info, logged);
        if (logged) {
          await metrics.append({
            step,
            epoch: epoch + 1,
            loss: result.loss,
            lr,
            gradNorm: result.gradNorm,
            targetTokens: result.targetTokens,
            tokensPerSecond: info.tokensPerSecond,
            elapsedSeconds: state.trainSeconds,
          });
          curve.push({ step, trainLoss: result.loss, learningRate: lr });
        }
        if (settings.validEvery !== null && step % settings.validEvery === 0) await runValidation();
        if (step % settings.checkpointEvery === 0) await checkpoint();
      }
      if (state.nextBatch >= batches.length) {
        // End of the epoch: validate and checkpoint at its boundary.
        state = { ...state, epoch: epoch + 1, nextBatch: 0 };
        await runValidation();
        await checkpoint();
      }
    }
    report.stop();

    let served: ServedModel | undefined;
    if (stop.requested) {
      await checkpoint();
      report.info(`stopped by ${stop.reason ?? 'a signal'} at step ${state.step}; continue with --resume`);
      served = servedSaved(state, bestValidation, settings.select);
    } else {
      await runValidation();
      await checkpoint();
      served = await chooseServed({
        runDir: out,
        settings,
        state,
        model,
        layout: engine.layout,
        metrics: await metrics.rows(),
        validateOn,
        selectionPairs: data.selectionPairs,
        bestValidation,
        report,
      });
      if (served) {
        if (served.replaced) {
          await saveModel(out, model, {
            tokenizerBytes: data.tokenizerBytes,
            specialIds,
            training: { ...training, step: served.step, averaged: served.averaged, validation: served.validation },
          });
          await writeDefaultGenerationConfig(out, base?.dir);
        }
        // Figures of the half the choice did not look at.
        served.report = validateOn(data.reportPairs);
      }
    }
    return {
      steps: state.step,
      epochs: state.epoch,
      trainSeconds: state.trainSeconds,
      validation: lastValidation,
      served,
      backend: engine.description,
      stoppedBySignal: stop.requested,
      runDir: out,
    };
  } finally {
    report.stop();
    await engine.close();
    model.dispose();
  }
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}
