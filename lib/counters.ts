/** Counters kept by the host-backed link endpoints (AF_PACKET, TAP), plain numbers incremented in place. */

/** Frames and bytes in and out of a host link, and why any of them died. */
export interface HostLinkCounters {
  /** Frames handed to the dispatcher. */
  rxFrames: number;
  /** Bytes of those frames. */
  rxBytes: number;
  /** Frames the kernel dropped because the receive ring or buffer was full. */
  rxDropped: number;
  /** Frames larger than a ring slot (the kernel cut them short), dropped. */
  rxTruncated: number;
  /** Frames received while no dispatcher was attached, dropped. */
  rxUnattached: number;
  /**
   * Frames whose L4 checksum the sender left to offload (TP_STATUS_CSUMNOTREADY); delivered as they are.
   * Non-zero means the peer has tx checksum offload on: turn it off, or use PACKET_VNET_HDR (not yet done).
   */
  rxCsumNotReady: number;
  /** Frames sent. */
  txFrames: number;
  /** Bytes sent. */
  txBytes: number;
  /** Frames dropped on send: queue full while the socket was blocked, or the kernel refused them. */
  txDropped: number;
  /** Frames refused by writeFrame for being larger than MTU + Ethernet header (+ one VLAN tag). */
  txOversize: number;
  /** Times a send found the socket buffer full and waited for it to drain. */
  txBlocked: number;
  /** Send system calls made (sendmmsg or write): txFrames / txCalls is how well sends are batched. */
  txCalls: number;
}

/** A fresh set of zeroed counters. */
export function newHostLinkCounters(): HostLinkCounters {
  return {
    rxFrames: 0,
    rxBytes: 0,
    rxDropped: 0,
    rxTruncated: 0,
    rxUnattached: 0,
    rxCsumNotReady: 0,
    txFrames: 0,
    txBytes: 0,
    txDropped: 0,
    txOversize: 0,
    txBlocked: 0,
    txCalls: 0,
  };
}
