/**
 * Stopping cleanly on SIGINT/SIGTERM. One Ctrl-C reaches every process of the
 * terminal's foreground group, and a parent such as pnpm relays a signal to
 * its child as well, so one request to stop can arrive twice within
 * milliseconds. Signals within RELAY_WINDOW_MS of the first are that same
 * request; a later one means "stop now".
 */
import { constants } from 'node:os';

export const RELAY_WINDOW_MS = 1000;

const STOP_SIGNALS = ['SIGINT', 'SIGTERM'] as const;

export interface StopHandlers {
  /** The first request to stop: finish what is in flight. */
  onStop: (signal: NodeJS.Signals) => void;
  /** A second request, after the relay window. Default: exit at once, 128 + the signal's number. */
  onForce?: (signal: NodeJS.Signals) => void;
  /** The clock, for tests. */
  now?: () => number;
}

/** Exit code of a process ended by `signal`, as a shell reports it (130 for SIGINT, 143 for SIGTERM). */
export function signalExitCode(signal: NodeJS.Signals): number {
  return 128 + (constants.signals[signal] ?? 15);
}

/** Listens for SIGINT/SIGTERM until the returned function is called. */
export function onStopSignals(handlers: StopHandlers): () => void {
  const now = handlers.now ?? Date.now;
  const force = handlers.onForce ?? ((signal: NodeJS.Signals) => process.exit(signalExitCode(signal)));
  let first: number | undefined;
  const listener = (signal: NodeJS.Signals): void => {
    if (first === undefined) {
      first = now();
      handlers.onStop(signal);
    } else if (now() - first >= RELAY_WINDOW_MS) {
      force(signal);
    }
  };
  for (const signal of STOP_SIGNALS) process.on(signal, listener);
  return () => {
    for (const signal of STOP_SIGNALS) process.off(signal, listener);
  };
}
