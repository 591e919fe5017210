/**
 * The narrow interface between the stack and whatever carries its Ethernet frames: an in-memory channel,
 * loopback, a host AF_PACKET socket or TAP (lib/), or a wrapper (sniffer, impair) around any of those.
 */

/** Receives frames from a link. */
export interface LinkDispatcher {
  /**
   * Delivers one received Ethernet frame (header included, no FCS). The bytes are valid only for the
   * duration of the call: a receiver that keeps any part of them copies it.
   */
  deliverFrame(frame: Uint8Array): void;
  /** Called after a batch of deliveries, so the stack can flush what the batch made it send. */
  deliverBatchEnd?(): void;
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
  /** Sends every frame queued by writeFrame. */
  flush(): void;
  /** Stops the link and releases its resources; idempotent. */
  close(): void;
}
