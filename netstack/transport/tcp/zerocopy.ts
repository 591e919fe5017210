/**
 * MSG_ZEROCOPY completions of one connection, as Linux keeps them (net/core/skbuff.c msg_zerocopy_*,
 * Documentation/networking/msg_zerocopy.rst): with SO_ZEROCOPY on, every send call with MSG_ZEROCOPY that queues
 * bytes takes the next value of a per-socket 32-bit counter; once the peer has acknowledged all of that call's
 * bytes, the id goes on the socket's error queue, merged into the entry at the queue's tail when the ranges
 * follow each other. tsvisor always copies the caller's bytes, so every completion says
 * SO_EE_CODE_ZEROCOPY_COPIED, as Linux's does when it had to copy.
 */
import type { ExtendedError } from '../../socket.ts';

/** SO_EE_ORIGIN_ZEROCOPY (include/uapi/linux/errqueue.h). */
export const SO_EE_ORIGIN_ZEROCOPY = 5;
/** SO_EE_CODE_ZEROCOPY_COPIED: the kernel copied the data after all. */
export const SO_EE_CODE_ZEROCOPY_COPIED = 1;

/**
 * Completions in flight before a send with MSG_ZEROCOPY fails with ENOBUFS. Linux charges each one's notification
 * skb to the socket's optmem (net.core.optmem_max, 128 KiB on current kernels, against about 768 bytes of skb
 * truesize each): about 170; exact to Linux's accounting it is not.
 */
export const MAX_PENDING = 170;

/** One send call waiting for its bytes to be acknowledged: the stream offset its bytes end at, and its id. */
interface Pending {
  end: number;
  id: number;
}

/** The zerocopy state of a TCP endpoint: SO_ZEROCOPY, the id counter, the calls in flight and the error queue. */
export class ZeroCopy {
  /** SO_ZEROCOPY: MSG_ZEROCOPY is honoured (Linux ignores the flag on a socket without it). */
  enabled = false;
  /** The id the next zerocopy send takes (Linux's sk_zckey), an unsigned 32-bit counter that wraps. */
  private key = 0;
  private readonly pending: Pending[] = [];

  constructor(
    /** The socket's error queue (shared with transmit timestamps): entries not yet read with MSG_ERRQUEUE, oldest first. */
    private readonly queue: ExtendedError[],
  ) {}

  /** Whether another zerocopy send would exceed the socket's budget of completions in flight (ENOBUFS). */
  full(): boolean {
    return this.pending.length >= MAX_PENDING;
  }

  /**
   * Records a zerocopy send call that has queued bytes up to stream offset `end` (bytes ever acknowledged plus
   * bytes in the send buffer). `extend` adds them to the same call's id (a blocking send that queued in steps is
   * one completion, as Linux's one ubuf_info per call).
   */
  sent(end: number, extend: boolean): void {
    const last = this.pending[this.pending.length - 1];
    if (extend && last) {
      last.end = end;
      return;
    }
    this.pending.push({ end, id: this.key });
    this.key = (this.key + 1) >>> 0;
  }

  /** Bytes up to stream offset `acked` were acknowledged; whether a completion went on the error queue. */
  acked(acked: number): boolean {
    let any = false;
    while (this.pending.length && this.pending[0]!.end <= acked) {
      this.complete(this.pending.shift()!.id, 1);
      any = true;
    }
    return any;
  }

  /**
   * The connection ended with calls in flight: Linux frees their skbs and so completes them too, unless the
   * socket is closed (SOCK_DEAD), when nobody can read them.
   */
  purge(orphaned: boolean): boolean {
    if (orphaned) {
      this.pending.length = 0;
      return false;
    }
    return this.acked(Infinity);
  }

  /**
   * Queues ids lo … lo+len-1, merged into the tail entry when it ends just before `lo` and the merged range still
   * fits 32 bits (Linux's skb_zerocopy_notify_extend).
   */
  private complete(lo: number, len: number): void {
    const n = this.queue.length;
    const tail = this.queue[n - 1];
    if (tail && tail.origin === SO_EE_ORIGIN_ZEROCOPY && ((tail.data + 1) >>> 0) === lo) {
      const merged = ((tail.data - tail.info) >>> 0) + 1 + len;
      if (merged < 2 ** 32) {
        this.queue[n - 1] = { ...tail, data: (tail.data + len) >>> 0 };
        return;
      }
    }
    // ee_info and ee_data hold the first and last id of the range.
    this.queue.push({ errno: 0, origin: SO_EE_ORIGIN_ZEROCOPY, type: 0, code: SO_EE_CODE_ZEROCOPY_COPIED, info: lo, data: (lo + len - 1) >>> 0 });
  }
}
