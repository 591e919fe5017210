/**
 * Builds the sandbox helper (`sentry-exec.c`) once with the system C compiler into a cache directory, keyed by
 * the source's hash, so that an edited source is rebuilt and concurrent builders never see a half-written file.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SOURCE = join(dirname(fileURLToPath(import.meta.url)), 'sentry-exec.c');

/** Compiler flags; part of the cache key. Static, so the helper runs whatever libc the sandbox's root has. */
const FLAGS = ['-O2', '-Wall', '-Wextra', '-static'];

/** A set-up failure that names its cause and fix in one line (the CLI exits 1 with it). */
export class HelperBuildError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HelperBuildError';
  }
}

/**
 * Where built helpers are kept: $TSVISOR_CACHE_DIR, else $XDG_CACHE_HOME/tsvisor, else /var/cache/tsvisor for
 * root and ~/.cache/tsvisor for others.
 */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.TSVISOR_CACHE_DIR) return env.TSVISOR_CACHE_DIR;
  if (env.XDG_CACHE_HOME) return join(env.XDG_CACHE_HOME, 'tsvisor');
  return process.getuid?.() === 0 ? '/var/cache/tsvisor' : join(homedir(), '.cache', 'tsvisor');
}

/** Helpers already checked in this process, by cache directory and compiler. */
const built = new Map<string, string>();

/** The path of the helper for the current source, compiling it first if needed (about 300 ms, once). */
export function helperPath(o: { cc?: string; dir?: string } = {}): string {
  const dir = o.dir ?? cacheDir();
  const cc = o.cc ?? process.env.CC ?? 'cc';
  const memo = built.get(`${dir}\0${cc}`);
  if (memo && existsSync(memo)) return memo;
  if (!existsSync(SOURCE)) throw new HelperBuildError(`the sandbox helper's source is missing (${SOURCE}): reinstall tsvisor`);
  const source = readFileSync(SOURCE);
  const key = createHash('sha256').update(source).update(FLAGS.join(' ')).digest('hex').slice(0, 16);
  const out = join(dir, `sentry-exec-${key}`);
  if (!existsSync(out)) compile(cc, dir, out);
  built.set(`${dir}\0${cc}`, out);
  return out;
}

function compile(cc: string, dir: string, out: string): void {
  mkdirSync(dir, { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  const attempt = (flags: string[]) => spawnSync(cc, [...flags, '-o', tmp, SOURCE], { encoding: 'utf8' });
  let r = attempt(FLAGS);
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'ENOENT') {
    throw new HelperBuildError(`no C compiler ("${cc}") to build the sandbox helper: install gcc and libc6-dev (or set CC)`);
  }
  // Without a static libc (libc.a), a dynamic helper works as long as the sandbox's root is the host's.
  if (r.status !== 0) r = attempt(FLAGS.filter((f) => f !== '-static'));
  if (r.status !== 0) {
    rmSync(tmp, { force: true });
    const first = (r.stderr || r.error?.message || '').trim().split('\n')[0];
    throw new HelperBuildError(`building the sandbox helper with ${cc} failed: ${first} (install gcc and libc6-dev)`);
  }
  chmodSync(tmp, 0o755);
  renameSync(tmp, out);
}
