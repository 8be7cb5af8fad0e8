export { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, exitCodeFor } from './exit.js';
export { integer, number, positive, type Bounds, type OptionParser } from './numbers.js';
export { onStopSignals, RELAY_WINDOW_MS, signalExitCode, type StopHandlers } from './signals.js';
