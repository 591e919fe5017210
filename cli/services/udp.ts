/**
 * The datagram halves of the small Internet services: echo (RFC 862), discard (RFC 863) and chargen (RFC 864)
 * over UDP.
 */
import { randomInt } from 'node:crypto';
import { NetError } from '../../netstack/errors.ts';
import type { Endpoint, SocketAddress } from '../../netstack/socket.ts';
import { chargenPattern } from './chargen.ts';
import { bindDatagram, serveDatagrams, type Service, type SocketFactory } from './service.ts';

/** Counts of what a datagram service has done. */
export interface DatagramServiceStats {
  /** Datagrams received. */
  datagrams: number;
  /** Bytes received. */
  bytes: number;
  /** Bytes sent back (echo, chargen). */
  bytesOut: number;
}

/** UDP echo (RFC 862): every datagram is sent back to its sender unchanged. */
export function udpEcho(sockets: SocketFactory, port = 7): (Service & { stats: DatagramServiceStats }) | NetError {
  return datagramService('echo', sockets, port, (ep, data, from) => ep.write(data, { to: from }));
}

/** UDP discard (RFC 863): every datagram is read and thrown away. */
export function udpDiscard(sockets: SocketFactory, port = 9): (Service & { stats: DatagramServiceStats }) | NetError {
  return datagramService('discard', sockets, port, () => 0);
}

const PATTERN = chargenPattern();

/**
 * UDP chargen (RFC 864): every datagram is answered with one datagram of a random length from 0 to 512 bytes
 * of the character pattern; what the request held is ignored.
 */
export function udpChargen(sockets: SocketFactory, port = 19): (Service & { stats: DatagramServiceStats }) | NetError {
  return datagramService('chargen', sockets, port, (ep, _data, from) =>
    ep.write(PATTERN.subarray(0, randomInt(0, 513)), { to: from }),
  );
}

function datagramService(
  name: string,
  sockets: SocketFactory,
  port: number,
  /** Answers one datagram; returns the bytes sent (or the send's error, which UDP services ignore). */
  handle: (ep: Endpoint, data: Uint8Array, from: SocketAddress) => number | NetError,
): (Service & { stats: DatagramServiceStats }) | NetError {
  const eps = bindDatagram(sockets, port);
  if (eps instanceof NetError) return eps;
  const stats: DatagramServiceStats = { datagrams: 0, bytes: 0, bytesOut: 0 };
  const stops = eps.map((ep) =>
    serveDatagrams(ep, (data, from) => {
      stats.datagrams++;
      stats.bytes += data.length;
      const n = handle(ep, data, from);
      if (typeof n === 'number') stats.bytesOut += n;
    }),
  );
  return {
    name,
    port,
    stats,
    close() {
      for (const s of stops) s();
      for (const ep of eps) ep.close();
    },
  };
}
