/**
 * The habits of a command-line tool, checked on the built `hanmadi` as node
 * runs it: help on stdout (exit 0), --version, exit 2 for a usage error with
 * the message on stderr, exit 1 with one line for a failure the user can fix,
 * and serve's flags from the environment.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import manifest from '../package.json' with { type: 'json' };
import { COMMANDS } from './main.js';

const HANMADI = fileURLToPath(new URL('../dist/hanmadi.mjs', import.meta.url));
const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function hanmadi(args: string[], env: Record<string, string> = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [HANMADI, ...args], { cwd: REPO_ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('hanmadi', () => {
  it('lists its commands on stdout for --help, and prints its version', async () => {
    const [help, version] = await Promise.all([hanmadi(['--help']), hanmadi(['--version'])]);
    expect(help).toMatchObject({ code: 0, stderr: '' });
    for (const name of Object.keys(COMMANDS)) expect(help.stdout).toMatch(new RegExp(`^  ${name} `, 'mu'));
    expect(version).toEqual({ code: 0, stdout: `${manifest.version}\n`, stderr: '' });
  });

  it("prints every command's help on stdout and exits 0 (also as `hanmadi help <command>`)", async () => {
    const names = Object.keys(COMMANDS);
    const results = await Promise.all(names.map((name) => hanmadi([name, '--help'])));
    results.forEach((r, i) => {
      expect(r.code, names[i]).toBe(0);
      expect(r.stdout, names[i]).toMatch(/^Usage: /u);
      expect(r.stderr, names[i]).toBe('');
    });
    const viaHelp = await hanmadi(['help', 'train']);
    expect(viaHelp.stdout).toBe(results[names.indexOf('train')]!.stdout);
  });

  it('exits 2 for a usage error, saying why on stderr', async () => {
    const cases: [string[], RegExp][] = [
      [[], /^Usage: hanmadi/mu],
      [['frob'], /unknown command 'frob'/u],
      [['train', '--data', 'x.csv', '--out', 'runs/x', '--nope'], /unknown option '--nope'/u],
      [['train', '--data', 'x.csv'], /required option '--out <run-dir>' not specified/u],
      [['serve', '--model', 'models/hanmadi-base', '--port', '70000'], /--port <n>' argument '70000' is invalid\. expected an integer from 0 to 65535/u],
      [['evaluate', '--model', 'models/hanmadi-base'], /give --data <file>, --prompts <file>, or both/u],
      [['export', '--model', 'models/hanmadi-base', '--out', 'x', '--dtype', 'bf16'], /Allowed choices are float16, float32/u],
      [['chat', '--model', 'models/hanmadi-base', '--strategy', 'top'], /Allowed choices are greedy, beam, sample/u],
      [['tokenizer', 'train', '--input', 'x.csv', '--out', 'x.model', '--vocab-size', 'many'], /expected an integer ≥ 1, got "many"/u],
      [['start', '--port', 'x'], /--port <n>' argument 'x' is invalid/u],
    ];
    const results = await Promise.all(cases.map(([argv]) => hanmadi(argv)));
    results.forEach((r, i) => {
      const argv = cases[i]![0].join(' ');
      expect(r.code, argv).toBe(2);
      expect(r.stderr, argv).toMatch(cases[i]![1]);
      expect(r.stdout, argv).toBe('');
    });
  });

  it('exits 1 with one line for a failure the user can fix', async () => {
    const [serve, train] = await Promise.all([
      hanmadi(['serve', '--model', '/nonexistent/run']),
      hanmadi(['train', '--data', '/nonexistent/pairs.csv', '--out', '/tmp/never']),
    ]);
    expect(serve.code).toBe(1);
    expect(serve.stderr).toMatch(/^error: .*\/nonexistent\/run/mu);
    expect(train.code).toBe(1);
    expect(train.stderr).toBe('error: /nonexistent/pairs.csv: cannot read file: no such file\n');
  });

  it('takes every serve flag from its HANMADI_ environment variable, the flag winning', async () => {
    const help = await hanmadi(['serve', '--help']);
    const flags = [...help.stdout.matchAll(/^ {2}--([a-z-]+)/gmu)].map((m) => m[1]!).filter((f) => f !== 'help');
    expect(flags.length).toBeGreaterThan(10);
    for (const flag of flags) expect(help.stdout.replace(/\s+/gu, ' '), flag).toContain(`env: HANMADI_${flag.toUpperCase().replaceAll('-', '_')})`);
    const [fromEnv, flagWins] = await Promise.all([
      hanmadi(['serve'], { HANMADI_MODEL: 'models/hanmadi-base', HANMADI_MAX_QUEUE: '0' }),
      hanmadi(['serve', '--model', '/nonexistent/run'], { HANMADI_MODEL: 'models/hanmadi-base' }),
    ]);
    expect(fromEnv.code).toBe(2);
    expect(fromEnv.stderr).toMatch(/option '--max-queue <n>' value '0' from env 'HANMADI_MAX_QUEUE' is invalid/u);
    expect(flagWins.code).toBe(1);
    expect(flagWins.stderr).toMatch(/\/nonexistent\/run/u);
  });
});
