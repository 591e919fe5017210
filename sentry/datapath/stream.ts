/**
 * The data path of one TCP socket: the program holds one end of an AF_UNIX SOCK_STREAM socketpair, the Sentry
 * the other, and `StreamPump` moves bytes between the Sentry's end and the netstack Endpoint with backpressure
 * both ways. Reads stop while the other side cannot take what was read, so a socket's memory stays within the
 * Endpoint's buffers, the pair's kernel buffers and one 64 KB chunk per direction (held only while stalled).
 *
 * Endings map onto the pair as Linux's TCP shows them to the program:
 * - remote FIN → shutdown(SHUT_WR) of our end, after the bytes before it: the program reads 0;
 * - program half-close (EOF without POLLHUP) → FIN after every byte read before it;
 * - program close (EOF with POLLHUP: the last copy of its end is gone) → the Endpoint closes: FIN, or RST when
 *   SO_LINGER {1, 0} was set or received bytes were left unread (the program's end reports those to ours as
 *   ECONNRESET);
 * - remote RST → one unread byte is queued into our end and our end is closed, so the kernel flags ECONNRESET
 *   on the program's end (unix_release_sock: a close with unread data resets the peer); after the remote FIN
 *   (CLOSE-WAIT, where Linux reports EPIPE) our end closes with nothing unread: the next send fails with EPIPE.
 *
 * A non-blocking connect is made to look in progress by stuffing the program's end (`stuff`): its SO_SNDBUF
 * goes to the minimum and junk is written until EAGAIN, so POLLOUT stays clear until the handshake ends; our
 * end is not read before then, the junk is drained and SO_SNDBUF restored.
 */
import { EventEmitter } from 'eventemitter3';
import { Err, isError } from '../../netstack/errors.ts';
import { type Endpoint, ShutdownWrite } from '../../netstack/socket.ts';
import { EventErr, EventHUp, EventIn, EventOut, EventRdHUp } from '../../netstack/waiter.ts';
import * as ux from '../../lib/unix.ts';
import type { SocketFile } from '../socket/file.ts';

/** The most a pump moves in one read; also the one chunk a stalled direction holds. */
export const CHUNK = 64 * 1024;

/** How often a half-closed program end is checked for its final close (no level-triggered event tells it). */
const HUP_POLL_MS = 50;
/** The longest wait between looks at whether the program still holds a both-ways-shut end. */
const HUP_POLL_MAX_MS = 1000;

/** TCP states of tcp_info's tcpi_state that the pump tells apart. */
const TCP_SYN_SENT = 2;
const TCP_CLOSE = 7;
/**
 * States in which our side's FIN is still to be sent or acknowledged (ESTABLISHED and CLOSE-WAIT: not sent yet;
 * SYN-RECEIVED, FIN-WAIT-1, CLOSING, LAST-ACK: sent, not acknowledged).
 */
const FIN_PENDING = new Set([1, 3, 4, 8, 9, 11]);

/** The TCP state of `ep` (tcp_info's tcpi_state), or -1 when the endpoint gives none. */
function tcpState(ep: Endpoint): number {
  const info = ep.getOption('TCP_INFO');
  if (isError(info) || typeof info !== 'object' || info instanceof Uint8Array) return -1;
  return Number(info['tcpi_state'] ?? -1);
}

/**
 * Whether a stream Endpoint the program has closed still has something of the program's to deliver: bytes not
 * acknowledged, or the FIN its close means not yet sent or not acknowledged (Linux's orphaned socket goes on
 * sending it after the process is gone; the sandbox's stack must not go away first).
 */
export function stillDelivering(ep: Endpoint): boolean {
  return ep.outQueue() > 0 || FIN_PENDING.has(tcpState(ep));
}

// Shared by every pump: a read is forwarded at once, and only a remainder the other side refused is copied.
const upScratch = new Uint8Array(CHUNK);
const downScratch = new Uint8Array(CHUNK);
const junk = new Uint8Array(4096);

/** What `stuff` did to the program's end, to undo once the handshake is over. */
export interface Stuffing {
  /** A dup of the program's end (ours to close). */
  readonly fd: number;
  /** SO_SNDBUF before (as getsockopt reports it: doubled). */
  readonly sndbuf: number;
  /** Junk bytes now queued in our end. */
  readonly bytes: number;
}

/**
 * Clears POLLOUT on the program's end `progFd` (a dup the pump keeps until the handshake ends): minimum
 * SO_SNDBUF, then junk until EAGAIN. The junk lands in our end's receive queue, ahead of anything the program
 * can write afterwards.
 */
export function stuff(progFd: number): Stuffing {
  const sndbuf = ux.sndBuf(progFd);
  ux.setSndBuf(progFd, 1);
  let bytes = 0;
  for (;;) {
    const n = ux.send(progFd, junk);
    if (n <= 0) break;
    bytes += n;
  }
  return { fd: progFd, sndbuf, bytes };
}

/** Reads and drops `bytes` from `fd` (the junk `stuff` queued), then restores the program end's SO_SNDBUF. */
function unstuff(fd: number, s: Stuffing): void {
  let left = s.bytes;
  while (left > 0) {
    const n = ux.recv(fd, upScratch.subarray(0, Math.min(left, CHUNK)));
    if (n <= 0) break;
    left -= n;
  }
  // getsockopt reports the doubled value: setting half restores it.
  ux.setSndBuf(s.fd, s.sndbuf >> 1);
  ux.close(s.fd);
}

/** Options of a StreamPump. */
export interface StreamPumpOptions {
  /** Our end of the pair, non-blocking; the pump owns it and closes it. */
  fd: number;
  file: SocketFile;
  /**
   * A dup of the program's end, or a negative number when none can be had: used only to queue the byte that
   * makes a remote RST read as ECONNRESET. Without it the program reads end of file instead.
   */
  programEnd?: () => number;
  /**
   * Whether a process of the sandbox still holds the program's end (asked when both directions are shut); where it
   * is not given or cannot tell (undefined), `programEnd` is asked for a duplicate.
   */
  programHeld?: () => boolean | undefined;
  /**
   * Called once when the pump has released everything (the Endpoint is closed or closing). `unsurfaced` is the
   * errno of a reset the program's end could not be made to report (its sending side was shut, so the byte could
   * not be queued): only the Sentry can still answer it, to getsockopt(SO_ERROR).
   */
  onClose?: (unsurfaced?: number) => void;
  /** A non-blocking connect in progress: the program's end was stuffed (see `stuff`). */
  connecting?: Stuffing;
  /**
   * Called instead of onClose when that connect fails: the pump has let go of our end (closed with bytes unread,
   * so that the program's end shows POLLERR) but not of the Endpoint, which keeps the error for the Sentry's
   * answers to getsockopt(SO_ERROR) and connect. Without it a failed connect shuts both directions of our end.
   */
  onConnectFailed?: () => void;
  /** A poll handle on `fd` already made (the Sentry's watch of an unconnected socket): the pump takes it over. */
  poll?: ux.FdPoll;
}

/** Counters of one pump, for stats and tests. */
export interface StreamPumpStats {
  bytesUp: number;
  bytesDown: number;
}

/**
 * Moves bytes between our end of a stream pair and a TCP Endpoint until both sides are done. Emits 'moved'
 * whenever the program's end may have become readable or writable (bytes or an end given to it, bytes taken
 * from it): a parked call waits on that instead of polling a dup of the program's fd, since libuv's poll
 * handle would flip O_NONBLOCK on the program's open file description.
 */
export class StreamPump extends EventEmitter<{ moved: [] }> {
  readonly stats: StreamPumpStats = { bytesUp: 0, bytesDown: 0 };
  /** Our end of the pair. */
  readonly fd: number;
  private readonly ep: Endpoint;
  private readonly poll: ux.FdPoll;
  private unsubscribe: (() => void) | null = null;
  private connecting: Stuffing | undefined;
  private pendingUp: Uint8Array | null = null;
  private pendingDown: Uint8Array | null = null;
  /** The program shut its sending side (or closed): FIN once everything read is written. */
  private programEof = false;
  private finSent = false;
  /** The remote's FIN reached our end (shutdown SHUT_WR done). */
  private remoteEof = false;
  /** The program's end went with received bytes it never read (see programError). */
  private leftUnread = false;
  private closed = false;
  private hupTimer: ReturnType<typeof setTimeout> | null = null;
  private inUp = false;
  private inDown = false;

  constructor(private readonly o: StreamPumpOptions) {
    super();
    this.fd = o.fd;
    this.ep = o.file.ep;
    this.connecting = o.connecting;
    const onEvent = (r: boolean, w: boolean, status: number) => {
      if (status < 0) return this.programError();
      if (w) this.down();
      if (r) this.up();
    };
    this.poll = o.poll ?? ux.pollFd(this.fd, onEvent);
    o.poll?.retarget(onEvent);
    this.unsubscribe = this.ep.waiter.subscribe(EventIn | EventOut | EventErr | EventHUp | EventRdHUp, (ev) => {
      if (this.connecting) return this.checkConnected();
      if (ev & (EventIn | EventErr | EventHUp | EventRdHUp)) this.down();
      if (ev & (EventOut | EventErr | EventHUp)) this.up();
    });
    if (this.connecting) this.checkConnected();
    else this.begin();
  }

  /** Whether the pump has finished and released its fd. */
  get done(): boolean {
    return this.closed;
  }

  /** Whether the handshake is still going on: the pair holds only junk then, nothing the program wrote. */
  get connectingNow(): boolean {
    return this.connecting !== undefined;
  }

  private begin(): void {
    this.down();
    this.up();
  }

  /** While connecting: on the handshake's end, drain the junk and start, or shut our end down on failure. */
  private checkConnected(): void {
    const s = this.connecting;
    if (!s || this.closed) return;
    const state = tcpState(this.ep);
    if (state === TCP_SYN_SENT) return;
    this.connecting = undefined;
    if (state === TCP_CLOSE && this.o.onConnectFailed) return this.connectFailed(s);
    unstuff(this.fd, s);
    if (state === TCP_CLOSE) {
      // The error stays on the Endpoint for the program's getsockopt(SO_ERROR); the pair wakes its poll with
      // POLLOUT|POLLHUP, and its reads and writes end as on a dead TCP socket.
      ux.shutdown(this.fd, ux.U.SHUT_RDWR);
      this.poll.set(true, false);
      this.programEof = true;
      this.remoteEof = true;
      this.startHupPoll();
      return;
    }
    this.begin();
  }

  /**
   * The handshake failed (refused, timed out, unreachable). Linux's poll shows such a socket POLLERR with POLLHUP,
   * POLLIN and POLLOUT until its error is read; the program's AF_UNIX end can show POLLERR only as the ECONNRESET
   * that unix_release_sock gives it when our end goes with bytes unread. So the stuffing's junk stays in our end
   * (a byte is queued should there be none), our end is closed, and only then is the program's SO_SNDBUF restored:
   * that wakes its writers, and a poll woken before the close would have shown POLLOUT alone.
   */
  private connectFailed(s: Stuffing): void {
    if (ux.inQueue(this.fd) === 0) ux.send(s.fd, new Uint8Array(1));
    this.detach();
    ux.setSndBuf(s.fd, s.sndbuf >> 1);
    ux.close(s.fd);
    this.o.onConnectFailed!();
    this.emit('moved');
  }

  private updatePoll(): void {
    if (this.closed) return;
    const readable = !this.connecting && !this.programEof && !this.pendingUp;
    this.poll.set(readable, this.pendingDown !== null);
  }

  /** Program → Endpoint. */
  private up(): void {
    if (this.closed || this.connecting) return;
    if (this.inUp) return;
    this.inUp = true;
    try {
      this.upLoop();
    } finally {
      this.inUp = false;
    }
    this.updatePoll();
  }

  private upLoop(): void {
    for (;;) {
      if (this.closed) return;
      if (this.pendingUp) {
        const w = this.ep.write(this.pendingUp);
        if (isError(w)) {
          if (w === Err.WouldBlock) return;
          // The connection is gone: what the program sent is lost, as with a reset TCP socket.
          this.pendingUp = null;
          return this.remoteReset(w.errno);
        }
        this.stats.bytesUp += w;
        this.pendingUp = w < this.pendingUp.length ? this.pendingUp.subarray(w) : null;
        if (this.pendingUp) return;
        continue;
      }
      if (this.programEof) {
        if (!this.finSent) {
          this.finSent = true;
          this.ep.shutdown(ShutdownWrite);
        }
        return;
      }
      const n = ux.recv(this.fd, upScratch);
      if (n === -ux.U.EAGAIN) return;
      if (n <= 0) {
        // EOF with POLLHUP: every copy of the program's end is closed. Without: a half-close (or, after our own
        // SHUT_WR for the remote FIN, possibly a close: both show as POLLHUP alike then).
        // ECONNRESET: the program's end went with bytes it never read (unix_release_sock flags ours).
        const hup = n < 0 || (ux.pollNow(this.fd, ux.U.POLLHUP) & ux.U.POLLHUP) !== 0;
        if (hup && (n < 0 || !this.bothShutAndHeld())) return this.programClosed(this.leftUnread || n === -ux.U.ECONNRESET);
        this.programEof = true;
        this.startHupPoll();
        continue;
      }
      this.emit('moved');
      const data = upScratch.subarray(0, n);
      const w = this.ep.write(data);
      if (isError(w)) {
        if (w === Err.WouldBlock) {
          this.pendingUp = data.slice();
          return;
        }
        return this.remoteReset(w.errno);
      }
      this.stats.bytesUp += w;
      if (w < n) {
        this.pendingUp = data.slice(w);
        return;
      }
    }
  }

  /** Endpoint → program. */
  private down(): void {
    if (this.closed || this.connecting) return;
    if (this.inDown) return;
    this.inDown = true;
    try {
      this.downLoop();
    } finally {
      this.inDown = false;
    }
    this.updatePoll();
  }

  private downLoop(): void {
    for (;;) {
      if (this.closed) return;
      if (this.pendingDown) {
        const n = ux.send(this.fd, this.pendingDown);
        if (n === -ux.U.EAGAIN) return;
        if (n < 0) {
          // EPIPE: the program shut its reading side or closed; the close shows on the read side.
          this.pendingDown = null;
          return;
        }
        this.stats.bytesDown += n;
        this.emit('moved');
        this.pendingDown = n < this.pendingDown.length ? this.pendingDown.subarray(n) : null;
        if (this.pendingDown) return;
        continue;
      }
      if (this.remoteEof) {
        // Nothing more to read after the FIN, but the connection can still be reset (Linux's answer to data the
        // program sends to a peer that has closed): the program must learn it.
        const e = this.ep.takeError();
        if (e) this.remoteReset(e.errno);
        return;
      }
      // SO_RCVLOWAT: what the Endpoint holds goes to the program only once it is readable (the mark is met, or the
      // connection ends), so the program's poll and blocking reads wait as Linux's do.
      if (!this.ep.readiness(EventIn | EventErr | EventHUp)) return;
      const r = this.ep.read({ maxBytes: CHUNK, into: downScratch });
      if (isError(r)) {
        if (r === Err.WouldBlock) return;
        if (r === Err.ClosedForReceive) return this.remoteFin();
        return this.remoteReset(r.errno);
      }
      if (r.data.length === 0) return this.remoteFin();
      const n = ux.send(this.fd, r.data);
      if (n === -ux.U.EAGAIN) {
        this.pendingDown = r.data.slice();
        return;
      }
      if (n < 0) return;
      this.stats.bytesDown += n;
      this.emit('moved');
      if (n < r.data.length) {
        this.pendingDown = r.data.slice(n);
        return;
      }
    }
  }

  private remoteFin(): void {
    if (this.remoteEof) return;
    this.remoteEof = true;
    ux.shutdown(this.fd, ux.U.SHUT_WR);
    this.emit('moved');
    // Both directions shut: the program's poll shows POLLHUP now; its close cannot be seen any more.
    if (this.programEof) this.startHupPoll();
  }

  /**
   * The connection was reset (or timed out): make the program's next read fail with ECONNRESET. After the
   * program's own SHUT_WR its end cannot send the byte, and the error (`errno`, already taken from the Endpoint)
   * goes to onClose instead.
   */
  private remoteReset(errno: number): void {
    if (this.closed) return;
    if (errno === ux.U.EPIPE) {
      // A reset in CLOSE-WAIT, after the peer's FIN (Linux's tcp_reset sets EPIPE there): the program reads the end
      // of file it already had and its next send fails with EPIPE, which our end's close gives it as long as
      // nothing is left unread in ours (that would flag ECONNRESET). What it sent is lost, as the reset lost it.
      while (ux.recv(this.fd, upScratch) > 0);
      this.release(errno);
      return;
    }
    let surfaced = ux.inQueue(this.fd) > 0;
    if (!surfaced) {
      const prog = this.o.programEnd?.() ?? -1;
      if (prog >= 0) {
        surfaced = ux.send(prog, new Uint8Array(1)) === 1;
        ux.close(prog);
      }
    }
    this.release(surfaced ? undefined : errno);
  }

  /**
   * Our end's poll failed: libuv reports POLLERR so, and the one error our end takes is the ECONNRESET of the
   * program's end going with bytes it never read (unix_release_sock). Taking it (SO_ERROR) clears it; what the
   * program wrote before its close is still forwarded, and the close that follows it is an abort.
   */
  private programError(): void {
    if (this.connecting || ux.takeSocketError(this.fd) !== ux.U.ECONNRESET) return this.programClosed();
    this.leftUnread = true;
    this.up();
  }

  /**
   * The last copy of the program's end is closed; `unread`: with bytes in it the program never read. Linux's
   * tcp_close aborts a connection closed with received data unread (RFC 2525 §2.17): a RST, not a FIN. That data
   * may be in the program's end, in this pump (`pendingDown`) or still in the Endpoint (whose close sees it
   * itself); the first two are made an abort here as SO_LINGER {1, 0} makes one, nobody being left to see the
   * option.
   */
  private programClosed(unread = false): void {
    if (this.closed) return;
    if (unread || this.pendingDown) this.ep.setOption('SO_LINGER', { onoff: true, linger: 0 });
    this.release();
  }

  /**
   * Watches for the program's close once its end gives EOF. POLLHUP on our end also comes with both directions
   * shut while the program still holds its end (its SHUT_WR after the remote's FIN, or our SHUT_RDWR after a
   * failed connect): then the connection is still the program's (LAST-ACK, SO_ERROR, TCP_INFO), so its fds are
   * asked whether it still holds the end, backing off to HUP_POLL_MAX_MS while it does.
   */
  private startHupPoll(): void {
    if (this.hupTimer || this.closed) return;
    let delay = HUP_POLL_MS;
    const tick = () => {
      this.hupTimer = null;
      if (this.closed) return;
      if (ux.pollNow(this.fd, ux.U.POLLHUP) & ux.U.POLLHUP && this.programEof) {
        // Our end's poll is off after the half-close, so its error is looked for here (see programError).
        if (!this.bothShutAndHeld()) return this.programClosed(this.leftUnread || ux.takeSocketError(this.fd) === ux.U.ECONNRESET);
        delay = Math.min(delay * 2, HUP_POLL_MAX_MS);
      }
      this.hupTimer = setTimeout(tick, delay);
      this.hupTimer.unref();
    };
    this.hupTimer = setTimeout(tick, delay);
    this.hupTimer.unref();
  }

  /**
   * Whether POLLHUP on our end is both directions shut (our SHUT_WR is done too) while a process of the sandbox
   * still holds the program's end. Its fds are looked at only then: a plain close needs no scan.
   */
  private bothShutAndHeld(): boolean {
    if (!this.remoteEof) return false;
    const held = this.o.programHeld?.();
    if (held !== undefined) return held;
    const d = this.o.programEnd?.() ?? -1;
    if (d < 0) return false;
    ux.close(d);
    return true;
  }

  /** Releases our end, our subscriptions and the Endpoint (which goes on closing in the background). */
  private release(unsurfaced?: number): void {
    if (this.closed) return;
    if (this.connecting) {
      ux.close(this.connecting.fd);
      this.connecting = undefined;
    }
    this.detach();
    // After a reset the Endpoint is dead already; after the program's close it sends FIN (or RST for
    // SO_LINGER {1, 0}) after what it still holds.
    this.o.file.close();
    this.o.onClose?.(unsurfaced);
    this.emit('moved');
  }

  /** Stops watching our end and the Endpoint, and closes our end; the Endpoint is the caller's to close or keep. */
  private detach(): void {
    this.closed = true;
    if (this.hupTimer) clearTimeout(this.hupTimer);
    this.unsubscribe?.();
    this.unsubscribe = null;
    this.poll.close();
    ux.close(this.fd);
  }

  /** Tears the pump down at once (the Sentry is closing): our end closes, the Endpoint closes. */
  close(): void {
    this.release();
  }
}
