import { afterEach, describe, expect, it } from 'vitest';
import { onStopSignals, RELAY_WINDOW_MS, signalExitCode } from './signals.js';

describe('onStopSignals', () => {
  let dispose: (() => void) | undefined;
  afterEach(() => dispose?.());

  it('takes a relayed copy of the first signal as the same request, and a later one as "now"', () => {
    let clock = 0;
    const events: string[] = [];
    dispose = onStopSignals({ onStop: (s) => events.push(`stop ${s}`), onForce: (s) => events.push(`force ${s}`), now: () => clock });
    process.emit('SIGINT', 'SIGINT');
    clock = 30; // pnpm's relay of the same Ctrl-C
    process.emit('SIGINT', 'SIGINT');
    clock = RELAY_WINDOW_MS - 1;
    process.emit('SIGTERM', 'SIGTERM');
    expect(events).toEqual(['stop SIGINT']);
    clock = RELAY_WINDOW_MS;
    process.emit('SIGINT', 'SIGINT');
    expect(events).toEqual(['stop SIGINT', 'force SIGINT']);
  });

  it('stops listening once disposed', () => {
    const events: string[] = [];
    const before = process.listenerCount('SIGTERM');
    const off = onStopSignals({ onStop: (s) => events.push(s) });
    expect(process.listenerCount('SIGTERM')).toBe(before + 1);
    off();
    expect(process.listenerCount('SIGTERM')).toBe(before);
    expect(events).toEqual([]);
  });

  it('reports exit codes as a shell does', () => {
    expect(signalExitCode('SIGINT')).toBe(130);
    expect(signalExitCode('SIGTERM')).toBe(143);
  });
});
