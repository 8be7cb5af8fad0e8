import { validate } from 'dockerfile-utils';
import { describe, expect, it } from 'vitest';
import { DOCKERFILES, execForm, last, parseDockerfile, readDockerfile, stage, type ParsedDockerfile } from './dockerfile.js';

/**
 * Dockerfile lint without Docker or hadolint (not packaged for Debian
 * bookworm): dockerfile-utils, the validator behind VS Code's Docker
 * extension, for syntax and instruction errors and warnings (with its default
 * settings, nothing ignored), and below it a few of hadolint's rules that
 * matter for these images, written out.
 */

function diagnostics(text: string): string[] {
  return validate(text).map((d) => `${d.range.start.line + 1}: ${d.message}`);
}

/** hadolint-style rules; returns the violations. */
function policy(file: ParsedDockerfile): string[] {
  const problems: string[] = [];
  const names = new Set(file.stages.map((s) => s.name));
  for (const current of file.stages) {
    // DL3006/DL3007: base images are tagged, and not `latest`.
    if (!names.has(current.image)) {
      const tag = /^[^@]+:([^/:@]+)$/u.exec(current.image)?.[1];
      if (!tag && !current.image.includes('@sha256:')) problems.push(`FROM ${current.image}: no tag`);
      if (tag === 'latest') problems.push(`FROM ${current.image}: latest`);
    }
    for (const step of current.steps) {
      const at = `line ${step.line}`;
      // DL3020: COPY, not ADD, for local files.
      if (step.keyword === 'ADD') problems.push(`${at}: ADD instead of COPY`);
      if (step.keyword !== 'RUN') continue;
      const commands = step.content.split(/&&|\|\||;/u).map((c) => c.trim());
      // DL3003, DL3004: WORKDIR instead of cd; no sudo.
      if (commands.some((c) => /^cd\s/u.test(c))) problems.push(`${at}: cd (use WORKDIR)`);
      if (/\bsudo\b/u.test(step.content)) problems.push(`${at}: sudo`);
      // DL3008-like, DL3009, DL3014, DL3015: apt-get installs non-interactively, without recommends, and cleans its lists.
      for (const command of commands.filter((c) => /^apt-get\s+(\S+\s+)*install\b/u.test(c))) {
        if (!/\s(-y|--yes|--assume-yes)\b/u.test(command)) problems.push(`${at}: apt-get install without -y`);
        if (!command.includes('--no-install-recommends')) problems.push(`${at}: apt-get install without --no-install-recommends`);
        if (!/rm -rf \/var\/lib\/apt\/lists/u.test(step.content)) problems.push(`${at}: apt lists not removed in the same RUN`);
      }
      // DL3016-like: global npm installs are pinned.
      for (const command of commands.filter((c) => /^npm\s+(i|install)\s/u.test(c))) {
        const packages = command
          .split(/\s+/u)
          .slice(2)
          .filter((w) => !w.startsWith('-'));
        for (const pkg of packages) if (!/^"?@?[^@\s]+@[^@\s]+"?$/u.test(pkg)) problems.push(`${at}: npm install of unpinned ${pkg}`);
      }
    }
  }
  const final = stage(file);
  // DL3002: the image does not run as root.
  const user = last(final, 'USER')?.args[0];
  if (!user || user === 'root' || user === '0' || user.startsWith('0:')) problems.push(`final stage runs as ${user ?? 'root (no USER)'}`);
  // DL3025: ENTRYPOINT and CMD in exec form, so that signals reach node.
  for (const keyword of ['ENTRYPOINT', 'CMD']) {
    const step = last(final, keyword);
    if (!step) continue;
    try {
      execForm(step);
    } catch {
      problems.push(`line ${step.line}: ${keyword} is not in exec (JSON) form`);
    }
  }
  if (!last(final, 'WORKDIR')) problems.push('final stage has no WORKDIR');
  return problems;
}

describe('Dockerfile lint', () => {
  it('dockerfile-utils reports errors and warnings (the linter is live)', () => {
    const bad = 'FROM node:20-bookworm-slim\nexpose 3000\nEXPOSE abc\nWORKDIR app\nCMD ["a"]\nCMD ["b"]\n';
    const found = diagnostics(bad);
    expect(found.some((d) => /expose/iu.test(d) || /casing/iu.test(d) || /uppercase/iu.test(d))).toBe(true);
    expect(found.some((d) => /port/iu.test(d))).toBe(true);
    expect(found.length).toBeGreaterThanOrEqual(4);
  });

  it('the hadolint-style rules catch what they are for', () => {
    expect(policy(parseDockerfile('FROM node\nUSER root\nRUN cd /x && apt-get install curl\nRUN npm i -g pnpm\nADD . .\nCMD node app.js\n'))).toEqual([
      'FROM node: no tag',
      'line 3: cd (use WORKDIR)',
      'line 3: apt-get install without -y',
      'line 3: apt-get install without --no-install-recommends',
      'line 3: apt lists not removed in the same RUN',
      'line 4: npm install of unpinned pnpm',
      'line 5: ADD instead of COPY',
      'final stage runs as root',
      'line 6: CMD is not in exec (JSON) form',
      'final stage has no WORKDIR',
    ]);
  });

  for (const name of DOCKERFILES) {
    it(`${name}: no dockerfile-utils errors or warnings`, () => {
      expect(diagnostics(readDockerfile(name).text)).toEqual([]);
    });

    it(`${name}: pinned bases, non-root, exec-form entrypoint, clean apt layers`, () => {
      expect(policy(readDockerfile(name))).toEqual([]);
    });
  }

  it('api.Dockerfile: the HEALTHCHECK asks /healthz with node (no curl in slim)', () => {
    const healthchecks = stage(readDockerfile('api.Dockerfile')).steps.filter((s) => s.keyword === 'HEALTHCHECK');
    expect(healthchecks).toHaveLength(1);
    const command = execForm(healthchecks[0]!);
    expect(command.slice(0, 2)).toEqual(['node', '-e']);
    expect(command[2]).toContain('/healthz');
  });
});
