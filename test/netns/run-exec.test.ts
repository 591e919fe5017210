// `tsvisor run` end to end with real programs: exit statuses (own, 128+N, 127, 126), a program that closes its
// stdout early, the namespaces made and removed in each mode, signal forwarding and the second Ctrl-C, and the
// janitor after `kill -9` of tsvisor itself. Runs happen inside a caller namespace of the test's own.
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { HANG_MS } from '../lib/wait.ts';
import { CLI, callerNs, collect, leftovers, logId, spawnIn, tsvisorRun, waitFor } from './run-helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'tsb-exec-'));
// The program is uid 65534 on the host: what it reads or writes through --bind must be open to it.
chmodSync(dir, 0o777);
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const ns = callerNs(t, 'rx');
let n = 0;
const logFile = () => join(dir, `run-${n++}.log`);

t.test('exit status → the program\'s own, 128+N for a signal; nothing left in any mode', async (t) => {
  for (const mode of ['host', 'none', 'sandbox']) {
    const log = logFile();
    let r = await tsvisorRun(ns, [`--network=${mode}`, '--debug-log', log, '--', '/bin/sh', '-c', 'exit 7']);
    t.equal(r.code, 7, `${mode}: exit 7`);
    t.equal(r.stderr, '', `${mode}: nothing on stderr`);
    const id = logId(log);
    t.ok(id, `${mode}: the run had an id`);
    t.same(leftovers(id!, ns), [], `${mode}: nothing left`);
    r = await tsvisorRun(ns, [`--network=${mode}`, '--', '/bin/sh', '-c', 'kill -TERM $$']);
    t.equal(r.code, 128 + 15, `${mode}: SIGTERM → 143`);
  }
  t.end();
});

t.test('missing program → 127, non-executable file → 126, each one line naming it; nothing left', async (t) => {
  // A file the sandbox sees (/tmp is a fresh tmpfs in there): the host's root is bound read-only.
  const plain = '/etc/passwd';
  for (const mode of ['host', 'sandbox']) {
    let log = logFile();
    let r = await tsvisorRun(ns, [`--network=${mode}`, '--debug-log', log, '--', '/nonexistent/prog']);
    t.equal(r.code, 127, `${mode}: 127`);
    t.match(r.stderr, /^tsvisor: \/nonexistent\/prog: .+\n$/);
    if (mode !== 'host') t.same(leftovers(logId(log)!, ns), [], 'nothing left');
    r = await tsvisorRun(ns, [`--network=${mode}`, '--', 'tsb-no-such-program']);
    t.equal(r.code, 127);
    t.equal(r.stderr, 'tsvisor: tsb-no-such-program: command not found\n');
    log = logFile();
    r = await tsvisorRun(ns, [`--network=${mode}`, '--debug-log', log, '--', plain]);
    t.equal(r.code, 126, `${mode}: 126`);
    t.match(r.stderr, new RegExp(`^tsvisor: ${plain}: Permission denied\\n$`));
    if (mode !== 'host') t.same(leftovers(logId(log)!, ns), [], 'nothing left');
  }
  t.end();
});

t.test('program closing its stdout early → its own status, its later stderr delivered, nothing left', async (t) => {
  const log = logFile();
  const r = await tsvisorRun(ns, ['--debug-log', log, '--', '/bin/sh', '-c', 'echo first; exec >&-; sleep 0.2; echo later >&2; exit 4']);
  t.equal(r.code, 4);
  t.equal(r.stdout, 'first\n');
  t.equal(r.stderr, 'later\n');
  t.same(leftovers(logId(log)!, ns), []);
  t.end();
});

t.test('a reader that goes away (head) → the writer dies of SIGPIPE: 141', async (t) => {
  const r = await collect(spawnIn(ns, ['/bin/bash', '-c', `${process.execPath} ${CLI} run -- yes | head -n 2; echo "status \${PIPESTATUS[0]}"`]));
  t.equal(r.stdout, 'y\ny\nstatus 141\n');
  t.end();
});

t.test('--network=none → lo only in the app netns; sandbox → lo + eth0 with the sandbox addresses and default routes', async (t) => {
  let r = await tsvisorRun(ns, ['--network=none', '--', '/bin/sh', '-c', 'cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d " "']);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, 'lo\n');
  r = await tsvisorRun(ns, ['--', '/bin/sh', '-c', 'ip -br addr; ip route show default; ip -6 route show default']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /^lo +UNKNOWN +127\.0\.0\.1\/8 ::1\/128/m);
  t.match(r.stdout, /^eth0 +\S+ +198\.18\.\d+\.2\/30 fd74:7376:0:[0-9a-f]+::2\/64/m);
  t.match(r.stdout, /^default via 198\.18\.\d+\.1 dev eth0/m);
  t.match(r.stdout, /^default via fd74:7376:0:[0-9a-f]+::1 dev eth0/m);
  t.end();
});

t.test('--network=none → loopback works inside; any other address is unreachable (ENETUNREACH)', async (t) => {
  const py = [
    'import errno, socket',
    'l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen()',
    'c = socket.create_connection(l.getsockname()); a, _ = l.accept(); c.sendall(b"ping"); print(a.recv(4).decode())',
    'for host in ("198.18.0.1", "fd74:7376::1"):',
    '    try: socket.create_connection((host, 80), timeout=5); print("connected")',
    '    except OSError as e: print(errno.errorcode[e.errno])',
  ].join('\n');
  const r = await tsvisorRun(ns, ['--network=none', '--', 'python3', '-c', py]);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, 'ping\nENETUNREACH\nENETUNREACH\n');
  t.end();
});

t.test('the generated /etc/hosts and /etc/resolv.conf are what the program reads', async (t) => {
  const r = await tsvisorRun(ns, ['--dns', '198.18.0.53', '--', '/bin/sh', '-c', 'cat /etc/resolv.conf; getent ahostsv4 host.tsvisor.internal | head -n 1']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /^nameserver 198\.18\.0\.53\n/);
  t.match(r.stdout, /^198\.18\.\d+\.1\s+STREAM host\.tsvisor\.internal$/m);
  t.end();
});

t.test('--env, --cwd and --ro-bind reach the program', async (t) => {
  const src = mkdtempSync(join(dir, 'bind-'));
  chmodSync(src, 0o755);
  writeFileSync(join(src, 'f'), 'bound\n');
  const r = await tsvisorRun(ns, ['--network=none', '--env', 'TSB_X=1=2', '--ro-bind', `${src}:/mnt`, '--cwd', '/mnt', '--',
    '/bin/sh', '-c', 'echo "$TSB_X"; pwd; cat f; touch g 2>/dev/null || echo read-only']);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, '1=2\n/mnt\nbound\nread-only\n');
  t.end();
});

/** Starts a long-running `tsvisor run` and resolves once its debug log says the program runs. */
async function startLong(args: string[]): Promise<{ child: ReturnType<typeof spawnIn>; id: string; log: string; out: () => string }> {
  const log = logFile();
  const child = spawnIn(ns, [process.execPath, CLI, 'run', '--debug-log', log, ...args]);
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const ok = await waitFor(() => /timing ready=/.test(safeRead(log)), HANG_MS);
  if (!ok) throw new Error(`run did not start: ${out}`);
  return { child, id: logId(log)!, log, out: () => out };
}

function safeRead(p: string): string {
  try {
    return readFileSync(p, 'utf8');
  } catch {
    return '';
  }
}

t.test('signals → SIGTERM, SIGHUP, SIGUSR1 forwarded to the program; a second SIGINT within 2 s kills the sandbox', async (t) => {
  const script = 'for s in TERM HUP USR1 USR2 QUIT INT; do trap "echo got $s" $s; done; echo ready; while :; do sleep 0.05; done';
  const run = await startLong(['--', '/bin/sh', '-c', script]);
  t.teardown(() => {
    run.child.kill('SIGKILL');
  });
  t.ok(await waitFor(() => run.out().includes('ready'), HANG_MS));
  for (const sig of ['SIGTERM', 'SIGHUP', 'SIGUSR1', 'SIGUSR2', 'SIGQUIT'] as const) {
    run.child.kill(sig);
    const name = sig.slice(3);
    t.ok(await waitFor(() => run.out().includes(`got ${name}`), HANG_MS), `${sig} reached the program`);
  }
  run.child.kill('SIGINT');
  t.ok(await waitFor(() => run.out().includes('got INT'), HANG_MS), 'first SIGINT reached the program, which caught it');
  run.child.kill('SIGINT');
  const r = await collect(run.child);
  t.equal(r.code, 128 + 9, 'second SIGINT: sandbox killed, 137');
  t.same(leftovers(run.id, ns), [], 'nothing left');
  t.end();
});

t.test('kill -9 of tsvisor → the program dies and the janitor removes namespaces, veth and nft table', async (t) => {
  const marker = join(dir, 'alive');
  const run = await startLong(['--bind', `${dir}:/mnt`, '--', '/bin/sh', '-c', 'while :; do date +%s%N > /mnt/alive; sleep 0.05; done']);
  t.ok(await waitFor(() => safeRead(marker) !== '', HANG_MS), 'the program runs');
  t.same(leftovers(run.id, ns).sort(), [`link tsv-${run.id}`, `netns tsv-${run.id}`, `netns tsv-${run.id}-app`, `nft table inet tsvisor-${run.id}`].sort());
  run.child.kill('SIGKILL');
  // How fast is the janitor's to report, not a test's to assert under load: the bound is a hang's.
  const killedAt = Date.now();
  t.ok(await waitFor(() => leftovers(run.id, ns).length === 0, HANG_MS), `gone after ${Date.now() - killedAt} ms (left: ${leftovers(run.id, ns).join(', ')})`);
  const before = safeRead(marker);
  await new Promise((r) => setTimeout(r, 500));
  t.equal(safeRead(marker), before, 'the program no longer runs (--die-with-parent)');
  t.end();
});
