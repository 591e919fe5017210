/**
 * The connection states of RFC 9293 §3.3.2, with Linux's numbering (include/net/tcp_states.h) so that TCP_INFO's
 * tcpi_state matches what `ss` and Linux programs expect.
 */

/** The connection states; values follow Linux's TCP_ESTABLISHED = 1 … TCP_CLOSING = 11. */
export const State = {
  Established: 1,
  SynSent: 2,
  SynReceived: 3,
  FinWait1: 4,
  FinWait2: 5,
  TimeWait: 6,
  Closed: 7,
  CloseWait: 8,
  LastAck: 9,
  Listen: 10,
  Closing: 11,
} as const;

/** A connection state (one of `State`'s values). */
export type State = (typeof State)[keyof typeof State];

const NAMES: Record<number, string> = {
  1: 'ESTABLISHED',
  2: 'SYN-SENT',
  3: 'SYN-RECEIVED',
  4: 'FIN-WAIT-1',
  5: 'FIN-WAIT-2',
  6: 'TIME-WAIT',
  7: 'CLOSED',
  8: 'CLOSE-WAIT',
  9: 'LAST-ACK',
  10: 'LISTEN',
  11: 'CLOSING',
};

/** The RFC 9293 name of a state, e.g. "SYN-SENT". */
export function stateName(s: State): string {
  return NAMES[s] ?? `state-${s}`;
}

/** Whether the state is synchronized (RFC 9293 §3.5.2: every state after the handshake). */
export function isSynchronized(s: State): boolean {
  return s !== State.Closed && s !== State.Listen && s !== State.SynSent && s !== State.SynReceived;
}

/** Whether data may still arrive from the peer (RFC 9293 §3.10.7.4, "seventh, process the segment text"). */
export function acceptsData(s: State): boolean {
  return s === State.Established || s === State.FinWait1 || s === State.FinWait2;
}

/** Whether the application may still queue data to send (RFC 9293 §3.10.2). */
export function canSend(s: State): boolean {
  return s === State.Established || s === State.CloseWait;
}
