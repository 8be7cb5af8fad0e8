/**
 * `hanmadi data fetch chatbotdata`: downloads the reference corpus (not in
 * this repository) into `$HANMADI_CHATBOT_DATA`, else
 * `$XDG_CACHE_HOME/hanmadi/` (~/.cache/hanmadi/), where the tests and
 * benchmarks look for it. The file is checked against its pinned sha256
 * before it replaces anything: a mirror or a changed upstream is refused.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { dirname, isAbsolute, relative, resolve } from 'node:path';
import { EXIT_USAGE, exitCodeFor } from '@hanmadi/cli-kit';
import { CHATBOT_DATA, CHATBOT_DATA_ENV, chatbotDataTarget, REPO_ROOT } from '@hanmadi/corpus';
import { syncDirectory, writeFileDurably } from '@hanmadi/files';
import { Argument, Command, InvalidArgumentError } from 'commander';

/** A download that failed or did not match: exit 1, one line. */
export class DataFetchError extends Error {
  override name = 'DataFetchError';
}

interface Dataset {
  url: string;
  sha256: string;
  /** Where it goes, from the environment. */
  target: (env: NodeJS.ProcessEnv) => string;
  /** Named in the message when `target` is inside the repository. */
  env: string;
}

export const DATASETS: Readonly<Record<string, Dataset>> = {
  chatbotdata: { url: CHATBOT_DATA.url, sha256: CHATBOT_DATA.sha256, target: chatbotDataTarget, env: CHATBOT_DATA_ENV },
};

export interface DataIo {
  out: (line: string) => void;
  err: (line: string) => void;
  env: NodeJS.ProcessEnv;
}

const PROCESS_IO: DataIo = { out: (l) => process.stdout.write(`${l}\n`), err: (l) => process.stderr.write(`${l}\n`), env: process.env };

export async function runDataCli(argv: string[], io: DataIo = PROCESS_IO): Promise<number> {
  const program = new Command('hanmadi data')
    .description('Download the data sets hanmadi is measured on (never into the repository)')
    .exitOverride()
    .configureOutput({ writeOut: (t) => io.out(t.trimEnd()), writeErr: (t) => io.err(t.trimEnd()) })
    .helpCommand(false);
  program
    .command('fetch')
    .description(`download a data set and check its sha256: chatbotdata goes to $${CHATBOT_DATA_ENV}, else $XDG_CACHE_HOME/hanmadi/ (~/.cache/hanmadi/)`)
    .addArgument(new Argument('<name>', 'the data set').choices(Object.keys(DATASETS)))
    .option('--url <url>', 'download from this URL instead (a mirror; the sha256 must still match)', httpUrl)
    .option('--force', 'download again even if the file is already there')
    .action((name: string, o: { url?: string; force?: boolean }) => fetchDataset(DATASETS[name]!, o, io));
  if (argv.length === 0) {
    io.err(program.helpInformation().trimEnd());
    return EXIT_USAGE;
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (error) {
    return exitCodeFor(error, [DataFetchError], io.err);
  }
}

async function fetchDataset(dataset: Dataset, o: { url?: string; force?: boolean }, io: DataIo): Promise<void> {
  const target = resolve(dataset.target(io.env));
  const inRepo = relative(REPO_ROOT, target);
  if (!inRepo.startsWith('..') && !isAbsolute(inRepo)) {
    throw new InvalidArgumentError(`${dataset.env}: ${target} is inside the repository; the corpus is not redistributed here, choose a path outside it`);
  }
  const present = await sha256Of(target);
  if (present === dataset.sha256 && !o.force) {
    io.out(`${target} is already there (sha256 ${present} verified); --force downloads it again`);
    return;
  }
  if (present !== undefined && !o.force) throw new DataFetchError(`${target} exists but its sha256 is ${present}, not ${dataset.sha256}; --force replaces it`);
  const url = o.url ?? dataset.url;
  io.out(`downloading ${url}`);
  const bytes = await download(url);
  const actual = sha256(bytes);
  if (actual !== dataset.sha256) throw new DataFetchError(`${url}: sha256 ${actual}, expected ${dataset.sha256}; nothing written`);
  try {
    await mkdir(dirname(target), { recursive: true });
    // A temporary beside the target, fsynced, renamed over it.
    await writeFileDurably(target, bytes);
    await syncDirectory(dirname(target));
  } catch (error) {
    throw new DataFetchError(`cannot write ${target}: ${(error as Error).message}`);
  }
  io.out(`wrote ${target} (${bytes.length.toLocaleString('en-US')} bytes, sha256 ${actual} verified)`);
  io.out(`train on it: pnpm train --data ${target} --out runs/tutorial --preset tutorial`);
}

async function download(url: string): Promise<Uint8Array> {
  let response: Response;
  try {
    response = await fetch(url, { redirect: 'follow' });
  } catch (error) {
    const cause = (error as { cause?: Error }).cause;
    throw new DataFetchError(`${url}: ${cause?.message ?? (error as Error).message}`);
  }
  if (!response.ok) throw new DataFetchError(`${url}: HTTP ${response.status} ${response.statusText}`.trimEnd());
  return new Uint8Array(await response.arrayBuffer());
}

/** `--url`: an http(s) URL, else a usage error. */
function httpUrl(value: string): string {
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    url = undefined;
  }
  if (!url || !['http:', 'https:'].includes(url.protocol)) throw new InvalidArgumentError(`expected an http(s) URL, got "${value}"`);
  return value;
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** The file's sha256, or undefined if there is none. */
async function sha256Of(path: string): Promise<string | undefined> {
  try {
    return sha256(await readFile(path));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new DataFetchError(`cannot read ${path}: ${(error as Error).message}`);
  }
}
