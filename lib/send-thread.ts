/**
 * A thread that makes a packet socket's sendmmsg calls, so that the thread running the stack does not pay for
 * what the kernel does inside them: on a veth, the transmit runs the peer's whole receive path (its TCP, the
 * wake-up of the process reading) on the sender's CPU, about a third of `serve`'s CPU under keep-alive HTTP. A
 * kernel server pays that too, but its own TCP receive runs in its peer's send, on the other CPU; ours runs in
 * JavaScript on the serving thread, so handing the transmit to a thread of its own evens the two CPUs out.
 *
 * The queue is a ring of the endpoint's send slots (lib/mmsg.ts) with two indices, PUBLISHED (slots before it are
 * filled and may be sent; the endpoint moves it) and SENT (slots before it are free again; the thread moves it, or
 * the endpoint while the thread has nothing to send). Indices run over [0, 2 × slots), so that a full ring and an
 * empty one differ, and both live in one shared word (PUBLISHED × 2^16 + SENT), changed by compare-and-swap: the
 * thread never reads one index new and the other old. Nothing is passed per frame and no completion comes back
 * through the event loop: the endpoint reads SENT when it needs room.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { BOOT_DONE, bootGate, holdExitWhileBooting } from './koffi-worker.ts';
import { C } from './libc.ts';

// ctl words: the two ring indices (QUEUE); STATE (BOOTING, UP, FAILED, then STOP from the endpoint and STOPPED from the
// thread); BLOCKED, 1 while the thread waits for the socket to take frames again (EAGAIN); BOOTED, the boot word
// (lib/koffi-worker.ts), BOOT_DONE once the thread's start-up (koffi's load) is over.
const QUEUE = 0;
const STATE = 1;
const BLOCKED = 2;
const BOOTED = 3;
const CTL_WORDS = 4;
/** Most slots a ring may have: both indices, below 2 × slots, fit in 16 bits. */
export const MAX_SEND_SLOTS = 1 << 14;
const BOOTING = 0;
const UP = 1;
const FAILED = 2;
const STOP = 3;
const STOPPED = 4;

/** The thread's counts, in a shared Float64Array it alone writes. */
const FRAMES = 0;
const BYTES = 1;
const CALLS = 2;
const BLOCKS = 3;
const DROPS = 4;
const STAT_WORDS = 5;

/** How long close() waits for the thread to leave a send (it polls a blocked socket in steps of POLL_MS). */
const STOP_MS = 1000;
const POLL_MS = 20;

/** Where the batch lives: what the thread needs to send slots and read their lengths (see MmsgBatch.layout). */
export interface SendLayout {
  /** The packet socket. */
  fd: number;
  /** Address and size of the batch's memory. */
  address: bigint;
  size: number;
  /** Number of slots. */
  count: number;
  /** Offsets of the mmsghdr array and the iovec array in that memory. */
  hdrOffset: number;
  iovOffset: number;
  /** Bytes in front of each frame (virtio_net_hdr) not counted as sent bytes. */
  frameHeader: number;
}

const WORKER_SOURCE = `
const { workerData: w } = require('node:worker_threads');
const ctl = new Int32Array(w.ctl);
const stats = new Float64Array(w.stats);
let sendmmsg, poll, errno, view;
let up = false;
// The exit may have come first (lib/koffi-worker.ts): then koffi is not loaded at all.
if (${bootGate('ctl', BOOTED)}) try {
  const koffi = require(w.koffi);
  const libc = koffi.load('libc.so.6');
  sendmmsg = libc.func('int sendmmsg(int fd, void *vec, unsigned int n, int flags)');
  poll = libc.func('int poll(void *fds, unsigned long n, int timeout)');
  errno = () => koffi.errno();
  view = new DataView(koffi.view(w.address, w.size));
  up = true;
} catch {
  // koffi could not load here: the endpoint goes on sending itself.
}
Atomics.store(ctl, ${BOOTED}, ${BOOT_DONE});
Atomics.notify(ctl, ${BOOTED});
require('node:worker_threads').parentPort.postMessage(0);
if (Atomics.compareExchange(ctl, ${STATE}, ${BOOTING}, up ? ${UP} : ${FAILED}) !== ${BOOTING}) up = false;
const n = w.count;
const pfd = new Int16Array(4);
new Int32Array(pfd.buffer)[0] = w.fd;
pfd[2] = ${C.POLLOUT};
while (up && Atomics.load(ctl, ${STATE}) !== ${STOP}) {
  const q = Atomics.load(ctl, ${QUEUE});
  const p = q >>> 16;
  const s = q & 0xffff;
  if (p === s) {
    Atomics.wait(ctl, ${QUEUE}, q, 1000);
    continue;
  }
  const i = s < n ? s : s - n;
  const end = p < n ? p : p - n;
  const run = end > i ? end - i : n - i;
  const r = sendmmsg(w.fd, w.address + BigInt(w.hdrOffset + i * 64), run, 0);
  stats[${CALLS}]++;
  let done = r;
  if (r > 0) {
    let bytes = 0;
    for (let k = i; k < i + r; k++) bytes += view.getUint32(w.iovOffset + k * 16 + 8, true) - w.frameHeader;
    stats[${FRAMES}] += r;
    stats[${BYTES}] += bytes;
  } else {
    const e = errno();
    if (e === ${C.EINTR}) continue;
    if (e === ${C.EAGAIN}) {
      // The socket buffer is full: wait until it takes frames again, in order, looking out for close().
      stats[${BLOCKS}]++;
      Atomics.store(ctl, ${BLOCKED}, 1);
      while (Atomics.load(ctl, ${STATE}) !== ${STOP} && poll(pfd, 1, ${POLL_MS}) === 0);
      Atomics.store(ctl, ${BLOCKED}, 0);
      continue;
    }
    // The kernel refused this one frame (ENOBUFS, ENETDOWN...): drop it and go on, as the endpoint does.
    stats[${DROPS}]++;
    done = 1;
  }
  const next = s + done >= 2 * n ? s + done - 2 * n : s + done;
  for (let w = q; ; ) {
    const seen = Atomics.compareExchange(ctl, ${QUEUE}, w, (w & ~0xffff) | next);
    if (seen === w) break;
    w = seen;
  }
  Atomics.notify(ctl, ${QUEUE});
}
Atomics.store(ctl, ${STATE}, ${STOPPED});
Atomics.notify(ctl, ${STATE});
`;

/** One packet socket's sending thread and the ring indices it shares with the endpoint. */
export class SendThread {
  private readonly ctl: Int32Array;
  private readonly stats: Float64Array;
  private readonly seen = new Float64Array(STAT_WORDS);
  private readonly wrap: number;

  private constructor(ctl: Int32Array, stats: Float64Array, count: number) {
    this.ctl = ctl;
    this.stats = stats;
    this.wrap = 2 * count;
  }

  /**
   * Starts the thread for `layout`'s batch and returns at once; until it is up (`up`, tens of ms: a new isolate
   * loads koffi) the endpoint sends itself. Both indices start at 0: the batch must be empty.
   */
  static start(layout: SendLayout): SendThread {
    const ctl = new Int32Array(new SharedArrayBuffer(4 * CTL_WORDS));
    const stats = new Float64Array(new SharedArrayBuffer(8 * STAT_WORDS));
    const koffi = createRequire(import.meta.url).resolve('koffi');
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      execArgv: [],
      workerData: { ...layout, ctl: ctl.buffer, stats: stats.buffer, koffi },
    });
    // It never keeps the process alive: it sleeps in Atomics.wait while nothing is published.
    worker.unref();
    holdExitWhileBooting(ctl, BOOTED, worker);
    return new SendThread(ctl, stats, layout.count);
  }

  /** Whether the thread takes published slots. */
  get up(): boolean {
    return Atomics.load(this.ctl, STATE) === UP;
  }

  /** Slots before this index (of [0, 2 × slots)) are free. */
  get sent(): number {
    return Atomics.load(this.ctl, QUEUE) & 0xffff;
  }

  /** Slots before this index have been handed over (to the thread, or sent by the endpoint itself). */
  get published(): number {
    return Atomics.load(this.ctl, QUEUE) >>> 16;
  }

  /** Whether the thread has slots it has not sent yet. */
  get busy(): boolean {
    const q = Atomics.load(this.ctl, QUEUE);
    return q >>> 16 !== (q & 0xffff);
  }

  /** Whether the thread waits for the socket to take frames (its buffer is full). */
  get blocked(): boolean {
    return Atomics.load(this.ctl, BLOCKED) === 1;
  }

  /** Hands the slots up to `end` to the thread. */
  publish(end: number): void {
    const ctl = this.ctl;
    for (let q = Atomics.load(ctl, QUEUE); ; ) {
      const seen = Atomics.compareExchange(ctl, QUEUE, q, (end << 16) | (q & 0xffff));
      if (seen === q) break;
      q = seen;
    }
    Atomics.notify(ctl, QUEUE);
  }

  /**
   * Records that the endpoint itself sent everything up to `end`; only while the thread is not `busy` (it then
   * writes nothing, and wakes to find nothing to send).
   */
  sentHere(end: number): void {
    Atomics.store(this.ctl, QUEUE, (end << 16) | end);
  }

  /** Waits at most `ms` for SENT to move past `from`; returns whether it did. */
  waitSent(from: number, ms: number): boolean {
    const q = Atomics.load(this.ctl, QUEUE);
    if ((q & 0xffff) !== from) return true;
    Atomics.wait(this.ctl, QUEUE, q, ms);
    return (Atomics.load(this.ctl, QUEUE) & 0xffff) !== from;
  }

  /** Adds what the thread sent, dropped and waited for since the last call to `c`. */
  addCounts(c: { txFrames: number; txBytes: number; txCalls: number; txBlocked: number; txDropped: number }): void {
    const s = this.stats;
    const seen = this.seen;
    const d = (k: number) => {
      const v = s[k]!;
      const delta = v - seen[k]!;
      seen[k] = v;
      return delta;
    };
    c.txFrames += d(FRAMES);
    c.txBytes += d(BYTES);
    c.txCalls += d(CALLS);
    c.txBlocked += d(BLOCKS);
    c.txDropped += d(DROPS);
  }

  /**
   * Ends the thread and waits (at most STOP_MS) until it has left its loop; returns whether it has, i.e. whether
   * the batch's memory and the socket may now go. A thread still starting ends once up, never touching them.
   */
  stop(): boolean {
    const ctl = this.ctl;
    const was = Atomics.exchange(ctl, STATE, STOP);
    Atomics.notify(ctl, QUEUE);
    if (was !== UP) return true;
    const deadline = Date.now() + STOP_MS;
    while (Atomics.load(ctl, STATE) !== STOPPED && Date.now() < deadline) Atomics.wait(ctl, STATE, STOP, 50);
    return Atomics.load(ctl, STATE) === STOPPED;
  }

  /** Slots between index `from` and index `to` of the ring. */
  distance(from: number, to: number): number {
    return to >= from ? to - from : to - from + this.wrap;
  }
}
