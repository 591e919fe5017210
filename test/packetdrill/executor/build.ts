/**
 * Builds the sandbox DUT's executor (`executor.c`) once with the system C compiler into tsvisor's cache directory
 * (the sandbox helper's), keyed by the source's hash, written under a temporary name and renamed into place so
 * that concurrent runners never see a half-written file.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cacheDir } from '../../../sentry/sandbox/native/build.ts';

const SOURCE = join(dirname(fileURLToPath(import.meta.url)), 'executor.c');
const FLAGS = ['-O2', '-Wall', '-Wextra', '-pthread'];

let memo: string | undefined;

/** The executor's path for the current source, compiling it first if needed (about 200 ms, once). */
export function executorPath(): string {
  if (memo && existsSync(memo)) return memo;
  const source = readFileSync(SOURCE);
  const key = createHash('sha256').update(source).update(FLAGS.join(' ')).digest('hex').slice(0, 16);
  const dir = cacheDir();
  const out = join(dir, `pd-executor-${key}`);
  if (!existsSync(out)) {
    mkdirSync(dir, { recursive: true });
    const tmp = `${out}.${process.pid}.tmp`;
    const cc = process.env.CC ?? 'cc';
    const r = spawnSync(cc, [...FLAGS, '-o', tmp, SOURCE], { encoding: 'utf8' });
    if (r.status !== 0) {
      rmSync(tmp, { force: true });
      const why = (r.stderr || r.error?.message || '').trim().split('\n')[0];
      throw new Error(`building the conformance executor with ${cc} failed: ${why} (install gcc and libc6-dev)`);
    }
    chmodSync(tmp, 0o755);
    renameSync(tmp, out);
  }
  memo = out;
  return out;
}
