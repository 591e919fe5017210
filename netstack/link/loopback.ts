/**
 * The loopback link (after gVisor's link/loopback): every frame written comes back to the same dispatcher,
 * delivered on the clock in batches so that a send never re-enters the stack's receive path.
 */

import type { Clock } from '../clock.ts';
import type { LinkDispatcher, LinkEndpoint } from './endpoint.ts';
import { DeliveryQueue, frameFits } from './frame.ts';

/** Options of a LoopbackEndpoint. */
export interface LoopbackOptions {
  /** Drives delivery of looped-back frames. */
  clock: Clock;
  /** Largest IP packet carried; 65536 by default, as Linux's lo. */
  mtu?: number;
  /** The link's MAC; all zeros by default, as Linux's lo. */
  macAddress?: Uint8Array;
}

/** A link whose written frames are received by its own dispatcher. */
export class LoopbackEndpoint implements LinkEndpoint {
  readonly mtu: number;
  readonly macAddress: Uint8Array;
  /** Frames accepted by writeFrame. */
  framesSent = 0;

  private readonly inbox: DeliveryQueue;
  private closed = false;
  private droppedHere = 0;

  constructor(opts: LoopbackOptions) {
    this.mtu = opts.mtu ?? 65536;
    this.macAddress = opts.macAddress ?? new Uint8Array(6);
    if (this.macAddress.length !== 6) throw new RangeError('LoopbackEndpoint: macAddress must be 6 bytes');
    this.inbox = new DeliveryQueue(opts.clock);
  }

  /** Frames delivered back to the dispatcher. */
  get framesReceived(): number {
    return this.inbox.delivered;
  }

  /** Frames dropped: oversize or runt, written after close, or due while no dispatcher was attached. */
  get dropped(): number {
    return this.droppedHere + this.inbox.undeliverable;
  }

  attach(dispatcher: LinkDispatcher | null): void {
    this.inbox.dispatcher = dispatcher;
  }

  writeFrame(frame: Uint8Array): boolean {
    if (this.closed || !frameFits(this.mtu, frame)) {
      this.droppedHere++;
      return false;
    }
    this.framesSent++;
    this.inbox.push(frame);
    return true;
  }

  flush(): void {
    // Frames are queued for delivery at writeFrame; nothing is held back.
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.inbox.clear();
    this.inbox.dispatcher = null;
  }
}
