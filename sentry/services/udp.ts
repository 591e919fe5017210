/**
 * The datagram halves of the small Internet services: echo (RFC 862) and discard (RFC 863) over UDP.
 */
import { NetError } from '../../netstack/errors.ts';
import type { Endpoint, SocketAddress } from '../../netstack/socket.ts';
import { bindDatagram, serveDatagrams, type Service, type SocketFactory } from './service.ts';

/** Counts of what a datagram service has done. */
export interface DatagramServiceStats {
  datagrams: number;
  bytes: number;
}

/** UDP echo (RFC 862): every datagram is sent back to its sender unchanged. */
export function udpEcho(sockets: SocketFactory, port = 7): (Service & { stats: DatagramServiceStats }) | NetError {
  return datagramService('echo', sockets, port, (ep, data, from) => {
    ep.write(data, { to: from });
  });
}

/** UDP discard (RFC 863): every datagram is read and thrown away. */
export function udpDiscard(sockets: SocketFactory, port = 9): (Service & { stats: DatagramServiceStats }) | NetError {
  return datagramService('discard', sockets, port, () => {});
}

function datagramService(
  name: string,
  sockets: SocketFactory,
  port: number,
  handle: (ep: Endpoint, data: Uint8Array, from: SocketAddress) => void,
): (Service & { stats: DatagramServiceStats }) | NetError {
  const eps = bindDatagram(sockets, port);
  if (eps instanceof NetError) return eps;
  const stats: DatagramServiceStats = { datagrams: 0, bytes: 0 };
  const stops = eps.map((ep) =>
    serveDatagrams(ep, (data, from) => {
      stats.datagrams++;
      stats.bytes += data.length;
      handle(ep, data, from);
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
