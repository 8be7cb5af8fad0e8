import { appendFile, readFile, writeFile } from 'node:fs/promises';
import { MultiBar, Presets, type SingleBar } from 'cli-progress';
import { pino, type Logger } from 'pino';

export interface StepInfo {
  epoch: number;
  step: number;
  loss: number;
  learningRate: number;
  gradNorm: number;
  tokensPerSecond: number;
}

/**
 * What the trainer tells a person: on a terminal, a progress bar (epoch,
 * step, loss, learning rate, target tokens/s, ETA) with messages printed above
 * it; otherwise (CI, Docker logs, a pipe) one structured pino line per event.
 */
export interface Reporter {
  start(totalSteps: number, doneSteps: number): void;
  step(info: StepInfo, logged: boolean): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  stop(): void;
}

export function createReporter(interactive: boolean, stream: NodeJS.WritableStream = process.stdout): Reporter {
  return interactive
    ? new BarReporter(stream)
    : new LogReporter(pino({ base: undefined, timestamp: pino.stdTimeFunctions.isoTime }, stream as pino.DestinationStream));
}

class LogReporter implements Reporter {
  constructor(private readonly log: Logger) {}
  start(totalSteps: number, doneSteps: number): void {
    this.log.info({ totalSteps, doneSteps }, 'training');
  }
  step(info: StepInfo, logged: boolean): void {
    if (logged) this.log.info({ ...info, loss: round(info.loss), tokensPerSecond: Math.round(info.tokensPerSecond) }, 'step');
  }
  info(message: string, fields: Record<string, unknown> = {}): void {
    this.log.info(fields, message);
  }
  warn(message: string, fields: Record<string, unknown> = {}): void {
    this.log.warn(fields, message);
  }
  stop(): void {}
}

class BarReporter implements Reporter {
  private readonly multi: MultiBar;
  private bar: SingleBar | undefined;

  constructor(stream: NodeJS.WritableStream) {
    this.multi = new MultiBar(
      {
        stream,
        format: 'epoch {epoch} {bar} {value}/{total} steps | loss {loss} | lr {lr} | {tps} tok/s | ETA {eta_formatted}',
        hideCursor: true,
        etaBuffer: 50,
        clearOnComplete: false,
      },
      Presets.shades_classic,
    );
  }
  start(totalSteps: number, doneSteps: number): void {
    this.bar = this.multi.create(totalSteps, doneSteps, { epoch: '-', loss: '-', lr: '-', tps: '-' });
  }
  step(info: StepInfo): void {
    this.bar?.update(info.step, {
      epoch: info.epoch + 1,
      loss: info.loss.toFixed(3),
      lr: info.learningRate.toExponential(2),
      tps: Math.round(info.tokensPerSecond),
    });
  }
  info(message: string, fields?: Record<string, unknown>): void {
    this.multi.log(`${message}${fields && Object.keys(fields).length > 0 ? ` ${JSON.stringify(fields)}` : ''}\n`);
  }
  warn(message: string, fields?: Record<string, unknown>): void {
    this.info(`warning: ${message}`, fields);
  }
  stop(): void {
    this.multi.stop();
  }
}

function round(x: number): number {
  return Math.round(x * 10000) / 10000;
}

/** metrics.jsonl: one JSON object per logged step or validation, appended as training goes. */
export class MetricsFile {
  constructor(readonly path: string) {}

  append(row: Record<string, unknown>): Promise<void> {
    return appendFile(this.path, `${JSON.stringify(row)}\n`);
  }

  async rows(): Promise<Record<string, unknown>[]> {
    const text = await readFile(this.path, 'utf8').catch(() => '');
    return text
      .split('\n')
      .filter((l) => l.trim() !== '')
      .flatMap((l) => {
        try {
          return [JSON.parse(l) as Record<string, unknown>];
        } catch {
          return []; // a line cut short by a crash
        }
      });
  }

  /** Drops rows after `step` (logged after the checkpoint a resumed run restarts from). */
  async truncateAfter(step: number): Promise<void> {
    const kept = (await this.rows()).filter((r) => typeof r['step'] !== 'number' || r['step'] <= step);
    await writeFile(this.path, kept.map((r) => `${JSON.stringify(r)}\n`).join(''));
  }
}
