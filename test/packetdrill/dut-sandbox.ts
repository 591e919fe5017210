/**
 * The sandbox DUT: the script's system calls are made by a real program under tsvisor's seccomp filter and served
 * by the Sentry, so each one crosses the trap (socket, bind, connect, accept, getsockopt, ...) or runs natively on
 * the socketpair the Sentry gave the program (read, write, poll, epoll_wait, fcntl, shutdown, close), exactly as
 * for a program under `tsvisor run`. The program is pd-executor (executor/executor.c), which makes whatever raw
 * system call it is asked over two FIFOs, each on a thread of its own so that a blocking call holds up nothing.
 *
 * The netstack is built as the tsvisor DUT's (one NIC on a ChannelEndpoint whose frames the runner captures and
 * injects, shell lines applied to its settings table) but on Node's real clock: the program runs in real
 * time, so the script does too, as on the Linux DUT.
 *
 * The interpreter treats some calls as synchronous (socket, bind, listen, getsockopt, ...). For those, the main
 * thread blocks until the executor answers; since the Sentry lives on this same thread, the wait serves the
 * listener itself (NotifyListener.receivePending) whenever a trapped call is pending.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import koffi from 'koffi';
import { NodeClock } from '../../lib/clock.ts';
import { type FdWatch, C as LC, sys, watchFd } from '../../lib/libc.ts';
import type { ChannelEndpoint } from '../../netstack/link/channel.ts';
import type { Netstack } from '../../netstack/netstack.ts';
import { NotifyListener } from '../../sentry/platform/unotify/listener.ts';
import { Targets } from '../../sentry/platform/unotify/target.ts';
import { type Sandbox, launch } from '../../sentry/sandbox/launch.ts';
import { buildPolicy } from '../../sentry/seccomp/policy.ts';
import { syscallNumber } from '../../sentry/seccomp/sysno.ts';
import type { EpollEvent, MsgHdr, PollFd, SocketSyscalls, SysRet } from '../../sentry/socket/api.ts';
import { Sentry, type SentryStats } from '../../sentry/syscalls/dispatch.ts';
import { type CaptureQueue, settledBy } from './capture.ts';
import type { CapturedFrame, Dut, DutConfig, ShellContext, ShellOutcome } from './dut.ts';
import { netstackOnChannel, netstackShell } from './dut-tsvisor.ts';
import { executorPath } from './executor/build.ts';
import type { Endpoints } from './packets.ts';

const mkfifo = koffi.load('libc.so.6').func('int mkfifo(const char *path, uint32_t mode)') as (p: string, m: number) => number;

const EINTR = 4;
/** How long a synchronous call may take before the executor is declared stuck (a generous bound, not a timing). */
const SYNC_LIMIT_MS = 10_000;
/** How long the executor may take to start. */
const START_LIMIT_MS = 10_000;
const NONE = 0xffffffff;
// struct epoll_event is packed on x86-64 (12 bytes); the executor and its filter are x86-64 only.
const EPOLL_EVENT_LEN = 12;

/** A call number by name (x86-64). */
function nr(name: string): number {
  const n = syscallNumber(name);
  if (n === undefined) throw new Error(`no system call named ${name}`);
  return n;
}

const NR = {
  socket: nr('socket'), bind: nr('bind'), listen: nr('listen'), connect: nr('connect'), accept4: nr('accept4'),
  read: nr('read'), write: nr('write'), readv: nr('readv'), writev: nr('writev'), recvfrom: nr('recvfrom'),
  sendto: nr('sendto'), recvmsg: nr('recvmsg'), sendmsg: nr('sendmsg'), shutdown: nr('shutdown'), close: nr('close'),
  getsockname: nr('getsockname'), getpeername: nr('getpeername'), getsockopt: nr('getsockopt'),
  setsockopt: nr('setsockopt'), fcntl: nr('fcntl'), ioctl: nr('ioctl'), poll: nr('poll'),
  epoll_create1: nr('epoll_create1'), epoll_ctl: nr('epoll_ctl'), epoll_wait: nr('epoll_wait'),
};

/** An argument: an integer, or the address of buffer `buf` (plus `off`). */
type Arg = number | { buf: number; off?: number };

/** One request: the call, its arguments, its buffers (copied back in place after the call), pointer fix-ups. */
interface Request {
  nr: number;
  args: Arg[];
  bufs: Uint8Array[];
  /** [buffer, offset, target]: the address of buffer `target` is stored at `offset` of `buffer`. */
  relocs?: [number, number, number][];
}

const bytes = (a: Uint8Array | Uint32Array | Int32Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** The executor's side of the FIFOs: requests out, responses in, matched by id. */
class ExecutorClient {
  private nextId = 1;
  private readonly waiting = new Map<number, { bufs: Uint8Array[]; done: (r: number) => void }>();
  private inbuf = new Uint8Array(1 << 16);
  private inlen = 0;
  private watch: FdWatch | undefined;
  private readonly pollfds = new Uint8Array(16);
  private readonly pollView = new DataView(this.pollfds.buffer);
  private helloSeen = false;
  private hello: (() => void) | undefined;
  closed = false;

  constructor(
    private readonly reqFd: number,
    private readonly respFd: number,
  ) {
    this.watch = watchFd(respFd, (readable) => {
      if (readable) this.readResponses();
    });
  }

  /** Resolves once the executor has opened both FIFOs. */
  started(): Promise<void> {
    if (this.helloSeen) return Promise.resolve();
    return new Promise((r) => (this.hello = r));
  }

  /** Sends `q`; `done` gets the result once the response has been copied into q's buffers. */
  private send(q: Request, done: (r: number) => void): void {
    const id = this.nextId++;
    const relocs = q.relocs ?? [];
    const dataLen = q.bufs.reduce((n, b) => n + b.length, 0);
    const size = 20 + 6 * 16 + q.bufs.length * 8 + relocs.length * 16 + dataLen;
    const out = new Uint8Array(4 + size);
    const v = new DataView(out.buffer);
    v.setUint32(0, size, true);
    v.setUint32(4, id, true);
    v.setInt32(8, q.nr, true);
    v.setUint32(12, q.bufs.length, true);
    v.setUint32(16, relocs.length, true);
    let o = 24;
    for (let i = 0; i < 6; i++, o += 16) {
      const a = q.args[i] ?? 0;
      if (typeof a === 'number') {
        v.setBigInt64(o, BigInt(a), true);
        v.setUint32(o + 8, NONE, true);
      } else {
        v.setBigInt64(o, BigInt(a.off ?? 0), true);
        v.setUint32(o + 8, a.buf, true);
      }
    }
    for (const b of q.bufs) {
      v.setUint32(o, b.length, true);
      o += 8;
    }
    for (const [b, off, target] of relocs) {
      v.setUint32(o, b, true);
      v.setUint32(o + 4, off, true);
      v.setUint32(o + 8, target, true);
      o += 16;
    }
    for (const b of q.bufs) {
      out.set(b, o);
      o += b.length;
    }
    this.waiting.set(id, { bufs: q.bufs, done });
    this.writeAll(out);
  }

  private writeAll(out: Uint8Array): void {
    let off = 0;
    while (off < out.length) {
      const n = sys.write(this.reqFd, out.subarray(off), out.length - off);
      if (n > 0) {
        off += n;
        continue;
      }
      const e = koffi.errno();
      if (n < 0 && e !== LC.EAGAIN && e !== LC.EINTR) throw new Error(`sandbox DUT: writing a request to the executor failed (errno ${e})`);
      // The FIFO is full (a 64 KB write): wait for the executor to read.
      this.pollView.setInt32(0, this.reqFd, true);
      this.pollView.setInt16(4, LC.POLLOUT, true);
      sys.poll(this.pollfds, 1, 100);
    }
  }

  /** Reads and dispatches every complete response available now. */
  private readResponses(): void {
    for (;;) {
      if (this.inbuf.length - this.inlen < 1 << 15) {
        const bigger = new Uint8Array(this.inbuf.length * 2);
        bigger.set(this.inbuf.subarray(0, this.inlen));
        this.inbuf = bigger;
      }
      const n = sys.read(this.respFd, this.inbuf.subarray(this.inlen), this.inbuf.length - this.inlen);
      if (n <= 0) break;
      this.inlen += n;
    }
    let off = 0;
    const v = new DataView(this.inbuf.buffer);
    while (this.inlen - off >= 4) {
      const size = v.getUint32(off, true);
      if (this.inlen - off < 4 + size) break;
      const id = v.getUint32(off + 4, true);
      const result = Number(v.getBigInt64(off + 8, true));
      let p = off + 16;
      off += 4 + size;
      if (id === 0) {
        this.helloSeen = true;
        this.hello?.();
        continue;
      }
      const w = this.waiting.get(id);
      if (!w) continue;
      this.waiting.delete(id);
      for (const b of w.bufs) {
        b.set(this.inbuf.subarray(p, p + b.length));
        p += b.length;
      }
      w.done(result);
    }
    this.inbuf.copyWithin(0, off, this.inlen);
    this.inlen -= off;
  }

  /** Makes the call and returns its result when the executor answers. */
  call(q: Request): Promise<number> {
    if (this.closed) return Promise.resolve(-EINTR);
    return new Promise((resolve) => this.send(q, resolve));
  }

  /**
   * Makes the call and blocks until the executor answers, serving the seccomp listener meanwhile (the call may
   * trap, and the Sentry answers on this thread).
   */
  callSync(q: Request, listener: NotifyListener): number {
    if (this.closed) return -EINTR;
    let result: number | undefined;
    this.send(q, (r) => (result = r));
    const deadline = performance.now() + SYNC_LIMIT_MS;
    this.pollView.setInt32(0, this.respFd, true);
    this.pollView.setInt16(4, LC.POLLIN, true);
    this.pollView.setInt32(8, listener.fd, true);
    this.pollView.setInt16(12, LC.POLLIN, true);
    for (;;) {
      this.readResponses();
      if (result !== undefined) return result;
      if (performance.now() > deadline) throw new Error(`sandbox DUT: the executor did not answer call ${q.nr} within ${SYNC_LIMIT_MS} ms`);
      this.pollView.setInt16(6, 0, true);
      this.pollView.setInt16(14, 0, true);
      sys.poll(this.pollfds, 2, 100);
      if (this.pollView.getInt16(14, true) & LC.POLLIN) listener.receivePending();
    }
  }

  /** Ends every waiting call with EINTR and stops reading. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.watch?.close();
    this.watch = undefined;
    for (const w of this.waiting.values()) w.done(-EINTR);
    this.waiting.clear();
  }
}

/** The socket calls as the executor makes them, with the interpreter's buffers filled from its answers. */
class SandboxSyscalls implements SocketSyscalls {
  constructor(
    private readonly x: ExecutorClient,
    private readonly listener: NotifyListener,
  ) {}

  private sync(q: Request): number {
    return this.x.callSync(q, this.listener);
  }

  socket(domain: number, type: number, protocol: number): number {
    return this.sync({ nr: NR.socket, args: [domain, type, protocol], bufs: [] });
  }
  bind(fd: number, addr: Uint8Array): number {
    return this.sync({ nr: NR.bind, args: [fd, { buf: 0 }, addr.length], bufs: [addr] });
  }
  listen(fd: number, backlog: number): number {
    return this.sync({ nr: NR.listen, args: [fd, backlog], bufs: [] });
  }
  connect(fd: number, addr: Uint8Array): SysRet {
    return this.x.call({ nr: NR.connect, args: [fd, { buf: 0 }, addr.length], bufs: [addr] });
  }
  accept4(fd: number, addr: Uint8Array | null, addrlen: Uint32Array | null, flags: number): SysRet {
    if (!addr || !addrlen) return this.x.call({ nr: NR.accept4, args: [fd, 0, 0, flags], bufs: [] });
    return this.x.call({ nr: NR.accept4, args: [fd, { buf: 0 }, { buf: 1 }, flags], bufs: [addr, bytes(addrlen)] });
  }
  read(fd: number, buf: Uint8Array): SysRet {
    return this.x.call({ nr: NR.read, args: [fd, { buf: 0 }, buf.length], bufs: [buf] });
  }
  write(fd: number, buf: Uint8Array): SysRet {
    return this.x.call({ nr: NR.write, args: [fd, { buf: 0 }, buf.length], bufs: [buf] });
  }
  /** struct iovec[] as buffer 0 pointing at buffers 1..n. */
  private iovecs(iov: Uint8Array[], first: number): { vec: Uint8Array; relocs: [number, number, number][] } {
    const vec = new Uint8Array(16 * iov.length);
    const v = new DataView(vec.buffer);
    const relocs: [number, number, number][] = [];
    iov.forEach((b, i) => {
      v.setBigUint64(16 * i + 8, BigInt(b.length), true);
      relocs.push([first, 16 * i, first + 1 + i]);
    });
    return { vec, relocs };
  }
  readv(fd: number, iov: Uint8Array[]): SysRet {
    const { vec, relocs } = this.iovecs(iov, 0);
    return this.x.call({ nr: NR.readv, args: [fd, { buf: 0 }, iov.length], bufs: [vec, ...iov], relocs });
  }
  writev(fd: number, iov: Uint8Array[]): SysRet {
    const { vec, relocs } = this.iovecs(iov, 0);
    return this.x.call({ nr: NR.writev, args: [fd, { buf: 0 }, iov.length], bufs: [vec, ...iov], relocs });
  }
  recvfrom(fd: number, buf: Uint8Array, flags: number, addr: Uint8Array | null, addrlen: Uint32Array | null): SysRet {
    if (!addr || !addrlen) return this.x.call({ nr: NR.recvfrom, args: [fd, { buf: 0 }, buf.length, flags, 0, 0], bufs: [buf] });
    return this.x.call({ nr: NR.recvfrom, args: [fd, { buf: 0 }, buf.length, flags, { buf: 1 }, { buf: 2 }], bufs: [buf, addr, bytes(addrlen)] });
  }
  sendto(fd: number, buf: Uint8Array, flags: number, addr: Uint8Array | null): SysRet {
    if (!addr) return this.x.call({ nr: NR.sendto, args: [fd, { buf: 0 }, buf.length, flags, 0, 0], bufs: [buf] });
    return this.x.call({ nr: NR.sendto, args: [fd, { buf: 0 }, buf.length, flags, { buf: 1 }, addr.length], bufs: [buf, addr] });
  }
  /** struct msghdr (buffer 0), its iovec array (1), the iov buffers (2..), and the name (last) when there is one. */
  private msghdr(msg: MsgHdr): Request & { hdr: Uint8Array } {
    const hdr = new Uint8Array(56);
    const v = new DataView(hdr.buffer);
    const { vec, relocs } = this.iovecs(msg.iov, 1);
    const bufs = [hdr, vec, ...msg.iov];
    relocs.push([0, 16, 1]);
    v.setBigUint64(24, BigInt(msg.iov.length), true);
    if (msg.name) {
      bufs.push(msg.name);
      relocs.push([0, 0, bufs.length - 1]);
      v.setUint32(8, msg.name.length, true);
    }
    return { nr: 0, args: [], bufs, relocs, hdr };
  }
  recvmsg(fd: number, msg: MsgHdr, flags: number): SysRet {
    const q = this.msghdr(msg);
    return this.x.call({ ...q, nr: NR.recvmsg, args: [fd, { buf: 0 }, flags] }).then((r) => {
      const v = new DataView(q.hdr.buffer);
      msg.namelen = v.getUint32(8, true);
      msg.flags = v.getInt32(48, true);
      return r;
    });
  }
  sendmsg(fd: number, msg: MsgHdr, flags: number): SysRet {
    return this.x.call({ ...this.msghdr(msg), nr: NR.sendmsg, args: [fd, { buf: 0 }, flags] });
  }
  shutdown(fd: number, how: number): number {
    return this.sync({ nr: NR.shutdown, args: [fd, how], bufs: [] });
  }
  close(fd: number): SysRet {
    return this.x.call({ nr: NR.close, args: [fd], bufs: [] });
  }
  getsockname(fd: number, addr: Uint8Array, addrlen: Uint32Array): number {
    return this.sync({ nr: NR.getsockname, args: [fd, { buf: 0 }, { buf: 1 }], bufs: [addr, bytes(addrlen)] });
  }
  getpeername(fd: number, addr: Uint8Array, addrlen: Uint32Array): number {
    return this.sync({ nr: NR.getpeername, args: [fd, { buf: 0 }, { buf: 1 }], bufs: [addr, bytes(addrlen)] });
  }
  getsockopt(fd: number, level: number, name: number, optval: Uint8Array, optlen: Uint32Array): number {
    return this.sync({ nr: NR.getsockopt, args: [fd, level, name, { buf: 0 }, { buf: 1 }], bufs: [optval, bytes(optlen)] });
  }
  setsockopt(fd: number, level: number, name: number, optval: Uint8Array): number {
    return this.sync({ nr: NR.setsockopt, args: [fd, level, name, { buf: 0 }, optval.length], bufs: [optval] });
  }
  fcntl(fd: number, cmd: number, arg: number): number {
    return this.sync({ nr: NR.fcntl, args: [fd, cmd, arg], bufs: [] });
  }
  ioctl(fd: number, request: number, arg: Int32Array): number {
    return this.sync({ nr: NR.ioctl, args: [fd, request, { buf: 0 }], bufs: [bytes(arg)] });
  }
  poll(fds: PollFd[], timeoutMs: number): SysRet {
    const b = new Uint8Array(8 * fds.length);
    const v = new DataView(b.buffer);
    fds.forEach((x, i) => {
      v.setInt32(8 * i, x.fd, true);
      v.setInt16(8 * i + 4, x.events, true);
    });
    return this.x.call({ nr: NR.poll, args: [{ buf: 0 }, fds.length, timeoutMs], bufs: [b] }).then((r) => {
      fds.forEach((x, i) => (x.revents = v.getUint16(8 * i + 6, true)));
      return r;
    });
  }
  epollCreate(flags: number): number {
    return this.sync({ nr: NR.epoll_create1, args: [flags], bufs: [] });
  }
  epollCtl(epfd: number, op: number, fd: number, event: EpollEvent | null): number {
    if (!event) return this.sync({ nr: NR.epoll_ctl, args: [epfd, op, fd, 0], bufs: [] });
    const b = new Uint8Array(EPOLL_EVENT_LEN);
    const v = new DataView(b.buffer);
    v.setUint32(0, event.events >>> 0, true);
    v.setBigUint64(4, BigInt(event.data), true);
    return this.sync({ nr: NR.epoll_ctl, args: [epfd, op, fd, { buf: 0 }], bufs: [b] });
  }
  epollWait(epfd: number, events: EpollEvent[], maxEvents: number, timeoutMs: number): SysRet {
    const b = new Uint8Array(EPOLL_EVENT_LEN * Math.max(1, Math.min(maxEvents, 1024)));
    const v = new DataView(b.buffer);
    return this.x.call({ nr: NR.epoll_wait, args: [epfd, { buf: 0 }, maxEvents, timeoutMs], bufs: [b] }).then((n) => {
      events.length = 0;
      for (let i = 0; i < n; i++) events.push({ events: v.getUint32(i * EPOLL_EVENT_LEN, true), data: Number(v.getBigUint64(i * EPOLL_EVENT_LEN + 4, true)) });
      return n;
    });
  }
}

/** What a closed sandbox DUT reports (tests: the calls crossed the trap; nothing is left running). */
export interface SandboxDutReport {
  /** The executor's pid (reaped by then). */
  readonly pid: number;
  readonly stats: SentryStats;
  /** The Sentry's own log (errors in handlers). */
  readonly log: readonly string[];
}

/** Options of the sandbox DUT beyond the script's. */
export interface SandboxDutOptions {
  /** --strace: one line per trapped call. */
  strace?: (line: string) => void;
  /** Called by close() once everything is released. */
  onClose?: (r: SandboxDutReport) => void;
}

/** Builds a sandbox DUT for one script: netstack, executor under the filter, Sentry. */
export async function createSandboxDut(cfg: DutConfig, o: SandboxDutOptions = {}): Promise<Dut> {
  const dut = new SandboxDut(cfg, o);
  try {
    await dut.launch();
  } catch (e) {
    await dut.close();
    throw e;
  }
  return dut;
}

class SandboxDut implements Dut {
  readonly name = 'sandbox' as const;
  readonly endpoints: Endpoints;
  private readonly clock = new NodeClock();
  readonly netstack: Netstack;
  private readonly link: ChannelEndpoint;
  private readonly frames: CaptureQueue;
  /** What set_sysctls.py saved for its restore script, by file name. */
  private readonly restore = new Map<string, { key: string; value: string }[]>();
  private t0 = performance.now();
  private dir: string | undefined;
  private fds: number[] = [];
  private sandbox: Sandbox | undefined;
  private sentry: Sentry | undefined;
  private client: ExecutorClient | undefined;
  private syscalls: SandboxSyscalls | undefined;
  private stderr = '';
  /** The Sentry's own log lines (errors in handlers), for a failing script's message. */
  readonly log: string[] = [];

  constructor(
    cfg: DutConfig,
    private readonly o: SandboxDutOptions,
  ) {
    ({ endpoints: this.endpoints, netstack: this.netstack, link: this.link, frames: this.frames } = netstackOnChannel(cfg, this.clock, () => this.now(), 'sandbox DUT'));
  }

  get sys(): SocketSyscalls {
    if (!this.syscalls) throw new Error('sandbox DUT: not launched');
    return this.syscalls;
  }

  /** Starts the executor under the sandbox's filter and the Sentry on its listener; resolves once it serves. */
  async launch(): Promise<void> {
    const o = this.o;
    this.dir = mkdtempSync(join(tmpdir(), 'tse-pd-'));
    const req = join(this.dir, 'req');
    const resp = join(this.dir, 'resp');
    for (const p of [req, resp]) if (mkfifo(p, 0o600) < 0) throw new Error(`sandbox DUT: mkfifo ${p}: errno ${koffi.errno()}`);
    // O_RDWR: opening a FIFO so never waits for the other end.
    const open = (p: string) => {
      const fd = sys.open(p, LC.O_RDWR | LC.O_NONBLOCK | LC.O_CLOEXEC, 0);
      if (fd < 0) throw new Error(`sandbox DUT: open ${p}: errno ${koffi.errno()}`);
      this.fds.push(fd);
      return fd;
    };
    const reqFd = open(req);
    const respFd = open(resp);
    this.client = new ExecutorClient(reqFd, respFd);
    this.sandbox = await launch({
      argv: [executorPath(), req, resp],
      filter: buildPolicy({ mode: 'sandbox' }),
      bwrap: [],
      env: { PATH: '/usr/bin:/bin' },
      stdio: 'pipe',
    });
    this.sandbox.stderr?.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    const listener = new NotifyListener(this.sandbox.listenerFd);
    this.sentry = new Sentry({
      listener,
      targets: new Targets(this.sandbox.pid),
      stack: this.netstack,
      mode: 'sandbox',
      strace: o.strace,
      log: (l) => {
        if (this.log.length < 50) this.log.push(l);
      },
    });
    this.sentry.start();
    this.syscalls = new SandboxSyscalls(this.client, listener);
    const exited = this.sandbox.wait().then((r) => {
      throw new Error(`sandbox DUT: the executor exited (${JSON.stringify(r)}) before it started: ${this.stderr.trim()}`);
    });
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`sandbox DUT: the executor did not start within ${START_LIMIT_MS} ms`)), START_LIMIT_MS);
    });
    try {
      await Promise.race([this.client.started(), exited, late]);
    } finally {
      clearTimeout(timer);
      exited.catch(() => {});
    }
    // The FIFOs are open at both ends now: their names are no longer needed.
    rmSync(this.dir, { recursive: true, force: true });
    this.dir = undefined;
  }

  start(): void {
    this.t0 = performance.now();
  }

  now(): number {
    return performance.now() - this.t0;
  }

  async waitUntil(t: number): Promise<void> {
    const d = t - this.now();
    if (d > 0) await new Promise((r) => setTimeout(r, d));
    // At least one turn of the loop: a frame injected just before is delivered on the clock (an immediate), and
    // the kernel would have processed it before the script's next call; a synchronous call blocks the loop.
    else await new Promise((r) => setImmediate(r));
  }

  waitFor(p: Promise<unknown>, deadline: number): Promise<boolean> {
    return settledBy(p, deadline, () => this.now());
  }

  nextFrame(deadline: number): Promise<CapturedFrame | undefined> {
    return this.frames.next(deadline, () => this.now());
  }

  inject(frame: Uint8Array): void {
    this.link.inject(frame);
  }

  /** As on the tsvisor DUT: sysctls go to the netstack's settings table, live. */
  shell(command: string, ctx: ShellContext): ShellOutcome {
    return netstackShell(this.netstack, this.restore, command, ctx);
  }

  abort(): void {
    this.client?.close();
  }

  async close(): Promise<void> {
    this.client?.close();
    if (this.sandbox) {
      this.sandbox.kill('SIGKILL');
      await this.sandbox.wait();
    }
    // Parked calls end with the executor; what is left of its sockets goes with the Sentry.
    const stats = this.sentry?.stats();
    this.sentry?.close();
    for (const fd of this.fds) sys.close(fd);
    this.fds = [];
    this.netstack.close();
    this.link.close();
    this.clock.dispose();
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
    if (this.sandbox && stats) this.o.onClose?.({ pid: this.sandbox.pid, stats, log: this.log });
  }
}
