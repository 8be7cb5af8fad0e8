/**
 * Writes that survive a crash: a file is written under a temporary name
 * beside its target, fsynced and renamed over it, so a reader sees the old
 * file or the new one, never part of one; syncing the directory makes the
 * rename itself survive a power cut. FileHandle.writeFile loops until every
 * byte is written, which a single fs.write (write-file-atomic's) does not
 * promise for large buffers such as model weights.
 */
import { randomBytes } from 'node:crypto';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';

/** What temporary files are named after: `<target>.tmp-<pid>-<8 hex digits>`. */
export const TEMPORARY_SUFFIX = '.tmp-';

/** Whether `name` is a temporary of `target` (both base names), left by a write that never finished. */
export function isTemporaryOf(name: string, target: string): boolean {
  return name.startsWith(`${target}${TEMPORARY_SUFFIX}`) && /^\d+-[0-9a-f]{8}$/u.test(name.slice(target.length + TEMPORARY_SUFFIX.length));
}

/** Writes `data` to `path` atomically and durably; on failure the temporary is removed and the error rethrown. */
export async function writeFileDurably(path: string, data: Uint8Array | string): Promise<void> {
  const temporary = `${path}${TEMPORARY_SUFFIX}${process.pid}-${randomBytes(4).toString('hex')}`;
  let handle: FileHandle | undefined;
  try {
    handle = await open(temporary, 'wx');
    await handle.writeFile(data);
    await handle.sync();
    await handle.close();
    handle = undefined;
    await rename(temporary, path);
  } catch (error) {
    await handle?.close().catch(() => undefined);
    await unlink(temporary).catch(() => undefined);
    throw error;
  }
}

/**
 * fsyncs a directory so that renames in it are durable. Some platforms
 * (Windows, some network file systems) refuse to open or sync a directory;
 * there the rename is as durable as the platform allows.
 */
export async function syncDirectory(dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EINVAL' && code !== 'EPERM') throw error;
  } finally {
    await handle?.close().catch(() => undefined);
  }
}
