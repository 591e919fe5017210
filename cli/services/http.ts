/**
 * The `http` service: Node's own `node:http` server running on the netstack through tsvisor/net, which is the
 * proof that an unmodified Node service runs on the adapter. Routes: `GET /` a short page, `GET /bytes/N` exactly
 * N bytes where byte i is i mod 256 (streamed with backpressure, never buffered), `POST /sha256` the lowercase hex
 * SHA-256 of the request body followed by a newline (streamed), 404 otherwise; HTTP/1.1 keep-alive as node:http.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import { IPV6_ANY } from '../../netstack/addr.ts';
import { NetError } from '../../netstack/errors.ts';
import { bindNet, type Socket } from '../../netstack/adapter/net.ts';
import type { Service, SocketFactory } from './service.ts';

/** Counts of what the http service has done. */
export interface HttpServiceStats {
  /** Connections accepted. */
  connections: number;
  /** Requests answered (any status). */
  requests: number;
  /** Request body bytes received. */
  bytesIn: number;
  /** Response body bytes sent. */
  bytesOut: number;
  /** Requests answered 404. */
  notFound: number;
}

/** Listen backlog (many concurrent clients connect at once in the tests). */
const BACKLOG = 4096;
/** The largest /bytes/N served (10^15: far beyond any test, and exact in a double). */
const MAX_BYTES = 1e15;

/** 64 KiB of i mod 256: every /bytes chunk starts at a multiple of 256, so this one buffer serves them all. */
const BYTES_CHUNK = Buffer.from(Uint8Array.from({ length: 65536 }, (_, i) => i & 0xff));

/**
 * The page as a string (ASCII, so its length is its byte length): node:http sends a string body in the same
 * write as the head, so the whole response leaves as one segment.
 */
const INDEX = `<!doctype html>
<html><head><title>tsvisor</title></head>
<body><h1>tsvisor</h1><p>This page was served by node:http over the tsvisor netstack.</p>
<ul><li><a href="/bytes/1024">/bytes/N</a>: N bytes, byte i = i mod 256</li>
<li>POST /sha256: the SHA-256 of the request body</li></ul></body></html>
`;
/** The page's headers as a flat list, which node:http takes without walking an object. */
const INDEX_HEADERS = ['content-type', 'text/html; charset=utf-8', 'content-length', String(Buffer.byteLength(INDEX))];

/** The http service on `port`: a node:http server fed with connections accepted by tsvisor/net. */
export function httpService(sockets: SocketFactory, port = 80): (Service & { stats: HttpServiceStats }) | NetError {
  const net = bindNet({ socket: sockets });
  const stats: HttpServiceStats = { connections: 0, requests: 0, bytesIn: 0, bytesOut: 0, notFound: 0 };
  const server = http.createServer({ requestTimeout: 0 }, (req, res) => handle(req, res, stats));
  // node:http tracks connections only for servers that listened themselves, so close() needs its own list.
  const open = new Set<Socket>();
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
      for (const s of open) s.destroy();
    },
  };
}

function handle(req: http.IncomingMessage, res: http.ServerResponse, stats: HttpServiceStats): void {
  stats.requests++;
  const url = req.url ?? '/';
  const method = req.method ?? 'GET';
  const get = method === 'GET' || method === 'HEAD';
  if (get && url === '/') {
    req.resume();
    res.writeHead(200, INDEX_HEADERS);
    res.end(method === 'HEAD' ? undefined : INDEX);
    if (method !== 'HEAD') stats.bytesOut += INDEX.length;
    return;
  }
  const bytes = /^\/bytes\/(\d{1,16})$/.exec(url);
  if (get && bytes && Number(bytes[1]) <= MAX_BYTES) {
    req.resume();
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': bytes[1] });
    if (method === 'HEAD') res.end();
    else streamBytes(res, Number(bytes[1]), stats);
    return;
  }
  if (method === 'POST' && url === '/sha256') {
    const hash = createHash('sha256');
    req.on('data', (chunk: Buffer) => {
      stats.bytesIn += chunk.length;
      hash.update(chunk);
    });
    req.on('end', () => {
      const body = `${hash.digest('hex')}\n`;
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
      res.end(body);
      stats.bytesOut += body.length;
    });
    return;
  }
  stats.notFound++;
  req.resume();
  const body = 'not found\n';
  res.writeHead(404, { 'content-type': 'text/plain', 'content-length': body.length });
  res.end(body);
}

/** Writes n bytes of the i mod 256 pattern, waiting for 'drain' whenever the connection pushes back. */
function streamBytes(res: http.ServerResponse, n: number, stats: HttpServiceStats): void {
  let left = n;
  let gone = false;
  res.once('close', () => (gone = true));
  const pump = () => {
    while (left > 0 && !gone) {
      const len = Math.min(left, BYTES_CHUNK.length);
      left -= len;
      stats.bytesOut += len;
      const more = res.write(len === BYTES_CHUNK.length ? BYTES_CHUNK : BYTES_CHUNK.subarray(0, len));
      if (!more && left > 0) {
        res.once('drain', pump);
        return;
      }
    }
    if (!gone) res.end();
  };
  pump();
}
