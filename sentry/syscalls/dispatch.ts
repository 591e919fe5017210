/**
 * The Sentry: serves a sandbox's trapped socket calls from the netstack. Each notification is mapped by call
 * number to its handler (net.ts). A handler first finds which of our sockets the fd is — pidfd_getfd of the
 * program's fd and fstat's inode, looked up among the program ends we injected; never cached by (pid, fd),
 * whose numbers get reused — and answers CONTINUE for any other fd, which the kernel then serves (unix and
 * netlink sockets live in the app netns). Arguments are read from the target's memory, NOTIF_ID_VALID is
 * checked before acting on them, out-parameters are written, then the call is answered (SEND, or ADDFD|SEND
 * for calls that install a socket). Blocking calls are parked (park.ts) and answered when their wait settles.
 */
import { readdirSync, readlinkSync } from 'node:fs';
import type { Clock } from '../../netstack/clock.ts';
import type { Netstack } from '../../netstack/netstack.ts';
import type { Endpoint } from '../../netstack/socket.ts';
import { inNetns } from '../../lib/netns.ts';
import { NetnsThread } from '../../lib/netns-thread.ts';
import { C, SysError, sys } from '../../lib/libc.ts';
import { unixSocketExists } from '../../lib/unixdiag.ts';
import * as ux from '../../lib/unix.ts';
import type { NotifyListener, Notification } from '../platform/unotify/listener.ts';
import type { Target, Targets } from '../platform/unotify/target.ts';
import type { NetworkMode } from '../seccomp/policy.ts';
import { syscallName } from '../seccomp/sysno.ts';
import { DgramPump } from '../datapath/dgram.ts';
import type { ListenQueue } from '../datapath/listener.ts';
import { StreamPump, type Stuffing, stillDelivering } from '../datapath/stream.ts';
import type { SocketFile } from '../socket/file.ts';
import { HANDLERS } from './net.ts';
import { ERESTARTSYS, ParkedCalls } from './park.ts';
import { Strace } from './strace.ts';

const ENOSYS = 38;

const AF_NETLINK = 16;
const NETLINK_SOCK_DIAG = 4;
/** Unreported resets kept for getsockopt(SO_ERROR) at most (a program that never asks leaves them behind). */
const UNSURFACED_LIMIT = 1024;
/**
 * Sockets whose non-blocking connect failed kept known at most: their pump is gone, so the program's close of one
 * cannot be seen, and the oldest are forgotten beyond this (their later calls then run on the program's end).
 */
const FAILED_LIMIT = 1024;
/** Pairs kept ready per kind when they are made in another netns, and the level that triggers a refill. */
const POOL_SIZE = 16;
const POOL_LOW = 8;
const EIO = 5;
const EBADF = 9;

/** Options of a Sentry. */
export interface SentryOptions {
  listener: NotifyListener;
  targets: Targets;
  /** The netstack that serves the sandbox's sockets. */
  stack: Netstack;
  /** The netns file (or name) where the socketpairs are made: the app netns. Absent: the Sentry's own. */
  appNetns?: string;
  mode: NetworkMode;
  /** --strace: one line per trapped call. */
  strace?: (line: string) => void;
  /** The Sentry's own log (--debug-log). */
  log?: (line: string) => void;
}

/** One of our sockets, keyed by the inode of the program's end. */
export interface Sock {
  readonly ino: number | bigint;
  readonly file: SocketFile;
  readonly kind: 'stream' | 'dgram';
  /** Our end of the pair, until a pump or listen queue takes it. */
  ours: number;
  /** Watches an unconnected stream socket for the program's close. */
  idle?: ux.FdPoll;
  pump?: StreamPump;
  dgram?: DgramPump;
  listen?: ListenQueue;
  /** The process that made it (where a reset looks for a copy of the program's end). */
  owner?: Target;
  /** Forgotten: the program closed it or the Sentry released it. */
  released: boolean;
  /**
   * A non-blocking connect failed and the program's end still holds the ECONNRESET that shows it as POLLERR
   * (StreamPump's onConnectFailed); taken from it when the error is reported (`takeFailMarker`).
   */
  failMarker?: boolean;
}

/** A trapped call in progress. */
export interface Call {
  readonly n: Notification;
  readonly name: string;
  readonly target: Target;
  readonly t0: number;
  /** strace's rendering of the arguments (filled by the handler). */
  args: string;
}

/** What a handler does with a call it has taken over: answers now, or later when a parked wait settles. */
export type Handler = (s: Sentry, c: Call) => void;

/** Counters of a Sentry. */
export interface SentryStats {
  notifications: number;
  continued: number;
  answered: number;
  parked: number;
  restarted: number;
  sockets: number;
  errors: number;
}

/** The Sentry of one sandbox. */
export class Sentry {
  readonly stack: Netstack;
  readonly clock: Clock;
  readonly listener: NotifyListener;
  readonly parkedCalls = new ParkedCalls();
  private readonly socks = new Map<number | bigint, Sock>();
  /**
   * Resets of released sockets that the program's end could not report (see StreamPump's onClose), by inode,
   * answered once by a trapped getsockopt(SO_ERROR) as Linux's sock_error does; the oldest go beyond the bound.
   */
  private readonly unsurfaced = new Map<number | bigint, number>();
  /** Sockets whose connect failed, oldest first (see FAILED_LIMIT). */
  private readonly failed = new Set<Sock>();
  private readonly flushLinks = (): void => this.stack.stack.flushLinks();
  /** Stream Endpoints the program has closed that still have data or their FIN to deliver (drain waits for them). */
  private readonly closing = new Set<Endpoint>();
  private readonly tracer: Strace | undefined;
  private readonly counters: Omit<SentryStats, 'sockets' | 'parked'> = { notifications: 0, continued: 0, answered: 0, restarted: 0, errors: 0 };
  private started = false;
  private closed = false;
  /** Pairs made ahead in the app netns, by kind ([program's end, ours], both blocking until handed out). */
  private readonly pools: Record<'stream' | 'dgram', [number, number][]> = { stream: [], dgram: [] };
  private readonly refilling = { stream: false, dgram: false };
  /** The thread that stays in the app netns and makes the pairs there (the main thread never enters it). */
  private netnsThread: NetnsThread | undefined;
  /** A NETLINK_SOCK_DIAG socket of the namespace the pairs are made in (-1: none could be made; see `programHeld`). */
  private diagFd: number | undefined;

  constructor(private readonly o: SentryOptions) {
    this.stack = o.stack;
    this.clock = o.stack.stack.clock;
    this.listener = o.listener;
    this.tracer = o.strace ? new Strace(o.strace) : undefined;
  }

  /** Starts answering notifications. */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.listener.on('notification', this.onNotification);
    this.listener.on('error', (e) => this.log(`listener: ${e.message}`));
    this.listener.start();
    if (this.o.appNetns) {
      // The pools are filled once the thread is in (a Worker start, tens of ms), not before: waiting for it here
      // would hold the event loop, and the program's first calls, that long. A socket() before then waits alone.
      const thread = NetnsThread.start(this.o.appNetns);
      this.netnsThread = thread;
      void thread.settled().then(() => {
        if (this.netnsThread !== thread) return;
        this.refillSoon('stream');
        this.refillSoon('dgram');
      });
    }
  }

  /** Stops: parked calls end, every socket and pump is released, the listener is closed (later calls: ENOSYS). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.parkedCalls.closeAll();
    for (const s of [...this.socks.values()]) this.release(s);
    this.listener.off('notification', this.onNotification);
    this.listener.close();
    for (const pool of Object.values(this.pools)) for (const [a, b] of pool.splice(0)) (ux.close(a), ux.close(b));
    this.netnsThread?.close();
    if (this.diagFd !== undefined && this.diagFd >= 0) ux.close(this.diagFd);
    this.diagFd = -1;
  }

  stats(): SentryStats {
    return { ...this.counters, parked: this.parkedCalls.size, sockets: this.socks.size };
  }

  /** Our sockets now (tests: nothing left behind). */
  get socketCount(): number {
    return this.socks.size;
  }

  log(line: string): void {
    this.o.log?.(line);
  }

  private readonly onNotification = (n: Notification): void => {
    this.counters.notifications++;
    const name = syscallName(n.nr);
    const c: Call = { n, name, target: this.o.targets.forTid(n.tid), t0: performance.now(), args: '' };
    const h = this.o.mode === 'host' ? undefined : HANDLERS[name];
    if (!h) {
      c.args = n.args.slice(0, 3).map(String).join(', ') + ', ...';
      return this.continue(c);
    }
    try {
      h(this, c);
    } catch (e) {
      this.counters.errors++;
      this.log(`[${n.tid}] ${name}: ${(e as Error).stack ?? e}`);
      this.listener.respond(n.id, 0, EIO);
    }
  };

  /** Lets the kernel run the call (not one of ours). */
  continue(c: Call): void {
    this.counters.continued++;
    this.listener.continue(c.n.id);
    this.tracer?.continued(c.n.tid, c.name, c.args);
  }

  /** Answers `r` (≥ 0, or -errno). */
  answer(c: Call, r: number, parked = false): void {
    this.counters.answered++;
    if (r < 0) this.listener.respond(c.n.id, 0, -r);
    else this.listener.respond(c.n.id, r);
    this.trace(c, r, parked);
  }

  /** Records a call answered by ADDFD|SEND (the result is the new fd). */
  answeredWithFd(c: Call, fd: number, parked = false): void {
    this.counters.answered++;
    this.trace(c, fd, parked);
  }

  private trace(c: Call, r: number, parked: boolean): void {
    if (!this.tracer) return;
    const ms = performance.now() - c.t0;
    if (parked) this.tracer.resumed(c.n.tid, c.name, r, ms);
    else this.tracer.done(c.n.tid, c.name, c.args, r, ms);
  }

  /**
   * Parks a blocking call: `wait(signal)` settles with the result (a number to answer, or 'answered' when it
   * answered by itself, e.g. with ADDFD|SEND). An exit of the target aborts the wait and answers nothing; a
   * pending caught signal aborts it and answers -ERESTARTSYS.
   */
  park(c: Call, wait: (signal: AbortSignal) => Promise<number | 'answered'>): void {
    this.tracer?.unfinished(c.n.tid, c.name, c.args);
    let ended = false;
    const p = this.parkedCalls.park(c.n.id, c.n.tid, c.target.exitSignal, (why) => {
      ended = true;
      if (why === 'signal') {
        this.counters.restarted++;
        this.answer(c, -ERESTARTSYS, true);
      } else if (why === 'closed') this.listener.respond(c.n.id, 0, ENOSYS);
    });
    wait(p.signal).then(
      (r) => {
        if (ended) return;
        this.parkedCalls.done(c.n.id);
        if (r !== 'answered') this.answer(c, r, true);
      },
      (e: unknown) => {
        if (ended) return;
        this.parkedCalls.done(c.n.id);
        this.counters.errors++;
        this.log(`[${c.n.tid}] ${c.name}: ${(e as Error).stack ?? e}`);
        this.answer(c, -EIO, true);
      },
    );
  }

  /**
   * Our socket behind the program's fd `fd`; undefined when it is none of ours (another socket, a file), `-errno`
   * when the fd is not open (-EBADF) or the program is gone. Found by the inode /proc shows for the fd, one system
   * call; `programDup` takes a duplicate for the calls that use the program's end itself.
   */
  lookup(c: Call, fd: number): Sock | number | undefined {
    const ino = c.target.socketInode(fd);
    if (ino === null) return undefined;
    if (typeof ino === 'number' && ino < 0) return ino;
    const sock = this.socks.get(ino);
    return sock && !sock.released ? sock : undefined;
  }

  /**
   * Our duplicate of the program's fd `fd`, `sock`'s end (the caller closes it); -EBADF when the program has put
   * another file at that number since `lookup` (a race of its own: as if that fd had been closed first).
   */
  programDup(c: Call, fd: number, sock: Sock): number {
    const dup = c.target.getFd(fd);
    if (dup < 0) return dup;
    if (ux.inode(dup) === sock.ino) return dup;
    ux.close(dup);
    return -EBADF;
  }

  /**
   * A socketpair for a new socket, made in the app netns: [program's end, ours (non-blocking)]. A request to the
   * thread in the app netns costs a cross-thread wake-up each way (about 90 µs on a busy 2-vCPU host), so pairs
   * are made ahead, a few at a time, and a call takes a ready one; the pool is refilled after the answer.
   */
  pair(kind: 'stream' | 'dgram', programNonblock: boolean): [number, number] {
    const pool = this.pools[kind];
    const [theirs, ours] = pool.pop() ?? this.makePairs(kind, 1)[0]!;
    if (this.o.appNetns && pool.length < POOL_LOW) this.refillSoon(kind);
    ux.setFl(ours, ux.U.O_NONBLOCK);
    if (programNonblock) ux.setFl(theirs, ux.U.O_NONBLOCK);
    return [theirs, ours];
  }

  /**
   * `n` pairs (at least one; throws when none can be made), in the app netns by its thread; should that thread
   * be lost, by the main thread stepping in and out as before.
   */
  private makePairs(kind: 'stream' | 'dgram', n: number): [number, number][] {
    const type = kind === 'stream' ? 'stream' : 'seqpacket';
    return this.inAppNetns(
      (thread) => thread.socketPairs(type, n),
      () => Array.from({ length: n }, () => ux.socketPair(type, false)),
    );
  }

  /**
   * `make` in the app netns (where the pairs live): by its thread (`viaThread`); should that thread be lost, by the
   * main thread stepping in and out as before; without an app netns, here.
   */
  private inAppNetns<T>(viaThread: (thread: NetnsThread) => T, make: () => T): T {
    if (!this.o.appNetns) return make();
    if (this.netnsThread) {
      try {
        return viaThread(this.netnsThread);
      } catch (e) {
        // Out of fds is the process's state, not the thread's: the caller answers it as any socket() failure.
        if (e instanceof SysError) throw e;
        this.log(`app netns thread: ${(e as Error).message}; going into the namespace from the main thread`);
        this.netnsThread.close();
        this.netnsThread = undefined;
      }
    }
    return inNetns(this.o.appNetns, make);
  }

  private refillSoon(kind: 'stream' | 'dgram'): void {
    if (this.refilling[kind] || this.closed) return;
    this.refilling[kind] = true;
    setImmediate(() => {
      const pool = this.pools[kind];
      const thread = this.netnsThread;
      if (!this.closed && thread?.startedUp) {
        // Made by the app netns thread while this loop answers other calls; `refilling` stays set until then.
        thread.socketPairsSoon(kind === 'stream' ? 'stream' : 'seqpacket', POOL_SIZE - pool.length).then(
          (pairs) => {
            this.refilling[kind] = false;
            if (!this.closed) return void pool.push(...pairs);
            for (const [a, b] of pairs) (ux.close(a), ux.close(b));
          },
          (e: unknown) => {
            this.refilling[kind] = false;
            this.log(`socketpair pool: ${(e as Error).message}`);
          },
        );
        return;
      }
      this.refilling[kind] = false;
      if (this.closed) return;
      try {
        pool.push(...this.makePairs(kind, POOL_SIZE - pool.length));
      } catch (e) {
        this.log(`socketpair pool: ${(e as Error).message}`);
      }
    });
  }

  /**
   * Registers a socket whose program end is `theirs`. A stream socket is watched for the program's close until it
   * connects or listens; `connected` (an accepted one) starts its pump at once instead (`startStream`), so it
   * never gets that watch, whose poll handle would be made and dropped in the same call (about five system calls).
   */
  register(file: SocketFile, kind: 'stream' | 'dgram', theirs: number, ours: number, owner?: Target, connected = false): Sock {
    const ino = ux.inode(theirs);
    const sock: Sock = { ino, file, kind, ours, owner, released: false };
    this.socks.set(ino, sock);
    if (kind === 'dgram') {
      sock.dgram = new DgramPump({ fd: ours, file, onClose: () => this.forget(sock), flushLinks: this.flushLinks });
      sock.ours = -1;
    } else if (connected) this.startStream(sock);
    else this.watchIdle(sock);
    return sock;
  }

  /** An unconnected stream socket: release it when the program closes it (POLLHUP, via the disconnect interest). */
  private watchIdle(sock: Sock): void {
    const fd = sock.ours;
    sock.idle = ux.pollFd(fd, () => {
      if (ux.pollNow(fd, ux.U.POLLHUP) & ux.U.POLLHUP) this.release(sock);
      // A shutdown of an unconnected socket: level-triggered from now on, so stop watching.
      else sock.idle?.set(false, false, false);
    });
    sock.idle.set(false, false, true);
  }

  /** Takes our end and its close watch (if any) off an unconnected socket. */
  private detachIdle(sock: Sock): { fd: number; poll: ux.FdPoll | undefined } {
    const detached = { fd: sock.ours, poll: sock.idle };
    sock.idle = undefined;
    sock.ours = -1;
    return detached;
  }

  private stopIdle(sock: Sock): number {
    const { fd, poll } = this.detachIdle(sock);
    poll?.close();
    return fd;
  }

  /** A connected (or connecting, with `connecting`) stream socket starts pumping. */
  startStream(sock: Sock, connecting?: Stuffing): void {
    // The pump takes over the close watch's poll handle on our end rather than make its own.
    const { fd, poll } = this.detachIdle(sock);
    if (fd < 0) return poll?.close();
    sock.pump = new StreamPump({
      fd,
      file: sock.file,
      connecting,
      poll,
      onClose: (unsurfaced) => {
        this.forget(sock);
        if (unsurfaced === undefined) return;
        this.unsurfaced.set(sock.ino, unsurfaced);
        if (this.unsurfaced.size > UNSURFACED_LIMIT) this.unsurfaced.delete(this.unsurfaced.keys().next().value!);
      },
      programEnd: () => this.programEnd(sock),
      programHeld: () => this.programHeld(sock),
      onConnectFailed: () => this.connectFailed(sock),
    });
  }

  /** `sock`'s non-blocking connect failed: it stays known, with its Endpoint and error, among the last FAILED_LIMIT. */
  private connectFailed(sock: Sock): void {
    sock.failMarker = true;
    this.failed.add(sock);
    if (this.failed.size <= FAILED_LIMIT) return;
    const oldest = this.failed.values().next().value!;
    this.forget(oldest);
    oldest.file.close();
  }

  /**
   * The failed connect's error is being reported (getsockopt(SO_ERROR), connect): its marker leaves the program's
   * end `dup` too, so that its poll stops showing POLLERR as Linux's does once the error is read. False when the
   * program had already taken the marker itself (a read or write on its end failed with it): Linux's error was
   * reported then.
   */
  takeFailMarker(sock: Sock, dup: number): boolean {
    if (!sock.failMarker || dup < 0) return true;
    sock.failMarker = false;
    return ux.takeSocketError(dup) !== 0;
  }

  /**
   * The reset a released socket behind the program's fd `fd` could not report, taken (answered once), or
   * undefined. Only for sockets the Sentry no longer knows: a call on them is otherwise CONTINUEd.
   */
  takeUnsurfaced(c: Call, fd: number): number | undefined {
    if (this.unsurfaced.size === 0) return undefined;
    const ino = c.target.socketInode(fd);
    if (ino === null || (typeof ino === 'number' && ino < 0)) return undefined;
    const e = this.unsurfaced.get(ino);
    if (e !== undefined) this.unsurfaced.delete(ino);
    return e;
  }

  /** Hands our end to a listen queue. */
  takeOurs(sock: Sock): number {
    return this.stopIdle(sock);
  }

  /**
   * A dup of a program end of `sock`, for the byte that makes a reset read as ECONNRESET: found by its inode
   * among the fds of the sandbox's processes known now.
   */
  private programEnd(sock: Sock): number {
    return sock.owner ? findByInode(sock.owner, sock.ino) : -1;
  }

  /**
   * Whether the program's end of `sock` is still open anywhere in the sandbox (a process holds it after both
   * directions were shut): the namespace's sock_diag looks the socket up by inode, found until its last close
   * releases it. Undefined where that cannot be asked (the pump then looks among the owner's fds: `programEnd`).
   */
  private programHeld(sock: Sock): boolean | undefined {
    return typeof sock.ino === 'number' ? unixSocketExists(this.diag(), sock.ino) : undefined;
  }

  /** The NETLINK_SOCK_DIAG socket of the pairs' namespace, made on first use; -1 when it cannot be made. */
  private diag(): number {
    if (this.diagFd !== undefined) return this.diagFd;
    let fd: number;
    try {
      fd = this.inAppNetns(
        (thread) => thread.diagSocket(),
        () => sys.socket(AF_NETLINK, C.SOCK_RAW | C.SOCK_CLOEXEC, NETLINK_SOCK_DIAG),
      );
    } catch {
      fd = -1;
    }
    if (fd >= 0 && this.closed) {
      ux.close(fd);
      fd = -1;
    }
    this.diagFd = Math.max(fd, -1);
    return this.diagFd;
  }

  forget(sock: Sock): void {
    sock.released = true;
    this.failed.delete(sock);
    if (this.socks.get(sock.ino) === sock) this.socks.delete(sock.ino);
    if (sock.kind === 'stream' && stillDelivering(sock.file.ep)) this.closing.add(sock.file.ep);
  }

  /**
   * Resolves once what the program wrote has left, called after it exited: every pump has seen the program's
   * close (its end goes with the program) and moved what its pair held, and every stream Endpoint the program
   * closed has its bytes and FIN acknowledged; or after `ms`. Without the wait for the FIN a peer that read
   * to the end of the stream (`nc -N`) would never see it: the stack goes when `run` does.
   */
  async drain(ms: number): Promise<void> {
    const deadline = performance.now() + ms;
    const busy = () => {
      for (const ep of this.closing) if (!stillDelivering(ep)) this.closing.delete(ep);
      if (this.closing.size) return true;
      for (const s of this.socks.values()) {
        // A socket still connecting has nothing of the program's to deliver (its pair holds the stuffing junk).
        if (s.kind === 'stream' && s.pump && !s.pump.done && !s.pump.connectingNow) return true;
      }
      return false;
    };
    while (busy() && performance.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  }

  /** Releases everything of a socket. */
  release(sock: Sock): void {
    if (sock.released && !sock.pump && !sock.dgram && !sock.listen && sock.ours < 0) return;
    this.forget(sock);
    const fd = this.stopIdle(sock);
    if (fd >= 0) {
      ux.close(fd);
      sock.file.close();
    }
    sock.pump?.close();
    sock.dgram?.close();
    sock.listen?.release();
  }
}

/**
 * A dup of the program's end of socket `ino` from process `t`: its /proc/<tgid>/fd scanned for socket:[ino],
 * then pidfd_getfd. -1 when that process has exited or closed it (then a reset reads as end of file).
 */
function findByInode(t: Target, ino: number | bigint): number {
  if (t.exitSignal.aborted) return -1;
  const want = `socket:[${ino}]`;
  let names: string[];
  try {
    names = readdirSync(`/proc/${t.tgid}/fd`);
  } catch {
    return -1;
  }
  for (const name of names) {
    try {
      if (readlinkSync(`/proc/${t.tgid}/fd/${name}`) !== want) continue;
    } catch {
      continue;
    }
    const dup = t.getFd(Number(name));
    if (dup >= 0 && ux.inode(dup) === ino) return dup;
    if (dup >= 0) ux.close(dup);
  }
  return -1;
}
