/**
 * What the Node adapters (`net.ts`, `dgram.ts`) share: the socket provider they are bound to, host text to
 * addresses, Node-shaped errors from stack errors, and the keep-alive handle that makes a ref'd socket hold the
 * event loop open as a libuv handle does. This folder is the Node binding, so it alone in netstack/ may use Node.
 */
import { type Address, formatAddress, isV4, parseAddress } from '../addr.ts';
import { ERRNO_NAMES, type NetError } from '../errors.ts';
import type { Endpoint, Family, SocketAddress, SocketType } from '../socket.ts';
import { mapV4 } from '../transport/ports.ts';

/** Anything that makes socket endpoints: a `Netstack`, or the `SocketFactory` of the services wrapped in one. */
export interface SocketProvider {
  socket(family: Family, type: SocketType, protocol?: number): Endpoint | NetError;
  /** Aborted once the stack is closed: its sockets can never progress again, so they stop holding the loop. */
  readonly closed?: AbortSignal;
}

/** An error as Node's socket calls raise them: `code` 'ECONNREFUSED', `errno` negative (libuv), `syscall`. */
export interface NodeSystemError extends Error {
  code: string;
  errno: number;
  syscall: string;
  address?: string;
  port?: number;
}

/** libuv's descriptions, for the errors Node formats with one (listen, getaddrinfo). */
const DESCRIPTIONS: Record<string, string> = {
  EADDRINUSE: 'address already in use',
  EADDRNOTAVAIL: 'address not available',
  EACCES: 'permission denied',
  EINVAL: 'invalid argument',
  EAFNOSUPPORT: 'address family not supported',
};

/**
 * A Node-style error for stack error `e` from `syscall`: the message reads as Node's own
 * ("connect ECONNREFUSED 198.18.0.2:80"; with `describe`, as uvExceptionWithHostPort: "listen EADDRINUSE: address
 * already in use :::80").
 */
export function nodeError(e: NetError | number, syscall: string, address?: string, port?: number, describe = false): NodeSystemError {
  const errno = typeof e === 'number' ? e : e.errno;
  const code = ERRNO_NAMES[errno] ?? `E${errno}`;
  let where = '';
  if (address !== undefined) where = port !== undefined && port > 0 ? ` ${address}:${port}` : ` ${address}`;
  const text = describe && DESCRIPTIONS[code] ? `${syscall} ${code}: ${DESCRIPTIONS[code]}${where}` : `${syscall} ${code}${where}`;
  const err = new Error(text) as NodeSystemError;
  err.errno = -errno;
  err.code = code;
  err.syscall = syscall;
  if (address !== undefined) err.address = address;
  if (port !== undefined && port > 0) err.port = port;
  return err;
}

/** A Node error with a `code` and no errno, as Node's argument and state checks throw (ERR_SOCKET_...). */
export function codeError(code: string, message: string, Kind: ErrorConstructor | RangeErrorConstructor | TypeErrorConstructor = Error): Error & { code: string } {
  const err = new Kind(message) as Error & { code: string };
  err.code = code;
  return err;
}

/**
 * Host text to an address. Only IP literals (and "localhost") resolve: the adapter has no resolver, so a name
 * fails as getaddrinfo's ENOTFOUND would.
 */
export function resolveHost(host: string | undefined, family: Family | 0): Address | null {
  if (host === undefined || host === '' || host === 'localhost') {
    return parseAddress(family === 6 ? '::1' : '127.0.0.1');
  }
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  return parseAddress(bare);
}

/** The ENOTFOUND error Node's lookup gives for a name that does not resolve. */
export function notFound(host: string): NodeSystemError {
  const err = new Error(`getaddrinfo ENOTFOUND ${host}`) as NodeSystemError;
  err.errno = -3008;
  err.code = 'ENOTFOUND';
  err.syscall = 'getaddrinfo';
  (err as { hostname?: string }).hostname = host;
  return err;
}

/** An address in the form `family`'s socket takes: IPv4 peers of an IPv6 socket become ::ffff:a.b.c.d. */
export function forFamily(a: Address, family: Family): Address {
  return family === 6 && isV4(a) ? mapV4(a) : a;
}

/** Node's address() record. */
export interface AddressInfo {
  address: string;
  family: 'IPv4' | 'IPv6';
  port: number;
}

/** Address text as Node prints it: IPv4-mapped IPv6 addresses end in dotted-quad form (::ffff:198.18.0.1). */
export function formatHost(a: Address): string {
  const mapped = a.length === 16 && a.subarray(0, 10).every((b) => b === 0) && a[10] === 0xff && a[11] === 0xff;
  return mapped ? `::ffff:${formatAddress(a.subarray(12))}` : formatAddress(a);
}

/** An endpoint's address as Node's `address()` reports it. */
export function addressInfo(sa: SocketAddress): AddressInfo {
  return { address: formatHost(sa.address), family: isV4(sa.address) ? 'IPv4' : 'IPv6', port: sa.port };
}

/** A Buffer over the same bytes, without copying. */
export function asBuffer(data: Uint8Array): Buffer {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * Holds the event loop open while any ref'd adapter socket of one stack is open, as a ref'd libuv handle does; the
 * stack's own timers and links may or may not (a NodeClock can be unref'd), so sockets do not rely on them. Once
 * the stack is closed it holds nothing: a connection caught mid-close there never finishes closing, and it kept
 * whole test processes alive after their last test.
 */
class LoopKeeper {
  private count = 0;
  private timer: ReturnType<typeof setInterval> | null = null;
  private dead = false;

  constructor(closed?: AbortSignal) {
    if (closed?.aborted) this.dead = true;
    else closed?.addEventListener('abort', () => ((this.dead = true), this.stop()), { once: true });
  }

  hold(): void {
    if (this.count++ === 0 && !this.dead) this.timer = setInterval(() => {}, 1 << 30);
  }

  release(): void {
    if (this.count === 0) return;
    if (--this.count === 0) this.stop();
  }

  private stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}

/** For providers that cannot say when they close. */
const anyStack = new LoopKeeper();
const keepers = new WeakMap<AbortSignal, LoopKeeper>();

function keeperOf(provider: SocketProvider): LoopKeeper {
  const closed = provider.closed;
  if (!closed) return anyStack;
  let k = keepers.get(closed);
  if (!k) keepers.set(closed, (k = new LoopKeeper(closed)));
  return k;
}

/** One socket's claim on the event loop: held while open and ref'd, and while its stack is not closed. */
export class LoopRef {
  private refd = true;
  private open = false;
  private held = false;
  private readonly keeper: LoopKeeper;

  constructor(provider: SocketProvider) {
    this.keeper = keeperOf(provider);
  }

  /** The socket became active (bound, connecting or listening). */
  activate(): void {
    this.open = true;
    this.sync();
  }

  /** The socket is closed for good. */
  deactivate(): void {
    this.open = false;
    this.sync();
  }

  ref(): void {
    this.refd = true;
    this.sync();
  }

  unref(): void {
    this.refd = false;
    this.sync();
  }

  private sync(): void {
    const want = this.open && this.refd;
    if (want === this.held) return;
    this.held = want;
    if (want) this.keeper.hold();
    else this.keeper.release();
  }
}

/**
 * Runs `fn` once after the current task, however many times it is asked for before then: readiness arrives
 * from inside the stack's packet processing, and user callbacks must not re-enter the stack there.
 */
export function coalesced(fn: () => void): () => void {
  let pending = false;
  const run = () => {
    pending = false;
    fn();
  };
  return () => {
    if (pending) return;
    pending = true;
    runSoon(run);
  };
}

// What coalesced functions asked to run (the first runCount slots), in order, and the next to run: one microtask
// runs them all. Node's queueMicrotask makes an async resource and a bound function per call, which a kept-alive
// request paid for each socket woken (issue 15); the runs keep their order, after the task that asked. The array
// is emptied slot by slot as it runs and reused, never cut with `length = 0`: that store is a call into V8's
// runtime (the array's length is an accessor), once per pass.
const runQueue: ((() => void) | Runnable | undefined)[] = [];
let runCount = 0;
let runNext = 0;
let runScheduled = false;

/** What runSoon queues besides a function: an object of the caller's whose `run` it calls (no closure needed). */
export interface Runnable {
  run(): void;
}

/** Runs `run` after the current task, in order with the others asked for (no coalescing: see `coalesced`). */
export function runSoon(run: (() => void) | Runnable): void {
  runQueue[runCount++] = run;
  if (runScheduled) return;
  runScheduled = true;
  queueMicrotask(runQueued);
}

function runQueued(): void {
  try {
    // Runs queued while these run (one socket's pump waking another) join this pass. Each slot is cleared before
    // its run: the queue keeps no closed socket's pump alive.
    while (runNext < runCount) {
      const run = runQueue[runNext]!;
      runQueue[runNext++] = undefined;
      if (typeof run === 'function') run();
      else run.run();
    }
  } finally {
    // A run that threw leaves the rest to a microtask of their own, as separate microtasks would have run them.
    if (runNext < runCount) queueMicrotask(runQueued);
    else {
      runCount = 0;
      runNext = 0;
      runScheduled = false;
    }
  }
}
