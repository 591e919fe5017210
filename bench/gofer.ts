/**
 * The Gofer's benchmark (`tsvisor bench --only gofer`, or `node --import tsx bench/gofer.ts [--quick] [--json FILE]`),
 * two parts, each figure with its ratio to the host in the same run:
 * - programs inside `tsvisor run --network=none --rootfs DIR` (the Gofer behind FUSE, with passthrough of donated
 *   descriptors) against the same programs run on DIR directly: sequential read of a page-cached file (1 GiB;
 *   256 MiB with --quick), 4 KiB random reads of it, busybox `find | xargs stat` over 20,000 files (5,000),
 *   open + read + close of 10,000 small files (2,000) and busybox `tar -x` of a 10,000-file tarball (2,000) into
 *   DIR. bench/peers/fsops.c (built static with cc) times each, best of 3; the issue's floors are printed beside
 *   the ratios (it gives none for the small files). Then the FUSE requests (and the 9P
 *   requests behind them) that untar costs per file, counted by the server (TSVISOR_FUSE_STATS) over one more
 *   untar less a run that does nothing; `--untar` runs only the untar rows. DIR is on a fresh ext4 made for the run
 *   on a loop device (freshFileSystem), so that neither side pays for what earlier runs deleted;
 * - the 9P layer below it: our plain 9P2000.L client against `tsvisor gofer --no-confine` and against Debian's
 *   diod on the same root in the same run, each beside the host's system calls and ours beside diod's: sequential
 *   read with four 1 MiB reads in flight; 4 KiB reads at random offsets, four in flight; walk + getattr + clunk
 *   per file; walk + lopen + read + clunk per small file; creating files as an untar does (walk, lcreate, write,
 *   setattr of mode and times, clunk) in a fresh directory per side; the last three 16 files in flight. Then rows of
 *   the 9P2000.L.tsvisor dialect: the sequential read and the small files through the descriptor it donates, and
 *   the creates as one Tlcreateat with the descriptor written.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '../gofer/client/client.ts';
import { SETATTR } from '../gofer/p9/messages.ts';
import * as fs from '../lib/fs.ts';
import { describeMachine, readMachine, type Machine } from './machine.ts';
import { haveTool, runAsync, tsvisorCommand } from './proc.ts';

const { F } = fs;
const MSIZE = 1 << 20;
const DEPTH = 4; // reads in flight
const FILES_IN_FLIGHT = 16; // the per-file 9P rows' files in flight
const CREATE_DIR = 500; // files per directory of the 9P create rows, as the tarball's
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
  /** On the 9P rows of our Gofer: its figure over diod's in the same run. */
  vsDiod?: number;
  floor?: number;
}

/** The whole of `--only gofer`. */
export interface GoferReport {
  sizeMiB: number;
  files: number;
  tarFiles: number;
  randomReads: number;
  /** Small files read whole (open + read + close), each of 256 B to 4 KiB. */
  smallFiles: number;
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
  /** Small files for the open + read + close rows. */
  small: number;
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

/** The page of a file of `pages` pages that random read `i` reads: the same pages for the host and both servers. */
export function randomPage(i: number, pages: number): number {
  let x = (i + 1) * 0x9e3779b1;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return ((x ^ (x >>> 16)) >>> 0) % pages;
}

/** Small file `i`'s path under DIR and its size, 256 B to 4 KiB (`buildRoot` makes them). */
export function smallFile(i: number): { path: string[]; size: number } {
  return { path: ['data', 'small', `d${Math.floor(i / 1000)}`, `f${i % 1000}`], size: 256 + ((i * 397) % 3841) };
}

/** Runs `work(i)` for every i below `count`, `depth` at a time; per second. */
async function perSecond(count: number, depth: number, work: (i: number) => Promise<void>): Promise<number> {
  const t0 = process.hrtime.bigint();
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < count; i = next++) await work(i);
  };
  await Promise.all(Array.from({ length: depth }, worker));
  return count / (Number(process.hrtime.bigint() - t0) / 1e9);
}

/** `count` Treads of 4 KiB of `name` at random pages, DEPTH in flight; reads per second. */
async function randRead(c: Client, root: number, name: string[], SIZE: number, count: number): Promise<number> {
  const f = c.allocFid();
  await c.walk(root, f, name);
  await c.lopen(f, F.O_RDONLY);
  const pages = SIZE / 4096;
  const rate = await perSecond(count, DEPTH, async (i) => {
    const n = (await c.read(f, BigInt(randomPage(i, pages) * 4096), 4096)).length;
    if (n !== 4096) throw new Error(`random read ${i}: ${n} bytes`);
  });
  await c.clunk(f);
  return rate;
}

/** Walk + lopen + read + clunk of every small file, FILES_IN_FLIGHT at a time; files per second. */
async function smallReads(c: Client, root: number, count: number): Promise<number> {
  return perSecond(count, FILES_IN_FLIGHT, async (i) => {
    const { path, size } = smallFile(i);
    const f = c.allocFid();
    await c.walk(root, f, path);
    await c.lopen(f, F.O_RDONLY);
    const n = (await c.read(f, 0n, 8192)).length;
    await c.clunk(f);
    if (n !== size) throw new Error(`${path.join('/')}: read ${n} of ${size} bytes`);
  });
}

/** The tarball's file `i` (`buildRoot`), and so what the 9P create rows write into their file `i`. */
function tarContent(i: number): Buffer {
  return Buffer.from(`file ${i}\n`.repeat(1 + (i % 7)));
}

/**
 * `count` files made in directories of CREATE_DIR under `work/<dir>`, made first over 9P: `make(dirFid, name, i)`
 * makes file `i`, FILES_IN_FLIGHT at a time. Files per second, the directories' Tmkdirs included.
 */
async function createEach(c: Client, root: number, dir: string, count: number, make: (d: number, name: string, i: number) => Promise<void>): Promise<number> {
  const t0 = process.hrtime.bigint();
  const top = c.allocFid();
  await c.walk(root, top, ['work']);
  await c.mkdir(top, dir, 0o755);
  const dirs: number[] = [];
  for (let k = 0; k * CREATE_DIR < count; k++) {
    const d = c.allocFid();
    await c.walk(top, d, [dir]);
    await c.mkdir(d, `d${k}`, 0o755);
    await c.walk(d, d, [`d${k}`]);
    dirs.push(d);
  }
  await c.clunk(top);
  await perSecond(count, FILES_IN_FLIGHT, (i) => make(dirs[Math.floor(i / CREATE_DIR)]!, `f${i % CREATE_DIR}`, i));
  const rate = count / (Number(process.hrtime.bigint() - t0) / 1e9);
  for (const d of dirs) await c.clunk(d);
  return rate;
}

/** The Tsetattr of mode and times that tar's chmod and utimes of each file come to, as the create rows send it. */
const TAR_SETATTR = {
  valid: SETATTR.MODE | SETATTR.ATIME | SETATTR.MTIME | SETATTR.ATIME_SET | SETATTR.MTIME_SET,
  attrs: { mode: 0o644, atimeSec: 1700000000n, mtimeSec: 1700000000n },
};

/**
 * `count` files made as tar -x makes them (`createEach`): per file a walk of its directory, Tlcreate, Twrite of its
 * content, Tsetattr of its mode and times, Tclunk; files per second.
 */
async function createFiles(c: Client, root: number, dir: string, count: number): Promise<number> {
  return createEach(c, root, dir, count, async (d, name, i) => {
    const f = c.allocFid();
    await c.walk(d, f, []);
    await c.lcreate(f, name, F.O_WRONLY | F.O_CREAT | F.O_EXCL, 0o644);
    await c.writeAll(f, 0n, tarContent(i));
    await c.setattr(f, TAR_SETATTR.valid, TAR_SETATTR.attrs);
    await c.clunk(f);
  });
}

/** The host's side of `createFiles`: openat(O_CREAT | O_EXCL), pwrite, fchmod, utimensat, close per file. */
function hostCreate(root: string, dir: string, count: number): number {
  const t0 = process.hrtime.bigint();
  const top = join(root, 'work', dir);
  mkdirSync(top);
  for (let i = 0; i < count; i++) {
    const d = join(top, `d${Math.floor(i / CREATE_DIR)}`);
    if (i % CREATE_DIR === 0) mkdirSync(d);
    const fd = fs.openat(F.AT_FDCWD, join(d, `f${i % CREATE_DIR}`), F.O_WRONLY | F.O_CREAT | F.O_EXCL | F.O_CLOEXEC, 0o644);
    if (fd < 0) throw new Error(`host create ${i}: errno ${-fd}`);
    const data = tarContent(i);
    if (fs.pwrite(fd, data, 0n) !== data.length) throw new Error(`host write ${i}`);
    fs.fchmod(fd, TAR_SETATTR.attrs.mode);
    fs.utimensat(fd, '', TAR_SETATTR.attrs.atimeSec, 0, TAR_SETATTR.attrs.mtimeSec, 0, F.AT_EMPTY_PATH);
    fs.close(fd);
  }
  return count / (Number(process.hrtime.bigint() - t0) / 1e9);
}

/**
 * `smallReads` in the 9P2000.L.tsvisor dialect: walk + lopen, whose reply donates the opened descriptor, a pread
 * of it and close, clunk; files per second.
 */
async function smallReadsDonated(c: Client, root: number, count: number): Promise<number> {
  const buf = new Uint8Array(8192);
  return perSecond(count, FILES_IN_FLIGHT, async (i) => {
    const { path, size } = smallFile(i);
    const f = c.allocFid();
    await c.walk(root, f, path);
    const { fd } = await c.lopen(f, F.O_RDONLY);
    if (fd === undefined) throw new Error(`${path.join('/')}: no descriptor donated`);
    const n = fs.pread(fd, buf, 0n);
    fs.close(fd);
    await c.clunk(f);
    if (n !== size) throw new Error(`${path.join('/')}: read ${n} of ${size} bytes`);
  });
}

/**
 * `createFiles` in the 9P2000.L.tsvisor dialect, as the FUSE side creates: one Tlcreateat (the opened file, whose
 * descriptor the reply donates, and the file unopened), a pwrite of the descriptor and close, Tsetattr of the
 * unopened fid, both clunked; files per second, the directories' Tmkdirs included.
 */
async function createFilesDialect(c: Client, root: number, dir: string, count: number): Promise<number> {
  return createEach(c, root, dir, count, async (d, name, i) => {
    const [f, node] = [c.allocFid(), c.allocFid()];
    const { fd } = await c.lcreateat(d, f, node, name, F.O_WRONLY | F.O_CREAT | F.O_EXCL, 0o644);
    if (fd === undefined) throw new Error(`create ${i}: no descriptor donated`);
    const data = tarContent(i);
    const n = fs.pwrite(fd, data, 0n);
    fs.close(fd);
    if (n !== data.length) throw new Error(`create ${i}: wrote ${n} of ${data.length}`);
    await c.setattr(node, TAR_SETATTR.valid, TAR_SETATTR.attrs);
    await Promise.all([c.clunk(f), c.clunk(node)]);
  });
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
 * DIR for the rootfs rows: a busybox root with fsops, `data/big`, `data/many/dK/fI` files (a few bytes each),
 * `data/small/dK/fI` files (`smallFile`), `data/files.tar`, `work/`.
 * The tarball's sources are made and removed in `dir`-tarsrc, beside DIR's file system and not on it: on ext4
 * without a journal, inodes freed there are stepped over by every new file for the next 60-360 s (see `script`),
 * so their removal slowed whichever untars ran in that window, the sandbox's in the full run.
 */
async function buildRoot(dir: string, z: Sizes): Promise<string> {
  const root = join(dir, 'root');
  for (const d of ['bin', 'proc', 'dev', 'tmp', 'data/many', 'data/small', 'work']) mkdirSync(join(root, d), { recursive: true });
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
  for (let i = 0; i < z.small; i++) {
    const { path, size } = smallFile(i);
    if (i % 1000 === 0) mkdirSync(join(root, ...path.slice(0, -1)));
    writeFileSync(join(root, ...path), Buffer.alloc(size, i & 0xff));
  }
  const src = `${dir}-tarsrc`;
  for (let i = 0; i < z.tarFiles; i++) {
    const d = join(src, `d${Math.floor(i / 500)}`);
    if (i % 500 === 0) mkdirSync(d, { recursive: true });
    writeFileSync(join(d, `f${i % 500}`), tarContent(i));
  }
  const tar = await runAsync(['tar', '-cf', join(root, 'data/files.tar'), '-C', src, '.'], 120000);
  if (tar.code !== 0) throw new Error(`tar -c: ${tar.stderr.trim()}`);
  rmSync(src, { recursive: true, force: true });
  readFileSync(join(root, 'data/big')); // warm the page cache
  return root;
}

/**
 * The script both sides run, with DIR's paths under `r` ('' inside the sandbox); one "test ns amount" line per rep.
 * Each untar goes into a directory of its own (`work/<side><rep>`), none removed before the run ends (the file
 * system goes with its image; `inodesNeeded`): DIR's file system is ext4 without a journal here, whose inode allocator steps over inodes
 * freed in the last 60 s (300 s while their table block is dirty), reading each one's table block
 * (`recently_deleted`). A `rm -rf` of 10,000 files between reps made every later untar pay that scan (it was a
 * third of the Gofer's CPU), while the host's first rep, on a quiet table, did not; removing them once every side
 * had run slowed the 9P create rows after (the host's creates ran at 2,400 files/s).
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
    lines.push(`printf 'small-files '; ${r}/bin/fsops smallread ${r}/data/small ${z.small}`);
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
      test === 'seq-read'
        ? amount / s / 1e6
        : test === 'rand-read' || test === 'small-files'
          ? amount / s
          : test === 'find-stat'
            ? (z.files + Math.ceil(z.files / 1000) + 1) / s
            : z.tarFiles / s;
    best.set(test, Math.max(best.get(test) ?? 0, value));
  }
  return best;
}

const UNIT: Record<string, string> = { 'seq-read': 'MB/s', 'rand-read': 'reads/s', 'find-stat': 'files/s', 'small-files': 'files/s', untar: 'files/s' };

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
  const untars = (out: string) => [...out.matchAll(/^untar (\d+) 0$/gm)].map((m) => Math.round(z.tarFiles / (Number(m[1]) / 1e9))).join(' ');
  log(`gofer bench: untar files/s per rep: host ${untars(host1.stdout)}; run --rootfs ${untars(inside.stdout)}; host again ${untars(host2.stdout)}`);
  const host = bestOf(host1.stdout + '\n' + host2.stdout, z);
  const sand = bestOf(inside.stdout, z);
  const rows: GoferRow[] = [];
  for (const test of z.untarOnly ? ['untar'] : ['seq-read', 'rand-read', 'find-stat', 'small-files', 'untar']) {
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
 * unpacks the tarball, less those of a run that only makes the directory (start-up, exec, exit). Each into a
 * directory of its own, kept (see `script`).
 */
async function untarRequests(root: string, z: Sizes, log: (l: string) => void): Promise<GoferRow[]> {
  const counted = async (cmd: string): Promise<FuseStats> => {
    const r = await runAsync(['env', 'TSVISOR_FUSE_STATS=1', ...tsvisorCommand(), 'run', '--network=none', '--rootfs', root, '--', '/bin/sh', '-c', cmd], 900000);
    const line = r.stderr.split('\n').find((l) => l.startsWith('tsvisor fuse stats: '));
    if (r.code !== 0 || !line) throw new Error(`counting run: status ${r.code}, ${line ? '' : 'no stats line; '}${r.stderr.trim().split('\n').slice(-1)[0]}`);
    return JSON.parse(line.slice('tsvisor fuse stats: '.length)) as FuseStats;
  };
  const base = await counted('/bin/mkdir /work/c0');
  const full = await counted(`/bin/mkdir /work/c1 && /bin/tar -xf /data/files.tar -C /work/c1`);
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

/** The host's figures the 9P rows are beside: pread of 1 MiB pieces, 4 KiB preads, statx, small files, creates. */
function hostP9Rows(root: string, z: Sizes): GoferRow[] {
  const big = join(root, 'data/big');
  const hfd = fs.openat(F.AT_FDCWD, big, F.O_RDONLY | F.O_CLOEXEC);
  readFd(hfd, z.size);
  const hostSeq = readFd(hfd, z.size);
  const page = new Uint8Array(4096);
  let t0 = process.hrtime.bigint();
  for (let i = 0; i < z.reads; i++) {
    if (fs.pread(hfd, page, BigInt(randomPage(i, z.size / 4096) * 4096)) !== 4096) throw new Error('short host pread');
  }
  const hostRand = z.reads / (Number(process.hrtime.bigint() - t0) / 1e9);
  fs.close(hfd);
  t0 = process.hrtime.bigint();
  for (let i = 0; i < z.files; i++) {
    if (typeof fs.statx(F.AT_FDCWD, join(root, 'data/many', `d${Math.floor(i / 1000)}`, `f${i % 1000}`), F.AT_SYMLINK_NOFOLLOW) === 'number') throw new Error('stat failed');
  }
  const hostMeta = z.files / (Number(process.hrtime.bigint() - t0) / 1e9);
  const buf = new Uint8Array(8192);
  t0 = process.hrtime.bigint();
  for (let i = 0; i < z.small; i++) {
    const { path, size } = smallFile(i);
    const fd = fs.openat(F.AT_FDCWD, join(root, ...path), F.O_RDONLY | F.O_CLOEXEC);
    if (fd < 0 || fs.pread(fd, buf, 0n) !== size) throw new Error(`host small file ${i}`);
    fs.close(fd);
  }
  const hostSmall = z.small / (Number(process.hrtime.bigint() - t0) / 1e9);
  const hostMake = hostCreate(root, 'p9-host', z.tarFiles);
  return [
    { test: '9p-seq-read', system: 'host pread', value: hostSeq, unit: 'MB/s', ratio: 1 },
    { test: '9p-rand-read', system: 'host pread', value: hostRand, unit: 'reads/s', ratio: 1 },
    { test: '9p-metadata', system: 'host statx', value: hostMeta, unit: 'files/s', ratio: 1 },
    { test: '9p-small-files', system: 'host open+read+close', value: hostSmall, unit: 'files/s', ratio: 1 },
    { test: '9p-create', system: 'host open+write+chmod+utimens', value: hostMake, unit: 'files/s', ratio: 1 },
  ];
}

/**
 * The 9P rows: our plain 9P2000.L client against our server and diod, one after the other on the same root, each
 * row with its ratio to the host's and ours with its ratio to diod's; then the donated descriptor.
 */
async function p9Rows(dir: string, root: string, z: Sizes, skipped: string[]): Promise<GoferRow[]> {
  const procs: ChildProcess[] = [];
  const rows = hostP9Rows(root, z);
  const host = (test: string) => rows.find((r) => r.test === test)!.value;
  try {
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
    const bySystem = new Map<string, GoferRow[]>();
    for (const [system, sock, aname] of servers) {
      await waitFor(sock);
      const c = await Client.connect(sock, MSIZE);
      const r = c.allocFid();
      await c.attach(r, 0, aname);
      const mine: GoferRow[] = [];
      const row = (test: string, name: string, value: number, unit: string) => mine.push({ test, system: name, value, unit, ratio: value / host(test) });
      await seqRead(c, r, ['data', 'big'], z.size); // warm-up, for this and the random reads
      row('9p-seq-read', `${system} (msize ${c.msize >> 10} KiB)`, await seqRead(c, r, ['data', 'big'], z.size), 'MB/s');
      row('9p-rand-read', system, await randRead(c, r, ['data', 'big'], z.size, z.reads), 'reads/s');
      await metadata(c, r, z.files);
      row('9p-metadata', system, await metadata(c, r, z.files), 'files/s');
      await smallReads(c, r, z.small);
      row('9p-small-files', system, await smallReads(c, r, z.small), 'files/s');
      row('9p-create', system, await createFiles(c, r, `p9-${system.replace(/\W+/g, '-')}`, z.tarFiles), 'files/s');
      c.close();
      bySystem.set(system, mine);
    }
    const diodFigure = (test: string) => bySystem.get('diod')?.find((x) => x.test === test)?.value;
    for (const mine of bySystem.get('tsvisor gofer') ?? []) {
      const theirs = diodFigure(mine.test);
      if (theirs !== undefined) mine.vsDiod = mine.value / theirs;
    }
    // Each test's rows together: host, ours, diod.
    for (const test of rows.map((r) => r.test)) {
      const at = rows.findIndex((r) => r.test === test) + 1;
      rows.splice(at, 0, ...[...bySystem.values()].flatMap((m) => m.filter((x) => x.test === test)));
    }
    const d = await Client.connect(ours, MSIZE, { donation: true });
    const r = d.allocFid();
    await d.attach(r);
    const f = d.allocFid();
    await d.walk(r, f, ['data', 'big']);
    const opened = await d.lopen(f, F.O_RDONLY);
    readFd(opened.fd!, z.size);
    const don = readFd(opened.fd!, z.size);
    fs.close(opened.fd!);
    await smallReadsDonated(d, r, z.small);
    const small = await smallReadsDonated(d, r, z.small);
    const made = await createFilesDialect(d, r, 'p9-tsvisor-dialect', z.tarFiles);
    d.close();
    const dialect = (test: string, system: string, value: number, unit: string) => {
      const theirs = diodFigure(test);
      rows.splice(rows.map((x) => x.test).lastIndexOf(test) + 1, 0, { test, system, value, unit, ratio: value / host(test), vsDiod: theirs === undefined ? undefined : value / theirs });
    };
    dialect('9p-seq-read', 'tsvisor gofer, donated descriptor', don, 'MB/s');
    dialect('9p-small-files', 'tsvisor gofer, donated descriptor', small, 'files/s');
    dialect('9p-create', 'tsvisor gofer, Tlcreateat + donated', made, 'files/s');
  } finally {
    for (const p of procs) p.kill('SIGTERM');
    await Promise.all(procs.map((p) => (p.exitCode === null && p.signalCode === null ? new Promise((r) => p.once('exit', r)) : undefined)));
  }
  return rows;
}

/** Runs both parts in a directory of its own under /var/tmp (removed at the end). */
export async function runGoferBench(o: { quick: boolean; untarOnly?: boolean; log: (line: string) => void }): Promise<GoferReport> {
  const z: Sizes = o.quick
    ? { size: 256 << 20, files: 5000, tarFiles: 2000, reads: 20000, small: 2000, reps: 3 }
    : { size: 1 << 30, files: 20000, tarFiles: 10000, reads: 100000, small: 10000, reps: 3 };
  if (o.untarOnly) Object.assign(z, { size: 4096, files: 0, small: 0, untarOnly: true });
  const dir = mkdtempSync('/var/tmp/tgf-bench-');
  const report: GoferReport = { sizeMiB: z.size >> 20, files: z.files, tarFiles: z.tarFiles, randomReads: z.reads, smallFiles: z.small, rows: [], skipped: [], machine: readMachine() };
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
 * side's untars (host, sandbox, host again: `reps` each), the two counting runs of `untarRequests`, the find tree,
 * the small files, and (but with --untar) the 9P create rows' four trees (host, our Gofer, diod, our Gofer's dialect) of as many files.
 * mkfs.ext4 gives one inode per 16 KiB: 65,536 in the 1 GiB of `--untar`, where 10,000-file untars need ~120,000.
 */
export function inodesNeeded(z: Pick<Sizes, 'files' | 'tarFiles' | 'small' | 'reps' | 'untarOnly'>): number {
  const tree = z.tarFiles + Math.ceil(z.tarFiles / 500) + 2;
  const trees = 3 * z.reps + 3 + (z.untarOnly ? 0 : 4);
  return trees * tree + z.files + Math.ceil(z.files / 1000) + z.small + Math.ceil(z.small / 1000) + 1024;
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
    `Gofer (${r.sizeMiB} MiB file, ${r.randomReads} random 4 KiB reads, find+stat of ${r.files} files, ${r.smallFiles} small files read, untar of ${r.tarFiles}; best of 3; ratio to the host in this run)`,
  ];
  for (const row of r.rows) {
    const floor = row.floor === undefined ? '' : `  (floor ${row.floor}×${row.ratio! < row.floor ? ': BELOW' : ''})`;
    const diod = row.vsDiod === undefined ? '' : `  (${row.vsDiod.toFixed(2)}× diod)`;
    lines.push(`${row.test.padEnd(14)} ${row.system.padEnd(34)} ${row.value.toFixed(row.unit === 'req/file' ? 1 : 0).padStart(10)} ${row.unit.padEnd(8)} ${row.ratio === undefined ? '' : row.ratio.toFixed(3) + '×'}${floor}${diod}`);
  }
  for (const s of r.skipped) lines.push(`skipped: ${s}`);
  if (r.machine) lines.push(describeMachine(r.machine));
  return lines.join('\n') + '\n';
}

const USAGE = `usage: node --import tsx bench/gofer.ts [--quick] [--untar] [--json FILE]
  --quick      smaller sizes: a 256 MiB file, find+stat of 5,000 files, 2,000 small files, untar of 2,000
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
