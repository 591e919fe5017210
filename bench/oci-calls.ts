/**
 * Where an OCI container's start-up goes, without an engine: the calls Docker's shim makes for `docker run --rm
 * IMAGE true` (create, start, the Sentry's exit, delete, delete --force), each timed from the outside, beside runc
 * doing the same on the same bundle, and the Sentry's own `timing` marks (ms since its Node started) from its log.
 * The bundle is a busybox-static root with `tsvisor spec`'s config whose prestart hook plugs a veth in as `eth0`
 * (198.18.140.2/24, as Docker's libnetwork-setkey hook plugs the bridge's), so the netstack takes an interface over
 * as under Docker. Everything lives under /var/tmp/ocs-calls-* and /run/ocs-calls-*, removed afterwards. As root:
 *
 * tsvisor runs as engines are told to run it, through its front (`tsvisor install-runtime`); `--node` runs the Node
 * entry for every call instead (`node CLI ...`), as before the front.
 *
 * `--front PATH` runs an executable built elsewhere instead (e.g. one whose Node runs with other flags).
 *
 * The front hands each create after the first to the warm Sentry the one before started (cli/oci/warm.ts): the
 * Sentry's marks then count from the hand-over and `warm` is 1; TSVISOR_OCI_WARM=0 in the environment measures
 * cold starts.
 *
 * `--cgroup` gives the container a cgroupsPath and memory and pids limits, as Docker's cgroupfs driver does
 * (`/ocs-calls/c`: runc and tsvisor each make and remove it; the Sentry's `cgroup` mark is tsvisor's share).
 *
 *   node --import tsx bench/oci-calls.ts [--runs 10] [--cli dist/cli/bin.js] [--no-runc] [--node | --front PATH] [--cgroup]
 */
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { runcPath } from './oci-engines.ts';

const ROOT = join(import.meta.dirname, '..');
const argAt = (name: string) => process.argv.indexOf(name);
const runs = argAt('--runs') > 0 ? Number(process.argv[argAt('--runs') + 1]) : 10;
if (!Number.isInteger(runs) || runs < 1) {
  process.stderr.write('oci-calls: --runs takes a positive whole number\n');
  process.exit(2);
}
const cli = argAt('--cli') > 0 ? process.argv[argAt('--cli') + 1]! : join(ROOT, 'dist/cli/bin.js');
const withRunc = argAt('--no-runc') < 0;
const viaNode = argAt('--node') > 0;
const withCgroup = argAt('--cgroup') > 0;
if (!existsSync(cli)) {
  process.stderr.write(`oci-calls: ${cli} does not exist (npm run build)\n`);
  process.exit(2);
}

const dir = mkdtempSync('/var/tmp/ocs-calls-');
const run = mkdtempSync('/run/ocs-calls-');
const cleanup = () => {
  for (const rt of ['tsvisor', 'runc']) {
    const root = join(run, rt);
    if (!existsSync(root)) continue;
    for (const id of readdirSync(root)) {
      try {
        execFileSync(rt === 'runc' ? runcPath() : process.execPath, [...(rt === 'runc' ? [] : [cli]), '--root', root, 'delete', '--force', id], { stdio: 'ignore' });
      } catch {
        // already gone
      }
    }
  }
  // The warm Sentry waiting under tsvisor's root (cli/oci/warm.ts: ready-TAG-PID.sock), if it is still ours.
  try {
    for (const n of readdirSync(join(run, 'tsvisor', '.warm'))) {
      const pid = Number(/^ready-[0-9a-f]{16}-(\d+)\.sock$/.exec(n)?.[1]);
      if (pid && readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes(run)) process.kill(pid, 'SIGTERM');
    }
  } catch {
    // none
  }
  rmSync(dir, { recursive: true, force: true });
  rmSync(run, { recursive: true, force: true });
  // runc removes only the container's own cgroup: the parent both made.
  if (withCgroup) {
    for (const h of readdirSync('/sys/fs/cgroup')) {
      for (const d of ['/ocs-calls/c', '/ocs-calls']) {
        try {
          rmdirSync(join('/sys/fs/cgroup', h, d));
        } catch {
          // not there, or not ours to remove
        }
      }
    }
  }
};
process.once('SIGINT', () => {
  cleanup();
  process.exit(130);
});

/** How tsvisor is called: its front, installed here, or node with the CLI. */
let tsvisor: string[] = [process.execPath, cli];

/** The bundle: busybox root, spec's config with `true` as the program and the veth hook. */
function bundle(): string {
  const rootfs = join(dir, 'rootfs');
  for (const d of ['bin', 'proc', 'dev', 'sys', 'tmp', 'etc']) mkdirSync(join(rootfs, d), { recursive: true });
  const busybox = ['/bin/busybox', '/usr/bin/busybox'].find((p) => existsSync(p));
  if (!busybox) throw new Error('busybox-static is not installed');
  copyFileSync(busybox, join(rootfs, 'bin/busybox'));
  chmodSync(join(rootfs, 'bin/busybox'), 0o755);
  execFileSync('chroot', [rootfs, '/bin/busybox', '--install', '-s', '/bin']);
  execFileSync(process.execPath, [cli, 'spec', '--bundle', dir]);
  const hook = join(dir, 'veth-hook.sh');
  // The container's pid from the state on stdin; the host end's name from it (15 characters at most).
  writeFileSync(hook, `#!/bin/sh
pid=$(sed -n 's/.*"pid": *\\([0-9]*\\).*/\\1/p')
ip link add ocs-c$pid type veth peer name eth0 netns $pid || exit 1
nsenter --net=/proc/$pid/ns/net sh -c 'ip addr add 198.18.140.2/24 dev eth0 && ip link set eth0 up && ip route add default via 198.18.140.1'
`);
  chmodSync(hook, 0o755);
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  config.process.terminal = false;
  config.process.args = ['true'];
  config.hooks = { prestart: [{ path: hook }] };
  if (withCgroup) {
    config.linux.cgroupsPath = '/ocs-calls/c';
    config.linux.resources = { memory: { limit: 512 * 1024 * 1024 }, pids: { limit: 1000 } };
  }
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 1));
  return dir;
}

/** Runs one call; resolves to its wall time in ms, throwing on a non-zero exit. */
function call(argv: string[]): Promise<number> {
  const t0 = process.hrtime.bigint();
  const child = spawn(argv[0]!, argv.slice(1), { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  return new Promise((resolve, reject) => {
    child.on('exit', (code) => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (code === 0) resolve(ms);
      else reject(new Error(`${argv.slice(-3).join(' ')} exited ${code}: ${err.trim()}`));
    });
  });
}

function alive(pid: number): boolean {
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

async function gone(pid: number): Promise<number> {
  const t0 = process.hrtime.bigint();
  while (alive(pid)) await new Promise((r) => setTimeout(r, 2));
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

const PHASES = ['create', 'start', 'exit', 'delete', 'delete --force', 'total'] as const;

/** One container's life under `rt`; the ms of each phase and, for tsvisor, the Sentry's timing marks. */
async function life(rt: 'tsvisor' | 'runc', i: number): Promise<{ ms: Record<string, number>; marks: Record<string, number> }> {
  const root = join(run, rt);
  const logs = join(run, 'logs') + '/';
  const base = rt === 'runc' ? [runcPath(), '--root', root] : [...tsvisor, '--root', root, '--debug-log', logs];
  const id = `ocs-${rt}-${i}`;
  const pidFile = join(run, `${id}.pid`);
  const ms: Record<string, number> = {};
  const t0 = process.hrtime.bigint();
  ms.create = await call([...base, 'create', '--bundle', dir, '--pid-file', pidFile, id]);
  const pid = Number(readFileSync(pidFile, 'utf8'));
  ms.start = await call([...base, 'start', id]);
  ms.exit = await gone(pid);
  ms.delete = await call([...base, 'delete', id]);
  ms['delete --force'] = await call([...base, 'delete', '--force', id]);
  ms.total = Number(process.hrtime.bigint() - t0) / 1e6;
  const marks: Record<string, number> = {};
  const log = join(logs, `tsvisor-${id}.log`);
  if (rt === 'tsvisor' && existsSync(log)) {
    for (const m of readFileSync(log, 'utf8').matchAll(/ timing ([\w-]+)=([\d.]+)/g)) marks[m[1]!] = Number(m[2]);
    rmSync(log);
  }
  return { ms, marks };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

try {
  bundle();
  if (argAt('--front') > 0) tsvisor = [process.argv[argAt('--front') + 1]!];
  else if (!viaNode) {
    execFileSync(process.execPath, [cli, 'install-runtime', join(dir, 'tsvisor-front')]);
    tsvisor = [join(dir, 'tsvisor-front')];
  }
  const rts = withRunc ? (['runc', 'tsvisor'] as const) : (['tsvisor'] as const);
  const results: Record<string, { ms: Record<string, number>; marks: Record<string, number> }[]> = { runc: [], tsvisor: [] };
  for (const rt of rts) await life(rt, -1); // warm-up (page cache, the helper's build)
  for (let i = 0; i < runs; i++) for (const rt of rts) results[rt]!.push(await life(rt, i));
  const fmt = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? '-' : x.toFixed(1)).padStart(9);
  process.stdout.write(`\nmedian ms of ${runs} (${tsvisor.join(' ')})\n${'call'.padEnd(16)}${rts.map((r) => r.padStart(9)).join('')}\n`);
  for (const p of PHASES) process.stdout.write(`${p.padEnd(16)}${rts.map((r) => fmt(median(results[r]!.map((x) => x.ms[p]!)))).join('')}\n`);
  const names = [...new Set(results.tsvisor!.flatMap((r) => Object.keys(r.marks)))];
  if (names.length) {
    process.stdout.write('\nthe Sentry\'s log: at-X marks are ms since its Node started, the others durations (median ms)\n');
    for (const n of names) process.stdout.write(`  ${n.padEnd(22)}${fmt(median(results.tsvisor!.map((r) => r.marks[n]).filter((x): x is number => x !== undefined)))}\n`);
  }
  process.stdout.write(`load average ${loadavg().map((l) => l.toFixed(1)).join(' ')} on ${cpus().length} CPUs\n`);
} catch (e) {
  process.stderr.write(`oci-calls: ${(e as Error).message}\n`);
  process.exitCode = 1;
} finally {
  cleanup();
}
