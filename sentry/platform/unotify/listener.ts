/**
 * A seccomp listener watched on Node's main loop: each pending trapped call becomes a 'notification' event, and
 * the answers (a value or errno, CONTINUE, or an injected fd) are synchronous ioctls. RECV is made only after
 * poll() has reported POLLIN, because RECV with nothing pending blocks the whole loop until the target exits,
 * O_NONBLOCK or not.
 */
import { EventEmitter } from 'eventemitter3';
import { type FdWatch, SysError, sys, watchFd } from '../../../lib/libc.ts';
import { notifAddfd, notifIdValid, notifRecv, notifSend } from '../../../lib/seccomp.ts';
import {
  NOTIF_ADDFD_SIZE,
  NOTIF_RESP_SIZE,
  NOTIF_SIZE,
  type Notification,
  SECCOMP_ADDFD_FLAG,
  SECCOMP_USER_NOTIF_FLAG_CONTINUE,
  decodeNotif,
  encodeAddfd,
  encodeResp,
} from '../../seccomp/notify.ts';

export type { Notification } from '../../seccomp/notify.ts';

const ENOENT = 2;
const EINTR = 4;
const O_CLOEXEC = 0o2000000;
const POLLIN = 0x1;
const POLLHUP = 0x10;

/** At most this many notifications are received per wake-up before other work gets the loop. */
const BATCH = 64;

/** Events of a NotifyListener. */
export interface NotifyListenerEvents {
  /** A trapped call waits for an answer (respond, continue or addFd with send). */
  notification: [n: Notification];
  /** Every process under the filter has exited and been reaped (POLLHUP): no more notifications. */
  end: [];
  /** The listener failed (a RECV error other than ENOENT, or a libuv poll error); watching has stopped. */
  error: [err: Error];
}

/** One listener fd (ours: taken with pidfd_getfd), with the answers the Sentry gives. */
export class NotifyListener extends EventEmitter<NotifyListenerEvents> {
  private readonly notif = new Uint8Array(NOTIF_SIZE);
  private readonly resp = new Uint8Array(NOTIF_RESP_SIZE);
  private readonly addfdReq = new Uint8Array(NOTIF_ADDFD_SIZE);
  private readonly pollfd = new Uint8Array(8);
  private readonly pollView = new DataView(this.pollfd.buffer);
  private watch: FdWatch | undefined;
  private closed = false;
  /** Answers given (SEND, CONTINUE, ADDFD with SEND): `drain` tells an answered call from a parked one by it. */
  private answers = 0;

  /** Takes ownership of `fd`: close() closes it. */
  constructor(readonly fd: number) {
    super();
    this.pollView.setInt32(0, fd, true);
    this.pollView.setInt16(4, POLLIN, true);
  }

  /** Starts watching; notifications are emitted from the main loop. */
  start(): void {
    if (this.watch || this.closed) return;
    this.watch = watchFd(this.fd, (readable, _writable, status) => {
      if (status < 0) this.fail(new Error(`seccomp listener: poll failed (libuv status ${status})`));
      else if (readable) this.drain();
    });
    // The sandbox's child process keeps Node alive; a listener alone must not.
    this.watch.unref();
  }

  /** Stops watching and closes the fd; pending and later trapped calls then fail with ENOSYS. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.watch?.close();
    this.watch = undefined;
    sys.close(this.fd);
  }

  /** Answers call `id` with return value `val`, or with `-errno` when `errno` is given; false when the call is gone. */
  respond(id: bigint, val: number | bigint, errno?: number): boolean {
    const err = errno ? -Math.abs(errno) : 0;
    return this.send(id, err ? 0n : BigInt(val), err, 0);
  }

  /** Lets the kernel run call `id` itself; false when the call is gone. */
  continue(id: bigint): boolean {
    return this.send(id, 0n, 0, SECCOMP_USER_NOTIF_FLAG_CONTINUE);
  }

  /**
   * Installs our `srcFd` in the target of call `id`: at the lowest free number, or at `setFd` (replacing what is
   * there). With `send`, the call is also answered with the new fd number, atomically. Returns the target's fd
   * number or `-errno` (-ENOENT: the call is gone; -EMFILE: the target's fd table is full).
   */
  addFd(id: bigint, srcFd: number, o: { cloexec?: boolean; send?: boolean; setFd?: number } = {}): number {
    const flags = (o.send ? SECCOMP_ADDFD_FLAG.SEND : 0) | (o.setFd !== undefined ? SECCOMP_ADDFD_FLAG.SETFD : 0);
    encodeAddfd({ id, flags, srcfd: srcFd, newfd: o.setFd ?? 0, newfdFlags: o.cloexec ? O_CLOEXEC : 0 }, this.addfdReq);
    if (o.send) this.answers++;
    return notifAddfd(this.fd, this.addfdReq, o.send === true);
  }

  /** Whether call `id` still waits for its answer (check after reading target memory, before acting on it). */
  idValid(id: bigint): boolean {
    return notifIdValid(this.fd, id) === 0;
  }

  private send(id: bigint, val: bigint, error: number, flags: number): boolean {
    encodeResp({ id, val, error, flags }, this.resp);
    this.answers++;
    const r = notifSend(this.fd, this.resp);
    if (r === -ENOENT) return false;
    if (r < 0) throw new SysError('ioctl', -r, `SECCOMP_IOCTL_NOTIF_SEND id ${id}`);
    return true;
  }

  /**
   * Emits the notifications pending now, synchronously: for a caller that blocks the main loop until a sandboxed
   * program answers it (the conformance runner's sandbox DUT), and so must serve that program's traps meanwhile.
   */
  receivePending(): void {
    if (!this.closed && this.watch) this.drain();
  }

  /**
   * RECVs while poll says a notification is pending, up to BATCH at a time, and only while each is answered at
   * once: an answered thread runs on and usually traps again within microseconds (SYNC_WAKE_UP runs it on this
   * CPU), so the next poll(2) finds its call; after a call that parks, its thread waits, and a poll would most
   * often find nothing (each system call costs several µs on a busy VM). The watch's poll is level-triggered, so
   * a call left pending wakes the loop again.
   */
  private drain(): void {
    for (let i = 0; i < BATCH && !this.closed; i++) {
      const p = sys.poll(this.pollfd, 1, 0);
      if (p <= 0) return;
      const revents = this.pollView.getInt16(6, true);
      if ((revents & POLLIN) === 0) {
        if (revents & POLLHUP) {
          this.watch?.close();
          this.watch = undefined;
          this.emit('end');
        }
        return;
      }
      const r = notifRecv(this.fd, this.notif);
      // ENOENT: the call was withdrawn between POLLIN and RECV (the target was interrupted or died).
      if (r === -ENOENT || r === -EINTR) continue;
      if (r < 0) return this.fail(new SysError('ioctl', -r, 'SECCOMP_IOCTL_NOTIF_RECV'));
      const answered = this.answers;
      this.emit('notification', decodeNotif(this.notif));
      if (this.answers === answered) return;
    }
  }

  private fail(err: Error): void {
    this.watch?.close();
    this.watch = undefined;
    this.emit('error', err);
  }
}
