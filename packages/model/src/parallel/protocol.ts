import type { BackendChoice } from '../backend.js';
import type { Example } from '../batch.js';
import type { ModelConfig } from '../config.js';
import type { FlatLayout } from './flat.js';

/** What a training worker is started with; every buffer is shared with the main thread and the other workers. */
export interface WorkerInit {
  index: number;
  backend: BackendChoice;
  config: ModelConfig;
  layout: FlatLayout;
  params: SharedArrayBuffer;
  /** One gradient buffer per worker; after a reduce, buffer 0 holds the sum. */
  grads: SharedArrayBuffer[];
  adamM: SharedArrayBuffer;
  adamV: SharedArrayBuffer;
  /** The slice of the flat vector this worker reduces and updates. */
  range: { from: number; to: number };
}

export type ToWorker =
  | {
      type: 'step';
      examples: Example[];
      labelSmoothing: number;
      dropoutSeed: number;
      /** Target tokens of the whole batch: each worker weights its loss by its share. */
      totalTokens: number;
      paramsVersion: number;
    }
  | { type: 'reduce'; workers: number }
  | { type: 'update'; step: number; learningRate: number; gradScale: number }
  | { type: 'stop' };

export type FromWorker =
  | { type: 'ready'; backend: string }
  | { type: 'stepped'; lossSum: number; tokens: number }
  | { type: 'reduced'; sumSquares: number }
  | { type: 'updated' }
  | { type: 'error'; message: string };
