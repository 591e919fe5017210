// `tsvisor run --rootfs` with a root holding the host's python3 and curl and the libraries ldd names:
// `python3 -m http.server` inside, in --network=sandbox, fetched with curl from the peer; curl inside fetching
// from the peer.
import { type ChildProcess, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import t from 'tap';
import { CLI, collect, fetchedSha256, spawnIn, waitFor } from './run-helpers.ts';
import { deleteNetns, run } from '../../lib/testnet.ts';
import { waitListening } from '../lib/wait.ts';

const ns = 'tgr-py';
deleteNetns(ns);
run(['ip', 'netns', 'add', ns]);
run(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
const dir = mkdtempSync('/var/tmp/tgr-py-');
const procs: ChildProcess[] = [];
t.teardown(() => {
  for (const p of procs) p.kill('SIGKILL');
  deleteNetns(ns);
  rmSync(dir, { recursive: true, force: true });
});

/** Copies `file` (following links) to the same path under `root`. */
function copyIn(root: string, file: string): void {
  const dst = join(root, file);
  mkdirSync(dirname(dst), { recursive: true });
  copyFileSync(realpathSync(file), dst);
  chmodSync(dst, 0o755);
}

const root = join(dir, 'root');
for (const d of ['proc', 'dev', 'tmp', 'etc', 'srv']) mkdirSync(join(root, d), { recursive: true });
for (const bin of ['/usr/bin/python3', '/usr/bin/curl', '/bin/sh']) {
  copyIn(root, bin);
  for (const line of execFileSync('ldd', [bin], { encoding: 'utf8' }).split('\n')) {
    const lib = /(\/\S+) \(0x/.exec(line)?.[1];
    if (lib) copyIn(root, lib);
  }
}
// The standard library of the python3 copied in, wherever its version puts it (/usr/lib/python3.X).
const stdlib = execFileSync('/usr/bin/python3', ['-c', 'import sysconfig; print(sysconfig.get_path("stdlib"))'], { encoding: 'utf8' }).trim();
cpSync(stdlib, join(root, stdlib), {
  recursive: true,
  filter: (p) => !/\/(test|idlelib|tkinter|ensurepip|__pycache__)(\/|$)/.test(p),
});
writeFileSync(join(root, 'etc/hosts'), '');
writeFileSync(join(root, 'etc/resolv.conf'), '');
const body = randomBytes(1 << 20);
writeFileSync(join(root, 'srv/file'), body);
const sha = createHash('sha256').update(body).digest('hex');
chmodSync(dir, 0o755);

t.test('python3 -m http.server in the root, curl from the peer; curl inside to the peer', async (t) => {
  const log = join(dir, 'run.log');
  const child = spawnIn(ns, [process.execPath, CLI, 'run', '--debug-log', log, '--rootfs', root, '--ro', '--cwd', '/srv', '--',
    '/usr/bin/python3', '-m', 'http.server', '8000']);
  procs.push(child);
  let out = '';
  child.stderr!.on('data', (d) => (out += d));
  const read = () => {
    try {
      return readFileSync(log, 'utf8');
    } catch {
      return '';
    }
  };
  t.ok(await waitFor(() => read().includes('timing ready='), 60000), `run started ${out}`);
  const sandbox = /↔ \S+ \((198\.18\.\d+\.\d+)\/30/.exec(read())?.[1];
  t.ok(sandbox, 'the sandbox address is in the log');
  const got = await fetchedSha256(ns, `http://${sandbox}:8000/file`, sha);
  t.equal(got, sha, 'the file served from the root arrives whole at the peer');
  child.kill('SIGTERM');
  await new Promise((r) => child.once('close', r));

  // curl inside fetching from a server on the peer.
  const peerDir = join(dir, 'peer');
  mkdirSync(peerDir);
  writeFileSync(join(peerDir, 'hello'), 'hello from the peer\n');
  const http = spawnIn(ns, ['python3', '-m', 'http.server', '--bind', '0.0.0.0', '--directory', peerDir, '8080'], { stdio: 'pipe' });
  procs.push(http);
  await waitListening(ns, 8080);
  const r = await collect(spawnIn(ns, [process.execPath, CLI, 'run', '--rootfs', root, '--ro', '--',
    '/usr/bin/curl', '-sS', '-m', '20', '--retry', '5', '--retry-connrefused', 'http://host.tsvisor.internal:8080/hello']), 90000);
  t.equal(r.stdout, 'hello from the peer\n', r.stderr);
  t.equal(r.code, 0);
});
