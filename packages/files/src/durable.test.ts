import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isTemporaryOf, syncDirectory, writeFileDurably } from './durable.js';

const dir = () => mkdtempSync(join(tmpdir(), 'hanmadi-files-'));

describe('writeFileDurably', () => {
  it('replaces the target whole and leaves nothing beside it', async () => {
    const d = dir();
    const file = join(d, 'state.json');
    writeFileSync(file, 'old');
    await writeFileDurably(file, '{"step":2}\n');
    expect(readFileSync(file, 'utf8')).toBe('{"step":2}\n');
    expect(readdirSync(d)).toEqual(['state.json']);
  });

  it('writes every byte of a large buffer', async () => {
    const file = join(dir(), 'model.safetensors');
    const data = new Uint8Array(48 * 1024 * 1024).map((_, i) => i % 251);
    await writeFileDurably(file, data);
    expect(readFileSync(file).equals(Buffer.from(data.buffer))).toBe(true);
  });

  it('removes its temporary and rethrows when the rename fails', async () => {
    const d = dir();
    const target = join(d, 'taken');
    // A non-empty directory cannot be renamed over.
    writeFileSync(join(d, 'x'), '');
    mkdirSync(target);
    writeFileSync(join(target, 'inside'), '');
    await expect(writeFileDurably(target, 'data')).rejects.toMatchObject({ code: expect.stringMatching(/^E(ISDIR|NOTEMPTY|EXIST)$/u) });
    expect(readdirSync(d).sort()).toEqual(['taken', 'x']);
  });
});

describe('isTemporaryOf / syncDirectory', () => {
  it('recognises only its own temporaries', () => {
    expect(isTemporaryOf('model.safetensors.tmp-123-0a1b2c3d', 'model.safetensors')).toBe(true);
    expect(isTemporaryOf('model.safetensors.tmp-notes', 'model.safetensors')).toBe(false);
    expect(isTemporaryOf('config.json.tmp-1-0a1b2c3d', 'model.safetensors')).toBe(false);
  });

  it('syncs a directory', async () => {
    await expect(syncDirectory(dir())).resolves.toBeUndefined();
  });
});
