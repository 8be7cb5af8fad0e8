export { trainTinyModelDir, type TinyModelDir } from './tiny-model-dir.js';
