import { join } from 'node:path';
import type { QaPair } from '@hanmadi/corpus';
import { importWeights, loadModelDir, WEIGHTS_FILE, writeParams, type FlatLayout, type Transformer } from '@hanmadi/model';
import type { Reporter } from './report.js';
import { averageCheckpoints, CHECKPOINTS_DIR, checkpointName, listCheckpoints, type TrainerState } from './run-dir.js';
import type { TrainSettings } from './settings.js';
import type { ValidationResult } from './validation.js';

/** The model the run directory holds for serving once training ends. */
export interface ServedModel {
  /** The step of the chosen checkpoint, or, when averaged, of the newest one averaged. */
  step: number;
  /** The checkpoints averaged (§6.1), or undefined for one step's weights. */
  averaged: string[] | undefined;
  validLoss: number;
  /** Its validation (chrF and BLEU on the selection half); undefined when that was in an earlier process. */
  validation: ValidationResult | undefined;
  /** Why this one, in words: "the highest chrF on the selection half (10.21) of 50 checkpoints and the average of the last 5". */
  why: string;
  /** Whether the served weights (which `model` now holds) differ from the run directory's, to be saved there. */
  replaced: boolean;
  /** Its figures on the report half of validation, which the choice did not look at. */
  report?: ValidationResult;
}

/** Whether a validation beats the run directory's best so far, by the run's --select measure. */
export function isBetter(select: TrainSettings['select'], result: ValidationResult, state: TrainerState): boolean {
  if (select === 'chrf') return Number.isFinite(result.chrf) && (state.bestChrf === null || result.chrf > state.bestChrf);
  return state.bestValidLoss === null || result.loss < state.bestValidLoss;
}

/** What the run directory serves when a run stops early: its best so far. */
export function servedSaved(state: TrainerState, validation: ValidationResult | undefined, select: TrainSettings['select']): ServedModel | undefined {
  if (state.bestStep === null || state.bestValidLoss === null) return undefined;
  const why = select === 'chrf' ? 'the highest chrF on the selection half so far' : 'the lowest validation loss so far';
  return { step: state.bestStep, averaged: undefined, validLoss: state.bestValidLoss, validation, why, replaced: false };
}

export interface SelectionContext {
  runDir: string;
  settings: TrainSettings;
  state: TrainerState;
  /** Holds the last step's weights; left holding the served model's. */
  model: Transformer;
  layout: FlatLayout;
  metrics: Record<string, unknown>[];
  /** Validates `model` as it now is: loss on the whole split, chrF on the pairs given. */
  validateOn: (pairs: readonly QaPair[]) => ValidationResult;
  selectionPairs: QaPair[];
  /** The run directory's model's own validation, when this process ran it. */
  bestValidation: ValidationResult | undefined;
  report: Reporter;
}

interface Candidate {
  name: string;
  step: number;
  loss: number;
  chrf: number;
  /** Loads its weights into the model. */
  load: () => Promise<void>;
  averaged?: string[];
}

/**
 * Chooses the model a finished run serves (--select): the lowest validation
 * loss, the highest chrF on the selection half, or the average of the last N
 * checkpoints (§6.1). With --average N the average also competes under loss
 * and chrF. A reply measure matters because validation loss keeps rewarding
 * the safest, most generic replies long after replies stop improving.
 */
export async function chooseServed(ctx: SelectionContext): Promise<ServedModel | undefined> {
  const { settings, state } = ctx;
  const average = settings.average > 0 ? await averaged(ctx) : undefined;
  if (settings.select === 'average') {
    const a = average!;
    return { step: a.step, averaged: a.averaged, validLoss: a.loss, validation: a.validation, why: `as --select average asks`, replaced: true };
  }
  const saved = servedSaved(state, ctx.bestValidation, settings.select);
  if (settings.select === 'loss') {
    if (average && saved && average.loss < saved.validLoss) {
      return {
        step: average.step,
        averaged: average.averaged,
        validLoss: average.loss,
        validation: average.validation,
        why: 'the lowest validation loss, below the best single checkpoint',
        replaced: true,
      };
    }
    // The model holds the last step's weights (or the average's); the report is of the one served.
    if (saved) await restoreSaved(ctx);
    return saved && { ...saved, why: 'the lowest validation loss' };
  }
  const candidates = await chrfCandidates(ctx);
  if (average) candidates.push(average);
  // A tie goes to the lower validation loss.
  const best = candidates.reduce<Candidate | undefined>(
    (b, c) => (b === undefined || c.chrf > b.chrf || (c.chrf === b.chrf && c.loss < b.loss) ? c : b),
    undefined,
  );
  if (best === undefined) return saved;
  await best.load();
  const validation = ctx.validateOn(ctx.selectionPairs);
  const among = `${candidates.length - (average ? 1 : 0)} validated checkpoint(s)${average ? ` and the average of the last ${average.averaged!.length}` : ''}`;
  ctx.report.info(`chose ${best.name} by chrF on the selection half (${best.chrf.toFixed(2)}) among ${among}`);
  return {
    step: best.step,
    averaged: best.averaged,
    validLoss: validation.loss,
    validation,
    why: `the highest chrF on the selection half of validation (${best.chrf.toFixed(2)}) among ${among}`,
    replaced: true,
  };
}

/** The average of the last N checkpoints, loaded into the model and validated. */
async function averaged(ctx: SelectionContext): Promise<Candidate & { validation: ValidationResult }> {
  const { params, names } = await averageCheckpoints(ctx.runDir, ctx.settings.average, ctx.layout);
  const load = async () => writeParams(ctx.model, ctx.layout, params);
  await load();
  const validation = ctx.validateOn(ctx.selectionPairs);
  ctx.report.info(
    `measured the average of the last ${names.length} checkpoint(s) on the selection half: chrF ${validation.chrf.toFixed(2)}, perplexity ${validation.perplexity.toFixed(2)}`,
  );
  const step = Number(names.at(-1)!.slice('step-'.length));
  return {
    name: names.length === 1 ? names[0]! : `the average of ${names.join(', ')}`,
    step,
    loss: validation.loss,
    chrf: validation.chrf,
    load,
    averaged: names,
    validation,
  };
}

/** Puts the run directory's own model back after the average lost. */
async function restoreSaved(ctx: SelectionContext): Promise<void> {
  const loaded = await loadModelDir(ctx.runDir, (raw) => raw);
  importWeights(ctx.model, loaded.tensors, join(ctx.runDir, WEIGHTS_FILE));
}

/**
 * Every kept checkpoint that was validated, with its chrF on the selection
 * half: from metrics.jsonl when the row was measured on it, else measured
 * now (a run trained before the halves, re-chosen with --resume --select chrf).
 */
async function chrfCandidates(ctx: SelectionContext): Promise<Candidate[]> {
  const rows = new Map<number, Record<string, unknown>>();
  for (const r of ctx.metrics) if (typeof r['validLoss'] === 'number') rows.set(r['step'] as number, r);
  const candidates: Candidate[] = [];
  for (const name of await listCheckpoints(ctx.runDir)) {
    const step = Number(name.slice('step-'.length));
    const row = rows.get(step);
    if (row === undefined) continue;
    const dir = join(ctx.runDir, CHECKPOINTS_DIR, name);
    const load = async () => {
      const loaded = await loadModelDir(dir, (raw) => raw);
      importWeights(ctx.model, loaded.tensors, join(dir, WEIGHTS_FILE));
    };
    let chrf = row['chrf'];
    let loss = row['validLoss'] as number;
    if (row['halves'] !== true || typeof chrf !== 'number') {
      await load();
      const v = ctx.validateOn(ctx.selectionPairs);
      chrf = v.chrf;
      loss = v.loss;
      ctx.report.info(`measured ${name} on the selection half: chrF ${v.chrf.toFixed(2)}, perplexity ${v.perplexity.toFixed(2)}`);
    }
    candidates.push({ name, step, loss, chrf: chrf as number, load });
  }
  // The run directory's model when its step has no checkpoint left (fine-tuning's step 0).
  const { bestStep, bestChrf, bestValidLoss } = ctx.state;
  if (bestStep !== null && bestChrf !== null && bestValidLoss !== null && !candidates.some((c) => c.step === bestStep)) {
    candidates.push({
      name: bestStep === 0 ? 'step 0 (the base model)' : checkpointName(bestStep),
      step: bestStep,
      loss: bestValidLoss,
      chrf: bestChrf,
      load: () => restoreSaved(ctx),
    });
  }
  return candidates;
}
