import type { ServeSettings } from '../serve-command.js';

/** `pnpm serve`'s settings for a test server: any free port on loopback, wasm, quiet. */
export function testServeSettings(model: string, overrides: Partial<ServeSettings> = {}): ServeSettings {
  return {
    model,
    port: 0,
    host: '127.0.0.1',
    backend: 'wasm',
    maxMessageChars: 500,
    timeoutMs: 30_000,
    batching: true,
    maxBatch: 32,
    maxWaitMs: 5,
    maxQueue: 256,
    rateLimit: 0,
    logLevel: 'silent',
    ...overrides,
  };
}
