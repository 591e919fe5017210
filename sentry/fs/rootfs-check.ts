/**
 * What `run --rootfs DIR` checks of DIR before anything starts, apart from the serving of it (sentry/fs/rootfs.ts):
 * the command loads this always and the Gofer's client and the FUSE server only when a root is to be served.
 */
import { lstatSync } from 'node:fs';
import { join } from 'node:path';

/** The directories of DIR the sandbox mounts its own file systems on. */
export const ROOTFS_MOUNT_POINTS = ['/proc', '/dev', '/tmp'] as const;

/** A problem with DIR, told before anything is started: one line naming it. */
export class RootfsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RootfsError';
  }
}

/**
 * Checks DIR: it must be a directory holding (real, not symlinked) `proc`, `dev` and `tmp` directories, since
 * bubblewrap mounts on them and must never create anything in DIR nor follow a link out of it.
 */
export function checkRootfs(dir: string): void {
  let st;
  try {
    st = lstatSync(dir);
  } catch {
    throw new RootfsError(`--rootfs: '${dir}' does not exist`);
  }
  if (!st.isDirectory()) throw new RootfsError(`--rootfs: '${dir}' is not a directory`);
  for (const p of ROOTFS_MOUNT_POINTS) {
    let ok = false;
    try {
      ok = lstatSync(join(dir, p)).isDirectory();
    } catch {
      // missing
    }
    if (!ok) {
      throw new RootfsError(`--rootfs: '${dir}' has no ${p} directory (the sandbox mounts its own there): mkdir ${join(dir, p)}`);
    }
  }
}

/** Whether `path` inside DIR is a regular file (not through the mount; a symlinked parent in DIR answers false). */
export function isFileInRootfs(dir: string, path: string): boolean {
  let at = dir;
  const parts = path.split('/').filter((p) => p !== '');
  for (let i = 0; i < parts.length; i++) {
    at = join(at, parts[i]!);
    try {
      const st = lstatSync(at);
      if (i < parts.length - 1 ? !st.isDirectory() : !st.isFile()) return false;
    } catch {
      return false;
    }
  }
  return parts.length > 0;
}
