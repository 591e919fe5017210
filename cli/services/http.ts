/**
 * The `http` service: Node's own `node:http` server running on the netstack through tsvisor/net, which is the
 * proof that an unmodified Node service runs on the adapter. Its routes are http-app.ts's; HTTP/1.1 keep-alive as
 * node:http.
 */
import http from 'node:http';
import { IPV6_ANY } from '../../netstack/addr.ts';
import { NetError } from '../../netstack/errors.ts';
import { bindNet, type Socket } from '../../netstack/adapter/net.ts';
import { type Placed, PlacedList } from '../../netstack/placed-list.ts';
import { type HttpServiceStats, httpApp, httpStats } from './http-app.ts';
import type { Service, SocketFactory } from './service.ts';

export type { HttpServiceStats } from './http-app.ts';

/** Where an open connection sits in the service's list of them. */
const kOpenIndex = Symbol('openIndex');
/** Listen backlog (many concurrent clients connect at once in the tests). */
const BACKLOG = 4096;

/** The http service on `port`: a node:http server fed with connections accepted by tsvisor/net. */
export function httpService(sockets: SocketFactory, port = 80): (Service & { stats: HttpServiceStats }) | NetError {
  const net = bindNet({ socket: sockets });
  const stats = httpStats();
  const server = http.createServer({ requestTimeout: 0 }, httpApp(stats));
  // node:http tracks connections only for servers that listened themselves, so close() needs its own list: a
  // PlacedList, not a Set, which kept closed sockets (and node:http's state on them) alive through
  // young-generation collections, promoting every connection (issue 13).
  const open = new PlacedList<Socket & Placed<typeof kOpenIndex>, typeof kOpenIndex>(kOpenIndex);
  function forget(this: Socket): void {
    open.delete(this);
  }
  // As node:http's own server: half-open allowed (it decides when to end), and no Nagle delay on responses.
  const listener = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
    stats.connections++;
    open.add(socket);
    socket.on('close', forget);
    server.emit('connection', socket);
  });
  // The listening socket is opened on the endpoint API, where a failure is a value to return, then served.
  const ep = sockets(6, 'stream');
  if (ep instanceof NetError) return ep;
  ep.setOption('SO_REUSEADDR', 1);
  const err = ep.bind({ address: IPV6_ANY, port }) ?? ep.listen(BACKLOG);
  if (err) {
    ep.close();
    return err;
  }
  listener.listen({ endpoint: ep });
  return {
    name: 'http',
    port,
    stats,
    close() {
      listener.close();
      for (const s of open.drain()) s.destroy();
    },
  };
}
