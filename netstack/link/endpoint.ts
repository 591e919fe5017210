/**
 * The narrow interface between the stack and whatever carries its Ethernet frames: an in-memory channel,
 * loopback, a host AF_PACKET socket or TAP (lib/), or a wrapper (sniffer, impair) around any of those.
 */

/** Receives frames from a link. */
export interface LinkDispatcher {
  /**
   * Delivers one received Ethernet frame (header included, no FCS). The bytes are valid only for the
   * duration of the call: a receiver that keeps any part of them copies it. `flags` is a mask of RX_* bits
   * (0 when absent). A link with `capabilities.gso` may deliver super-frames larger than its MTU.
   */
  deliverFrame(frame: Uint8Array, flags?: number): void;
  /** Called after a batch of deliveries, so the stack can flush what the batch made it send. */
  deliverBatchEnd?(): void;
  /**
   * Ends the loans of frames delivered with RX_LOAN: whatever part of them a receiver still holds, it copies now.
   * A link that lends calls this before it reuses or frees their memory; it lends only to a dispatcher that has it.
   */
  returnLoans?(): void;
}

/**
 * Receive flag: the frame's L4 checksum needs no check, because the link verified it or because the frame was
 * built by a stack on this host and never crossed a wire (virtio DATA_VALID or NEEDS_CSUM, Linux's
 * CHECKSUM_UNNECESSARY / CHECKSUM_PARTIAL); its checksum field may then hold only a partial sum.
 */
export const RX_CSUM_VERIFIED = 1;

/**
 * Receive flag: more frames of this batch follow at once (the link already holds the next one): a receiver may
 * defer work such as ACKs to deliverBatchEnd().
 */
export const RX_MORE = 2;

/**
 * Receive flag: the frame's bytes stay valid after deliverFrame returns, until the link calls returnLoans()
 * (before the next batch, after the applications' reads of this one have run): a receiver may queue views of them
 * instead of copies, and copies only what is still unread then. A packet ring's slot, lent rather than copied out
 * (lib/packet.ts), so that a reader that takes the bytes at once (a sink, the Sentry's pump) costs one copy less.
 */
export const RX_LOAN = 4;

/** `gso_type` values (VIRTIO_NET_HDR_GSO_*): how a super-frame is to be (or was) cut into segments. */
export const GsoType = {
  /** Not a super-frame. */
  NONE: 0,
  /** TCP over IPv4, cut at gso_size bytes of TCP payload (TSO). */
  TCPV4: 1,
  /** UDP over IPv4 cut into IP fragments (UFO, refused by current kernels). */
  UDP: 3,
  /** TCP over IPv6 (TSO6). */
  TCPV6: 4,
  /** UDP cut into separate datagrams of gso_size payload bytes (USO, Linux 6.2+). */
  UDP_L4: 5,
  /** Flag: the super-frame's TCP header has CWR set, and only the first segment keeps it (RFC 3168 §6.1.2). */
  ECN: 0x80,
} as const;

/** Offload fields of one frame: what `writeGso` takes and what the receive side reads. */
export interface GsoOptions {
  /** One of `GsoType` (optionally with `GsoType.ECN`); NONE for a frame that is not to be cut. */
  gsoType: number;
  /** Payload bytes per segment (the MSS for TCP); ignored for NONE. */
  gsoSize: number;
  /** Bytes of headers in front of the payload, Ethernet header included (Ethernet + IP + TCP/UDP). */
  hdrLen: number;
  /**
   * Where the L4 checksum's coverage starts (offset of the TCP/UDP header in the frame); with `csumOffset` it
   * asks the kernel to complete a partial checksum (NEEDS_CSUM). Omit both to send the checksum as it is.
   */
  csumStart?: number;
  /** Offset of the checksum field from csumStart (16 for TCP, 6 for UDP). */
  csumOffset?: number;
}

/**
 * What a link can do beyond plain MTU-sized frames; an optional, read-only property of links
 * (`AfPacketEndpoint.capabilities`, `ChannelEndpoint` with `gso`), for the stack to query before handing over or expecting large segments.
 * A link without the property, or with every field false, behaves as a plain Ethernet link.
 */
export interface LinkCapabilities {
  /**
   * `writeGso` accepts TCP/UDP super-frames up to `maxGsoSize` for the kernel to cut into segments (TSO/USO),
   * and received frames may be GRO'd super-frames larger than the MTU (up to `maxGsoSize`).
   */
  readonly gso: boolean;
  /** Largest frame, Ethernet header included, that `writeGso` accepts and that receive may deliver. */
  readonly maxGsoSize: number;
  /**
   * Every delivered frame's checksums were verified before delivery, so the stack may skip verifying them.
   * False for AfPacketEndpoint: only the frames it flags RX_CSUM_VERIFIED (the kernel's DATA_VALID or NEEDS_CSUM)
   * skip the stack's check; the others are checked as usual.
   */
  readonly rxChecksumOffload: boolean;
  /** `writeGso` may leave the L4 checksum partial (csumStart/csumOffset) for the kernel to complete. */
  readonly txChecksumOffload: boolean;
  /**
   * Largest frame, Ethernet header included, that receive may deliver, for a link that takes super-frames in
   * without `gso` (a packet socket without the vnet header whose peer does TSO); with `gso`, `maxGsoSize` says it.
   */
  readonly maxRxFrame?: number;
}

/** Capabilities of a link without offloads. */
export const NO_OFFLOADS: LinkCapabilities = Object.freeze({
  gso: false,
  maxGsoSize: 0,
  rxChecksumOffload: false,
  txChecksumOffload: false,
});

/**
 * Payload bytes that follow a frame's headers without being copied behind them: the link points its send at
 * `pieces[0..count)` (their `length` bytes in all, in order) instead of copying them into its own memory
 * (LinkEndpoint.writeGsoGather). The bytes must stay alive and unchanged while the link points at them: it calls
 * `owner.hold()` when it starts to and `owner.release()` once it no longer does (the frame sent, dropped or the
 * link closed). A caller may reuse the record itself as soon as the write returns.
 */
export interface GatherPayload {
  /** The pieces, in order; only the first `count` are part of the payload. */
  pieces: Uint8Array[];
  count: number;
  /** Bytes in the first `count` pieces. */
  length: number;
  /** Who keeps the pieces' bytes as they are while held (a TCP send queue parks its consumed chunks). */
  owner: { hold(): void; release(): void };
}

/** A frame with its gather payload copied behind its headers: what a link without writeGsoGather is handed. */
export function joinGather(frame: Uint8Array, payload: GatherPayload): Uint8Array {
  const out = new Uint8Array(frame.length + payload.length);
  out.set(frame);
  let at = frame.length;
  for (let i = 0; i < payload.count; i++) {
    const p = payload.pieces[i]!;
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A network interface's link layer. */
export interface LinkEndpoint {
  /** Largest IP packet the link carries (the Ethernet payload size, 1500 by default). */
  readonly mtu: number;
  /** The link's 6-byte MAC address. */
  readonly macAddress: Uint8Array;
  /** Starts delivering received frames to `dispatcher`; null detaches. */
  attach(dispatcher: LinkDispatcher | null): void;
  /**
   * Queues one Ethernet frame for sending; the link may send it at once or hold it until `flush()`.
   * The link takes ownership of `frame`: the caller must not modify it afterwards.
   * Returns false when the frame was dropped (link down, queue full, too large).
   */
  writeFrame(frame: Uint8Array): boolean;
  /** What the link does beyond MTU-sized frames; absent means NO_OFFLOADS. */
  readonly capabilities?: LinkCapabilities;
  /**
   * Queues one super-frame (Ethernet header included, up to `capabilities.maxGsoSize`) to be cut into segments
   * of `o.gsoSize` payload bytes, its L4 checksum completed when `o.csumStart`/`o.csumOffset` are given; only on
   * links whose `capabilities.gso` is true. Same ownership and flush rules as writeFrame.
   */
  writeGso?(frame: Uint8Array, o: GsoOptions): boolean;
  /**
   * writeGso of a frame whose payload (behind `frame`'s headers, which end at `o.hdrLen`) is `payload`, pointed
   * at rather than copied where the link can (see GatherPayload); only on links whose `capabilities.gso` is true.
   * Same ownership and flush rules as writeGso for `frame`. Optional: without it, callers join the two.
   */
  writeGsoGather?(frame: Uint8Array, o: GsoOptions, payload: GatherPayload): boolean;
  /** writeGsoGather points at the payload rather than joining it to the frame (a copy): worth calling. */
  readonly gathers?: boolean;
  /**
   * A writable view of `length` bytes in the link's own send memory, where the caller may build its next frame:
   * passing that very view (same buffer and byteOffset, any length up to `length`, e.g. `view.subarray(0, n)`)
   * to the next writeFrame/writeGso queues it without a copy; any other frame is copied as usual. The view is
   * valid only until the next call of any method on the link, and its bytes are whatever the memory held before
   * (not zeroed): the caller writes every byte it sends. Null when the link cannot offer one now (queue full and
   * blocked, closed, `length` too large). Optional: a link without it is always written by copy.
   */
  frameBuffer?(length: number): Uint8Array | null;
  /** Sends every frame queued by writeFrame. */
  flush(): void;
  /**
   * The link sends what was queued by itself, at the latest in the event loop's check phase after the write (the
   * next turn's for a write made in that phase), so the stack flushes it neither after a write outside a receive
   * batch nor at a batch's end.
   */
  readonly flushesItself?: boolean;
  /**
   * Every batch whose frames the link flags RX_MORE ends with deliverBatchEnd(): the stack then arms no clock tick
   * per batch to send the replies it deferred in case the batch never ends.
   */
  readonly endsBatches?: boolean;
  /** Stops the link and releases its resources; idempotent. */
  close(): void;
}
