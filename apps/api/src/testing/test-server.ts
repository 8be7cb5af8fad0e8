import { trainTinyModelDir, type TinyModelDir } from '@hanmadi/testing';
import { initBackend } from '@hanmadi/model';
import { pino } from 'pino';
import { startServer, type RunningServer, type ServeSettings } from '../serve-command.js';
import { testServeSettings } from './serve-settings.js';

export interface TestServer {
  run: TinyModelDir;
  server: RunningServer;
  /** Closes the server and deletes the model. */
  stop: () => Promise<void>;
}

/** The tiny fixture model served on a free loopback port, warmed up, quiet. */
export async function startTestServer(overrides: Partial<ServeSettings> = {}): Promise<TestServer> {
  await initBackend('wasm', () => {});
  const run = await trainTinyModelDir();
  const server = await startServer(testServeSettings(run.dir, overrides), pino({ level: 'silent' }));
  await server.ready;
  return {
    run,
    server,
    stop: async () => {
      await server.close();
      await run.remove();
    },
  };
}
