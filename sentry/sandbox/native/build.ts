/**
 * Builds the sandbox helper (`sentry-exec.c`), and other small C programs of ours (the OCI runtime's front), once
 * with the system C compiler into a cache directory, keyed by the source's hash, so that an edited source is
 * rebuilt and concurrent builders never see a half-written file.
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

/** Programs already checked in this process, by cache directory, compiler, source and flags. */
const built = new Map<string, string>();

/** The path of the helper for the current source, compiling it first if needed (about 300 ms, once). */
export function helperPath(o: { cc?: string; dir?: string } = {}): string {
  return compileCached({ source: SOURCE, flags: FLAGS, name: 'sentry-exec', what: 'the sandbox helper', ...o });
}

/** A C program to build into the cache directory. */
export interface CachedProgram {
  /** The C source file. */
  source: string;
  /** Compiler flags, part of the cache key; `-static` is dropped when the machine has no static libc. */
  flags: readonly string[];
  /** The binary's name, before the key. */
  name: string;
  /** What it is, for messages ("the sandbox helper"). */
  what: string;
  cc?: string;
  dir?: string;
}

/**
 * The path of `p` built from its current source and flags, compiling it first if needed: keyed by the source's
 * hash and the flags, so that an edited source is rebuilt, and renamed into place, so that concurrent builders
 * never see a half-written file.
 */
export function compileCached(p: CachedProgram): string {
  const dir = p.dir ?? cacheDir();
  const cc = p.cc ?? process.env.CC ?? 'cc';
  const memoKey = `${dir}\0${cc}\0${p.source}\0${p.flags.join(' ')}`;
  const memo = built.get(memoKey);
  if (memo && existsSync(memo)) return memo;
  if (!existsSync(p.source)) throw new HelperBuildError(`${p.what}'s source is missing (${p.source}): reinstall tsvisor`);
  const source = readFileSync(p.source);
  const key = createHash('sha256').update(source).update(p.flags.join(' ')).digest('hex').slice(0, 16);
  const out = join(dir, `${p.name}-${key}`);
  if (!existsSync(out)) compile(cc, dir, out, p);
  built.set(memoKey, out);
  return out;
}

function compile(cc: string, dir: string, out: string, p: CachedProgram): void {
  mkdirSync(dir, { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  const attempt = (flags: readonly string[]) => spawnSync(cc, [...flags, '-o', tmp, p.source], { encoding: 'utf8' });
  let r = attempt(p.flags);
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'ENOENT') {
    throw new HelperBuildError(`no C compiler ("${cc}") to build ${p.what}: install gcc and libc6-dev (or set CC)`);
  }
  // Without a static libc (libc.a), a dynamic helper works as long as the sandbox's root is the host's.
  if (r.status !== 0 && p.flags.includes('-static')) r = attempt(p.flags.filter((f) => f !== '-static'));
  if (r.status !== 0) {
    rmSync(tmp, { force: true });
    const first = (r.stderr || r.error?.message || '').trim().split('\n')[0];
    throw new HelperBuildError(`building ${p.what} with ${cc} failed: ${first} (install gcc and libc6-dev)`);
  }
  chmodSync(tmp, 0o755);
  renameSync(tmp, out);
}
