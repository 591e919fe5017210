/**
 * The http service's application: the node:http request listener that `tsvisor serve --service http` runs on the
 * netstack, kept apart from the socket plumbing so that the bench's kernel side (bench/peers/servers.ts) runs this
 * very listener on node:net, and the two sides of the http rows differ only in the stack beneath. Routes: `GET /` a
 * short page, `GET /bytes/N` exactly N bytes where byte i is i mod 256 (streamed with backpressure, never
 * buffered), `POST /sha256` the lowercase hex SHA-256 of the request body followed by a newline (streamed), 404
 * otherwise.
 */
import { createHash } from 'node:crypto';
import type http from 'node:http';

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

/** The request listener, counting into `stats`. */
export function httpApp(stats: HttpServiceStats): (req: http.IncomingMessage, res: http.ServerResponse) => void {
  return (req, res) => handle(req, res, stats);
}

/** Fresh zeroed counts. */
export function httpStats(): HttpServiceStats {
  return { connections: 0, requests: 0, bytesIn: 0, bytesOut: 0, notFound: 0 };
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
