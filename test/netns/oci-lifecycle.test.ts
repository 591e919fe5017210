// The OCI runtime driven as containerd-shim-runc-v2 drives it, no engine: a busybox-static bundle, then create,
// start, state, kill, delete, exec, ps, pause/resume and run, with the container's stdio on pipes the test reads.
import { chmodSync, existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { alive } from '../../cli/oci/state.ts';
import { cleanUp, create, lastLogMessage, leftNamespaces, makeBundle, oci, rawState, state, waitFor, waitStatus } from './oci-helpers.ts';

/** The run namespaces (`tsv-<id>`, `tsv-<id>-app`) that exist now. */
const runNamespaces = () => readdirSync('/var/run/netns').filter((n) => n.startsWith('tsv-'));
const namespacesBefore = new Set(runNamespaces());

/**
 * Run ids of runs alive now elsewhere on the machine (other people's `tsvisor run`s started during this file): each
 * has a janitor (sentry/sandbox/janitor.ts) whose parent, its Sentry, lives. A container of this file is gone by
 * the end, so a janitor of its would have been orphaned; what such a run has made is not a leftover of ours.
 */
function liveRuns(): Set<string> {
  const ids = new Set<string>();
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'latin1');
      const m = /^\/bin\/sh\0-c\0trap [^]*?nft delete table inet tsvisor-([0-9a-z]+)/.exec(cmd);
      const ppid = Number(readFileSync(`/proc/${p}/stat`, 'latin1').split(') ')[1]!.split(' ')[1]);
      if (m && ppid > 1 && alive(ppid)) ids.add(m[1]!);
    } catch {
      // gone
    }
  }
  return ids;
}

t.test('create → created, start → the program runs, its status is the exit status, delete leaves nothing', async (t) => {
  const b = makeBundle(t, (c) => (c.process.args = ['sh', '-c', 'echo out $(hostname); echo err >&2; exit 3']));
  t.teardown(() => cleanUp(b));
  const c = await create(b, 'life');
  t.equal(c.call.code, 0, c.call.stderr);
  const s = await state(b, 'life');
  t.equal(s?.status, 'created');
  t.equal(s?.id, 'life');
  t.equal(s?.bundle, b.dir);
  t.equal(s?.rootfs, b.rootfs);
  const pid = Number(readFileSync(join(b.dir, 'life.pid'), 'utf8'));
  t.equal(s?.pid, pid, 'the pid file names the Sentry, the pid state reports');
  t.ok(alive(pid), 'the Sentry runs after create has exited');
  const rid = rawState(b, 'life')?.runId;
  t.ok(rid);
  t.equal((await oci(b, ['start', 'life'])).code, 0);
  const out = await c.output;
  t.equal(out.stdout, 'out tsvisor\n', 'stdout through the pipe create was given; hostname from config.json');
  t.equal(out.stderr, 'err\n');
  t.ok(await waitStatus(b, 'life', 'stopped'));
  t.equal(rawState(b, 'life')?.exitStatus, 3);
  t.equal((await state(b, 'life'))?.pid, 0);
  const again = await oci(b, ['start', 'life']);
  t.equal(again.code, 1, 'start of a stopped container fails');
  t.match(lastLogMessage(b), /stopped/);
  t.equal((await oci(b, ['delete', 'life'])).code, 0);
  t.equal(await state(b, 'life'), undefined);
  t.same(leftNamespaces(rid), [], 'no namespace of the container is left');
  t.ok(await waitFor(() => !alive(pid), 5000), 'the Sentry has exited');
});

t.test('kill: TERM reaches the program (exit 7 from its trap), KILL gives 137; names and numbers', async (t) => {
  const b = makeBundle(t, (c) => (c.process.args = ['sh', '-c', 'trap "echo got TERM; exit 7" TERM; echo up; while true; do sleep 0.1; done']));
  t.teardown(() => cleanUp(b));
  const c = await create(b, 'k1');
  t.equal(c.call.code, 0, c.call.stderr);
  t.equal((await oci(b, ['start', 'k1'])).code, 0);
  t.ok(await waitStatus(b, 'k1', 'running'));
  // The trap is set once "up" is printed (the output promise ends only at exit: watch the pipe so far).
  t.ok(await waitFor(() => c.stdoutSoFar() === 'up\n', 30000), 'the program has set its trap');
  t.equal((await oci(b, ['kill', 'k1', 'TERM'])).code, 0);
  t.equal((await c.output).stdout, 'up\ngot TERM\n');
  t.ok(await waitStatus(b, 'k1', 'stopped'));
  t.equal(rawState(b, 'k1')?.exitStatus, 7);
  const dead = await oci(b, ['kill', 'k1', 'KILL']);
  t.equal(dead.code, 1, 'kill of a stopped container fails');
  t.match(lastLogMessage(b), /not running/);
  t.equal((await oci(b, ['delete', 'k1'])).code, 0);

  const c2 = await create(b, 'k2');
  t.equal(c2.call.code, 0);
  t.equal((await oci(b, ['start', 'k2'])).code, 0);
  t.equal((await oci(b, ['kill', 'k2', '9'])).code, 0);
  await c2.output;
  t.ok(await waitStatus(b, 'k2', 'stopped'));
  t.equal(rawState(b, 'k2')?.exitStatus, 137);
  t.equal((await oci(b, ['kill', 'k2', 'NOSUCHSIG'])).code, 2, 'an unknown signal is a usage error');
});

t.test('exec: a second program in the sandbox (same hostname, pid namespace, root), its status; --detach --pid-file', async (t) => {
  const b = makeBundle(t, (c) => (c.process.args = ['sh', '-c', 'echo $$ > /dev/shm/init; while true; do sleep 0.1; done']));
  t.teardown(() => cleanUp(b));
  const c = await create(b, 'ex');
  t.equal(c.call.code, 0, c.call.stderr);
  t.equal((await oci(b, ['start', 'ex'])).code, 0);
  t.ok(await waitStatus(b, 'ex', 'running'));
  // The exec below reads what the program writes first: wait until it is there (seen through its root).
  const initFile = `/proc/${rawState(b, 'ex')!.initPid}/root/dev/shm/init`;
  t.ok(await waitFor(() => existsSync(initFile) && readFileSync(initFile, 'utf8').endsWith('\n'), 30000), 'the program wrote its pid');
  const r = await oci(b, ['exec', 'ex', 'sh', '-c', 'hostname; cat /dev/shm/init; cat /proc/1/cmdline | tr "\\0" " " | cut -c1-5; id -u']);
  t.equal(r.code, 0, r.stderr);
  const [host, initPid, pid1, uid] = r.stdout.trim().split('\n');
  t.equal(host, 'tsvisor');
  t.equal(initPid, '1', 'the program is pid 1 of the sandbox, as under runc, seen from the exec');
  t.equal(pid1, 'sh -c');
  t.equal(uid, '0');
  t.equal((await oci(b, ['exec', 'ex', 'sh', '-c', 'exit 5'])).code, 5, "exec's status is the program's");
  const missing = await oci(b, ['exec', 'ex', 'nosuchprogram']);
  t.not(missing.code, 0);
  t.match(lastLogMessage(b), /nosuchprogram.*not found/);
  const proc = join(b.dir, 'process.json');
  const { writeFileSync } = await import('node:fs');
  writeFileSync(proc, JSON.stringify({ args: ['sh', '-c', 'echo detached > /dev/shm/d; sleep 0.5'], cwd: '/dev', user: { uid: 0, gid: 0 }, env: ['PATH=/bin'] }));
  const d = await oci(b, ['exec', '--process', proc, '--detach', '--pid-file', join(b.dir, 'exec.pid'), 'ex']);
  t.equal(d.code, 0, d.stderr);
  const epid = Number(readFileSync(join(b.dir, 'exec.pid'), 'utf8'));
  t.ok(epid > 0);
  const ps = await oci(b, ['ps', '--format', 'json', 'ex']);
  const pids = JSON.parse(ps.stdout) as number[];
  t.ok(pids.includes(rawState(b, 'ex')!.initPid), 'ps lists the program');
  t.ok(await waitFor(() => !alive(epid), 10000), 'the detached exec ends');
  t.equal((await oci(b, ['exec', 'ex', 'cat', '/dev/shm/d'])).stdout, 'detached\n');
});

t.test('pause stops every process of the sandbox, resume continues them; state says so', async (t) => {
  const b = makeBundle(t, (c) => (c.process.args = ['sh', '-c', 'while true; do sleep 0.1; done']));
  t.teardown(() => cleanUp(b));
  t.equal((await create(b, 'pz')).call.code, 0);
  t.equal((await oci(b, ['start', 'pz'])).code, 0);
  const init = rawState(b, 'pz')!.initPid as number;
  const procState = () => /^State:\s+(\S)/m.exec(readFileSync(`/proc/${init}/status`, 'utf8'))?.[1];
  t.equal((await oci(b, ['pause', 'pz'])).code, 0);
  t.equal((await state(b, 'pz'))?.status, 'paused');
  t.ok(await waitFor(() => procState() === 'T', 5000), 'the program is stopped');
  t.equal((await oci(b, ['pause', 'pz'])).code, 1, 'pause of a paused container fails');
  t.equal((await oci(b, ['resume', 'pz'])).code, 0);
  t.equal((await state(b, 'pz'))?.status, 'running');
  t.ok(await waitFor(() => procState() !== 'T', 5000), 'the program runs again');
  t.equal((await oci(b, ['delete', 'pz'])).code, 1, 'delete of a running container without --force fails');
  t.match(lastLogMessage(b), /not stopped: running/);
  t.equal((await oci(b, ['delete', '--force', 'pz'])).code, 0);
  t.equal(await state(b, 'pz'), undefined);
});

t.test('errors: unknown ids, delete --force of one exits 0, a bad bundle, a duplicate id, a program not in the root', async (t) => {
  const b = makeBundle(t, (c) => (c.process.args = ['sleep', '5']));
  t.teardown(() => cleanUp(b));
  t.equal((await oci(b, ['delete', '--force', 'nosuch'])).code, 0);
  const d = await oci(b, ['delete', 'nosuch']);
  t.equal(d.code, 1);
  t.equal(lastLogMessage(b), 'container nosuch does not exist');
  t.match(d.stderr, /container nosuch does not exist/);
  t.equal((await oci(b, ['state', 'nosuch'])).code, 1);
  t.equal((await oci(b, ['start', 'nosuch'])).code, 1);
  t.equal((await oci(b, ['state', '../x'])).code, 1);
  t.match(lastLogMessage(b), /invalid container id/);
  const bad = await oci(b, ['create', '--bundle', '/nonexistent-toa', 'x1']);
  t.equal(bad.code, 1);
  t.match(lastLogMessage(b), /config\.json/);
  t.equal((await create(b, 'dup')).call.code, 0);
  const dup = await create(b, 'dup');
  t.equal(dup.call.code, 1);
  t.match(lastLogMessage(b), /exists/);
  const dupPid = rawState(b, 'dup')!.pid as number;
  t.equal((await oci(b, ['delete', 'dup'])).code, 0, 'a created container is deleted without --force, as runc does');
  t.equal(await state(b, 'dup'), undefined);
  t.ok(await waitFor(() => !alive(dupPid), 5000), 'its Sentry is gone');
  b.config.process.args = ['nosuchprogram'];
  b.write();
  const np = await create(b, 'np');
  t.equal(np.call.code, 1);
  t.match(lastLogMessage(b), /"nosuchprogram": executable file not found/);
  t.equal(await state(b, 'np'), undefined, 'a failed create leaves no container');
  b.config.process.args = ['/bin/nosuchprogram'];
  b.write();
  t.equal((await create(b, 'np2')).call.code, 1);
  t.match(lastLogMessage(b), /stat \/bin\/nosuchprogram: no such file or directory/, "runc's words, which Docker maps to 127");
});

t.test('a crashed Sentry: the container is stopped, delete removes it, the janitor its namespaces', async (t) => {
  const b = makeBundle(t, (c) => (c.process.args = ['sleep', '60']));
  t.teardown(() => cleanUp(b));
  t.equal((await create(b, 'cr')).call.code, 0);
  const s = rawState(b, 'cr')!;
  process.kill(s.pid, 'SIGKILL');
  t.ok(await waitFor(() => !alive(s.pid), 5000));
  t.equal((await state(b, 'cr'))?.status, 'stopped');
  t.ok(await waitFor(() => leftNamespaces(s.runId).length === 0, 10000), 'the janitor removed the namespaces');
  t.ok(await waitFor(() => !alive(s.initPid), 5000), 'the program died with the Sentry');
  t.equal((await oci(b, ['delete', 'cr'])).code, 0);
});

t.test('calls at once: two creates of one id, one wins; kills and states in parallel', async (t) => {
  const b = makeBundle(t, (c) => (c.process.args = ['sh', '-c', 'trap "" USR1; while true; do sleep 0.1; done']));
  t.teardown(() => cleanUp(b));
  const [a, c] = await Promise.all([create(b, 'cc'), create(b, 'cc')]);
  t.same([a.call.code, c.call.code].sort(), [0, 1], 'exactly one create succeeds');
  t.equal((await oci(b, ['start', 'cc'])).code, 0);
  const rs = await Promise.all([...Array(4)].map((_, i) => (i % 2 ? oci(b, ['kill', 'cc', 'USR1']) : oci(b, ['state', 'cc']))));
  t.same(rs.map((r) => r.code), [0, 0, 0, 0]);
  t.equal((await state(b, 'cc'))?.status, 'running');
});

t.test('run: create + start + wait, the status is the program\'s, the container is gone after', async (t) => {
  const b = makeBundle(t, (c) => (c.process.args = ['sh', '-c', 'echo ran; exit 4']));
  t.teardown(() => cleanUp(b));
  const r = await oci(b, ['run', '--bundle', b.dir, 'rn']);
  t.equal(r.code, 4, r.stderr);
  t.equal(r.stdout, 'ran\n');
  t.equal(await state(b, 'rn'), undefined);
  const l = await oci(b, ['list', '--format', 'json']);
  t.same(JSON.parse(l.stdout), []);
});

t.test('hooks: every kind runs at its point with the state on stdin; a failing prestart fails create, naming it', async (t) => {
  // The program ends at once: start must still get its answer after the poststart hook.
  const b = makeBundle(t, (c) => (c.process.args = ['true']));
  t.teardown(() => cleanUp(b));
  const record = join(b.dir, 'hooks.log');
  const hook = (kind: string) => ({ path: '/bin/sh', args: ['sh', '-c', `(echo ${kind}; cat; echo) >> ${record}`], env: ['A=1'] });
  const kinds = ['prestart', 'createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop'];
  b.config.hooks = Object.fromEntries(kinds.map((k) => [k, [hook(k)]]));
  b.write();
  t.equal((await create(b, 'hk')).call.code, 0);
  t.equal((await oci(b, ['start', 'hk'])).code, 0);
  t.ok(await waitStatus(b, 'hk', 'stopped'));
  t.equal((await oci(b, ['delete', 'hk'])).code, 0);
  const lines = readFileSync(record, 'utf8').trim().split('\n');
  const seen = [];
  for (let i = 0; i + 1 < lines.length; i += 2) {
    const st = JSON.parse(lines[i + 1]!);
    t.equal(st.id, 'hk');
    t.equal(st.bundle, b.dir);
    seen.push(`${lines[i]} ${st.status}`);
  }
  t.same(seen, ['prestart creating', 'createRuntime creating', 'createContainer creating', 'startContainer created',
    'poststart running', 'poststop stopped']);

  b.config.hooks = { prestart: [{ path: '/bin/sh', args: ['sh', '-c', 'echo no network for you >&2; exit 9'] }] };
  b.write();
  const bad = await create(b, 'hk2');
  t.equal(bad.call.code, 1);
  t.match(lastLogMessage(b), /prestart hook \/bin\/sh failed \(exit status 9\): no network for you/);
  t.equal(await state(b, 'hk2'), undefined);
  b.config.hooks = { createRuntime: [{ path: '/bin/sleep', args: ['sleep', '30'], timeout: 1 }] };
  b.write();
  t.equal((await create(b, 'hk3')).call.code, 1);
  t.match(lastLogMessage(b), /createRuntime hook \/bin\/sleep failed \(timed out after 1 s\)/);
});

t.test('a root container maps ids 0-65535 to themselves, as runc: chown to 101:102 works (it was EINVAL)', async (t) => {
  const b = makeBundle(t, (c) => {
    c.root.readonly = false;
    // Docker's default set has CAP_CHOWN (`tsvisor spec`, as `runc spec`, leaves it out).
    for (const k of ['bounding', 'effective', 'permitted']) c.process.capabilities[k] = [...c.process.capabilities[k], 'CAP_CHOWN'];
    c.process.args = ['sh', '-c', 'tr -s " " < /proc/self/uid_map; touch /tmp/own && chown 101:102 /tmp/own && stat -c "%u %g" /tmp/own'];
  });
  t.teardown(() => cleanUp(b));
  const r = await oci(b, ['run', '--bundle', b.dir, 'ids']);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, ' 0 0 65536\n101 102\n');
  const st = statSync(join(b.dir, 'rootfs/tmp/own'));
  t.same([st.uid, st.gid], [101, 102], 'the same ids on the host');
});

t.test('process.user 1000:1000: the program and an exec as that user, no capabilities, sockets still the Sentry\'s', async (t) => {
  const b = makeBundle(t, (c) => {
    c.process.user = { uid: 1000, gid: 1000 };
    c.process.args = ['sh', '-c', 'id -u; grep CapEff /proc/self/status; while true; do sleep 0.1; done'];
  });
  t.teardown(() => cleanUp(b));
  // The sandbox is set up as that host uid: a root behind a folder it cannot search is refused with one line.
  const refused = await create(b, 'nr0');
  t.equal(refused.call.code, 1);
  t.match(lastLogMessage(b), /process\.user 1000:1000 cannot search .* on the way to root\.path/);
  chmodSync(b.dir, 0o755);
  const c = await create(b, 'nr');
  t.equal(c.call.code, 0, c.call.stderr);
  t.equal((await oci(b, ['start', 'nr'])).code, 0);
  const e = await oci(b, ['exec', '--user', '1000:1000', 'nr', 'sh', '-c', 'id -u; echo x | nc 127.0.0.1 1 || echo refused']);
  t.equal(e.code, 0, e.stderr);
  t.equal(e.stdout, '1000\nrefused\n');
  t.equal((await oci(b, ['kill', 'nr', 'KILL'])).code, 0);
  t.equal((await c.output).stdout, '1000\nCapEff:\t0000000000000000\n');
});

// Last: every container above (created, failed, killed, crashed, deleted) left no namespace of its own behind.
t.test('no run namespace made by the containers of this file is left', async (t) => {
  const left = () => {
    const others = liveRuns();
    return runNamespaces().filter((n) => !namespacesBefore.has(n) && !others.has(n.replace(/^tsv-/, '').replace(/-app$/, '')));
  };
  await waitFor(() => left().length === 0, 10000);
  t.same(left(), []);
});
