/**
 * Run by wasm-threads.test.ts in a process of its own (a process's wasm
 * backend starts once): starts wasm with the thread count in argv[2], decodes
 * with a seeded model and prints what it got as one JSON line. Then it simply
 * ends, so the test also sees that the thread pool lets the process exit.
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from './backend.js';
import { presetConfig } from './config.js';
import { generate } from './generation/search.js';
import { Rng } from './random.js';
import { Transformer } from './transformer.js';

const threads = Number(process.argv[2]);
let line = '';
await initBackend('wasm', (l) => (line = l), { wasmThreads: threads });
let restart = '';
await initBackend('wasm', () => {}, { wasmThreads: threads === 1 ? 2 : 1 }).catch((error: Error) => (restart = error.message));

// Wide enough that XNNPACK splits the products between the threads.
const model = new Transformer(presetConfig('tiny', { vocabSize: 500 }, { dModel: 128, dFF: 256, dropout: 0 }), 11);
const rng = new Rng(5);
const sources = Array.from({ length: 24 }, () => Array.from({ length: 3 + Math.floor(rng.next() * 8) }, () => 4 + Math.floor(rng.next() * 496)));
const replies = generate(model, sources, { strategy: 'greedy', maxNewTokens: 12 }).map((r) => ({ tokens: r.tokens, score: r.score }));
const product = tf.tidy(() => tf.matMul(tf.randomNormal([48, 256], 0, 1, 'float32', 3), tf.randomNormal([256, 700], 0, 1, 'float32', 4)).dataSync()); // [48, 700]
model.dispose();
process.stdout.write(`${JSON.stringify({ line, restart, replies, product: Array.from(product) })}\n`);
