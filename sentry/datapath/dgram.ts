/**
 * The data path of one UDP (or ICMP echo) socket: the program holds one end of an AF_UNIX SOCK_SEQPACKET pair,
 * which keeps datagram boundaries and 0-byte datagrams like SOCK_DGRAM, and unlike a SOCK_DGRAM pair shows
 * the Sentry POLLHUP when the program's last copy closes (unix_release_sock shuts the peer of stream and
 * seqpacket sockets only), so the Endpoint is released with the socket. SO_TYPE is answered by the Sentry.
 *
 * `DgramPump` moves datagrams with raw recv/send (libuv streams read a 0-byte datagram as end of file):
 * Endpoint → program as they arrive, program → Endpoint for the native send()/write() of a connected socket.
 * A trapped recvfrom/recvmsg that asks for the source dequeues through the Sentry's dup of the program's end;
 * the source comes from a FIFO of (length, hash, source, control fields) kept per datagram handed to the
 * program, the control fields (destination, TTL, TOS, arrival time) being what its control messages are made
 * of. A datagram the program read natively in between (read() or recv() have no address, so they are not
 * trapped) is detected as a head that does not match, and skipped. A connected socket keeps the FIFO only
 * while it asks for control messages (its source is the peer). A trapped receive that found nothing and waits is
 * handed the next datagram straight from the Endpoint, source and control fields with it, while the program's
 * queue is known to be empty (everything put there was taken by trapped receives); otherwise datagrams queue in
 * order and the wait looks again.
 *
 * The pump moves data only: a pending socket error (an ICMP error, IP_RECVERR's) stays on the Endpoint for the
 * program's next trapped receive, and recvmsg(MSG_ERRQUEUE) is served from the Endpoint's error queue. poll()
 * cannot show POLLERR on the program's end (nothing outside the kernel can raise it on an AF_UNIX socket without
 * ending it), so the pump wakes it with POLLIN instead: a 0-byte marker datagram put into the program's queue
 * when that is empty (there the marker is the head, and a trapped receive that reports the error takes it out).
 * A resolver's connected socket thus hears the port unreachable at once (poll, then recvfrom: ECONNREFUSED), as
 * on Linux. A native read() or recv() (not trapped) reads the marker as an empty datagram where Linux would
 * fail it with the error; a program that waits for POLLERR alone, with no POLLIN asked, still waits.
 */
import { isError } from '../../netstack/errors.ts';
import type { SocketAddress } from '../../netstack/socket.ts';
import { EventErr, EventIn } from '../../netstack/waiter.ts';
import * as ux from '../../lib/unix.ts';
import { errno } from '../../lib/libc.ts';
import { MmsgBatch } from '../../lib/mmsg.ts';
import { type DatagramControl, datagramControl } from '../socket/cmsg.ts';
import type { SocketFile } from '../socket/file.ts';

/** Bigger than any datagram: a receive through it never truncates, so MSG_TRUNC lengths are exact. */
const MAX_DGRAM = 65536;
/** The most FIFO entries kept for datagrams the program may read natively and never through a trapped call. */
const FIFO_LIMIT = 4096;
/** Bytes of a datagram that go into its FIFO hash. */
const HASH_BYTES = 64;

/**
 * SO_SNDBUF of our end (the kernel doubles it): how much of what the socket received may wait in the program's end.
 * A program that receives in bursts between its other work (iperf3 -u, a DNS server under load) leaves datagrams
 * there for as long as it is away; with the default (212,992, ~90 full-size datagrams) the pump then had to stop,
 * the Endpoint's receive buffer filled behind it, and a UDP server inside lost 4 % at 500 Mbit/s where Linux lost
 * none (42 % against 0.1 % at 1 Gbit/s). Memory is taken only while datagrams wait.
 */
const PAIR_SNDBUF = 2 << 20;

const scratch = new Uint8Array(MAX_DGRAM);
/** Datagrams passed to the program in one sendmmsg at most. */
const DOWN_BATCH = 32;
let downBatch: MmsgBatch | undefined;

/** A datagram read from the Endpoint, on its way to the program's end. */
interface Held {
  data: Uint8Array;
  from: SocketAddress | undefined;
  control: DatagramControl | undefined;
}

/**
 * Puts the datagrams `held` into the program's end `fd`, in order, in one system call (sendmmsg when more than one):
 * how many went (0 or more), or -errno when the first could not.
 */
function sendHeld(fd: number, held: readonly Held[]): number {
  if (held.length === 1) {
    const n = ux.send(fd, held[0]!.data);
    return n >= 0 ? 1 : n;
  }
  const batch = (downBatch ??= new MmsgBatch(DOWN_BATCH, MAX_DGRAM));
  for (let i = 0; i < held.length; i++) {
    batch.slot(i).set(held[i]!.data);
    batch.setLength(i, held[i]!.data.length);
  }
  const n = batch.send(fd, 0, held.length, ux.U.MSG_DONTWAIT);
  return n >= 0 ? n : -errno();
}
const EMPTY = new Uint8Array(0);

/** One datagram handed to the program: enough to recognise it again, and where it came from. */
export interface FifoEntry {
  readonly len: number;
  readonly hash: number;
  readonly from: SocketAddress;
  /** What its control messages are made of (none from an endpoint that keeps nothing per datagram). */
  readonly control?: DatagramControl;
}

/** FNV-1a over the first HASH_BYTES bytes. */
export function datagramHash(b: Uint8Array): number {
  let h = 0x811c9dc5;
  const n = Math.min(b.length, HASH_BYTES);
  for (let i = 0; i < n; i++) h = Math.imul(h ^ b[i]!, 0x01000193) >>> 0;
  return h;
}

/**
 * The sources of datagrams queued to the program, oldest first. `match` finds a received datagram's entry,
 * dropping the entries before it (datagrams the program read natively).
 */
export class SourceFifo {
  private entries: FifoEntry[] = [];
  private head = 0;
  /** Entries skipped as read natively. */
  skipped = 0;

  get length(): number {
    return this.entries.length - this.head;
  }

  push(e: FifoEntry): void {
    if (this.length >= FIFO_LIMIT) {
      this.head++;
      this.skipped++;
    }
    this.entries.push(e);
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
  }

  /** The entry of the datagram `data` (of full length `len`); `consume` false for MSG_PEEK. */
  match(len: number, data: Uint8Array, consume: boolean): FifoEntry | undefined {
    if (this.length === 0) return undefined;
    const hash = datagramHash(data);
    for (let i = this.head; i < this.entries.length; i++) {
      const e = this.entries[i]!;
      if (e.len === len && e.hash === hash) {
        this.skipped += i - this.head;
        this.head = consume ? i + 1 : i;
        return e;
      }
    }
    return undefined;
  }
}

/** A datagram received through a trapped call: its bytes (whole), its source and control fields when known. */
export interface Received {
  readonly data: Uint8Array;
  readonly from: SocketAddress | undefined;
  readonly control?: DatagramControl;
}

/** A trapped receive parked on a DgramPump. */
interface Waiter {
  /** MSG_PEEK: the datagram must stay queued, so none is handed to it. */
  readonly peek: boolean;
  settle(v: Received | 'moved'): void;
}

/** Options of a DgramPump. */
export interface DgramPumpOptions {
  /** Our end of the seqpacket pair, non-blocking; the pump owns it. */
  fd: number;
  file: SocketFile;
  onClose?: () => void;
  /** Sends what the stack's links hold now (see UP_BURST); without it the links send at the end of the turn. */
  flushLinks?: () => void;
}

/**
 * Datagrams the program sent that go to the links before they are told to send what they hold. A program that
 * sends faster than the Sentry reads (iperf3 -u at 200 Mbit/s: bursts of 17, and after a delay of the Sentry's,
 * hundreds) would otherwise reach the receiver in sendmmsg batches of up to the link's 256 frames, more than a
 * receiving socket's default buffer holds (~90 full-size datagrams); Linux delivers each as it is sent.
 */
const UP_BURST = 16;

/**
 * Moves datagrams between our end of a seqpacket pair and a datagram Endpoint. A trapped receive parked on it
 * (`nextFor`) is handed the next datagram directly while the program's queue is empty, and is told to look again
 * when a datagram was given to the program, an error came, or the socket was released.
 */
export class DgramPump {
  readonly fifo = new SourceFifo();
  readonly stats = { datagramsUp: 0, datagramsDown: 0, dropped: 0 };
  private readonly poll: ux.FdPoll;
  private readonly unsubscribe: () => void;
  /** Datagrams read from the Endpoint and not yet in the program's end (the pair was full), oldest first. */
  private readonly held: Held[] = [];
  private closed = false;
  /** A 0-byte marker is (or was, if the program read it natively) at the head of the program's queue. */
  private marker = false;
  private downQueued = false;
  /**
   * Datagrams that arrived since the last `down`: at a batch's worth they go at once, so that a long drain of the
   * link's ring never leaves more than a batch waiting in the Endpoint (whose receive buffer would overflow).
   */
  private arrived = 0;
  /**
   * Datagrams (and markers) put into the program's end, and taken out of it through trapped receives. When the
   * two are equal the program's queue is empty (a native read only takes what is there), which saves the
   * receive that would find nothing; a receive that does find nothing makes them equal again.
   */
  private putCount = 0;
  private takenCount = 0;
  /** Trapped receives parked on this socket, oldest first (see `nextFor`). */
  private readonly waiters: Waiter[] = [];

  constructor(private readonly o: DgramPumpOptions) {
    ux.forceSndBuf(o.fd, PAIR_SNDBUF);
    this.poll = ux.pollFd(o.fd, (r, w, status) => {
      if (status < 0) return this.close();
      if (w) this.down();
      if (r) this.up();
    });
    this.unsubscribe = o.file.ep.waiter.subscribe(EventIn | EventErr, () => {
      // An error (ICMP, IP_RECVERR's queue) is for the program's next trapped receive: a parked one wakes for
      // it, and a poll() on the program's end by the marker; what came before it goes first.
      if (o.file.ep.readiness(EventErr) & EventErr) {
        this.down();
        this.wakeForError();
        this.wakeWaiters();
      } else if (++this.arrived >= DOWN_BATCH) this.down();
      else this.downSoon();
    });
    this.down();
    this.poll.set(true, false);
  }

  get done(): boolean {
    return this.closed;
  }

  /** Whether the socket has a default peer (connected): then sources are the peer and no FIFO is kept. */
  private peer(): SocketAddress | undefined {
    const r = this.o.file.ep.remoteAddress();
    return isError(r) ? undefined : r;
  }

  /**
   * `down` once the work at hand is over (a microtask): the datagrams one drain of the link's ring brings for this
   * socket are then queued for the program back to back, and the program is woken once for them rather than once
   * per datagram while the stack still works through the ring.
   */
  private downSoon(): void {
    if (this.downQueued) return;
    this.downQueued = true;
    queueMicrotask(() => {
      this.downQueued = false;
      this.down();
    });
  }

  /**
   * Endpoint → program: what the Endpoint holds, up to DOWN_BATCH datagrams at a time in one sendmmsg; stops while
   * the pair is full, holding what it read (`held`).
   */
  private down(): void {
    if (this.closed) return;
    this.arrived = 0;
    const held = this.held;
    for (;;) {
      while (held.length < DOWN_BATCH) {
        // A pending error stays for the program's next trapped receive (recvmsg, recvfrom with an address).
        const r = this.o.file.ep.read({ maxBytes: MAX_DGRAM, keepError: true });
        if (isError(r)) break;
        held.push({ data: r.data, from: r.from, control: datagramControl(r) });
      }
      if (held.length === 0) break;
      if (this.handOff()) continue;
      const sent = sendHeld(this.o.fd, held);
      if (sent === -ux.U.EAGAIN) break;
      if (sent < 0) {
        // The first could not go (too large for the pair, say): dropped, and the rest go on.
        this.stats.dropped++;
        held.shift();
        continue;
      }
      const sources = this.o.file.wantedControl() !== 0 || !this.peer();
      for (let i = 0; i < sent; i++) {
        const h = held[i]!;
        this.putCount++;
        if (h.from && sources) this.fifo.push({ len: h.data.length, hash: datagramHash(h.data), from: h.from, control: h.control });
      }
      this.stats.datagramsDown += sent;
      held.splice(0, sent);
      this.wakeWaiters();
    }
    this.poll.set(true, held.length > 0);
  }

  /**
   * The first held datagram straight to the oldest parked receive that takes it (not a MSG_PEEK), when the
   * program's queue is empty: what it would have read from there next, without the two system calls of putting it
   * in and taking it out again. With anything queued the datagram goes behind it, in order.
   */
  private handOff(): boolean {
    const at = this.waiters.findIndex((w) => !w.peek);
    if (at < 0 || this.putCount !== this.takenCount) return false;
    // A pending error is the receive's answer before any datagram (__skb_recv_udp): it looks again instead.
    if (this.o.file.ep.readiness(EventErr) & EventErr) return false;
    const [w] = this.waiters.splice(at, 1);
    const h = this.held.shift()!;
    const got: Received = { data: h.data, from: this.peer() ?? h.from, control: h.control };
    this.stats.datagramsDown++;
    w!.settle(got);
    return true;
  }

  /**
   * For a trapped receive that found nothing and waits: resolves with a datagram handed to it (`handOff`),
   * 'moved' when something changed that it should look at again (a datagram queued for the program, an error,
   * the socket's release), or 'aborted' with `signal`.
   */
  nextFor(signal: AbortSignal, peek: boolean): Promise<Received | 'moved' | 'aborted'> {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve('aborted');
      const w: Waiter = {
        peek,
        settle: (v) => {
          signal.removeEventListener('abort', onAbort);
          resolve(v);
        },
      };
      const onAbort = () => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) this.waiters.splice(i, 1);
        resolve('aborted');
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(w);
    });
  }

  /** 'moved' for every parked receive, which then looks again (and waits again if it finds nothing). */
  private wakeWaiters(): void {
    for (const w of this.waiters.splice(0)) w.settle('moved');
  }

  /** Puts the 0-byte marker into the program's queue if that is empty (nothing of ours unread in it). */
  private wakeForError(): void {
    if (this.marker || this.closed || this.held.length > 0) return;
    if (ux.outQueue(this.o.fd) !== 0) return;
    if (ux.send(this.o.fd, EMPTY) === 0) {
      this.marker = true;
      this.putCount++;
    }
  }

  /**
   * Takes the marker out of the program's queue through `progDup` (a trapped receive that reports the error, or
   * finds none left to report): it is the head while it is there, a 0-byte datagram.
   */
  dropMarker(progDup: number): void {
    if (!this.marker) return;
    this.marker = false;
    if (this.takeFrom(progDup, ux.U.MSG_PEEK | ux.U.MSG_TRUNC) === 0) this.takeFrom(progDup, 0);
  }

  /** A receive from the program's end (MSG_DONTWAIT added), counted; -EAGAIN without a system call when it is known empty. */
  private takeFrom(progDup: number, flags: number): number {
    if (this.putCount === this.takenCount) return -ux.U.EAGAIN;
    const n = ux.recv(progDup, scratch, ux.U.MSG_DONTWAIT | flags);
    if (n === -ux.U.EAGAIN) this.takenCount = this.putCount;
    else if (n >= 0 && !(flags & ux.U.MSG_PEEK)) this.takenCount++;
    return n;
  }

  /**
   * Program → Endpoint now: a trapped send, or a change of UDP_CORK, comes after the native sends the program made
   * before it, so those go first (the pump may not have read them yet).
   */
  flushUp(): void {
    this.up();
  }

  /** Program → Endpoint: what the program sent natively (send/write on a connected socket). */
  private up(): void {
    if (this.closed) return;
    for (let taken = 0; ; taken++) {
      if (taken > 0 && taken % UP_BURST === 0) this.o.flushLinks?.();
      const n = ux.recv(this.o.fd, scratch);
      if (n === -ux.U.EAGAIN) return;
      if (n < 0 || (n === 0 && ux.pollNow(this.o.fd, ux.U.POLLHUP) & ux.U.POLLHUP)) return this.close();
      // Linux fails a send with the pending error (an ICMP error), consuming it. This native send already
      // succeeded, so the datagram goes out and the error, which would have been reported by now, is dropped:
      // left pending it would fail a later receive of the reply this send asks for.
      this.o.file.ep.takeError();
      // Linux would answer an unconnected send() EDESTADDRREQ; the native send already succeeded, so the
      // datagram is dropped and counted.
      const w = this.o.file.ep.write(scratch.subarray(0, n));
      if (isError(w)) this.stats.dropped++;
      else this.stats.datagramsUp++;
    }
  }

  /**
   * A trapped receive that wants the source or control messages: takes the next datagram from the program's end
   * through `progDup` (MSG_PEEK honoured), whole, with its source and control fields. -EAGAIN when none is queued.
   */
  receive(progDup: number, flags: number): Received | number {
    // A marker still there is for an error reported some other way (SO_ERROR, a native send): not a datagram.
    this.dropMarker(progDup);
    const peek = (flags & ux.U.MSG_PEEK) !== 0;
    const n = this.takeFrom(progDup, ux.U.MSG_TRUNC | (peek ? ux.U.MSG_PEEK : 0));
    if (n < 0) return n;
    const data = scratch.subarray(0, Math.min(n, scratch.length));
    const e = this.fifo.match(n, data, !peek);
    // The datagram has left the program's end: pumping may go on if it had filled up.
    if (!peek) queueMicrotask(() => this.down());
    return { data, from: this.peer() ?? e?.from, control: e?.control };
  }

  /** Releases our end and the Endpoint. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    this.poll.close();
    ux.close(this.o.fd);
    this.o.file.close();
    this.o.onClose?.();
    this.wakeWaiters();
  }
}
