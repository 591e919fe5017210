/**
 * Frame-size rules shared by the in-memory links: how long an Ethernet frame may be for a given MTU, and
 * the per-queue delivery machinery that hands received frames to a dispatcher in batches on the clock.
 */

import type { Clock, Timer } from '../clock.ts';
import type { LinkDispatcher } from './endpoint.ts';

/** Ethernet header length: destination, source, EtherType (IEEE 802.3 §3.1.1). */
export const ETH_HEADER_LEN = 14;

const TPID_8021Q = 0x8100;
const TPID_8021AD = 0x88a8;
const TPID_QINQ_OLD = 0x9100;

/**
 * The largest frame the link accepts for this frame: mtu + 14, plus 4 for each IEEE 802.1Q/802.1ad tag it
 * carries, since a tag lengthens the header without shrinking the payload the MTU allows.
 */
export function maxFrameLen(mtu: number, frame: Uint8Array): number {
  let max = mtu + ETH_HEADER_LEN;
  for (let off = 12; off + 2 <= frame.length; off += 4) {
    const type = (frame[off]! << 8) | frame[off + 1]!;
    if (type !== TPID_8021Q && type !== TPID_8021AD && type !== TPID_QINQ_OLD) break;
    max += 4;
  }
  return max;
}

/** Whether `frame` is a plausible Ethernet frame (at least a header) no longer than the MTU allows. */
export function frameFits(mtu: number, frame: Uint8Array): boolean {
  return frame.length >= ETH_HEADER_LEN && frame.length <= maxFrameLen(mtu, frame);
}

/**
 * Received frames waiting for delivery. Delivery never happens inside the call that queued the frame (that
 * would re-enter the stack from its own send path): frames are delivered from a clock callback, every frame
 * due at that moment in one batch, followed by `deliverBatchEnd()`.
 */
export class DeliveryQueue {
  /** Where frames go; frames due while it is null are dropped and counted. */
  dispatcher: LinkDispatcher | null = null;
  /** Frames handed to the dispatcher. */
  delivered = 0;
  /** Frames that were due while no dispatcher was attached. */
  undeliverable = 0;

  private frames: Uint8Array[] = [];
  private flags: number[] = [];
  private due: number[] = [];
  private timer: Timer | null = null;

  constructor(
    private readonly clock: Clock,
    private readonly latencyMs = 0,
  ) {}

  /** Frames queued and not yet delivered. */
  get pending(): number {
    return this.frames.length;
  }

  /** Queues `frame` for delivery after the configured latency with its RX_* `flags`; the queue keeps the reference. */
  push(frame: Uint8Array, flags = 0): void {
    this.frames.push(frame);
    this.flags.push(flags);
    this.due.push(this.clock.now() + this.latencyMs);
    if (this.timer === null) this.arm();
  }

  /** Drops everything queued and cancels the pending delivery. */
  clear(): void {
    this.timer?.cancel();
    this.timer = null;
    this.frames = [];
    this.flags = [];
    this.due = [];
  }

  private arm(): void {
    this.timer = this.clock.schedule(this.due[0]! - this.clock.now(), () => this.run());
  }

  private run(): void {
    this.timer = null;
    // Everything due by the first deadline goes in this batch; taking the max guards against the timer
    // firing a rounding error before the deadline it was armed for.
    const limit = Math.max(this.clock.now(), this.due[0]!);
    let k = 0;
    while (k < this.due.length && this.due[k]! <= limit) k++;
    const batch = this.frames.splice(0, k);
    const flags = this.flags.splice(0, k);
    this.due.splice(0, k);
    let any = false;
    for (let i = 0; i < batch.length; i++) {
      const d = this.dispatcher;
      if (d === null) {
        this.undeliverable++;
        continue;
      }
      this.delivered++;
      any = true;
      d.deliverFrame(batch[i]!, flags[i]!);
    }
    if (any) this.dispatcher?.deliverBatchEnd?.();
    // Frames pushed during the batch armed their own timer already.
    if (this.frames.length && this.timer === null) this.arm();
  }
}
