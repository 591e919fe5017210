// `tsvisor serve` and the interface it takes, over a real veth: killed with SIGKILL it leaves a record, and the
// next plain `serve` restores from it first, serves the original addresses, and on SIGTERM leaves the interface
// exactly as it was before the first one (addresses, routes, MTU, disable_ipv6); SIGHUP and SIGQUIT restore as
// SIGTERM does; a second serve on a served interface is refused naming the first one's pid; --mtu 1200 serves
// IPv4 alone and gives IPv6 back; a namespace deleted and recreated under a running serve never receives the
// old addresses; `tsvisor restore` by hand; `--dev lo` refused.
import t, { type Test } from 'tap';
import { type ChildProcess, execFile } from 'node:child_process';
import { existsSync, rmSync, statSync } from 'node:fs';
import { createVethPair, run, type VethPair } from '../../lib/testnet.ts';
import { TAKEOVER_DIR } from '../../lib/takeover.ts';
import { HANG_MS, waitFor } from '../lib/wait.ts';
import { CLI, startServe, stop } from './serve-helpers.ts';

const SVC4 = '198.18.219.2';
const PEER4 = '198.18.219.1';
const SVC6 = 'fd74:7376:219::2';
const PEER6 = 'fd74:7376:219::1';

function sh(argv: string[], timeout = 30000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(argv[0]!, argv.slice(1), { timeout, encoding: 'utf8' }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** A veth pair with IPv4 and IPv6 on both ends, a default route each way and an extra route with a metric on A. */
function pair(t: Test, prefix: string): VethPair {
  const p = createVethPair({ prefix, addrA: `${SVC4}/24`, addrB: `${PEER4}/24`, addr6A: `${SVC6}/64`, addr6B: `${PEER6}/64` });
  t.teardown(() => p.destroy());
  run(['ip', '-n', p.nsA, 'route', 'add', 'default', 'via', PEER4]);
  run(['ip', '-n', p.nsA, 'route', 'add', '198.19.219.0/24', 'via', PEER4, 'metric', '7']);
  run(['ip', '-n', p.nsA, '-6', 'route', 'add', 'default', 'via', PEER6]);
  return p;
}

/** The kernel's view of the interface, without what changes by itself (lifetimes, DAD state). */
function snapshot(ns: string, dev: string) {
  const link = JSON.parse(run(['ip', '-n', ns, '-j', 'addr', 'show', 'dev', dev]))[0];
  const addrs = (link.addr_info as Record<string, unknown>[]).map((a) => {
    const { valid_life_time, preferred_life_time, tentative, ...rest } = a;
    return rest;
  });
  const routes4 = JSON.parse(run(['ip', '-n', ns, '-4', '-j', 'route', 'show', 'table', 'all', 'dev', dev]));
  const routes6 = JSON.parse(run(['ip', '-n', ns, '-6', '-j', 'route', 'show', 'table', 'all', 'dev', dev]));
  // Below MTU 1280 the kernel drops IPv6 from the interface, sysctl directory and all.
  let disable6 = 'absent';
  try {
    disable6 = run(['ip', 'netns', 'exec', ns, 'sysctl', '-n', `net.ipv6.conf.${dev}.disable_ipv6`]).trim();
  } catch {}
  return { addrs, routes4, routes6, disable6, mtu: link.mtu as number };
}

/**
 * The kernel's view once it settled into `want` (IPv6 routes come back a moment after the addresses, longer on
 * a loaded machine), or as it stands after a hang bound: the caller compares it with `want`.
 */
async function settled(ns: string, dev: string, want: ReturnType<typeof snapshot>) {
  await waitFor(() => JSON.stringify(snapshot(ns, dev)) === JSON.stringify(want), HANG_MS, 'the interface to settle').catch(() => {});
  return snapshot(ns, dev);
}

function ping(ns: string, target: string, v6 = false): Promise<number> {
  return sh(['ip', 'netns', 'exec', ns, 'ping', ...(v6 ? ['-6'] : []), '-n', '-c', '2', '-i', '0.2', '-W', '20', target]).then((r) => r.code);
}

function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve({ code: child.exitCode, signal: child.signalCode });
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
}

function recordOf(ns: string, dev: string): string {
  const ino = statSync(`/var/run/netns/${ns}`).ino;
  const ifindex = JSON.parse(run(['ip', '-n', ns, '-j', 'link', 'show', 'dev', dev]))[0].ifindex as number;
  return `${TAKEOVER_DIR}/${ino}-${ifindex}.json`;
}

/** Starts serve and stops it in teardown (a no-op once it exited). */
async function serve(t: Test, args: string[]) {
  const s = await startServe(args);
  t.teardown(() => stop(s.child));
  return s;
}

t.test('kill -9 → a plain serve restores first and serves the original addresses; its SIGTERM leaves the interface as before', async (t) => {
  const p = pair(t, 'tsr-tk9');
  const before = snapshot(p.nsA, p.devA);
  const record = recordOf(p.nsA, p.devA);
  const first = await serve(t, ['--netns', p.nsA, '--dev', p.devA]);
  t.ok(existsSync(record), 'the record is written while serving');
  first.child.kill('SIGKILL');
  t.same((await exited(first.child)).signal, 'SIGKILL');
  t.same(snapshot(p.nsA, p.devA).addrs, [], 'killed outright, serve left the interface without addresses');
  t.ok(existsSync(record), 'and left its record');

  const second = await serve(t, ['--netns', p.nsA, '--dev', p.devA]);
  t.match(second.stderr(), new RegExp(`restored '${p.devA}' in '${p.nsA}' as it was before tsvisor serve \\(pid ${first.child.pid}\\)`), 'says it restored the dead one\'s leftovers');
  t.match(second.stderr(), new RegExp(`serving on ${p.nsA}/${p.devA} \\(${SVC4}/24 ${SVC6}/64\\)`), 'serves the original addresses');
  t.equal(await ping(p.nsB, SVC4), 0, 'IPv4 answered');
  t.equal(await ping(p.nsB, SVC6, true), 0, 'IPv6 answered');
  t.equal(await stop(second.child), 0, 'exit 0 on SIGTERM');
  t.same(await settled(p.nsA, p.devA, before), before, 'addresses, routes, MTU and disable_ipv6 exactly as before the first serve');
  t.notOk(existsSync(record), 'the record is gone once restored');
});

for (const sig of ['SIGHUP', 'SIGQUIT'] as const) {
  t.test(`${sig} → serve restores the interface and exits 0`, async (t) => {
    const p = pair(t, `tsr-tk${sig === 'SIGHUP' ? 'h' : 'q'}`);
    const before = snapshot(p.nsA, p.devA);
    const s = await serve(t, ['--netns', p.nsA, '--dev', p.devA]);
    s.child.kill(sig);
    t.same(await exited(s.child), { code: 0, signal: null });
    t.same(await settled(p.nsA, p.devA, before), before, 'interface exactly as before');
  });
}

t.test('a second serve (or restore) on a served interface → refused naming the first one\'s pid; the first serves on', async (t) => {
  const p = pair(t, 'tsr-tk2');
  const first = await serve(t, ['--netns', p.nsA, '--dev', p.devA]);
  const pid = first.child.pid;
  for (const args of [['serve', '--netns', p.nsA, '--dev', p.devA], ['serve', '--netns', p.nsA, '--dev', p.devA, '--addr', '198.18.219.3/24'], ['restore', '--netns', p.nsA, '--dev', p.devA]]) {
    const r = await sh([process.execPath, CLI, ...args]);
    t.equal(r.code, 1, `${args.join(' ')}: exit 1`);
    t.match(r.stderr, new RegExp(`^tsvisor: interface '${p.devA}' in '${p.nsA}' is already taken by tsvisor serve \\(pid ${pid}\\)[^\\n]*\\n$`), 'one line naming the pid');
  }
  t.ok(existsSync(`/run/tsvisor/${p.nsA}.${p.devA}.sock`), 'the first one\'s stats socket is still there');
  const stats = await sh([process.execPath, CLI, 'stats', '--netns', p.nsA, '--dev', p.devA, '--json']);
  t.equal(stats.code, 0, 'and answers');
  t.equal(await ping(p.nsB, SVC4), 0, 'the first one still answers');
  t.equal(await stop(first.child), 0);
});

t.test('--mtu 1200 with IPv6 configured → IPv4 served with a warning; MTU and IPv6 back on exit', async (t) => {
  const p = pair(t, 'tsr-tkm');
  const before = snapshot(p.nsA, p.devA);
  const s = await serve(t, ['--netns', p.nsA, '--dev', p.devA, '--mtu', '1200']);
  t.match(s.stderr(), /MTU 1200 is below IPv6's minimum of 1280: serving IPv4 only/);
  t.match(s.stderr(), new RegExp(`serving on ${p.nsA}/${p.devA} \\(${SVC4}/24\\)`), 'IPv4 alone');
  t.equal(snapshot(p.nsA, p.devA).mtu, 1200, 'MTU lowered while serving');
  t.equal(await ping(p.nsB, SVC4), 0, 'IPv4 answered');
  t.equal(await stop(s.child), 0);
  t.same(await settled(p.nsA, p.devA, before), before, 'MTU, IPv6 addresses and routes exactly as before');
});

t.test('namespace deleted and recreated under a running serve → its restore never reaches the new namespace', async (t) => {
  const p = pair(t, 'tsr-tkn');
  const s = await serve(t, ['--netns', p.nsA, '--dev', p.devA]);
  // The name now belongs to a new namespace with an interface of the same name and an address of its own.
  run(['ip', 'netns', 'del', p.nsA]);
  run(['ip', 'netns', 'add', p.nsA]);
  run(['ip', '-n', p.nsA, 'link', 'add', p.devA, 'type', 'veth', 'peer', 'name', 'tsr-x']);
  run(['ip', '-n', p.nsA, 'addr', 'add', '198.18.220.9/24', 'dev', p.devA]);
  run(['ip', '-n', p.nsA, 'link', 'set', p.devA, 'up']);
  const fresh = snapshot(p.nsA, p.devA);
  t.equal(await stop(s.child), 0, 'serve exits 0');
  t.same(snapshot(p.nsA, p.devA), fresh, 'the new namespace\'s interface kept exactly its own configuration');
  t.same(JSON.parse(run(['ip', '-n', p.nsA, '-j', 'route', 'show'])).map((r: { dst: string }) => r.dst), ['198.18.220.0/24'], 'and got no route of the old one');
});

t.test('kill -9, then `tsvisor restore` by hand → the interface as before; a second restore has nothing to do', async (t) => {
  const p = pair(t, 'tsr-tkr');
  const before = snapshot(p.nsA, p.devA);
  const s = await serve(t, ['--netns', p.nsA, '--dev', p.devA]);
  s.child.kill('SIGKILL');
  await exited(s.child);
  const r = await sh([process.execPath, CLI, 'restore', '--netns', p.nsA, '--dev', p.devA]);
  t.equal(r.code, 0, `exit 0 ${r.stderr}`);
  t.match(r.stdout, new RegExp(`^tsvisor: restored '${p.devA}' in '${p.nsA}' as it was before tsvisor serve \\(pid ${s.child.pid}\\)`));
  t.same(await settled(p.nsA, p.devA, before), before, 'interface exactly as before');
  t.notOk(existsSync(`/run/tsvisor/${p.nsA}.${p.devA}.sock`), 'and the killed serve\'s stats socket removed');
  const again = await sh([process.execPath, CLI, 'restore', '--netns', p.nsA, '--dev', p.devA]);
  t.equal(again.code, 0);
  t.match(again.stdout, /nothing to restore/);
});

t.test('kill -9, namespace deleted and recreated → the next serve applies nothing of the old record', async (t) => {
  const p = pair(t, 'tsr-tkd');
  const s = await serve(t, ['--netns', p.nsA, '--dev', p.devA]);
  const oldRecord = recordOf(p.nsA, p.devA);
  t.teardown(() => rmSync(oldRecord, { force: true }));
  s.child.kill('SIGKILL');
  await exited(s.child);
  p.destroy();
  // Same names and interface names, another namespace; its ifindex and even its inode number may well repeat.
  const q = createVethPair({ prefix: 'tsr-tkd', addrA: '198.18.220.2/24', addrB: '198.18.220.1/24' });
  t.teardown(() => q.destroy());
  const before = snapshot(q.nsA, q.devA);
  const s2 = await serve(t, ['--netns', q.nsA, '--dev', q.devA]);
  t.notMatch(s2.stderr(), /restored/, 'nothing restored');
  t.match(s2.stderr(), new RegExp(`serving on ${q.nsA}/${q.devA} \\(198\\.18\\.220\\.2/24\\)`), 'serves the new namespace\'s own address');
  t.equal(await stop(s2.child), 0);
  t.same(await settled(q.nsA, q.devA, before), before, 'and leaves it as it was');
});

t.test('--dev lo → refused in one line; loopback untouched', async (t) => {
  const p = createVethPair({ prefix: 'tsr-tkl', addrA: `${SVC4}/24`, addrB: `${PEER4}/24` });
  t.teardown(() => p.destroy());
  const lo = snapshot(p.nsA, 'lo');
  const r = await sh([process.execPath, CLI, 'serve', '--netns', p.nsA, '--dev', 'lo']);
  t.equal(r.code, 1);
  t.match(r.stderr, /^tsvisor: interface 'lo' in 'tsr-tkl-a' is a loopback interface, not Ethernet[^\n]*\n$/);
  t.same(snapshot(p.nsA, 'lo'), lo, 'lo keeps 127.0.0.1 and ::1');
});

t.test('--tap naming an existing veth → refused in one line saying what it is; the veth untouched', async (t) => {
  const p = createVethPair({ prefix: 'tsr-tkt', addrA: `${SVC4}/24`, addrB: `${PEER4}/24` });
  t.teardown(() => p.destroy());
  const before = snapshot(p.nsA, p.devA);
  const r = await sh([process.execPath, CLI, 'serve', '--netns', p.nsA, '--dev', p.devA, '--tap', '--addr', `${SVC4}/24`]);
  t.equal(r.code, 1);
  t.equal(r.stderr, `tsvisor: interface '${p.devA}' already exists in '${p.nsA}' and is a veth, not a TAP: drop --tap to take it over, or give --dev a new name for the TAP to create\n`);
  t.same(snapshot(p.nsA, p.devA), before, 'the veth kept its configuration');
});
