// The OCI runtime's linux.cgroupsPath and linux.resources (cli/oci/cgroups.ts), through the front as a shim runs
// it: the container's program and its Sentry (and a warm start's keeper) end up in the cgroup the path names, in
// every hierarchy of this machine's hybrid layout; the memory, pids and cpu limits are in its files; the cgroup is
// made when missing (parents too) and removed by delete. The file's first create starts cold, the next ones are
// handed to the warm Sentry the one before left. A plain absolute path, the systemd driver's slice:prefix:name
// form and a path relative to the caller's cgroup; a path with '..' is refused with nothing left behind.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { alive } from '../../cli/oci/state.ts';
import { cleanUp, create, lastLogMessage, makeBundle, oci, rawState, waitFor } from './oci-helpers.ts';

const ME = process.pid;
const MIB = 1024 * 1024;

/** The path of each hierarchy of /proc/PID/cgroup, by its controller list ('' for the unified one). */
function cgroupsOf(pid: number): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim().split('\n')) {
    const m = /^\d+:([^:]*):(.*)$/.exec(line);
    if (m) out.set(m[1]!, m[2]!);
  }
  return out;
}

/** The mount point of every cgroup hierarchy here, by its /proc/PID/cgroup key. */
const MOUNTS = new Map<string, string>([...cgroupsOf(ME).keys()].map((k) => [k, k === '' ? '/sys/fs/cgroup/unified' : `/sys/fs/cgroup/${k.replace(/^name=/, '')}`]));

/** rmdir of `path` and what is below it, in every hierarchy (teardown of a failed run). */
function removeEverywhere(path: string): void {
  for (const point of MOUNTS.values()) {
    const walk = (dir: string) => {
      if (!existsSync(dir)) return;
      for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) walk(join(dir, e.name));
      try {
        rmdirSync(dir);
      } catch {
        // still busy: said by the test's own checks
      }
    };
    walk(join(point, path));
  }
}

/** A prestart hook plugging a veth in as the container's eth0 (198.18.150.2/24), as Docker's network hook does. */
const VETH_HOOK = `pid=$(sed -n 's/.*"pid": *\\([0-9]*\\).*/\\1/p'); ip link add tpa-c$pid type veth peer name eth0 netns $pid &&
  nsenter --net=/proc/$pid/ns/net sh -c 'ip addr add 198.18.150.2/24 dev eth0 && ip link set eth0 up'`;

const own = cgroupsOf(ME);
const cases = [
  { name: 'a plain absolute path', cgroupsPath: `/tpa-cg-${ME}/c1`, path: () => `/tpa-cg-${ME}/c1`, top: `/tpa-cg-${ME}` },
  { name: 'systemd\'s slice:prefix:name', cgroupsPath: `tpa-${ME}.slice:tpa:c2`, path: () => `/tpa.slice/tpa-${ME}.slice/tpa-c2.scope`, top: '/tpa.slice' },
  { name: 'a relative path (under the caller\'s cgroup)', cgroupsPath: `tpa-rel-${ME}`, path: (k: string) => `${own.get(k) === '/' ? '' : own.get(k)}/tpa-rel-${ME}` },
];

let first = true;
for (const c of cases) {
  t.test(`cgroupsPath as ${c.name}`, async (t) => {
    const id = `tpa-cg-${cases.indexOf(c)}-${ME}`;
    const b = makeBundle(t, (cfg) => {
      cfg.process.args = ['sleep', '60'];
      // An interface for the netstack to take over (its packet sockets outlive the Sentry by a moment).
      cfg.hooks = { prestart: [{ path: '/bin/sh', args: ['sh', '-c', VETH_HOOK] }] };
      cfg.linux.cgroupsPath = c.cgroupsPath;
      cfg.linux.resources = { memory: { limit: 384 * MIB }, pids: { limit: 300 }, cpu: { shares: 512 }, devices: [{ allow: false, access: 'rwm' }] };
    });
    t.teardown(async () => {
      await cleanUp(b);
      if (c.top) removeEverywhere(c.top);
      else for (const [k, point] of MOUNTS) removeEverywhere(join(point, c.path(k)).slice(point.length));
    });
    const warm = !first;
    first = false;
    const made = await create(b, id);
    t.equal(made.call.code, 0, `create: ${made.call.stderr}`);
    const s = rawState(b, id)!;
    t.equal(s.network, 'sandbox', 'the netstack took eth0 over');
    // The veth goes with the container's namespace (the kernel frees it a moment later): made sure of.
    t.teardown(() => {
      spawnSync('ip', ['link', 'del', `tpa-c${s.pid}`], { stdio: 'ignore' });
    });
    t.equal(s.sentryPid !== undefined, warm, warm ? 'a warm start (keeper and Sentry)' : 'a cold start');
    const sentry = (s.sentryPid ?? s.pid) as number;
    const who: [string, number][] = [['the program', s.initPid as number], ['the Sentry', sentry]];
    if (warm) who.push(['the keeper (the pid the engine reads)', s.pid as number]);
    for (const [what, pid] of who) {
      const cg = cgroupsOf(pid);
      for (const k of ['memory', 'pids', 'cpu', 'name=systemd', '']) {
        t.equal(cg.get(k), c.path(k), `${what} is in ${c.path(k)} of hierarchy '${k || 'unified'}'`);
      }
    }
    const file = (k: string, f: string) => readFileSync(join(MOUNTS.get(k)!, c.path(k), f), 'utf8').trim();
    t.equal(file('memory', 'memory.limit_in_bytes'), String(384 * MIB), 'memory.limit_in_bytes');
    t.equal(file('pids', 'pids.max'), '300', 'pids.max');
    t.equal(file('cpu', 'cpu.shares'), '512', 'cpu.shares');
    t.ok(Number(file('pids', 'pids.current')) >= 2, `pids.current counts the Sentry's threads and the program (${file('pids', 'pids.current')})`);

    t.equal((await oci(b, ['start', id])).code, 0, 'start');
    t.ok(alive(s.initPid), 'the program runs');
    t.equal((await oci(b, ['kill', id, 'KILL'])).code, 0, 'kill');
    t.ok(await waitFor(() => !alive(sentry) && !alive(s.pid), 30000), 'the Sentry (and keeper) exit');
    t.equal(file('memory', 'cgroup.procs'), '', 'nothing the Sentry started lingers in the cgroup (the janitor, the packet sockets\' holder)');
    const del = await oci(b, ['delete', id]);
    t.equal(del.code, 0, `delete: ${del.stderr}`);
    for (const [k, point] of MOUNTS) {
      t.notOk(existsSync(join(point, c.path(k))), `delete removed ${c.path(k)} of hierarchy '${k || 'unified'}'`);
      if (c.top) t.notOk(existsSync(join(point, c.top)), `and the parents it made (${c.top})`);
    }
  });
}

t.test('delete --force of a running container (the Node entry\'s delete) removes its cgroup too', async (t) => {
  const id = `tpa-cg-force-${ME}`;
  const path = `/tpa-cg-force-${ME}`;
  const b = makeBundle(t, (cfg) => {
    cfg.process.args = ['sleep', '60'];
    cfg.linux.cgroupsPath = path;
    cfg.linux.resources = { pids: { limit: 100 } };
  });
  t.teardown(async () => {
    await cleanUp(b);
    removeEverywhere(path);
  });
  t.equal((await create(b, id)).call.code, 0);
  t.equal((await oci(b, ['start', id])).code, 0);
  t.ok(existsSync(join(MOUNTS.get('pids')!, path)), 'made');
  const del = await oci(b, ['delete', '--force', id]);
  t.equal(del.code, 0, del.stderr);
  for (const [k, point] of MOUNTS) t.notOk(existsSync(join(point, path)), `removed from hierarchy '${k || 'unified'}'`);
});

t.test('a cgroupsPath with .. is refused, nothing left behind', async (t) => {
  const id = `tpa-cg-bad-${ME}`;
  const b = makeBundle(t, (cfg) => {
    cfg.process.args = ['true'];
    cfg.linux.cgroupsPath = `/tpa-cg-bad-${ME}/../../escape`;
  });
  t.teardown(() => cleanUp(b));
  const made = await create(b, id);
  t.not(made.call.code, 0, 'create fails');
  t.match(lastLogMessage(b) ?? '', /cgroupsPath .* must not hold '\.\.'/, 'the error names the problem');
  t.equal(made.call.stderr.trim().split('\n').length, 1, `one line: ${made.call.stderr}`);
  t.notOk(rawState(b, id), 'no container');
  for (const point of MOUNTS.values()) t.notOk(existsSync(join(point, `tpa-cg-bad-${ME}`)), `nothing made under ${point}`);
});
