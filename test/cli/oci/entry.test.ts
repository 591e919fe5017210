// The installed entry's lean path for the OCI runtime's calls (cli/bin.ts → cli/oci/main.ts): which command lines
// are the runtime's, what `state` and `delete` answer for a running and a stopped container through it, and that
// they load none of the netstack, libc/koffi (state; delete --force of a container that is gone), cli/main.ts or
// the usage text. The container is a state folder with a real process (sleep) standing in for its Sentry.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { isOciCall } from '../../../cli/oci/main.ts';
import { ContainerDir, startTime } from '../../../cli/oci/state.ts';

const TOP = join(import.meta.dirname, '../../..');
const BIN = join(TOP, 'cli/bin.ts');

// A resolve hook, chained after tsx's, noting every module URL the call loads.
const RECORDER = `data:text/javascript,${encodeURIComponent(`
import { register } from 'node:module';
register('data:text/javascript,' + encodeURIComponent(\`
import { appendFileSync } from 'node:fs';
export async function resolve(s, c, next) {
  const r = await next(s, c);
  if (process.env.OCS_IMPORTS) appendFileSync(process.env.OCS_IMPORTS, r.url + '\\\\n');
  return r;
}\`));
`)}`;

t.test('which command lines are the runtime\'s', async (t) => {
  for (const a of [['state', 'x'], ['--root', '/r', 'delete', 'x'], ['create', '--bundle', '/b', 'x'], ['__oci-sandbox', '/r', 'x'], ['__oci-warm', '/r', '0123456789abcdef', '1000'],
    ['run', '--bundle', '/b', 'x'], ['--debug', 'kill', 'x', '9']]) t.ok(isOciCall(a), a.join(' '));
  for (const a of [[], ['run', '--', 'true'], ['serve', '--netns', 'n'], ['--help'], ['-h'], ['--version'], ['help'], ['demo']]) {
    t.notOk(isOciCall(a), a.join(' ') || '(nothing)');
  }
});

/** Runs the entry with `args`; its exit status, output and the module URLs it loaded. */
function entry(dir: string, args: string[]): { code: number | null; stdout: string; stderr: string; loaded: string[] } {
  const imports = join(dir, `imports-${Math.random().toString(36).slice(2)}`);
  writeFileSync(imports, '');
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--import', RECORDER, BIN, ...args], {
    cwd: TOP,
    encoding: 'utf8',
    env: { ...process.env, OCS_IMPORTS: imports },
    timeout: 60000,
  });
  const loaded = readFileSync(imports, 'utf8').split('\n').filter(Boolean);
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, loaded };
}

/** Our own modules among `urls`, as paths under the checkout, and koffi if loaded. */
function ours(urls: string[]): string[] {
  return [...new Set(urls.filter((u) => u.startsWith(`file://${TOP}/`) && !u.includes('/node_modules/') || u.includes('/koffi/'))
    .map((u) => (u.includes('/koffi/') ? 'koffi' : u.slice(`file://${TOP}/`.length))))].sort();
}

t.test('state and delete through the lean entry: a running, then a stopped container', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ocs-entry-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const root = join(dir, 'root');
  // The stand-in Sentry: a live process whose start time the state records, as create records the Sentry's.
  const sentry = spawn('sleep', ['600'], { stdio: 'ignore' });
  t.teardown(() => sentry.kill('SIGKILL'));
  await new Promise((r) => sentry.once('spawn', r));
  const c = new ContainerDir(root, 'ocs1');
  await c.lock(true);
  c.unlock();
  c.write({
    ociVersion: '1.0.2', id: 'ocs1', status: 'running', pid: sentry.pid!, bundle: dir, rootfs: join(dir, 'rootfs'),
    created: new Date().toISOString(), owner: '', sentryStart: startTime(sentry.pid!), control: join(dir, 'no.sock'),
  });
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ociVersion: '1.0.2', process: { args: ['true'], cwd: '/' }, root: { path: 'rootfs' } }));

  const running = entry(dir, ['--root', root, 'state', 'ocs1']);
  t.equal(running.code, 0, running.stderr);
  const s1 = JSON.parse(running.stdout);
  t.equal(s1.status, 'running');
  t.equal(s1.pid, sentry.pid);
  t.equal(s1.id, 'ocs1');
  t.same(ours(running.loaded), ['cli/args.ts', 'cli/bin.ts', 'cli/errors.ts', 'cli/oci/commands.ts', 'cli/oci/main.ts', 'cli/oci/spec.ts', 'cli/oci/state.ts'],
    'state loads the OCI modules it needs and nothing else (no netstack, no koffi, no cli/main.ts)');

  // A running container is not deleted without --force.
  const refused = entry(dir, ['--root', root, '--log', join(dir, 'log.json'), '--log-format', 'json', 'delete', 'ocs1']);
  t.equal(refused.code, 1);
  t.match(refused.stderr, /that is not stopped: running/);
  t.ok(existsSync(c.dir));

  sentry.kill('SIGKILL');
  await new Promise((r) => sentry.once('exit', r));
  const stopped = entry(dir, ['--root', root, 'state', 'ocs1']);
  t.equal(stopped.code, 0, stopped.stderr);
  const s2 = JSON.parse(stopped.stdout);
  t.equal(s2.status, 'stopped', 'a container whose Sentry is gone is stopped, whatever its file says');
  t.equal(s2.pid, 0);

  const deleted = entry(dir, ['--root', root, 'delete', 'ocs1']);
  t.equal(deleted.code, 0, deleted.stderr);
  t.notOk(existsSync(c.dir), 'delete removed the container\'s folder');
  t.ok(ours(deleted.loaded).includes('koffi'), 'delete of an existing container takes its lock (flock through libc)');

  const again = entry(dir, ['--root', root, 'delete', '--force', 'ocs1']);
  t.equal(again.code, 0, 'delete --force of a container that is gone exits 0, as runc\'s does');
  t.notOk(ours(again.loaded).some((m) => m === 'koffi' || m.startsWith('netstack/') || m === 'cli/main.ts'), 'and loads no libc, netstack or cli/main.ts');
  const missing = entry(dir, ['--root', root, 'state', 'ocs1']);
  t.equal(missing.code, 1);
  t.match(missing.stderr, /container ocs1 does not exist/);
});
