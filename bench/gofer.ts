/**
 * The Gofer's benchmark (`tsvisor bench --only gofer`, or `node --import tsx bench/gofer.ts [--quick] [--json FILE]`),
 * two parts, each figure with its ratio to the host in the same run:
 * - programs inside `tsvisor run --network=none --rootfs DIR` (the Gofer behind FUSE, with passthrough of donated
 *   descriptors) against the same programs run on DIR directly: sequential read of a page-cached file (1 GiB;
 *   256 MiB with --quick), 4 KiB random reads of it, busybox `find | xargs stat` over 20,000 files (5,000), and
 *   busybox `tar -x` of a 10,000-file tarball (2,000) into DIR. bench/peers/fsops.c (built static with cc) times
 *   each, best of 3; the issue's floors are printed beside the ratios. Then the FUSE requests (and the 9P
 *   requests behind them) that untar costs per file, counted by the server (TSVISOR_FUSE_STATS) over one more
 *   untar less a run that does nothing; `--untar` runs only the untar rows. DIR is on a fresh ext4 made for the run
 *   on a loop device (freshFileSystem), so that neither side pays for what earlier runs deleted;
 * - the 9P layer below it: our client against `tsvisor gofer --no-confine` and against Debian's diod (sequential
 *   read with four 1 MiB reads in flight; walk + getattr + clunk per file, 16 in flight), and the descriptor the
 *   9P2000.L.tsvisor dialect donates.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '../gofer/client/client.ts';
import * as fs from '../lib/fs.ts';
import { describeMachine, readMachine, type Machine } from './machine.ts';
import { haveTool, runAsync, tsvisorCommand } from './proc.ts';

const { F } = fs;
const MSIZE = 1 << 20;
const DEPTH = 4; // reads in flight
const FSOPS_SOURCE = join(dirname(fileURLToPath(import.meta.url)), 'peers', 'fsops.c');
/** The issue's floors: ratio to the host below which a row is a failure of the design. */
const FLOORS: Record<string, number> = { 'seq-read': 0.25, 'find-stat': 0.05, untar: 0.1 };

/** One figure. */
export interface GoferRow {
  test: string;
  system: string;
  value: number;
  unit: string;
  /** The figure over the host's in the same run (higher is better for every unit here). */
  ratio?: number;
  floor?: number;
}

/** The whole of `--only gofer`. */
export interface GoferReport {
  sizeMiB: number;
  files: number;
  tarFiles: number;
  randomReads: number;
  rows: GoferRow[];
  /** Rows that could not run, with the reason. */
  skipped: string[];
  /** CPUs, kernel and how idle CPUs wait (bench/machine.ts). */
  machine?: Machine;
}

interface Sizes {
  size: number;
  files: number;
  tarFiles: number;
  reads: number;
  reps: number;
  /** Only the untar rows. */
  untarOnly?: boolean;
}

async function waitFor(path: string): Promise<void> {
  for (let i = 0; i < 600 && !existsSync(path); i++) await new Promise((r) => setTimeout(r, 50));
  if (!existsSync(path)) throw new Error(`no socket at ${path}`);
}

/** Sequential read of `name` with DEPTH reads in flight; MB/s. */
async function seqRead(c: Client, root: number, name: string[], SIZE: number): Promise<number> {
  const f = c.allocFid();
  await c.walk(root, f, name);
  await c.lopen(f, F.O_RDONLY);
  const chunk = c.msize - 24;
  const t0 = process.hrtime.bigint();
  let next = 0;
  let total = 0;
  const worker = async () => {
    for (;;) {
      const off = next;
      next += chunk;
      if (off >= SIZE) return;
      // A server may answer with fewer bytes than asked (diod sometimes does): read the rest of the piece.
      const end = Math.min(off + chunk, SIZE);
      for (let at = off; at < end; ) {
        const n = (await c.read(f, BigInt(at), end - at)).length;
        if (n === 0) throw new Error(`unexpected end of file at ${at}`);
        at += n;
        total += n;
      }
    }
  };
  await Promise.all(Array.from({ length: DEPTH }, worker));
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  await c.clunk(f);
  if (total !== SIZE) throw new Error(`read ${total} of ${SIZE}`);
  return SIZE / s / 1e6;
}

/** Walk + getattr + clunk of every small file, 16 files in flight; operations (files) per second. */
async function metadata(c: Client, root: number, FILES: number): Promise<number> {
  const t0 = process.hrtime.bigint();
  let next = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= FILES) return;
      const f = c.allocFid();
      await c.walk(root, f, ['data', 'many', `d${Math.floor(i / 1000)}`, `f${i % 1000}`]);
      await c.getattr(f);
      await c.clunk(f);
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  return FILES / (Number(process.hrtime.bigint() - t0) / 1e9);
}

function readFd(fd: number, SIZE: number): number {
  const buf = new Uint8Array(MSIZE);
  const t0 = process.hrtime.bigint();
  let off = 0n;
  for (;;) {
    const n = fs.pread(fd, buf, off);
    if (n <= 0) break;
    off += BigInt(n);
  }
  if (off !== BigInt(SIZE)) throw new Error('short host read');
  return SIZE / (Number(process.hrtime.bigint() - t0) / 1e9) / 1e6;
}

/**
 * DIR for the rootfs rows: a busybox root with fsops, `data/big`, `data/many/dK/fI` files, `data/files.tar`, `work/`.
 * The tarball's sources are made and removed in `dir`-tarsrc, beside DIR's file system and not on it: on ext4
 * without a journal, inodes freed there are stepped over by every new file for the next 60-360 s (see `script`),
 * so their removal slowed whichever untars ran in that window, the sandbox's in the full run.
 */
async function buildRoot(dir: string, z: Sizes): Promise<string> {
  const root = join(dir, 'root');
  for (const d of ['bin', 'proc', 'dev', 'tmp', 'data/many', 'work']) mkdirSync(join(root, d), { recursive: true });
  chmodSync(root, 0o755);
  chmodSync(join(root, 'work'), 0o777); // the sandboxed program is host uid 65534
  copyFileSync('/bin/busybox', join(root, 'bin/busybox'));
  chmodSync(join(root, 'bin/busybox'), 0o755);
  for (const a of ['sh', 'find', 'xargs', 'stat', 'tar', 'mkdir', 'rm', 'printf']) symlinkSync('busybox', join(root, 'bin', a));
  const cc = await runAsync([process.env.CC ?? 'cc', '-O2', '-static', '-o', join(root, 'bin/fsops'), FSOPS_SOURCE], 120000);
  if (cc.code !== 0) throw new Error(`cc -static fsops.c: ${cc.stderr.trim().split('\n')[0]}`);
  const big = Buffer.alloc(z.size);
  for (let i = 0; i < z.size; i += 4096) big[i] = i & 0xff;
  writeFileSync(join(root, 'data/big'), big);
  for (let i = 0; i < z.files; i++) {
    const d = join(root, 'data/many', `d${Math.floor(i / 1000)}`);
    if (i % 1000 === 0) mkdirSync(d);
    writeFileSync(join(d, `f${i % 1000}`), `${i}`);
  }
  const src = `${dir}-tarsrc`;
  for (let i = 0; i < z.tarFiles; i++) {
    const d = join(src, `d${Math.floor(i / 500)}`);
    if (i % 500 === 0) mkdirSync(d, { recursive: true });
    writeFileSync(join(d, `f${i % 500}`), `file ${i}\n`.repeat(1 + (i % 7)));
  }
  const tar = await runAsync(['tar', '-cf', join(root, 'data/files.tar'), '-C', src, '.'], 120000);
  if (tar.code !== 0) throw new Error(`tar -c: ${tar.stderr.trim()}`);
  rmSync(src, { recursive: true, force: true });
  readFileSync(join(root, 'data/big')); // warm the page cache
  return root;
}

/**
 * The script both sides run, with DIR's paths under `r` ('' inside the sandbox); one "test ns amount" line per rep.
 * Each untar goes into a directory of its own (`work/<side><rep>`), all removed only after every side has run
 * (in `rootfsRows`): DIR's file system is ext4 without a journal here, whose inode allocator steps over inodes
 * freed in the last 60 s (300 s while their table block is dirty), reading each one's table block
 * (`recently_deleted`). A `rm -rf` of 10,000 files between reps made every later untar pay that scan (it was a
 * third of the Gofer's CPU), while the host's first rep, on a quiet table, did not.
 */
function script(r: string, z: Sizes, side: string): string {
  const lines: string[] = [];
  for (let i = 0; i < z.reps; i++) {
    const u = `${r}/work/${side}${i}`;
    const untar = `${r}/bin/mkdir ${u} && printf 'untar '; ${r}/bin/fsops time ${r}/bin/tar -xf ${r}/data/files.tar -C ${u}`;
    if (z.untarOnly) {
      lines.push(untar);
      continue;
    }
    lines.push(`printf 'seq-read '; ${r}/bin/fsops seqread ${r}/data/big`);
    lines.push(`printf 'rand-read '; ${r}/bin/fsops randread ${r}/data/big ${z.reads}`);
    // `find | xargs stat`, not busybox's `find -exec stat {} +`: that one holds every name until the walk ends
    // and then stats them oldest first, the worst order for the FUSE side's least-recently-used bound (every
    // stat re-looks its file up once the tree has more files than the bound); xargs streams as GNU find does.
    lines.push(`printf 'find-stat '; ${r}/bin/fsops time ${r}/bin/sh -c '${r}/bin/find ${r}/data/many | ${r}/bin/xargs ${r}/bin/stat -c %s'`);
    lines.push(untar);
  }
  return lines.join('\n');
}

/**
 * Best (highest) figure per test from a script's output. For the rows `fsops time` measures (find-stat, untar)
 * the amount is the program's exit status: a run that failed (a tar that ran out of inodes, and so stopped early
 * and fast) is an error, never a figure.
 */
export function bestOf(out: string, z: Pick<Sizes, 'files' | 'tarFiles'>): Map<string, number> {
  const best = new Map<string, number>();
  for (const line of out.split('\n')) {
    const m = /^(\S+) (\d+) (\d+)$/.exec(line.trim());
    if (!m) continue;
    const [test, ns, amount] = [m[1]!, Number(m[2]), Number(m[3])];
    if ((test === 'find-stat' || test === 'untar') && amount !== 0) throw new Error(`${test}: the program exited with status ${amount}`);
    const s = ns / 1e9;
    const value =
      test === 'seq-read' ? amount / s / 1e6 : test === 'rand-read' ? amount / s : test === 'find-stat' ? (z.files + Math.ceil(z.files / 1000) + 1) / s : z.tarFiles / s;
    best.set(test, Math.max(best.get(test) ?? 0, value));
  }
  return best;
}

const UNIT: Record<string, string> = { 'seq-read': 'MB/s', 'rand-read': 'reads/s', 'find-stat': 'files/s', untar: 'files/s' };

async function rootfsRows(dir: string, z: Sizes, log: (l: string) => void): Promise<GoferRow[]> {
  const root = await buildRoot(dir, z);
  log(`gofer bench: DIR ready (${z.size >> 20} MiB file, ${z.files} files, ${z.tarFiles}-file tarball)`);
  // Host, sandbox, host again: the machine is shared, so each side's best of its reps. Each side starts with DIR's
  // file system written back (syncfs), so that none pays for writing back what the one before wrote.
  const settle = () => execFileSync('sync', ['-f', root], { stdio: 'ignore' });
  settle();
  const host1 = await runAsync([join(root, 'bin/sh'), '-c', script(root, z, 'h')], 600000);
  if (host1.code !== 0) throw new Error(`host run: ${host1.stderr.trim().split('\n')[0]}`);
  settle();
  const inside = await runAsync([...tsvisorCommand(), 'run', '--network=none', '--rootfs', root, '--', '/bin/sh', '-c', script('', z, 's')], 900000);
  if (inside.code !== 0) throw new Error(`tsvisor run --rootfs: status ${inside.code}: ${inside.stderr.trim().split('\n').slice(-2).join(' ')}`);
  settle();
  const host2 = await runAsync([join(root, 'bin/sh'), '-c', script(root, z, 'k')], 600000);
  if (host2.code !== 0) throw new Error(`second host run: ${host2.stderr.trim().split('\n')[0]}`);
  rmSync(join(root, 'work'), { recursive: true, force: true }); // every side's untars (see `script`)
  mkdirSync(join(root, 'work'), { mode: 0o777 });
  chmodSync(join(root, 'work'), 0o777);
  const untars = (out: string) => [...out.matchAll(/^untar (\d+) 0$/gm)].map((m) => Math.round(z.tarFiles / (Number(m[1]) / 1e9))).join(' ');
  log(`gofer bench: untar files/s per rep: host ${untars(host1.stdout)}; run --rootfs ${untars(inside.stdout)}; host again ${untars(host2.stdout)}`);
  const host = bestOf(host1.stdout + '\n' + host2.stdout, z);
  const sand = bestOf(inside.stdout, z);
  const rows: GoferRow[] = [];
  for (const test of z.untarOnly ? ['untar'] : ['seq-read', 'rand-read', 'find-stat', 'untar']) {
    const h = host.get(test);
    const v = sand.get(test);
    if (h === undefined || v === undefined) throw new Error(`no ${test} figure (host ${h}, sandbox ${v})`);
    rows.push({ test, system: 'host', value: h, unit: UNIT[test]!, ratio: 1 });
    rows.push({ test, system: 'run --rootfs', value: v, unit: UNIT[test]!, ratio: v / h, floor: FLOORS[test] });
  }
  rows.push(...(await untarRequests(root, z, log)));
  return rows;
}

/** What the FUSE server printed at exit with TSVISOR_FUSE_STATS set. */
interface FuseStats {
  requests: Record<string, number>;
  cacheHits: number;
  p9: number;
}

/**
 * FUSE requests and 9P requests per file of an untar inside `run --rootfs`: the server's counts over a run that
 * unpacks the tarball, less those of a run that only makes the directory (start-up, exec, exit).
 */
async function untarRequests(root: string, z: Sizes, log: (l: string) => void): Promise<GoferRow[]> {
  const counted = async (cmd: string): Promise<FuseStats> => {
    const r = await runAsync(['env', 'TSVISOR_FUSE_STATS=1', ...tsvisorCommand(), 'run', '--network=none', '--rootfs', root, '--', '/bin/sh', '-c', cmd], 900000);
    rmSync(join(root, 'work/c'), { recursive: true, force: true });
    const line = r.stderr.split('\n').find((l) => l.startsWith('tsvisor fuse stats: '));
    if (r.code !== 0 || !line) throw new Error(`counting run: status ${r.code}, ${line ? '' : 'no stats line; '}${r.stderr.trim().split('\n').slice(-1)[0]}`);
    return JSON.parse(line.slice('tsvisor fuse stats: '.length)) as FuseStats;
  };
  const base = await counted('/bin/mkdir /work/c');
  const full = await counted(`/bin/mkdir /work/c && /bin/tar -xf /data/files.tar -C /work/c`);
  const per = (a: number, b: number) => (a - b) / z.tarFiles;
  const ops = Object.keys(full.requests)
    .map((op) => [op, per(full.requests[op] ?? 0, base.requests[op] ?? 0)] as const)
    .filter(([, n]) => n >= 0.05)
    .sort((a, b) => b[1] - a[1]);
  const total = ops.reduce((s, [, n]) => s + n, 0);
  log(`gofer bench: untar FUSE requests per file: ${ops.map(([op, n]) => `${op} ${n.toFixed(2)}`).join(', ')}; answered from the cache ${per(full.cacheHits, base.cacheHits).toFixed(2)}`);
  return [
    { test: 'untar-requests', system: 'FUSE requests per file', value: total, unit: 'req/file' },
    { test: 'untar-requests', system: '9P requests per file', value: per(full.p9, base.p9), unit: 'req/file' },
  ];
}

/** The 9P rows: our client against our server and diod, and the donated descriptor, beside the host. */
async function p9Rows(dir: string, root: string, z: Sizes, skipped: string[]): Promise<GoferRow[]> {
  const procs: ChildProcess[] = [];
  const rows: GoferRow[] = [];
  try {
    const big = join(root, 'data/big');
    const hfd = fs.openat(F.AT_FDCWD, big, F.O_RDONLY | F.O_CLOEXEC);
    readFd(hfd, z.size);
    const hostSeq = readFd(hfd, z.size);
    fs.close(hfd);
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < z.files; i++) {
      if (typeof fs.statx(F.AT_FDCWD, join(root, 'data/many', `d${Math.floor(i / 1000)}`, `f${i % 1000}`), F.AT_SYMLINK_NOFOLLOW) === 'number') throw new Error('stat failed');
    }
    const hostMeta = z.files / (Number(process.hrtime.bigint() - t0) / 1e9);
    rows.push({ test: '9p-seq-read', system: 'host pread', value: hostSeq, unit: 'MB/s', ratio: 1 });
    rows.push({ test: '9p-metadata', system: 'host statx', value: hostMeta, unit: 'files/s', ratio: 1 });
    const servers: [string, string, string][] = [];
    const ours = join(dir, 'ours.sock');
    procs.push(spawn(tsvisorCommand()[0]!, [...tsvisorCommand().slice(1), 'gofer', '--root', root, '--listen', `unix:${ours}`, '--no-confine'], { stdio: 'ignore' }));
    servers.push(['tsvisor gofer', ours, '']);
    if (haveTool('diod')) {
      const diod = join(dir, 'diod.sock');
      procs.push(spawn('diod', ['-f', '-n', '-l', diod, '-e', root], { stdio: 'ignore', cwd: dir }));
      servers.push(['diod', diod, root]);
    } else {
      skipped.push('9P rows of diod: diod is not installed (apt install diod)');
    }
    for (const [system, sock, aname] of servers) {
      await waitFor(sock);
      const c = await Client.connect(sock, MSIZE);
      const r = c.allocFid();
      await c.attach(r, 0, aname);
      await seqRead(c, r, ['data', 'big'], z.size); // warm-up
      const seq = await seqRead(c, r, ['data', 'big'], z.size);
      rows.push({ test: '9p-seq-read', system: `${system} (msize ${c.msize >> 10} KiB)`, value: seq, unit: 'MB/s', ratio: seq / hostSeq });
      await metadata(c, r, z.files);
      const meta = await metadata(c, r, z.files);
      rows.push({ test: '9p-metadata', system, value: meta, unit: 'files/s', ratio: meta / hostMeta });
      c.close();
    }
    const d = await Client.connect(ours, MSIZE, { donation: true });
    const r = d.allocFid();
    await d.attach(r);
    const f = d.allocFid();
    await d.walk(r, f, ['data', 'big']);
    const opened = await d.lopen(f, F.O_RDONLY);
    readFd(opened.fd!, z.size);
    const don = readFd(opened.fd!, z.size);
    rows.push({ test: '9p-seq-read', system: 'tsvisor gofer, donated descriptor', value: don, unit: 'MB/s', ratio: don / hostSeq });
    fs.close(opened.fd!);
    d.close();
  } finally {
    for (const p of procs) p.kill('SIGTERM');
    await Promise.all(procs.map((p) => (p.exitCode === null && p.signalCode === null ? new Promise((r) => p.once('exit', r)) : undefined)));
  }
  return rows;
}

/** Runs both parts in a directory of its own under /var/tmp (removed at the end). */
export async function runGoferBench(o: { quick: boolean; untarOnly?: boolean; log: (line: string) => void }): Promise<GoferReport> {
  const z: Sizes = o.quick
    ? { size: 256 << 20, files: 5000, tarFiles: 2000, reads: 20000, reps: 3 }
    : { size: 1 << 30, files: 20000, tarFiles: 10000, reads: 100000, reps: 3 };
  if (o.untarOnly) Object.assign(z, { size: 4096, files: 0, untarOnly: true });
  const dir = mkdtempSync('/var/tmp/tgf-bench-');
  const report: GoferReport = { sizeMiB: z.size >> 20, files: z.files, tarFiles: z.tarFiles, randomReads: z.reads, rows: [], skipped: [], machine: readMachine() };
  const unmount = freshFileSystem(dir, imageBytes(o), inodesNeeded(z), report.skipped);
  chmodSync(dir, 0o755);
  try {
    try {
      report.rows.push(...(await rootfsRows(dir, z, o.log)));
    } catch (e) {
      report.skipped.push(`rootfs rows: ${(e as Error).message}`);
    }
    if (existsSync(join(dir, 'root/data/big')) && !z.untarOnly) {
      o.log('gofer bench: the 9P rows');
      report.rows.push(...(await p9Rows(dir, join(dir, 'root'), z, report.skipped)));
    }
  } finally {
    unmount?.();
    rmSync(dir, { recursive: true, force: true });
    rmSync(`${dir}-tarsrc`, { recursive: true, force: true });
  }
  return report;
}

/** The size of DIR's file system: 1 GiB for the small runs, 4 GiB for the full one (1 GiB file, 20,000 files). */
export function imageBytes(o: { quick: boolean; untarOnly?: boolean }): number {
  return o.quick || o.untarOnly ? 2 ** 30 : 4 * 2 ** 30; // not `4 << 30`: a 32-bit shift, 0
}

/**
 * Inodes a run makes on DIR's file system, none freed before its end (see `script`): the tarball's sources, every
 * side's untars (host, sandbox, host again: `reps` each), the two counting runs of `untarRequests`, the find tree.
 * mkfs.ext4 gives one inode per 16 KiB: 65,536 in the 1 GiB of `--untar`, where 10,000-file untars need ~120,000.
 */
export function inodesNeeded(z: Pick<Sizes, 'files' | 'tarFiles' | 'reps'>): number {
  const tree = z.tarFiles + Math.ceil(z.tarFiles / 500) + 2;
  return (3 * z.reps + 3) * tree + z.files + Math.ceil(z.files / 1000) + 1024;
}

/**
 * Mounts a fresh file system at `dir` for one run: a journal-less ext4 (as this machine's own) on a loop device over
 * a sparse image of `bytes` beside it, with at least `inodes` inodes; returns its unmount (which also removes the image). On the machine's shared
 * file system the host's own untar of 2,000 files ran at 1,600–1,800 files/s after a session of deletions and at
 * 22,000 after a quiet spell (ext4's inode allocator steps over recently freed inodes, reading each one's table
 * block), so the untar ratio measured that file system's history; on a fresh one the host runs at ~33,000 every
 * time, and both sides pay the same file system. Where a loop mount is not possible the run stays on the shared
 * file system and the report says so.
 */
function freshFileSystem(dir: string, bytes: number, inodes: number, skipped: string[]): (() => void) | undefined {
  const image = `${dir}.img`;
  try {
    writeFileSync(image, '');
    truncateSync(image, bytes);
    // mkfs.ext4's default is one inode per 16 KiB; more only where the run needs them (`inodesNeeded`).
    const count = inodes > bytes / 16384 ? ['-N', String(inodes)] : [];
    execFileSync('mkfs.ext4', ['-q', '-F', '-O', '^has_journal', ...count, image], { stdio: ['ignore', 'ignore', 'pipe'] });
    execFileSync('mount', ['-o', 'loop', image, dir], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    rmSync(image, { force: true });
    skipped.push(`a fresh file system for DIR (mkfs.ext4 on a loop device): ${(e as Error).message.split('\n')[0]}; the rows ran on /var/tmp's own`);
    return undefined;
  }
  return () => {
    try {
      execFileSync('umount', [dir], { stdio: ['ignore', 'ignore', 'pipe'] });
    } finally {
      rmSync(image, { force: true });
    }
  };
}

/** The report as a text table. */
export function formatGoferTable(r: GoferReport): string {
  const lines = [
    `Gofer (${r.sizeMiB} MiB file, ${r.randomReads} random 4 KiB reads, find+stat of ${r.files} files, untar of ${r.tarFiles}; best of 3; ratio to the host in this run)`,
  ];
  for (const row of r.rows) {
    const floor = row.floor === undefined ? '' : `  (floor ${row.floor}×${row.ratio! < row.floor ? ': BELOW' : ''})`;
    lines.push(`${row.test.padEnd(12)} ${row.system.padEnd(34)} ${row.value.toFixed(row.unit === 'req/file' ? 1 : 0).padStart(10)} ${row.unit.padEnd(8)} ${row.ratio === undefined ? '' : row.ratio.toFixed(3) + '×'}${floor}`);
  }
  for (const s of r.skipped) lines.push(`skipped: ${s}`);
  if (r.machine) lines.push(describeMachine(r.machine));
  return lines.join('\n') + '\n';
}

const USAGE = `usage: node --import tsx bench/gofer.ts [--quick] [--untar] [--json FILE]
  --quick      smaller sizes: a 256 MiB file, find+stat of 5,000 files, untar of 2,000 (about a minute)
  --untar      only the untar rows (10,000 files, or 2,000 with --quick) and the requests per file
  --json FILE  also write the report as JSON
`;

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const args = process.argv.slice(2);
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  for (let k = 0; k < args.length; k++) {
    if (args[k] === '--json') k++;
    else if (args[k] !== '--quick' && args[k] !== '--untar') {
      process.stderr.write(`bench/gofer.ts: unknown option '${args[k]}' (--help lists them)\n`);
      process.exit(2);
    }
  }
  if (args.includes('--json') && !args[args.indexOf('--json') + 1]) {
    process.stderr.write('bench/gofer.ts: --json needs a file name\n');
    process.exit(2);
  }
  const report = await runGoferBench({ quick: args.includes('--quick'), untarOnly: args.includes('--untar'), log: (l) => process.stderr.write(l + '\n') });
  process.stdout.write(formatGoferTable(report));
  const i = args.indexOf('--json');
  if (i >= 0) writeFileSync(args[i + 1]!, JSON.stringify(report, null, 2) + '\n');
}
