/**
 * A thread that stays in one network namespace and makes sockets there on request. setns() moves only the
 * calling thread, so `inNetns` has the main thread step in and out for every batch of fds, and for that moment
 * /proc/<pid>/ns/net (the main thread's) names the other namespace: a tool that reads it then (ip netns
 * identify, a container runtime, a monitor) sees the process in the wrong place. A Worker that enters once and
 * never leaves does the same work without the main thread ever moving.
 *
 * The Worker runs a few lines of plain JavaScript over koffi (no loader needed, in a checkout or installed), and
 * answers synchronously: the caller writes a request into a SharedArrayBuffer and sleeps in Atomics.wait until the
 * Worker has written the fds back (tens of µs), so callers that need an fd now keep their synchronous shape. The
 * fds are process-wide like any others.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { BOOT_CANCELLED, BOOT_DONE, BOOT_LOADING, bootGate, holdExitWhileBooting } from './koffi-worker.ts';
import { SysError } from './libc.ts';
import { NetnsError, netnsFile } from './netns.ts';

/** The most socketpairs one request makes. */
export const MAX_PAIRS = 16;

// ctl[0]: the state word both sides wait on; ctl[1]: the socket type; ctl[2]: how many pairs; ctl[3]: the
// count made or -errno; ctl[4..]: the fds, two per pair; ctl[BOOTED]: the boot word (lib/koffi-worker.ts), BOOT_DONE
// once the Worker's start-up (koffi's load) is over, whatever its outcome.
const IDLE = 0;
const REQUEST = 1;
const DONE = 2;
const STOP = 3;
const READY = 4;
const FAILED = 5;

/** How long a caller waits for the Worker before it calls it lost (it answers in µs; start-up takes ms). */
const START_MS = 10_000;
const ANSWER_MS = 5_000;
const BOOTED = 4 + 2 * MAX_PAIRS;

/** The request type (in place of a socket type) that asks for a NETLINK_SOCK_DIAG socket instead of pairs. */
const DIAG_REQUEST = -1;

const WORKER_SOURCE = `
const { workerData, parentPort } = require('node:worker_threads');
const ctl = new Int32Array(workerData.sab);
let entered = false;
let calls;
// The exit may have come first (lib/koffi-worker.ts): then koffi is not loaded at all.
if (${bootGate('ctl', BOOTED)}) try {
  const koffi = require(workerData.koffi);
  const libc = koffi.load('libc.so.6');
  const open = libc.func('int open(const char *path, int flags, int mode)');
  const close = libc.func('int close(int fd)');
  const setns = libc.func('int setns(int fd, int nstype)');
  const socketpair = libc.func('int socketpair(int domain, int type, int protocol, _Out_ int *sv)');
  const socket = libc.func('int socket(int domain, int type, int protocol)');
  calls = { socketpair, socket, errno: () => koffi.errno() };
  const fd = open(workerData.path, 0x80000 /* O_RDONLY|O_CLOEXEC */, 0);
  entered = fd >= 0 && setns(fd, 0x40000000 /* CLONE_NEWNET */) === 0;
  ctl[3] = entered ? 0 : -koffi.errno();
  if (fd >= 0) close(fd);
} catch {
  // koffi could not load here: the caller hears FAILED at once instead of waiting out its bound.
  ctl[3] = 0;
}
Atomics.store(ctl, ${BOOTED}, ${BOOT_DONE});
Atomics.notify(ctl, ${BOOTED});
// A close() during the start-up has written STOP: that stands.
if (Atomics.compareExchange(ctl, 0, ${IDLE}, entered ? ${READY} : ${FAILED}) !== ${IDLE}) entered = false;
Atomics.notify(ctl, 0);
parentPort.postMessage(0);
while (entered) {
  const state = Atomics.load(ctl, 0);
  if (state === ${STOP}) break;
  if (state !== ${REQUEST}) {
    // IDLE, DONE not yet taken, or READY not yet seen by the caller: sleep until the word changes.
    Atomics.wait(ctl, 0, state);
    continue;
  }
  if (ctl[1] === ${DIAG_REQUEST}) {
    // Not a pair: one NETLINK_SOCK_DIAG socket of this namespace (its unix sockets are the ones it can look up).
    const fd = calls.socket(16 /* AF_NETLINK */, 3 /* SOCK_RAW */ | 0o2000000 /* SOCK_CLOEXEC */, 4 /* NETLINK_SOCK_DIAG */);
    ctl[4] = fd;
    ctl[3] = fd >= 0 ? 1 : -calls.errno();
    Atomics.store(ctl, 0, ${DONE});
    Atomics.notify(ctl, 0);
    continue;
  }
  const sv = [0, 0];
  let made = 0;
  for (; made < ctl[2]; made++) {
    if (calls.socketpair(1 /* AF_UNIX */, ctl[1], 0, sv) < 0) break;
    ctl[4 + 2 * made] = sv[0];
    ctl[5 + 2 * made] = sv[1];
  }
  ctl[3] = made > 0 || ctl[2] === 0 ? made : -calls.errno();
  Atomics.store(ctl, 0, ${DONE});
  Atomics.notify(ctl, 0);
}
`;

/** Atomics.waitAsync (V8 has it; the TypeScript lib this project targets does not declare it yet). */
const waitAsync = (Atomics as unknown as {
  waitAsync(a: Int32Array, i: number, v: number, ms: number): { async: false; value: string } | { async: true; value: Promise<string> };
}).waitAsync.bind(Atomics);

const SOCK_STREAM = 1;
const SOCK_SEQPACKET = 5;
const SOCK_CLOEXEC = 0o2000000;

/** The socket type a request for pairs of `type` asks for. */
function pairType(type: 'stream' | 'seqpacket'): number {
  return (type === 'stream' ? SOCK_STREAM : SOCK_SEQPACKET) | SOCK_CLOEXEC;
}

/** A Worker inside a network namespace that makes AF_UNIX socketpairs there. */
export class NetnsThread {
  private readonly ctl: Int32Array;
  private ready = false;
  private closed = false;
  /** The request of `socketPairsSoon` under way, and what settles its promise. */
  private pending: { settle(r: [number, number][] | Error): void } | undefined;
  /** Settles when the Worker's start-up is over (inside, or failed), without anyone blocking on it. */
  private readonly booted: Promise<void>;

  private constructor(
    worker: Worker,
    sab: SharedArrayBuffer,
    /** The namespace's name or path, for messages. */
    readonly label: string,
  ) {
    this.ctl = new Int32Array(sab);
    this.booted = holdExitWhileBooting(this.ctl, BOOTED, worker);
  }

  /**
   * Starts a thread for the namespace named `ref` (or at absolute path `ref`) and returns at once: the first
   * request waits until it is inside (tens of ms), so the start overlaps whatever the caller does meanwhile.
   */
  static start(ref: string): NetnsThread {
    const path = netnsFile(ref);
    const sab = new SharedArrayBuffer(4 * (BOOTED + 1));
    const koffiPath = createRequire(import.meta.url).resolve('koffi');
    // No loader of the parent's (tsx) in it: plain JavaScript, and a start a third shorter.
    const worker = new Worker(WORKER_SOURCE, { eval: true, execArgv: [], workerData: { sab, path, koffi: koffiPath } });
    // It never keeps the process alive: it sleeps in Atomics.wait between requests (and the exit guard above
    // lets a start-up finish).
    worker.unref();
    return new NetnsThread(worker, sab, ref);
  }

  /**
   * Starts a thread and waits until it is inside the namespace; throws NetnsError when the namespace cannot be
   * entered, Error when the thread does not start.
   */
  static open(ref: string): NetnsThread {
    const t = NetnsThread.start(ref);
    t.inside();
    return t;
  }

  /**
   * Resolves once the thread's start-up is over (inside its namespace or failed), without blocking the caller's
   * thread: the start loads koffi in a new isolate, tens of ms on a busy host, and a caller that waited in
   * Atomics.wait would hold its event loop (and every call it answers) that long. A request after it says which.
   */
  settled(): Promise<void> {
    return this.booted;
  }

  /** Whether the Worker's start-up (koffi's load, the setns) is over, whatever its outcome. */
  get startedUp(): boolean {
    return Atomics.load(this.ctl, BOOTED) === BOOT_DONE;
  }

  /** Where the Worker's start-up is: its boot word (lib/koffi-worker.ts) by name. */
  get bootState(): 'waiting' | 'loading' | 'done' | 'cancelled' {
    const w = Atomics.load(this.ctl, BOOTED);
    return w === BOOT_DONE ? 'done' : w === BOOT_LOADING ? 'loading' : w === BOOT_CANCELLED ? 'cancelled' : 'waiting';
  }

  /** Waits (once) until the thread is inside its namespace; throws as open() does. */
  private inside(): void {
    if (this.ready) return;
    const ctl = this.ctl;
    const deadline = Date.now() + START_MS;
    while (Atomics.load(ctl, 0) === IDLE && Date.now() < deadline) Atomics.wait(ctl, 0, IDLE, 50);
    const state = Atomics.load(ctl, 0);
    if (state === READY) {
      Atomics.store(ctl, 0, IDLE);
      this.ready = true;
      return;
    }
    this.closed = true;
    // Never terminate() it: one still loading koffi would abort the process. STOP ends it once it is up.
    Atomics.compareExchange(ctl, 0, IDLE, STOP);
    if (state === FAILED && ctl[3] === 0) throw new Error(`the thread for network namespace '${this.label}' could not load koffi`);
    if (state === FAILED) throw new NetnsError(this.label, `cannot enter network namespace '${this.label}': ${new SysError('setns', -ctl[3]!).message}`);
    throw new Error(`the thread for network namespace '${this.label}' did not start within ${START_MS / 1000} s`);
  }

  /**
   * `n` AF_UNIX socketpairs (blocking, close-on-exec) made inside the namespace, as [end, end]: fewer when the
   * process ran out of fds part way, SysError when it could make none, Error when the thread is gone.
   */
  socketPairs(type: 'stream' | 'seqpacket', n: number): [number, number][] {
    if (this.closed) throw new Error(`the thread of network namespace '${this.label}' is closed`);
    this.inside();
    const out: [number, number][] = [];
    for (let left = n; left > 0; ) {
      const batch = Math.min(left, MAX_PAIRS);
      const made = this.request(pairType(type), batch);
      out.push(...this.pairsMade(made));
      if (made < batch) break;
      left -= made;
    }
    return out;
  }

  /**
   * Up to `n` pairs (at most MAX_PAIRS) as `socketPairs` makes them, without blocking this thread: the promise
   * settles once the Worker has made them (Atomics.waitAsync), so the caller's loop goes on meanwhile (a refill
   * of a pool). One at a time: while another is under way, or before the Worker is inside, it resolves with none.
   * A blocking request that comes meanwhile first waits for this one, which still settles with its pairs.
   */
  socketPairsSoon(type: 'stream' | 'seqpacket', n: number): Promise<[number, number][]> {
    if (this.closed) return Promise.reject(new Error(`the thread of network namespace '${this.label}' is closed`));
    if (this.pending || !this.ready || n <= 0) return Promise.resolve([]);
    const ctl = this.ctl;
    this.post(pairType(type), Math.min(n, MAX_PAIRS));
    return new Promise((resolve, reject) => {
      // A waitAsync keeps no event loop alive (nor does the unref'd Worker): this timer does, until the answer.
      const alive = setTimeout(() => {}, ANSWER_MS);
      const p = {
        settle: (r: [number, number][] | Error) => {
          clearTimeout(alive);
          if (r instanceof Error) reject(r);
          else resolve(r);
        },
      };
      this.pending = p;
      const w = waitAsync(ctl, 0, REQUEST, ANSWER_MS);
      const done = () => {
        if (this.pending === p) this.finishPending();
      };
      if (w.async) void w.value.then(done);
      else done();
    });
  }

  /**
   * Settles the request under way (`socketPairsSoon`) with what the Worker made, once it is done; when it has not
   * answered (the wait ran out), the thread is given up and the request fails.
   */
  private finishPending(): void {
    const p = this.pending;
    if (!p) return;
    this.pending = undefined;
    const ctl = this.ctl;
    if (Atomics.load(ctl, 0) !== DONE) {
      this.close();
      p.settle(new Error(`the thread of network namespace '${this.label}' did not answer`));
      return;
    }
    const made = ctl[3]!;
    const out = this.pairsMade(made);
    Atomics.store(ctl, 0, IDLE);
    p.settle(made > 0 ? out : new SysError('socketpair', -made, `in network namespace ${this.label}`));
  }

  /**
   * A NETLINK_SOCK_DIAG socket (close-on-exec) made inside the namespace, with which the unix sockets made there
   * (`socketPairs`) can be looked up by inode (lib/unixdiag.ts); SysError when it cannot be made.
   */
  diagSocket(): number {
    if (this.closed) throw new Error(`the thread of network namespace '${this.label}' is closed`);
    this.inside();
    this.request(DIAG_REQUEST, 1, 'socket(AF_NETLINK)');
    return this.ctl[4]!;
  }

  /** Hands the Worker a request: `type` (a socket type, or DIAG_REQUEST) and `n`. */
  private post(type: number, n: number): void {
    this.ctl[1] = type;
    this.ctl[2] = n;
    Atomics.store(this.ctl, 0, REQUEST);
    Atomics.notify(this.ctl, 0);
  }

  /** The first `made` pairs the Worker left in the shared words. */
  private pairsMade(made: number): [number, number][] {
    const out: [number, number][] = [];
    for (let i = 0; i < made; i++) out.push([this.ctl[4 + 2 * i]!, this.ctl[5 + 2 * i]!]);
    return out;
  }

  /** One request: how many pairs were made (≥ 1, or all `n`); throws when none were. */
  private request(type: number, n: number, what = 'socketpair'): number {
    const ctl = this.ctl;
    if (this.pending) {
      // A request of socketPairsSoon's is under way: its answer first (it settles with its own pairs).
      const deadline = Date.now() + ANSWER_MS;
      while (Atomics.load(ctl, 0) === REQUEST && Date.now() < deadline) Atomics.wait(ctl, 0, REQUEST, 100);
      this.finishPending();
      if (this.closed) throw new Error(`the thread of network namespace '${this.label}' did not answer`);
    }
    this.post(type, n);
    const deadline = Date.now() + ANSWER_MS;
    while (Atomics.load(ctl, 0) === REQUEST && Date.now() < deadline) Atomics.wait(ctl, 0, REQUEST, 100);
    if (Atomics.load(ctl, 0) !== DONE) {
      this.close();
      throw new Error(`the thread of network namespace '${this.label}' did not answer`);
    }
    const made = ctl[3]!;
    Atomics.store(ctl, 0, IDLE);
    if (made <= 0 && n > 0) throw new SysError(what, -made, `in network namespace ${this.label}`);
    return made;
  }

  /** Ends the thread. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    Atomics.store(this.ctl, 0, STOP);
    Atomics.notify(this.ctl, 0);
  }
}
