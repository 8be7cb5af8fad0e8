export { buildApp, type AppOptions } from './app.js';
export { ChatModel, DEFAULT_BATCHING, type BatchingOptions, type Reply, type ReplyOptions } from './chat-model.js';
export { ApiError } from './plugins/errors.js';
export { DEFAULT_LIMITS, type ReplyLimits } from './replying.js';
export { API_KEY_ENV, cliExitCode, runServeCli, serveOptions, serveUntilSignal, startServer, type RunningServer, type ServeSettings } from './serve-command.js';
export { runChatCli } from './chat-command.js';
export { TextStreamer } from './text-streamer.js';
