import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { HelperBuildError, cacheDir, helperPath } from '../../../../sentry/sandbox/native/build.ts';

t.test('builds once into the cache directory, keyed by the source hash; a second call reuses it', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tsa-build-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const p = helperPath({ dir });
  t.match(p, new RegExp(`^${dir}/sentry-exec-[0-9a-f]{16}$`));
  t.ok(statSync(p).mode & 0o100, 'executable');
  const mtime = statSync(p).mtimeMs;
  t.equal(helperPath({ dir }), p);
  t.equal(statSync(p).mtimeMs, mtime, 'not rebuilt');
  t.same(readdirSync(dir), [p.split('/').pop()], 'no temporary file left');
  // Run without arguments, it prints its usage and exits 2.
  const r = (() => {
    try {
      execFileSync(p, [], { stdio: 'pipe' });
      return { status: 0, stderr: '' };
    } catch (e) {
      return e as { status: number; stderr: Buffer };
    }
  })();
  t.equal(r.status, 2);
  t.match(String(r.stderr), /^usage: sentry-exec/);
  t.end();
});

t.test('no C compiler, or a failing one → one line naming the cause and the fix', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tsa-build-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const e = t.throws(() => helperPath({ dir, cc: '/nonexistent/tsa-cc' })) as Error;
  t.ok(e instanceof HelperBuildError);
  t.equal(e.message, 'no C compiler ("/nonexistent/tsa-cc") to build the sandbox helper: install gcc and libc6-dev (or set CC)');
  t.throws(() => helperPath({ dir, cc: '/bin/false' }), /^building the sandbox helper with \/bin\/false failed: .*install gcc and libc6-dev/);
  t.same(readdirSync(dir), [], 'nothing left behind');
  t.end();
});

t.test('cache directory: $TSVISOR_CACHE_DIR, $XDG_CACHE_HOME/tsvisor, else /var/cache/tsvisor for root', (t) => {
  t.equal(cacheDir({ TSVISOR_CACHE_DIR: '/x', XDG_CACHE_HOME: '/y' }), '/x');
  t.equal(cacheDir({ XDG_CACHE_HOME: '/y' }), '/y/tsvisor');
  if (process.getuid?.() === 0) t.equal(cacheDir({}), '/var/cache/tsvisor');
  t.end();
});
