import * as tf from '@tensorflow/tfjs-core';
import {
  Adam,
  DataParallelTrainer,
  disposeBatch,
  flatLayout,
  makeBatch,
  readParams,
  trainStep,
  writeParams,
  type BackendName,
  type Example,
  type FlatLayout,
  type ParallelStepOptions,
  type Transformer,
  type TrainStepResult,
} from '@hanmadi/model';

/** Parameters and Adam state over the flat layout: everything an exact resume needs from the optimiser. */
export interface EngineState {
  step: number;
  params: Float32Array;
  m: Float32Array;
  v: Float32Array;
}

/**
 * Runs optimisation steps. The evaluation model (validation, checkpoints) is
 * kept separate from how steps are computed: in-process on the model itself
 * (GPU backends, or one CPU thread), or data-parallel over worker threads.
 */
export interface Engine {
  readonly description: string;
  readonly layout: FlatLayout;
  step(examples: Example[], options: ParallelStepOptions): Promise<TrainStepResult>;
  /** Brings `model` up to the current weights. */
  syncTo(model: Transformer): void;
  state(): EngineState;
  restore(state: EngineState): void;
  close(): Promise<void>;
}

/** Steps on the model itself with the tensor Adam: the path for tfjs-node-gpu and webgpu, and for one CPU thread. */
export class InProcessEngine implements Engine {
  readonly layout: FlatLayout;
  private readonly adam: Adam;

  constructor(
    private readonly model: Transformer,
    readonly description: string,
  ) {
    this.layout = flatLayout(model);
    this.adam = new Adam(model.params.variables);
  }

  async step(examples: Example[], options: ParallelStepOptions): Promise<TrainStepResult> {
    const batch = makeBatch(examples, this.model.config);
    try {
      return trainStep(this.model, this.adam, batch, options);
    } finally {
      disposeBatch(batch);
    }
  }

  syncTo(model: Transformer): void {
    if (model === this.model) return;
    const params = new Float32Array(this.layout.size);
    readParams(this.model, this.layout, params);
    writeParams(model, this.layout, params);
  }

  state(): EngineState {
    const params = new Float32Array(this.layout.size);
    readParams(this.model, this.layout, params);
    const m = new Float32Array(this.layout.size);
    const v = new Float32Array(this.layout.size);
    for (const e of this.layout.entries) {
      m.set(this.adam.m.get(e.name)!.dataSync() as Float32Array, e.offset);
      v.set(this.adam.v.get(e.name)!.dataSync() as Float32Array, e.offset);
    }
    return { step: this.adam.step, params, m, v };
  }

  restore(state: EngineState): void {
    writeParams(this.model, this.layout, state.params);
    tf.tidy(() => {
      for (const e of this.layout.entries) {
        this.adam.m.get(e.name)!.assign(tf.tensor(state.m.subarray(e.offset, e.offset + e.size), e.shape));
        this.adam.v.get(e.name)!.assign(tf.tensor(state.v.subarray(e.offset, e.offset + e.size), e.shape));
      }
    });
    this.adam.step = state.step;
  }

  async close(): Promise<void> {
    this.adam.dispose();
  }
}

/** Steps with one model replica per worker thread (wasm and cpu compute on one thread each). */
export class ParallelEngine implements Engine {
  private constructor(
    private readonly trainer: DataParallelTrainer,
    readonly description: string,
  ) {}

  static async start(model: Transformer, workers: number, backend: BackendName): Promise<ParallelEngine> {
    const trainer = await DataParallelTrainer.start(model, { workers, backend });
    return new ParallelEngine(trainer, `${trainer.backend} × ${workers} workers`);
  }

  get layout(): FlatLayout {
    return this.trainer.layout;
  }

  step(examples: Example[], options: ParallelStepOptions): Promise<TrainStepResult> {
    return this.trainer.step(examples, options);
  }

  syncTo(model: Transformer): void {
    this.trainer.syncTo(model);
  }

  state(): EngineState {
    return { step: this.trainer.adam.step, params: this.trainer.params.slice(), m: this.trainer.adam.m.slice(), v: this.trainer.adam.v.slice() };
  }

  restore(state: EngineState): void {
    this.trainer.restore(state.params, state);
  }

  close(): Promise<void> {
    return this.trainer.close();
  }
}
