/**
 * Explicit Congestion Notification for one connection (RFC 3168 §6.1), as Linux's tcp_ecn modes run it
 * (net.ipv4.tcp_ecn: 0 off, 1 request on connect and accept, 2 accept only, the default): the SYN asks with ECE and
 * CWR, the SYN-ACK agrees with ECE alone; new data leaves ECT(0), retransmissions, pure ACKs and SYNs Not-ECT; a CE
 * mark on received data makes every segment we send carry ECE until the peer's CWR; an ECE we receive reduces
 * cwnd once per window of data and sets CWR on the next new data.
 */

/** The IP header's ECN codepoints (RFC 3168 §5). */
export const ECN_NOT_ECT = 0;
export const ECN_ECT1 = 1;
export const ECN_ECT0 = 2;
export const ECN_CE = 3;

/** Whether a tcp_ecn mode asks for ECN on the connections we open (1; 3 asks for AccECN, taken here as 1). */
export function ecnRequested(mode: number): boolean {
  return mode === 1 || mode === 3;
}

/** The ECN state of a connection (Linux's tp->ecn_flags). */
export class EcnState {
  /** ECN was negotiated (TCP_ECN_OK); on a client from its SYN until the SYN-ACK says otherwise. */
  ok = false;
  /** CWR goes on the next new data segment (TCP_ECN_QUEUE_CWR). */
  queueCwr = false;
  /** A CE mark arrived: ECE on every segment until the peer's CWR (TCP_ECN_DEMAND_CWR). */
  demandCwr = false;
  /** ECT or CE was seen on received data (TCP_ECN_SEEN). */
  seen = false;

  /** Forgets everything (a new connection, or ECN refused). */
  reset(): void {
    this.ok = false;
    this.queueCwr = false;
    this.demandCwr = false;
    this.seen = false;
  }

  /**
   * A data segment arrived with IP ECN codepoint `ecn` and CWR `cwr` (tcp_ecn_accept_cwr, then __tcp_ecn_check_ce).
   * Returns true when the segment should be acknowledged at once: the peer just entered CWR and may have a tiny
   * window, or a CE mark starts a demand for CWR.
   */
  dataArrived(ecn: number, cwr: boolean): boolean {
    let now = false;
    if (cwr) {
      this.demandCwr = false;
      now = true;
    }
    if (ecn === ECN_CE) {
      if (!this.demandCwr) {
        this.demandCwr = true;
        now = true;
      }
      this.seen = true;
    } else if (ecn !== ECN_NOT_ECT) {
      this.seen = true;
    }
    return now;
  }
}
