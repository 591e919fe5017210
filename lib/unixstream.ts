/**
 * A unix stream socket driven through koffi on Node's main loop, able to carry descriptors (SCM_RIGHTS) with its
 * bytes, which a Node `net.Socket` cannot. It offers the few `net.Socket` members a 9P connection uses (`data`,
 * `drain`, `close` and `error` events, `write`, `writableLength`, `pause`/`resume`, `destroy`), so the Gofer's
 * connection and client can run on either. Descriptors received are close-on-exec and handed to the `data`
 * listener with the bytes they came with; on a stream socket the kernel detaches them with the first byte of the
 * write that carried them, so they arrive no later than that write's bytes.
 */
import { EventEmitter } from 'node:events';
import { availableParallelism } from 'node:os';
import koffi from 'koffi';
import { C, mapMemory, minusErrno, SysError, sockaddrUn, sys, type NativeBuffer } from './libc.ts';
import { pollFd, send, U, type FdPoll } from './unix.ts';

const libc = koffi.load('libc.so.6');
const recvmsg = libc.func('long recvmsg(int fd, void *msg, int flags)') as (fd: number, msg: bigint, flags: number) => number;
const sendmsg = libc.func('long sendmsg(int fd, void *msg, int flags)') as (fd: number, msg: bigint, flags: number) => number;

const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;
const MSG_CMSG_CLOEXEC = 0x40000000;
const MSG_CTRUNC = 0x8;
const MAX_FDS = 16;
const CMSG_HDR = 16; // cmsg_len (size_t), cmsg_level, cmsg_type
const CONTROL = CMSG_HDR + 4 * MAX_FDS;
const READ_SIZE = 64 * 1024;
/** Frames queued in one turn of the loop are sent together up to this many bytes (one send(2), not one each). */
const COALESCE = 64 * 1024;
// Native layout: msghdr (56) | iovec (16) | control | data.
const MSGHDR = 0;
const IOVEC = 56;
const CTRL = 72;
const DATA = CTRL + CONTROL;

/** The fields of `mem`'s msghdr and iovec that never change: where the iovec, the control buffer and the data lie. */
function msghdrInit(mem: NativeBuffer): void {
  const v = mem.view;
  v.setBigUint64(MSGHDR + 0, 0n, true); // msg_name
  v.setUint32(MSGHDR + 8, 0, true); // msg_namelen
  v.setBigUint64(MSGHDR + 16, mem.address + BigInt(IOVEC), true); // msg_iov
  v.setBigUint64(MSGHDR + 24, 1n, true); // msg_iovlen
  v.setBigUint64(MSGHDR + 32, mem.address + BigInt(CTRL), true); // msg_control
  v.setBigUint64(IOVEC, mem.address + BigInt(DATA), true); // iov_base
}

/**
 * The fields of a call's msghdr that change (recvmsg(2) writes back msg_controllen and msg_flags): lengths below
 * 2^32 as two 32-bit halves, not BigInts, since building a BigInt from a number is a call into V8's runtime
 * (~70 ns) and this runs for every recvmsg, including each try of a poll.
 */
function msghdrLengths(v: DataView, dataLen: number, controlLen: number): void {
  v.setUint32(MSGHDR + 40, controlLen, true); // msg_controllen
  v.setUint32(MSGHDR + 44, 0, true);
  v.setInt32(MSGHDR + 48, 0, true); // msg_flags
  v.setUint32(IOVEC + 8, dataLen, true); // iov_len
  v.setUint32(IOVEC + 12, 0, true);
}

interface Out {
  data: Uint8Array;
  fds: number[];
  /** Given for lent descriptors: called instead of closing them. */
  release?: () => void;
}

/** Ends the sender's part in an Out's descriptors: closes them, or hands lent ones back. */
function settle(o: Out): void {
  if (o.release) o.release();
  else for (const fd of o.fds) sys.close(fd);
}

/**
 * `us` microseconds (`dflt` when undefined) as a `pollAfterSend` bound in nanoseconds: 0 (never poll) on a machine
 * or affinity mask of one CPU, where the peer that is to send can only run once the poller gives the CPU up.
 */
export function pollBudgetNs(us: number | undefined, dflt: number): bigint {
  return availableParallelism() > 1 ? BigInt(Math.max(0, Math.round((us ?? dflt) * 1000))) : 0n;
}

/** A connected unix stream socket on the main loop; owns the descriptor it is given. */
export class UnixStream extends EventEmitter {
  /**
   * A `sched_yield` in a poll longer than this ran another process: the poller shares its CPU (an idle one's yield
   * takes ~1-2 µs), and the poll stops (see pollRead). Process-wide; 0 never stops a poll there, which tests of
   * what polling takes set, since on a machine busy with other work every yield may run something else.
   */
  static yieldCutNs = 250_000n;
  /**
   * How long no poll is armed after such a cut: `holdOffMinNs` after one that comes alone, twice the last hold-off
   * (up to `holdOffMaxNs`) after one that comes within twice the last hold-off after it ended. Why: an untar alone
   * on the machine saw ~20 cuts per 10,000 files on each end, from bursts of its own pipeline (the other
   * process's handling, V8's threads of this one), and a fixed 100 ms hold-off after each left a third of the
   * Sentry's polls and most of the Gofer's unarmed; a CPU-bound process beside the poller cuts every poll after a
   * hold-off, and the hold-off grows to the maximum in a few cuts, each costing the poller that process's time
   * slice. Process-wide, for tests.
   */
  static holdOffMinNs = 5_000_000n;
  static holdOffMaxNs = 100_000_000n;

  private readonly mem: NativeBuffer;
  /** The msghdr's address in `mem`, made once (see `msghdrLengths`). */
  private readonly msg: bigint;
  private readonly poll: FdPoll;
  private readonly out: Out[] = [];
  private queued = 0;
  private paused = false;
  private closed = false;
  private blocked = false;
  private flushQueued = false;
  /** Reads whose descriptors did not all fit (the kernel closed the rest). */
  truncated = 0;
  /** recvmsg(2) calls made (those that said EAGAIN too), and send(2)/sendmsg(2) calls that moved bytes. */
  reads = 0;
  sends = 0;
  /** `pollAfterSend`'s polls that ended with `done` (the loop was not woken for those bytes), and those that gave up. */
  polled = 0;
  pollMisses = 0;
  /**
   * Polls cut short because a `sched_yield` ran another process for long, and polls not armed in the while after
   * one (`pollAfterSend` calls refused).
   */
  pollsYielded = 0;
  pollsSkipped = 0;
  private noPollUntil = 0n;
  private holdOffNs = 0n;
  /** How long the poll armed by `pollAfterSend` may last; 0 when none is armed. */
  private pollNs = 0n;
  private pollDone: () => boolean = () => true;

  /** Takes over `fd` (made non-blocking). */
  constructor(readonly fd: number) {
    super();
    this.mem = mapMemory(DATA + READ_SIZE);
    msghdrInit(this.mem);
    this.msg = this.mem.address + BigInt(MSGHDR);
    this.poll = pollFd(fd, (readable, writable, status) => {
      if (status < 0) return this.fail(new SysError('poll', -status));
      if (writable) this.flush();
      if (readable) this.readSome();
    });
    this.poll.set(true, false);
  }

  /** Connects to a unix socket path; rejects with a SysError. */
  static connect(path: string): UnixStream {
    const fd = sys.socket(C.AF_UNIX, U.SOCK_STREAM | C.SOCK_CLOEXEC, 0);
    if (fd < 0) throw new SysError('socket', koffi.errno(), 'AF_UNIX');
    const [sa, len] = sockaddrUn(path);
    if (sys.connect(fd, sa, len) < 0) {
      const e = koffi.errno();
      sys.close(fd);
      throw new SysError('connect', e, path);
    }
    return new UnixStream(fd);
  }

  /** Bytes accepted by `write` and not yet taken by the kernel. */
  get writableLength(): number {
    return this.queued;
  }

  /** Whether reading is paused. */
  isPaused(): boolean {
    return this.paused;
  }

  /** Stops reading until `resume`. */
  pause(): this {
    this.paused = true;
    this.updatePoll();
    return this;
  }

  /** Reads again. */
  resume(): this {
    this.paused = false;
    this.updatePoll();
    return this;
  }

  /**
   * Sends `data`, with `fds` attached to its first byte or earlier (never later). The descriptors are ours to
   * close: they are closed once the kernel has them in flight (it holds its own references), or when the stream is
   * destroyed first; or, with `release`, they are lent, and `release` is called at that point instead, so the
   * caller keeps them open until then. The bytes go out at the end of the current job (a microtask), together with whatever else
   * was written meanwhile: a server answering a batch of pipelined requests makes one send(2), not one per reply.
   * False while the kernel's buffer is full (then `drain` follows).
   */
  write(data: Uint8Array, fds: number[] = [], release?: () => void): boolean {
    if (this.closed) {
      settle({ data, fds, release });
      return false;
    }
    this.out.push({ data, fds, release });
    this.queued += data.length;
    if (!this.flushQueued && !this.blocked) {
      this.flushQueued = true;
      queueMicrotask(() => {
        this.flushQueued = false;
        this.flush();
      });
    }
    return !this.blocked;
  }

  /**
   * Arms one poll of the socket for `ns` nanoseconds right after the next send (of the bytes written so far, or the
   * next written): recvmsg(2) without waiting, `sched_yield` between tries; bytes that come are emitted there,
   * without a wake-up of the loop, until `done()` says the awaited ones are in or the time is up (then the loop's
   * epoll takes over). For a side that expects its peer's next bytes soon: on a machine whose idle CPUs halt at
   * once (a VM's haltpoll with `guest_halt_poll_ns` 0), waking a process asleep in epoll is an inter-processor
   * interrupt through the hypervisor, tens of µs, which the poll trades for CPU. The loop does nothing else
   * meanwhile, so `ns` bounds how long timers and other descriptors wait. Use `pollBudgetNs` for `ns`. A poll
   * whose `sched_yield` let another process run for long stops there, and none is armed for a while (`holdOffMinNs`).
   */
  pollAfterSend(ns: bigint, done: () => boolean): void {
    if (this.closed || ns <= 0n) return;
    if (this.noPollUntil !== 0n && process.hrtime.bigint() < this.noPollUntil) {
      this.pollsSkipped++;
      return;
    }
    this.pollNs = ns;
    this.pollDone = done;
  }

  /** Closes the socket; pending descriptors are closed; emits `close` once. */
  destroy(): this {
    if (this.closed) return this;
    this.closed = true;
    this.poll.close();
    for (const o of this.out) settle(o);
    this.out.length = 0;
    this.queued = 0;
    sys.close(this.fd);
    this.mem.free();
    queueMicrotask(() => this.emit('close'));
    return this;
  }

  private updatePoll(): void {
    if (!this.closed) this.poll.set(!this.paused, this.out.length > 0);
  }

  private fail(e: Error): void {
    if (this.closed) return;
    this.emit('error', e);
    this.destroy();
  }

  private flush(): void {
    while (!this.closed && this.out.length > 0) {
      let o = this.out[0]!;
      if (this.out.length > 1 && o.data.length < COALESCE) {
        // Small frames behind this one join it, their descriptors too: descriptors may arrive early, never late,
        // so a batch of replies with an Rlcreate's descriptor in it is one sendmsg(2) and one wake-up of the peer.
        let k = 1;
        let total = o.data.length;
        let nfds = o.fds.length;
        for (; k < this.out.length; k++) {
          const next = this.out[k]!;
          if (total + next.data.length > COALESCE || nfds + next.fds.length > MAX_FDS) break;
          total += next.data.length;
          nfds += next.fds.length;
        }
        if (k > 1) {
          const batch = this.out.slice(0, k);
          const joined = Buffer.concat(batch.map((x) => x.data), total);
          const fds = nfds === o.fds.length ? o.fds : batch.flatMap((x) => x.fds);
          const release = batch.some((x) => x.release) ? () => batch.forEach(settle) : undefined;
          this.out.splice(0, k, { data: joined, fds, release });
          o = this.out[0]!;
        }
      }
      let n: number;
      if (o.fds.length > 0) n = this.sendFds(o.data, o.fds);
      else n = send(this.fd, o.data, U.MSG_DONTWAIT | U.MSG_NOSIGNAL);
      if (n === -U.EAGAIN) {
        this.blocked = true;
        break;
      }
      if (n < 0) return this.fail(new SysError('send', -n));
      this.sends++;
      if (o.fds.length > 0) {
        settle(o);
        o.fds = [];
        o.release = undefined;
      }
      this.queued -= n;
      if (n === o.data.length) this.out.shift();
      else o.data = o.data.subarray(n);
    }
    this.updatePoll();
    if (this.blocked && this.out.length === 0 && !this.closed) {
      this.blocked = false;
      this.emit('drain');
    }
    if (this.pollNs > 0n && this.out.length === 0) this.pollRead();
  }

  /** The poll `pollAfterSend` armed (see there). */
  private pollRead(): void {
    const until = process.hrtime.bigint() + this.pollNs;
    this.pollNs = 0n;
    while (!this.closed && !this.paused) {
      const n = this.recv();
      if (n !== -U.EAGAIN) {
        this.deliver(n);
        if (this.closed) return;
        if (this.pollDone()) {
          this.polled++;
          return;
        }
      }
      // Checked after bytes too: a peer streaming without end must not hold the loop past the bound.
      const now = process.hrtime.bigint();
      if (now > until) {
        this.pollMisses++;
        return;
      }
      if (n !== -U.EAGAIN) continue;
      sys.sched_yield();
      // A yield that took long ran another process on this CPU: the CPUs are busy, so a wake-up would not have
      // cost an idle CPU's interrupt, and the polling takes time those processes need (measured: an untar 25 %
      // slower with both ends polling beside one CPU-bound process). Sleep in epoll, and arm no poll for a while
      // (see holdOffMinNs).
      const after = process.hrtime.bigint();
      if (UnixStream.yieldCutNs > 0n && after - now > UnixStream.yieldCutNs) {
        this.pollsYielded++;
        const again = this.holdOffNs > 0n && after < this.noPollUntil + 2n * this.holdOffNs;
        const longer = 2n * this.holdOffNs < UnixStream.holdOffMaxNs ? 2n * this.holdOffNs : UnixStream.holdOffMaxNs;
        this.holdOffNs = again ? longer : UnixStream.holdOffMinNs;
        this.noPollUntil = after + this.holdOffNs;
        return;
      }
    }
  }

  private sendFds(data: Uint8Array, fds: number[]): number {
    // Only the first piece that fits the native buffer goes with the descriptors; the rest follows as bytes.
    const n = Math.min(data.length, READ_SIZE);
    this.mem.bytes.set(data.subarray(0, n), DATA);
    const v = this.mem.view;
    const space = CMSG_HDR + 4 * fds.length;
    v.setUint32(CTRL, space, true); // cmsg_len
    v.setUint32(CTRL + 4, 0, true);
    v.setInt32(CTRL + 8, SOL_SOCKET, true);
    v.setInt32(CTRL + 12, SCM_RIGHTS, true);
    fds.forEach((fd, i) => v.setInt32(CTRL + CMSG_HDR + 4 * i, fd, true));
    msghdrLengths(v, n, (space + 7) & ~7);
    const r = sendmsg(this.fd, this.msg, U.MSG_DONTWAIT | U.MSG_NOSIGNAL);
    return minusErrno(r);
  }

  private readSome(): void {
    // A bounded number of reads per wake-up, so one busy peer cannot starve the loop. A read that came back short
    // and without descriptors emptied the socket (the kernel joins queued writes into one read, stopping only
    // after descriptors): reading again would only say EAGAIN, and the poll is level-triggered, so anything
    // arriving meanwhile wakes the loop again.
    for (let i = 0; i < 16 && !this.closed && !this.paused; i++) {
      const n = this.recv();
      if (n === -U.EAGAIN || !this.deliver(n)) return;
    }
  }

  /** One recvmsg(2) into `mem` without waiting: the bytes read, or -errno. */
  private recv(): number {
    msghdrLengths(this.mem.view, READ_SIZE, CONTROL);
    const n = recvmsg(this.fd, this.msg, U.MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    this.reads++;
    return n < 0 ? -koffi.errno() : n;
  }

  /** Hands on what `recv` gave (`n` not -EAGAIN): emits the bytes, or ends the stream; whether to read on. */
  private deliver(n: number): boolean {
    if (n < 0) {
      this.fail(new SysError('recvmsg', -n));
      return false;
    }
    const fds = this.takeFds();
    if (n === 0) {
      for (const fd of fds) sys.close(fd);
      this.destroy();
      return false;
    }
    this.emit('data', Buffer.from(this.mem.bytes.subarray(DATA, DATA + n)), fds);
    return n === READ_SIZE || fds.length > 0;
  }

  private takeFds(): number[] {
    const v = this.mem.view;
    const controlLen = v.getUint32(MSGHDR + 40, true); // msg_controllen, below 2^32 (see msghdrLengths)
    const fds: number[] = [];
    for (let o = 0; o + CMSG_HDR <= controlLen; ) {
      const len = v.getUint32(CTRL + o, true); // cmsg_len
      if (len < CMSG_HDR) break;
      if (v.getInt32(CTRL + o + 8, true) === SOL_SOCKET && v.getInt32(CTRL + o + 12, true) === SCM_RIGHTS) {
        for (let p = CMSG_HDR; p + 4 <= len; p += 4) fds.push(v.getInt32(CTRL + o + p, true));
      }
      o += (len + 7) & ~7;
    }
    if (v.getInt32(MSGHDR + 48, true) & MSG_CTRUNC) this.truncated++;
    return fds;
  }
}
