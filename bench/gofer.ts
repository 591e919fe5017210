/**
 * The Gofer against Debian's diod, both driven by our TypeScript client, beside the host itself:
 * sequential read of one file (page cache warm), and metadata (walk + getattr + clunk per file over many files).
 * Our server runs as `tsvisor gofer --no-confine` in a process of its own, as diod does; the "donated" row reads
 * through the descriptor the 9P2000.L.tsvisor dialect hands over. Usage (as root, diod installed):
 *   node --import tsx bench/gofer.ts [--size-mib 256] [--files 5000] [--json FILE]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '../gofer/client/client.ts';
import * as fs from '../lib/fs.ts';

const { F } = fs;
const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1]! : dflt;
};
const SIZE = Number(opt('size-mib', '256')) << 20;
const FILES = Number(opt('files', '5000'));
const MSIZE = 1 << 20;
const DEPTH = 4; // reads in flight
const CLI = fileURLToPath(new URL('../cli/tsvisor.js', import.meta.url));

interface Row {
  test: string;
  system: string;
  value: number;
  unit: string;
}

async function waitFor(path: string): Promise<void> {
  for (let i = 0; i < 600 && !existsSync(path); i++) await new Promise((r) => setTimeout(r, 50));
  if (!existsSync(path)) throw new Error(`no socket at ${path}`);
}

/** Sequential read of `name` with DEPTH reads in flight; MB/s. */
async function seqRead(c: Client, root: number, name: string): Promise<number> {
  const f = c.allocFid();
  await c.walk(root, f, [name]);
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
async function metadata(c: Client, root: number): Promise<number> {
  const t0 = process.hrtime.bigint();
  let next = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= FILES) return;
      const f = c.allocFid();
      await c.walk(root, f, ['many', `f${i}`]);
      await c.getattr(f);
      await c.clunk(f);
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  return FILES / (Number(process.hrtime.bigint() - t0) / 1e9);
}

function hostRead(path: string): number {
  const fd = fs.openat(F.AT_FDCWD, path, F.O_RDONLY | F.O_CLOEXEC);
  const mb = readFd(fd);
  fs.close(fd);
  return mb;
}

function readFd(fd: number): number {
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

function hostMetadata(dir: string): number {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < FILES; i++) {
    const st = fs.statx(F.AT_FDCWD, join(dir, 'many', `f${i}`), F.AT_SYMLINK_NOFOLLOW);
    if (typeof st === 'number') throw new Error('stat failed');
  }
  return FILES / (Number(process.hrtime.bigint() - t0) / 1e9);
}

async function main(): Promise<void> {
  const dir = mkdtempSync('/tmp/tgf-bench-');
  const procs: ChildProcess[] = [];
  try {
    const root = join(dir, 'root');
    mkdirSync(join(root, 'many'), { recursive: true });
    const big = Buffer.alloc(SIZE);
    for (let i = 0; i < SIZE; i += 4096) big[i] = i & 0xff;
    writeFileSync(join(root, 'big'), big);
    for (let i = 0; i < FILES; i++) writeFileSync(join(root, 'many', `f${i}`), `${i}`);
    readFileSync(join(root, 'big')); // warm the page cache
    const rows: Row[] = [];
    hostRead(join(root, 'big'));
    hostMetadata(root);
    rows.push({ test: 'seq-read', system: 'host', value: hostRead(join(root, 'big')), unit: 'MB/s' });
    rows.push({ test: 'metadata', system: 'host', value: hostMetadata(root), unit: 'files/s' });

    const ours = join(dir, 'ours.sock');
    procs.push(spawn(process.execPath, [CLI, 'gofer', '--root', root, '--listen', `unix:${ours}`, '--no-confine'], { stdio: 'ignore' }));
    const diod = join(dir, 'diod.sock');
    procs.push(spawn('diod', ['-f', '-n', '-l', diod, '-e', root], { stdio: 'ignore', cwd: dir }));
    await waitFor(ours);
    await waitFor(diod);

    for (const [system, sock, aname] of [['tsvisor gofer', ours, ''], ['diod', diod, root]] as const) {
      const c = await Client.connect(sock, MSIZE);
      const r = c.allocFid();
      await c.attach(r, 0, aname);
      await seqRead(c, r, 'big'); // warm-up
      rows.push({ test: 'seq-read', system: `${system} (msize ${c.msize >> 10} KiB)`, value: await seqRead(c, r, 'big'), unit: 'MB/s' });
      await metadata(c, r);
      rows.push({ test: 'metadata', system, value: await metadata(c, r), unit: 'files/s' });
      c.close();
    }
    const d = await Client.connect(ours, MSIZE, { donation: true });
    const r = d.allocFid();
    await d.attach(r);
    const f = d.allocFid();
    await d.walk(r, f, ['big']);
    const opened = await d.lopen(f, F.O_RDONLY);
    readFd(opened.fd!);
    rows.push({ test: 'seq-read', system: 'tsvisor gofer, donated descriptor', value: readFd(opened.fd!), unit: 'MB/s' });
    fs.close(opened.fd!);
    d.close();

    const host = new Map(rows.filter((x) => x.system === 'host').map((x) => [x.test, x.value]));
    for (const row of rows) {
      const ratio = row.value / host.get(row.test)!;
      console.log(`${row.test.padEnd(9)} ${row.system.padEnd(36)} ${row.value.toFixed(0).padStart(9)} ${row.unit.padEnd(8)} ${ratio.toFixed(3)}× host`);
    }
    const json = opt('json', '');
    if (json) writeFileSync(json, JSON.stringify({ sizeMiB: SIZE >> 20, files: FILES, rows }, null, 2) + '\n');
  } finally {
    for (const p of procs) p.kill('SIGTERM');
    await Promise.all(procs.map((p) => (p.exitCode === null ? new Promise((r) => p.once('exit', r)) : undefined)));
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
