/**
 * Transmit timestamps of one connection (SO_TIMESTAMPING), as Linux records them for TCP
 * (Documentation/networking/timestamping.rst, tcp_tx_timestamp and __skb_tstamp_tx): each send call that queues
 * bytes while a TX_* recording flag is on marks its last byte; when the packet holding that byte leaves, a
 * SCM_TSTAMP_SCHED report (TX_SCHED: past the queueing layer) and a SCM_TSTAMP_SND one (TX_SOFTWARE: handed to the
 * device) go on the socket's error queue, and once the peer acknowledges the byte a SCM_TSTAMP_ACK one (TX_ACK).
 * Each report carries the time and, as ee_data, the byte's key: its offset from where the stream stood when
 * SOF_TIMESTAMPING_OPT_ID was turned on (Linux's sk_tskey, snd_una then).
 */
import type { ExtendedError } from '../../socket.ts';

/** SOF_TIMESTAMPING_* bits (include/uapi/linux/net_tstamp.h) that TCP acts on. */
export const SOF_TIMESTAMPING_TX_HARDWARE = 1 << 0;
export const SOF_TIMESTAMPING_TX_SOFTWARE = 1 << 1;
export const SOF_TIMESTAMPING_SOFTWARE = 1 << 4;
export const SOF_TIMESTAMPING_OPT_ID = 1 << 7;
export const SOF_TIMESTAMPING_TX_SCHED = 1 << 8;
export const SOF_TIMESTAMPING_TX_ACK = 1 << 9;
export const SOF_TIMESTAMPING_OPT_TSONLY = 1 << 11;
export const SOF_TIMESTAMPING_OPT_ID_TCP = 1 << 16;
/** Every flag Linux knows (SOF_TIMESTAMPING_MASK as of 6.x: up to OPT_RX_FILTER). */
export const SOF_TIMESTAMPING_MASK = (1 << 18) - 1;
/** The flags that make a send call record a timestamp (SOF_TIMESTAMPING_TX_RECORD_MASK). */
export const TX_RECORD_MASK = SOF_TIMESTAMPING_TX_HARDWARE | SOF_TIMESTAMPING_TX_SOFTWARE | SOF_TIMESTAMPING_TX_SCHED | SOF_TIMESTAMPING_TX_ACK;

/** SCM_TSTAMP_* (ee_info of a report). */
export const SCM_TSTAMP_SND = 0;
export const SCM_TSTAMP_SCHED = 1;
export const SCM_TSTAMP_ACK = 2;
/** SO_EE_ORIGIN_TIMESTAMPING. */
export const SO_EE_ORIGIN_TIMESTAMPING = 4;
/** ENOMSG, the ee_errno of a timestamp report. */
const ENOMSG = 42;

/** A send call's last byte waiting for its reports: its stream offset and what it asked for. */
interface Marked {
  off: number;
  flags: number;
  /** Payload bytes of the packet that last carried it. */
  bytes: number;
}

/** The SO_TIMESTAMPING state of a TCP endpoint. */
export class TxTimestamps {
  /** The socket's SOF_TIMESTAMPING_* flags. */
  flags = 0;
  /** Stream offset that key 0 stands for (Linux's sk_tskey). */
  private base = 0;
  private readonly marked: Marked[] = [];

  constructor(
    /** The socket's error queue, shared with MSG_ZEROCOPY completions. */
    private readonly queue: ExtendedError[],
  ) {}

  /**
   * setsockopt(SO_TIMESTAMPING): OPT_ID turned on takes the key base from the stream (`una`, the offset of SND.UNA;
   * `writeSeq` with OPT_ID_TCP), as sock_set_timestamping does.
   */
  set(flags: number, una: number, writeSeq: number): void {
    if (flags & SOF_TIMESTAMPING_OPT_ID && !(this.flags & SOF_TIMESTAMPING_OPT_ID)) {
      this.base = flags & SOF_TIMESTAMPING_OPT_ID_TCP ? writeSeq : una;
    }
    this.flags = flags;
  }

  /**
   * A send call queued bytes ending at stream offset `end`; `tailStart` is where the unsent tail skb they ended in
   * starts. As tcp_tx_timestamp, the call's last byte is marked, and a mark an earlier call left on that same skb
   * moves to it (the skb holds one key).
   */
  wrote(end: number, tailStart: number): void {
    const flags = this.flags & TX_RECORD_MASK;
    if (!flags) return;
    const last = this.marked[this.marked.length - 1];
    if (last && last.off >= tailStart) this.marked.pop();
    this.marked.push({ off: end - 1, flags: this.flags, bytes: 0 });
  }

  /** Whether a packet may concern a mark (cheap test for the send path). */
  get active(): boolean {
    return this.marked.length > 0;
  }

  /** The packet of stream bytes [start, end) left at `now` (a retransmission reports again, as Linux's clone does). */
  sent(start: number, end: number, now: number): boolean {
    let any = false;
    for (const m of this.marked) {
      if (m.off >= end) break;
      if (m.off < start) continue;
      m.bytes = end - start;
      if (m.flags & SOF_TIMESTAMPING_TX_SCHED) this.report(m, SCM_TSTAMP_SCHED, now);
      if (m.flags & SOF_TIMESTAMPING_TX_SOFTWARE) this.report(m, SCM_TSTAMP_SND, now);
      any = true;
    }
    return any;
  }

  /** Bytes below stream offset `acked` were acknowledged at `now`: their marks are done, with an ACK report if asked. */
  acked(acked: number, now: number): boolean {
    let any = false;
    while (this.marked.length && this.marked[0]!.off < acked) {
      const m = this.marked.shift()!;
      if (m.flags & SOF_TIMESTAMPING_TX_ACK) {
        this.report(m, SCM_TSTAMP_ACK, now);
        any = true;
      }
    }
    return any;
  }

  /** The connection ended: marks no packet will carry or acknowledge any more are forgotten. */
  clear(): void {
    this.marked.length = 0;
  }

  private report(m: Marked, info: number, now: number): void {
    // Without OPT_TSONLY Linux loops the packet back with the report; its length is kept (MSG_TRUNC), not its bytes.
    const looped = m.flags & SOF_TIMESTAMPING_OPT_TSONLY ? 0 : m.bytes;
    this.queue.push({
      errno: ENOMSG,
      origin: SO_EE_ORIGIN_TIMESTAMPING,
      type: 0,
      code: 0,
      info,
      data: (m.off - this.base) >>> 0,
      // The software stamp is reported only with SOF_TIMESTAMPING_SOFTWARE (a reporting flag).
      timestamp: m.flags & SOF_TIMESTAMPING_SOFTWARE ? now : undefined,
      looped,
    });
  }
}
