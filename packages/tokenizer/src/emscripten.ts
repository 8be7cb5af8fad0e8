/**
 * Emscripten's Node glue installs process-wide `uncaughtException` and
 * `unhandledRejection` handlers that rethrow (printing a megabyte of minified
 * code) each time a module is instantiated; one per loaded module would also
 * trip Node's listener-leak warning. Errors are the caller's to handle. Used
 * around sentencepiece-js and the TensorFlow.js wasm backend.
 */
export async function withoutEmscriptenHandlers<T>(fn: () => Promise<T>): Promise<T> {
  const events = ['uncaughtException', 'unhandledRejection'];
  const listeners = (e: string): Set<unknown> => new Set(process.listeners(e as 'uncaughtException'));
  const before = new Map(events.map((e) => [e, listeners(e)]));
  try {
    return await fn();
  } finally {
    for (const e of events) {
      for (const listener of listeners(e)) {
        if (!before.get(e)!.has(listener)) process.removeListener(e, listener as (...args: unknown[]) => void);
      }
    }
  }
}
