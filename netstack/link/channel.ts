/**
 * In-memory links (after gVisor's link/channel): two endpoints wired back to back, or one whose written frames
 * are captured for a test or the conformance runner to inspect, with frames injected as if received.
 */

import type { Clock } from '../clock.ts';
import {
  type GsoOptions,
  GsoType,
  type LinkCapabilities,
  type LinkDispatcher,
  type LinkEndpoint,
  NO_OFFLOADS,
  RX_CSUM_VERIFIED,
} from './endpoint.ts';
import { DeliveryQueue, ETH_HEADER_LEN, frameFits } from './frame.ts';

/** Options of a ChannelEndpoint. */
export interface ChannelOptions {
  /** Drives delivery: received frames are handed over from a clock callback, never synchronously. */
  clock: Clock;
  /** Largest IP packet carried; 1500 by default. */
  mtu?: number;
  /** The endpoint's MAC; 02:00:00:00:00:01 (locally administered) by default. */
  macAddress?: Uint8Array;
  /** A label for traces and test messages. */
  name?: string;
  /** One-way delay from a write (or inject) to delivery, in ms; 0 by default. */
  latencyMs?: number;
  /**
   * Offloads as a veth between two namespaces has them (default false): `writeGso` takes super-frames of up to
   * 64 KB and the peer receives them whole, flagged RX_CSUM_VERIFIED, as Linux's veth hands a GSO skb with a
   * partial checksum to the other namespace's stack.
   */
  gso?: boolean;
}

/** Options of `ChannelEndpoint.pair`: the shared options, with one MAC and name for each side. */
export interface ChannelPairOptions extends Omit<ChannelOptions, 'macAddress' | 'name'> {
  /** MACs of the two ends; 02:00:00:00:00:01 and 02:00:00:00:00:02 by default. */
  macAddresses?: [Uint8Array, Uint8Array];
  /** Names of the two ends; "a" and "b" by default. */
  names?: [string, string];
}

/** A veth's offloads: TSO/GRO up to a 64 KB IP packet, partial checksums handed over as verified. */
const CHANNEL_GSO: LinkCapabilities = Object.freeze({
  gso: true,
  maxGsoSize: 65535 + ETH_HEADER_LEN,
  rxChecksumOffload: true,
  txChecksumOffload: true,
});

/** A locally administered unicast MAC (IEEE 802 §8.4: U/L bit set, I/G bit clear) ending in `n`. */
function localMac(n: number): Uint8Array {
  return new Uint8Array([0x02, 0x00, 0x00, 0x00, (n >>> 8) & 0xff, n & 0xff]);
}

/** An in-memory link endpoint: writes go to a connected peer or a capture queue; `inject` simulates receipt. */
export class ChannelEndpoint implements LinkEndpoint {
  readonly mtu: number;
  readonly macAddress: Uint8Array;
  readonly name: string;
  /** Frames accepted by writeFrame and writeGso. */
  framesSent = 0;
  /** Super-frames accepted by writeGso (gsoType other than NONE). */
  gsoFramesSent = 0;
  /** What the link offloads: gso, 64 KB frames and both checksum offloads with `gso`, else nothing. */
  readonly capabilities: LinkCapabilities;
  /**
   * Hears every accepted written frame (before it goes to the peer). While set, frames written with no peer
   * connected are not kept for `drain()`, so a long-running hook does not grow a queue nobody reads.
   */
  onWrite: ((frame: Uint8Array) => void) | undefined;

  private peer: ChannelEndpoint | null = null;
  private captured: Uint8Array[] = [];
  private readonly inbox: DeliveryQueue;
  private closed = false;
  private droppedHere = 0;

  constructor(opts: ChannelOptions) {
    this.mtu = opts.mtu ?? 1500;
    this.macAddress = opts.macAddress ?? localMac(1);
    if (this.macAddress.length !== 6) throw new RangeError('ChannelEndpoint: macAddress must be 6 bytes');
    this.name = opts.name ?? 'channel';
    this.inbox = new DeliveryQueue(opts.clock, opts.latencyMs ?? 0);
    this.capabilities = opts.gso ? CHANNEL_GSO : NO_OFFLOADS;
  }

  /** Two endpoints connected to each other, with distinct locally administered MACs by default. */
  static pair(opts: ChannelPairOptions): [ChannelEndpoint, ChannelEndpoint] {
    const [ma, mb] = opts.macAddresses ?? [localMac(1), localMac(2)];
    const [na, nb] = opts.names ?? ['a', 'b'];
    const a = new ChannelEndpoint({ ...opts, macAddress: ma, name: na });
    const b = new ChannelEndpoint({ ...opts, macAddress: mb, name: nb });
    a.connect(b);
    return [a, b];
  }

  /** Wires this endpoint and `peer` to each other (either may already be wired: the old peer is unwired). */
  connect(peer: ChannelEndpoint): void {
    this.disconnect();
    peer.disconnect();
    this.peer = peer;
    peer.peer = this;
  }

  /** Unwires this endpoint from its peer; later writes are captured for `drain()`. */
  disconnect(): void {
    if (this.peer) this.peer.peer = null;
    this.peer = null;
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
    this.onWrite?.(frame);
    if (this.peer) this.peer.receive(frame);
    else if (!this.onWrite) this.captured.push(frame);
    return true;
  }

  /**
   * Sends a super-frame (up to `capabilities.maxGsoSize`) to the peer whole, flagged RX_CSUM_VERIFIED: the
   * partial checksum stays partial, as between two namespaces on a veth. Only with the `gso` option.
   */
  writeGso(frame: Uint8Array, o: GsoOptions): boolean {
    if (!this.capabilities.gso) throw new Error('ChannelEndpoint.writeGso needs the gso option');
    if (this.closed || frame.length < ETH_HEADER_LEN || frame.length > this.capabilities.maxGsoSize || o.hdrLen > frame.length) {
      this.droppedHere++;
      return false;
    }
    this.framesSent++;
    if ((o.gsoType & ~GsoType.ECN) !== GsoType.NONE) this.gsoFramesSent++;
    this.onWrite?.(frame);
    if (this.peer) this.peer.receive(frame, o.csumStart !== undefined ? RX_CSUM_VERIFIED : 0);
    else if (!this.onWrite) this.captured.push(frame);
    return true;
  }

  flush(): void {
    // Frames leave at writeFrame; nothing is held back.
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.inbox.clear();
    this.inbox.dispatcher = null;
  }

  /** Delivers a copy of `frame` with RX_* `flags` to this endpoint's dispatcher as if it had been received (on the clock). */
  inject(frame: Uint8Array, flags = 0): void {
    this.receive(frame.slice(), flags);
  }

  /** Returns and forgets the frames written while no peer was connected and no onWrite hook was set. */
  drain(): Uint8Array[] {
    const out = this.captured;
    this.captured = [];
    return out;
  }

  /** Frames delivered to the attached dispatcher. */
  get framesReceived(): number {
    return this.inbox.delivered;
  }

  /** Frames dropped: oversize or runt writes and receipts, writes after close, receipts with no dispatcher. */
  get dropped(): number {
    return this.droppedHere + this.inbox.undeliverable;
  }

  /** Frames received and waiting for the clock to deliver them. */
  get pendingDeliveries(): number {
    return this.inbox.pending;
  }

  private receive(frame: Uint8Array, flags = 0): void {
    const fits = this.capabilities.gso
      ? frame.length >= ETH_HEADER_LEN && frame.length <= this.capabilities.maxGsoSize
      : frameFits(this.mtu, frame);
    if (this.closed || !fits) {
      this.droppedHere++;
      return;
    }
    this.inbox.push(frame, flags);
  }
}
