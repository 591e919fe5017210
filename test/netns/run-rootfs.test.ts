// `tsvisor run --rootfs DIR [--ro]` (issue 12): a busybox root served by the Gofer through FUSE.
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, chownSync, copyFileSync, lstatSync, readlinkSync, existsSync, statSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { HANG_MS, waitFor, within } from '../lib/wait.ts';
import { CLI, collect, fetchedSha256, spawnIn, tsvisorRun, waitFor as pollFor } from './run-helpers.ts';
import { deleteNetns, run } from '../../lib/testnet.ts';

const CANARY = 'canary: no sandbox may read me\n';

/** /var/tmp/tgr-*: `root/` a busybox root (bin/ with the applets, proc/ dev/ tmp/ etc/), `canary` beside it. */
function busyboxRoot(t: Test): { dir: string; root: string; canary: string } {
  const dir = mkdtempSync('/var/tmp/tgr-');
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const root = join(dir, 'root');
  for (const d of ['bin', 'proc', 'dev', 'tmp', 'etc', 'work']) mkdirSync(join(root, d), { recursive: true });
  copyFileSync('/bin/busybox', join(root, 'bin/busybox'));
  chmodSync(join(root, 'bin/busybox'), 0o755);
  for (const a of ['sh', 'ls', 'cat', 'find', 'echo', 'mkdir', 'rm', 'mknod', 'readlink', 'ln', 'mv', 'wc', 'stat', 'xargs', 'grep', 'id', 'sort', 'dd', 'tar', 'httpd', 'head', 'od', 'tr', 'chmod']) {
    symlinkSync('busybox', join(root, 'bin', a));
  }
  chmodSync(join(root, 'work'), 0o777); // the program runs as an unprivileged host user: a place it may write
  writeFileSync(join(root, 'etc/x'), 'inside x\n');
  const canary = join(dir, 'canary');
  writeFileSync(canary, CANARY);
  symlinkSync(canary, join(root, 'abs'));
  symlinkSync('../../../../../../canary', join(root, 'etc/rel'));
  symlinkSync('/proc/1/root/../../../../canary', join(root, 'viaproc'));
  return { dir, root, canary };
}


/** Mounts that a run over `root` left behind (FUSE, overlay, tmpfs: each names DIR as its source), and gofers still running over it. */
function leftovers(root: string): string[] {
  const left = readFileSync('/proc/self/mounts', 'utf8').split('\n').filter((l) => l.includes('tsvisor-rootfs-') && l.includes(root));
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8');
      if (cmd.includes('gofer') && cmd.includes(root)) left.push(`gofer pid ${p}`);
    } catch {
      // gone
    }
  }
  return left;
}

/** The pids of the confined gofer serving `root` (the node process under the bwrap whose arguments name it). */
function goferPids(root: string): number[] {
  const info = new Map<number, { ppid: number; cmd: string }>();
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      info.set(Number(p), { ppid: Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]), cmd: readFileSync(`/proc/${p}/cmdline`, 'utf8') });
    } catch {
      // gone
    }
  }
  const ours = (pid: number): boolean => {
    for (let at = info.get(pid); at; at = info.get(at.ppid)) if (at.cmd.includes('bwrap') && at.cmd.includes(root)) return true;
    return false;
  };
  return [...info].filter(([pid, i]) => i.cmd.includes('--no-confine') && !i.cmd.startsWith('bwrap\0') && ours(pid)).map(([pid]) => pid);
}

function fdCount(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return 0;
  }
}

async function settle(root: string): Promise<string[]> {
  // The gofer gets SIGTERM as run exits; give it a moment to finish.
  for (let i = 0; i < 100; i++) {
    if (leftovers(root).length === 0) return [];
    await new Promise((r) => setTimeout(r, 100));
  }
  return leftovers(root);
}

t.test('a busybox root: the program sees DIR as /, reads and lists it, /tmp /proc /dev its own; nothing left', async (t) => {
  const { root } = busyboxRoot(t);
  const r = await tsvisorRun(undefined, ['--network=none', '--rootfs', root, '--', 'sh', '-c',
    'ls /; echo ---; cat /etc/x; echo hi > /tmp/t && cat /tmp/t; ls /dev/null /dev/urandom; cat /proc/self/comm; ' +
    'echo made > /work/new; mkdir /work/sub && echo deep > /work/sub/f; find / -xdev -type f | sort']);
  t.equal(r.code, 0, r.stderr);
  const [ls, rest] = r.stdout.split('---\n');
  t.same(ls!.trim().split('\n').sort(), readdirSync(root).sort(), 'ls / is DIR');
  t.match(rest, /^inside x\nhi\n\/dev\/null\n\/dev\/urandom\ncat\n/);
  t.match(rest, /\/bin\/busybox\n\/etc\/x\n\/work\/new\n\/work\/sub\/f\n/, 'find walks the root');
  t.equal(readFileSync(join(root, 'work/new'), 'utf8'), 'made\n', 'a write to a writable directory lands in DIR');
  t.equal(readFileSync(join(root, 'work/sub/f'), 'utf8'), 'deep\n', 'a directory the program made is its own to write in');
  t.equal(statSync(join(root, 'work/sub')).uid, 65534, "what it makes belongs to its host identity (the gofer makes it as root, then chowns)");
  t.notOk(existsSync(join(root, 'tmp/t')), "the program's /tmp is its own");
  t.same(readdirSync(join(root, 'dev')), [], 'nothing created in DIR/dev');
  t.same(await settle(root), [], 'no mount, no gofer left');
});

/** Every name under `dir`, relative to it, with its type, permission bits, size and content or link target. */
function tree(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    const p = join(dir, rel);
    const st = lstatSync(p);
    let what = 'dir';
    if (st.isSymbolicLink()) what = `-> ${readlinkSync(p)}`;
    else if (st.isFile()) what = createHash('sha256').update(readFileSync(p)).digest('hex');
    out.push(`${rel} ${(st.mode & 0o7777).toString(8)} ${st.size} ${what}`);
    if (st.isDirectory()) for (const n of readdirSync(p).sort()) walk(rel ? `${rel}/${n}` : n);
  };
  walk('');
  return out;
}

t.test('busybox tar inside the root: -c of a small tree, then -x of it elsewhere; names, modes, links and content arrive whole', async (t) => {
  const { root } = busyboxRoot(t);
  const r = await tsvisorRun(undefined, ['--network=none', '--rootfs', root, '--', 'sh', '-c', [
    'mkdir -p /work/src/a/b', 'echo one > /work/src/a/f1', 'echo two > /work/src/a/b/f2', 'chmod 640 /work/src/a/b/f2',
    'ln -s ../f1 /work/src/a/b/l', 'head -c 300000 /dev/urandom > /work/src/big',
    'cd /work', 'tar -cf t.tar src', 'mkdir out', 'tar -xf t.tar -C out', 'tar -tf t.tar | sort', 'cat out/src/a/b/l out/src/a/b/f2'].join(' && ')]);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, 'src/\nsrc/a/\nsrc/a/b/\nsrc/a/b/f2\nsrc/a/b/l\nsrc/a/f1\nsrc/big\none\ntwo\n', 'tar lists the tree; the link and the file read back inside');
  const src = tree(join(root, 'work/src'));
  t.equal(src.length, 7, 'the tree the program made is in DIR');
  t.match(src.join('\n'), /^a\/b\/f2 640 4 /m, 'with its chmod');
  t.match(src.join('\n'), /^big 644 300000 /m, 'and its 300,000 random bytes');
  t.same(tree(join(root, 'work/out/src')), src, 'the unpacked copy matches it name by name: modes, sizes, link targets, sha-256 of every file');
  t.ok(statSync(join(root, 'work/t.tar')).size > 300000, 'the archive holds the data');
  t.same(await settle(root), []);
});

t.test('an untar into a directory made inside: its files made ahead of their names (TSVISOR_FUSE_STATS), each named with its bytes; TSVISOR_FUSE_CREATE_AHEAD=0 makes none ahead', async (t) => {
  const { root } = busyboxRoot(t);
  const script = [
    'mkdir -p /work/src', 'for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo "file $i" > /work/src/f$i; done', 'cd /work',
    'tar -cf t.tar src', 'mkdir $OUT', 'tar -xf t.tar -C $OUT'].join(' && ');
  const ahead = async (out: string, env: NodeJS.ProcessEnv) => {
    const r = await tsvisorRun(undefined, ['--network=none', '--rootfs', root, '--', 'sh', '-c', script.replaceAll('$OUT', out)], { env: { ...process.env, TSVISOR_FUSE_STATS: '1', ...env } });
    t.equal(r.code, 0, r.stderr);
    const m = /"createdAhead":(\d+)/.exec(r.stderr);
    t.ok(m, 'the server\'s counts are printed');
    t.same(tree(join(root, 'work', out, 'src')), tree(join(root, 'work/src')), `${out}: every file arrived, name, mode, size and sha-256`);
    return Number(m?.[1]);
  };
  t.ok((await ahead('on', {})) >= 10, 'made ahead: the files of the directory tar made');
  t.equal(await ahead('off', { TSVISOR_FUSE_CREATE_AHEAD: '0' }), 0, 'none with TSVISOR_FUSE_CREATE_AHEAD=0');
  t.same(await settle(root), []);
});

t.test('busybox httpd inside the root in --network=sandbox serves a file of DIR to curl on the peer', async (t) => {
  const { dir, root } = busyboxRoot(t);
  const ns = 'tqp-bb-httpd';
  deleteNetns(ns);
  run(['ip', 'netns', 'add', ns]);
  run(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
  t.teardown(() => deleteNetns(ns));
  mkdirSync(join(root, 'srv'));
  const body = randomBytes(256 << 10);
  writeFileSync(join(root, 'srv/file'), body);
  const sha = createHash('sha256').update(body).digest('hex');
  const log = join(dir, 'run.log');
  const child = spawnIn(ns, [process.execPath, CLI, 'run', '--debug-log', log, '--network=sandbox', '--rootfs', root, '--ro', '--',
    'httpd', '-f', '-p', '8000', '-h', '/srv']);
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const read = () => (existsSync(log) ? readFileSync(log, 'utf8') : '');
  t.ok(await pollFor(() => read().includes('timing ready='), 60000), `run started ${err}`);
  const sandbox = /↔ \S+ \((198\.18\.\d+\.\d+)\/30/.exec(read())?.[1];
  t.ok(sandbox, 'the sandbox address is in the log');
  const got = await fetchedSha256(ns, `http://${sandbox}:8000/file`, sha);
  t.equal(got, sha, 'the file arrives whole at the peer');
  const out = await collect(spawnIn(ns, ['curl', '-sS', '-m', '20', '--path-as-is', '-w', '\\n%{http_code}', `http://${sandbox}:8000/../../canary`]));
  t.notMatch(out.stdout, /canary: no sandbox|\n200$/, `a path climbing out of the root is not served (${out.stdout.split('\n').pop()})`);
  child.kill('SIGTERM');
  await new Promise((r) => child.once('close', r));
  t.same(await settle(root), []);
});

t.test("/dev and /proc are the sandbox's own under --rootfs: /dev/full ENOSPC, /dev/zero zeros, random bytes, /dev/tty no terminal, /proc/1 the sandbox's init", async (t) => {
  const { root } = busyboxRoot(t);
  const r = await tsvisorRun(undefined, ['--network=none', '--rootfs', root, '--', 'sh', '-c', [
    'echo x > /dev/full; echo full=$?', 'head -c 32 /dev/zero | od -An -v -tx1 | tr -d " \\n"; echo',
    'head -c 16 /dev/random | od -An -v -tx1 | tr -d " \\n"; echo', 'head -c 16 /dev/urandom | od -An -v -tx1 | tr -d " \\n"; echo',
    'ls -l /dev/full /dev/zero /dev/random /dev/urandom /dev/tty /dev/null', 'echo > /dev/tty; echo tty=$?',
    'echo ---', 'cat /proc/1/cmdline | tr "\\0" " "; echo', 'echo ---', 'ls /proc | grep "^[0-9]" | sort -n | tr "\\n" " "; echo', 'echo self=$$'].join('; ')]);
  t.equal(r.code, 0, r.stderr);
  const [dev, init, pids] = r.stdout.split('---\n') as [string, string, string];
  const lines = dev.split('\n');
  t.equal(lines[0], 'full=1', 'a write to /dev/full fails');
  t.match(r.stderr, /write error: No space left on device/, 'with ENOSPC');
  t.equal(lines[1], '00'.repeat(32), '/dev/zero reads zeros');
  t.match(lines[2], /^[0-9a-f]{32}$/, '/dev/random gives 16 bytes');
  t.match(lines[3], /^[0-9a-f]{32}$/, '/dev/urandom gives 16 bytes');
  t.not(lines[2], lines[3], 'and they differ');
  t.not(lines[2], '00'.repeat(16), 'random bytes are not zeros');
  for (const [name, num] of [['full', '1, +7'], ['zero', '1, +5'], ['random', '1, +8'], ['urandom', '1, +9'], ['tty', '5, +0'], ['null', '1, +3']]) {
    t.match(dev, new RegExp(`^c[-rw]+ .* ${num} .*/dev/${name}$`, 'm'), `/dev/${name} is the character device ${num!.replace('+', '')}`);
  }
  t.match(r.stderr, /can't create \/dev\/tty: No such device or address/, '/dev/tty: the program has no controlling terminal (its own session)');
  t.match(dev, /^tty=[1-9]/m);
  const host1 = readFileSync('/proc/1/cmdline', 'utf8').replaceAll('\0', ' ');
  t.not(init.trim(), host1.trim(), "/proc/1 is not the host's init");
  t.match(init, /^bwrap .* -- sh -c /, "/proc/1 is the sandbox's init, which runs the program");
  const inside = pids.trim().split('\n')[0]!.trim().split(' ').map(Number);
  t.equal(inside[0], 1, 'the pids start at 1');
  t.ok(inside.length < 10, `the sandbox sees only its own few processes (${inside.join(' ')})`);
  t.match(pids, /^self=[2-9]$/m, "the program's own pid is the sandbox's");
  t.ok(readdirSync('/proc').filter((p) => /^\d+$/.test(p)).length > inside.length, 'the host has more');
  t.same(readdirSync(join(root, 'dev')), [], 'nothing created in DIR/dev');
  t.same(await settle(root), []);
});

t.test("the program's last chmod and utimes before it exits are in DIR when run returns (written behind, settled before the unmount)", async (t) => {
  const { root } = busyboxRoot(t);
  const r = await tsvisorRun(undefined, ['--network=none', '--rootfs', root, '--', 'sh', '-c',
    'echo last > /work/f && busybox chmod 604 /work/f && busybox touch -d "2001-02-03 04:05:06" /work/f']);
  t.equal(r.code, 0, r.stderr);
  const st = statSync(join(root, 'work/f'));
  t.equal(st.mode & 0o7777, 0o604, 'the chmod reached the host file');
  t.equal(st.mtime.toISOString(), '2001-02-03T04:05:06.000Z', 'and the utimes');
});

t.test('escapes: symlinks (absolute, relative, through ..), /proc/self/root, /proc/1/cwd, mknod; the canary stays unread', async (t) => {
  const { root, canary, dir } = busyboxRoot(t);
  const tries = [
    `cat /abs`,
    `cat /etc/rel`,
    `cat /viaproc`,
    `cat /proc/self/root/${canary}`,
    `cat /proc/self/root/../../../canary`,
    `cat /proc/1/cwd/../../canary`,
    `cat ${canary}`,
    `cat ${dir}/root/etc/x`,
    `ln /abs /work/hard`,
    `ln /dev/null /work/devlink`,
    `ln /proc/self/exe /work/exelink`,
    `mknod /work/null c 1 3`,
  ];
  const r = await tsvisorRun(undefined, ['--network=none', '--rootfs', root, '--', 'sh', '-c',
    tries.map((c) => `${c} && echo "ESCAPED: ${c}"`).join('; ') + '; readlink /proc/self/root; true']);
  t.equal(r.code, 0, r.stderr);
  t.notMatch(r.stdout, /ESCAPED/, 'every attempt fails');
  t.notMatch(r.stdout + r.stderr, /canary: no sandbox/, 'the canary is never read');
  t.match(r.stdout, /^\/\n$/m, '/proc/self/root is /');
  t.equal(readFileSync(canary, 'utf8'), CANARY);
  t.notOk(existsSync(join(root, 'work/null')), 'no device node made');
  t.same(readdirSync(join(root, 'work')), [], 'no hard link made into DIR from outside it');
  t.same(await settle(root), []);
});

t.test('--ro: every change fails with EROFS, DIR unchanged', async (t) => {
  const { root } = busyboxRoot(t);
  const changes = ['echo w > /work/w', 'echo w >> /etc/x', 'rm /etc/x', 'mkdir /work/d', 'mv /etc/x /work/y', 'ln -s a /work/l'];
  const r = await tsvisorRun(undefined, ['--network=none', '--rootfs', root, '--ro', '--', 'sh', '-c',
    changes.map((c) => `${c} 2>&1 || true`).join('; ') + '; cat /etc/x']);
  t.equal(r.code, 0, r.stderr);
  t.equal((r.stdout + r.stderr).match(/Read-only file system/g)?.length, changes.length, r.stdout + r.stderr);
  t.match(r.stdout, /inside x\n$/);
  t.same(readdirSync(join(root, 'work')), []);
  t.equal(readFileSync(join(root, 'etc/x'), 'utf8'), 'inside x\n');
  t.same(await settle(root), []);
});

t.test('bad --rootfs input: one line, non-zero status, nothing left', async (t) => {
  const { dir, root } = busyboxRoot(t);
  writeFileSync(join(dir, 'plain'), 'x');
  const noproc = join(dir, 'noproc');
  mkdirSync(noproc);
  const cases: [string[], number, RegExp][] = [
    [['--rootfs', join(dir, 'nope')], 1, /--rootfs: '.*nope' does not exist/],
    [['--rootfs', join(dir, 'plain')], 1, /is not a directory/],
    [['--rootfs', noproc], 1, /has no \/proc directory/],
    [['--rootfs', 'relative'], 2, /not an absolute path/],
    [['--ro'], 2, /--ro needs --rootfs/],
    [['--overlay'], 2, /--overlay needs --rootfs/],
    [['--rootfs', root, '--ro', '--overlay'], 2, /--ro and --overlay exclude each other/],
  ];
  for (const [args, status, re] of cases) {
    const r = await tsvisorRun(undefined, ['--network=none', ...args, '--', 'true']);
    t.equal(r.code, status, `${args.join(' ')}: status`);
    t.match(r.stderr, re);
    t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
  }
  t.same(await settle(root), []);
});

t.test('a rename race: the host swaps a directory with a symlink out of DIR while the program opens through it, 10,000 rounds', async (t) => {
  const { dir, root } = busyboxRoot(t);
  mkdirSync(join(root, 'work/d'));
  writeFileSync(join(root, 'work/d/f'), 'inside\n');
  mkdirSync(join(dir, 'outside'));
  writeFileSync(join(dir, 'outside/f'), CANARY);
  // Both an absolute link (the host's path of outside/) and a relative one climbing out of DIR.
  symlinkSync(join(dir, 'outside'), join(root, 'work/abs'));
  symlinkSync('../../outside', join(root, 'work/rel'));
  // The swapper: renameat2(RENAME_EXCHANGE) of work/d with each link in turn, as fast as it goes; on SIGTERM it
  // prints how many exchanges succeeded.
  const swapper = spawn('python3', ['-c', `
import ctypes, os, signal
libc = ctypes.CDLL(None, use_errno=True)
w = os.open(${JSON.stringify(join(root, 'work'))}, os.O_PATH)
n = 0
def stop(*_):
    print(n, flush=True)
    os._exit(0)
signal.signal(signal.SIGTERM, stop)
while True:
    for l in (b'abs', b'rel'):
        n += (libc.renameat2(w, b'd', w, l, 2) == 0) + (libc.renameat2(w, b'd', w, l, 2) == 0)
`], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => {
    swapper.kill('SIGKILL');
  });
  let swapped = '';
  swapper.stdout!.on('data', (d) => (swapped += d));
  const swapperDone = new Promise((r) => swapper.once('close', r));
  const r = await tsvisorRun(undefined, ['--network=none', '--rootfs', root, '--', 'sh', '-c',
    'exec 2>/dev/null; i=0; while [ $i -lt 10000 ]; do if read l < /work/d/f; then echo "$l"; else echo miss; fi; i=$((i+1)); done; echo done'],
    { timeoutMs: 300000 });
  swapper.kill('SIGTERM');
  await swapperDone;
  t.equal(r.code, 0, r.stderr.slice(0, 500));
  const lines = r.stdout.trim().split('\n');
  t.equal(lines.pop(), 'done');
  t.equal(lines.length, 10000, 'all 10,000 rounds ran');
  t.notMatch(r.stdout, /canary/, 'the file outside is never read');
  t.ok(Number(swapped) > 10000, `the swapper exchanged the directory and the links ${swapped.trim()} times meanwhile`);
  // A round meets the directory or a link, which resolves inside the sandbox's root to nothing. How many meet each
  // is up to the FUSE side's entry cache (a name's answer is kept for a second): about half each in most runs
  // (5,105 and 4,895 in one), all 10,000 a link in one of six, so only the swapper's count above shows the race ran.
  const found = lines.filter((l) => l === 'inside').length;
  const missed = lines.filter((l) => l === 'miss').length;
  t.equal(found + missed, 10000, `each round either read the file inside (${found}) or found nothing (${missed})`);
  t.same(await settle(root), []);
});

t.test('find + stat over 30,000 files, more than the FUSE side keeps (8,192 nodes): all seen, the gofer\'s descriptors stay bounded', async (t) => {
  const { root } = busyboxRoot(t);
  // 30 directories of 1,000 one-byte files: more than the gofer's fid cap (its descriptor limit less 512, 19,488
  // here) that one fid per cached inode ran into (EMFILE).
  for (let d = 0; d < 30; d++) {
    mkdirSync(join(root, `work/many/d${d}`), { recursive: true });
    for (let i = 0; i < 1000; i++) writeFileSync(join(root, `work/many/d${d}/f${i}`), 'x');
  }
  let maxFds = 0;
  let pids: number[] = [];
  const sampler = setInterval(() => {
    if (pids.length === 0) pids = goferPids(root);
    for (const p of pids) maxFds = Math.max(maxFds, fdCount(p));
  }, 50);
  t.teardown(() => clearInterval(sampler));
  const r = await tsvisorRun(undefined, ['--network=none', '--rootfs', root, '--', 'sh', '-c',
    'find /work/many -type f | wc -l; find /work/many -type f | xargs stat -c %s | grep -c "^1$"; find /work/many | xargs stat -c %i | sort -u | wc -l'],
    { timeoutMs: 180000 });
  clearInterval(sampler);
  t.equal(r.code, 0, r.stderr.slice(0, 500));
  t.same(r.stdout.trim().split('\n').map(Number), [30000, 30000, 30031], 'every file found and stat\'d, every inode distinct');
  t.notMatch(r.stderr, /Too many open files|Input\/output error/);
  t.ok(pids.length > 0, 'the gofer was watched');
  t.ok(maxFds > 0 && maxFds < 8192 + 512, `the gofer held at most ${maxFds} descriptors`);
  t.same(await settle(root), []);
});

/** Every name under `dir` with its type, mode, owner, size, times (not atime), inode, links and content. */
function snapshot(dir: string): string[] {
  const out: string[] = [];
  const walk = (p: string) => {
    const st = lstatSync(p);
    let what = '';
    if (st.isSymbolicLink()) what = `-> ${readlinkSync(p)}`;
    else if (st.isFile()) what = readFileSync(p).toString('base64');
    out.push(`${p} ${st.mode} ${st.uid}:${st.gid} ${st.size} ${st.mtimeMs} ${st.ctimeMs} ${st.ino} ${st.nlink} ${what}`);
    if (st.isDirectory()) for (const n of readdirSync(p).sort()) walk(join(p, n));
  };
  walk(dir);
  return out;
}

t.test('--overlay: the program writes, renames, unlinks, makes and removes directories and sees it all; DIR is unchanged byte for byte, and the next run sees none of it', async (t) => {
  const { root } = busyboxRoot(t);
  writeFileSync(join(root, 'work/old'), 'old\n');
  writeFileSync(join(root, 'work/gone'), 'to be removed\n');
  mkdirSync(join(root, 'work/sub'));
  writeFileSync(join(root, 'work/sub/keep'), 'kept\n');
  for (const p of ['work/old', 'work/gone', 'work/sub/keep']) chmodSync(join(root, p), 0o666);
  chmodSync(join(root, 'work/sub'), 0o777);
  const before = snapshot(root);
  const r = await tsvisorRun(undefined, ['--network=none', '--rootfs', root, '--overlay', '--', 'sh', '-c', [
    'echo new > /work/new', 'echo more >> /work/old', 'mkdir -p /work/d/e', 'mv /work/new /work/d/e/moved', 'rm /work/gone',
    'mv /work/sub/keep /work/sub/renamed', 'mkdir /work/tmpdir', 'rm -r /work/tmpdir', 'dd if=/dev/zero of=/work/zeros bs=64k count=16 2>/dev/null',
    'cat /work/old /work/d/e/moved', 'ls /work | sort | xargs echo', 'ls /work/sub', 'wc -c < /work/zeros'].join(' && ')]);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, 'old\nmore\nnew\nd old sub zeros\nrenamed\n1048576\n', 'the program saw each of its changes');
  t.same(snapshot(root), before, 'DIR: the same names, contents, modes, owners, times and inodes');
  const again = await tsvisorRun(undefined, ['--network=none', '--rootfs', root, '--overlay', '--', 'sh', '-c', 'cat /work/old; ls /work | sort | xargs echo']);
  t.equal(again.code, 0, again.stderr);
  t.equal(again.stdout, 'old\ngone old sub\n', 'a second run starts from DIR again: the writes went with the first');
  t.same(await settle(root), [], 'no FUSE, overlay or tmpfs mount and no gofer left');
});

t.test('a setuid-root binary inside DIR gains nothing: it cannot read a root-only file of DIR (nosuid, no new privileges)', async (t) => {
  const { root } = busyboxRoot(t);
  copyFileSync('/bin/busybox', join(root, 'bin/suid'));
  chownSync(join(root, 'bin/suid'), 0, 0);
  chmodSync(join(root, 'bin/suid'), 0o4755);
  writeFileSync(join(root, 'etc/secret'), 'root only\n', { mode: 0o600 });
  chownSync(join(root, 'etc/secret'), 0, 0);
  t.equal(statSync(join(root, 'bin/suid')).mode & 0o7777, 0o4755);
  // busybox picks its applet by the name it is run as: the set-uid copy under two applet names.
  mkdirSync(join(root, 'suid'));
  for (const n of ['cat', 'grep']) symlinkSync('/bin/suid', join(root, 'suid', n));
  const r = await tsvisorRun(undefined, ['--network=none', '--rootfs', root, '--', 'sh', '-c',
    'ls -l /bin/suid; /suid/cat /etc/secret && echo GAINED; grep ^Uid /proc/self/status; /suid/grep ^Uid /proc/self/status']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /^-rwsr-xr-x/, 'the set-uid bit shows');
  t.match(r.stderr, /cat: can't open '\/etc\/secret': Permission denied/);
  t.notMatch(r.stdout, /root only|GAINED/, 'the secret stays unread');
  const uids = r.stdout.split('\n').filter((l) => l.startsWith('Uid'));
  t.equal(uids.length, 2);
  t.equal(uids[0], uids[1], 'the set-uid program runs with the same ids as its caller');
  t.same(await settle(root), []);
});

// Under --overlay the FUSE mount is overlayfs's lower layer and the calls fail with EIO as without it, but the
// program's opendir of / succeeds (overlayfs opens the upper directory) and its getdents64 fails with EIO (strace),
// which busybox's ls takes for the end of the listing: it prints nothing and exits 0. Names the program had looked
// up before the kill and reaches again once their entries have expired (`cd /bin`, `/etc/x` after the test's "go",
// two seconds after the kill; the entry validity is one) make the kernel revalidate the FUSE dentry with a LOOKUP:
// failed, overlayfs turned it into ESTALE (ovl_revalidate_real); the server now answers it from what it knew, so
// the dentry stays and the call itself gives EIO.
for (const mode of ['', '--overlay']) t.test(`${mode || 'writable'}: the gofer killed under a running program: its next file calls fail with EIO, none reaches a host file; run ends, nothing left`, async (t) => {
  const { root, canary } = busyboxRoot(t);
  const overlay = mode === '--overlay';
  // Only shell built-ins after the kill (read, echo, [, cd), so that each failure is one open of the program's own,
  // then one exec (ls) of the binary the kernel still has.
  // `read go` takes the test's word from standard input (a pipe, not the mount): it comes once the entries the
  // program looked up before the kill (/bin, /etc, /etc/x) have expired, so that reaching them again revalidates.
  const child = spawn(process.execPath, [CLI, 'run', '--network=none', '--rootfs', root, ...(overlay ? [mode] : []), '--', 'sh', '-c', [
    'read l < /etc/x && echo "first $l"', 'cd /bin', 'cd /', 'echo up', 'i=0', 'while [ $i -lt 1000000 ] && read l < /etc/x; do i=$((i+1)); done',
    'echo "reads $i"', 'read l < /etc/x', 'read l < /work/nothing', 'echo > /work/new', `read l < ${canary} && echo "$l"`,
    'read l < /etc/hostname && echo "host $l"', 'read l < /proc/self/comm && echo "proc $l"', 'ls /', 'read go', 'cd /bin',
    'read l < /etc/x', 'echo end'].join('; ')], { stdio: ['pipe', 'pipe', 'pipe'] });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const closed = new Promise<number | null>((r) => child.once('close', r));
  await waitFor(() => out.includes('up\n') && goferPids(root).length > 0, HANG_MS, 'the program reading and its gofer');
  const pids = goferPids(root);
  t.equal(pids.length, 1, `one gofer serves DIR (${pids.join(', ')})`);
  for (const p of pids) process.kill(p, 'SIGKILL');
  await new Promise((r) => setTimeout(r, 2000));
  child.stdin.end('go\n');
  const code = await within(closed, 120000, 'run to end');
  t.equal(code, 0, err);
  t.match(out, /^first inside x\nup\nreads \d+\n/, 'the program read the file, then its reads failed once the gofer was gone');
  t.match(out, /^proc \S+\nend\n$/m, "the sandbox's own /proc still answers, and the program went on to its end");
  t.notMatch(out, /canary: no sandbox|host /, 'neither the canary nor the host\'s /etc/hostname was read');
  const failures = err.trim().split('\n');
  t.same(failures.map((l) => l.replace(/^.*: /, '')), Array(overlay ? 8 : 9).fill('Input/output error'),
    `the looping read, the read, a missing name, a create, the host paths${overlay ? '' : ', ls /'}, and after the entries expired the cd and the read of names looked up before the kill each failed with EIO: ${err}`);
  t.match(err, /can't cd to \/bin: Input\/output error/, 'cd to a directory entered before the kill: EIO (was ESTALE under --overlay)');
  t.equal(err.match(/can't open \/etc\/x: Input\/output error/g)?.length, 3, 'the looping read, the read, and the read after the entries expired: EIO');
  t.match(err, new RegExp(`can't open ${canary}: Input/output error`));
  if (overlay) t.notMatch(err, /ls:/, 'ls / met the EIO in its readdir, which busybox ls does not report');
  t.notOk(existsSync(join(root, 'work/new')), 'nothing was created');
  t.same(pids.filter((p) => existsSync(`/proc/${p}`)), [], 'the killed gofer is gone');
  t.same(await settle(root), [], 'no mount, no gofer left');
});

t.test('run --rootfs killed with SIGKILL: its gofer sees its standard input end and goes (it held run\'s output open for ever)', async (t) => {
  const { root } = busyboxRoot(t);
  const child = spawn(process.execPath, [CLI, 'run', '--network=none', '--rootfs', root, '--', 'sh', '-c', 'echo up; sleep 120'], { stdio: ['ignore', 'pipe', 'pipe'] });
  // The janitor should take the mount; should it not, the test removes what is left.
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    for (const l of leftovers(root)) {
      if (l.startsWith('gofer pid')) continue;
      const at = l.split(' ')[1]!;
      spawnSync('umount', ['-l', at]);
      const work = at.match(/^\/tmp\/tsvisor-rootfs-[^/]+/)?.[0];
      if (work) rmSync(work, { recursive: true, force: true });
    }
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  await waitFor(() => out.includes('up') && goferPids(root).length > 0, HANG_MS, 'the program and its gofer');
  const pids = goferPids(root);
  const work = leftovers(root).join('\n').match(/\/tmp\/tsvisor-rootfs-[^/ ]+/)?.[0] ?? '';
  t.ok(work && existsSync(work), `run's folder ${work} is there while it runs`);
  let closed = false;
  child.once('close', () => (closed = true));
  child.kill('SIGKILL');
  await waitFor(() => pids.every((p) => !existsSync(`/proc/${p}`)), HANG_MS, 'the gofer to go').catch(() => {});
  t.same(pids.filter((p) => existsSync(`/proc/${p}`)), [], `the gofer (pids ${pids.join(', ')}) is gone`);
  const goferLeft = () => leftovers(root).filter((l) => l.startsWith('gofer pid'));
  await waitFor(() => goferLeft().length === 0, HANG_MS, 'the bwrap above the gofer to go').catch(() => {});
  t.same(goferLeft(), [], 'no gofer over DIR is left (nor the bwrap above it)');
  await waitFor(() => closed, HANG_MS, 'run\'s output to close').catch(() => {});
  t.ok(closed, 'run\'s output closed (nothing of it holds it open)');
  // The mount lost its server with run: the janitor unmounts it and removes the run's folder.
  await waitFor(() => leftovers(root).length === 0, HANG_MS, 'the janitor to unmount').catch(() => {});
  t.same(leftovers(root), [], 'no mount over DIR is left (the janitor unmounted it)');
  await waitFor(() => !existsSync(work), HANG_MS, 'the janitor to remove the folder').catch(() => {});
  t.notOk(existsSync(work), `run's folder ${work} is removed`);
});
