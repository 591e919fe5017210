// tsvisor/net on two in-memory Netstacks: node:net's events and their order, errors with codes, backpressure
// both ways, half-close, timeouts, and node:http's server and client running over the adapter.
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import t from 'tap';
import { bindNet, type Socket } from '../../../netstack/adapter/net.ts';
import { seededBytes } from '../transport/tcp/helper.ts';
import { HANG_MS, waitFor, within } from '../../lib/wait.ts';
import { A4, A6, B4, B6, twoNetstacks } from './helpers.ts';

type NodeErr = Error & { code: string; errno: number; syscall: string; address?: string; port?: number };

function sha(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Deterministic pseudo-random bytes (the TCP tests' generator), as a Buffer for the stream APIs. */
function payload(n: number, seed: number): Buffer {
  const b = seededBytes(n, seed);
  return Buffer.from(b.buffer, b.byteOffset, b.length);
}

/** Records the names of events as they are emitted (consecutive 'data' events once). */
function record(s: Socket, names: string[]): string[] {
  const seen: string[] = [];
  for (const n of names) {
    s.on(n, () => {
      if (n === 'data' && seen[seen.length - 1] === 'data') return;
      seen.push(n);
    });
  }
  return seen;
}

function collect(s: Socket): Promise<Buffer> {
  const parts: Buffer[] = [];
  s.on('data', (d: Buffer) => parts.push(d));
  return once(s, 'end').then(() => Buffer.concat(parts));
}

t.test('net', async (t) => {
  const env = twoNetstacks();
  const na = bindNet(env.a);
  const nb = bindNet(env.b);
  t.teardown(() => env.close());

  await t.test('connect → connect, ready, data, end, finish, close; server sees connection with the right addresses', async (t) => {
    const server = nb.createServer((s) => {
      t.equal(s.remoteAddress, `::ffff:${A4}`, 'an IPv4 peer on the dual-stack listener is ::ffff:');
      t.equal(s.localPort, 5000);
      s.end('hello from b');
    });
    server.listen(5000);
    t.same(server.address(), { address: '::', family: 'IPv6', port: 5000 }, 'listen() binds at once');
    await once(server, 'listening');
    const c = na.connect(5000, B4);
    t.equal(c.connecting, true);
    t.equal(c.pending, true);
    t.equal(c.readyState, 'opening');
    const events = record(c, ['connect', 'ready', 'data', 'end', 'finish', 'close']);
    const body = collect(c);
    await once(c, 'connect');
    t.equal(c.connecting, false);
    t.equal(c.readyState, 'open');
    t.equal(c.remoteAddress, B4);
    t.equal(c.remotePort, 5000);
    t.equal(c.remoteFamily, 'IPv4');
    t.equal(c.localAddress, A4);
    t.ok(c.localPort! >= 1024);
    t.same(c.address(), { address: A4, family: 'IPv4', port: c.localPort });
    t.equal((await body).toString(), 'hello from b');
    const [hadError] = await once(c, 'close');
    t.equal(hadError, false);
    t.same(events, ['connect', 'ready', 'data', 'end', 'finish', 'close']);
    t.equal(c.bytesRead, 12);
    t.equal(c.remoteAddress, B4, 'addresses are kept after close, as Node');
    server.close();
    await once(server, 'close');
  });

  await t.test('connect to a closed port → error ECONNREFUSED (errno -111, syscall connect), close(true)', async (t) => {
    const c = na.connect({ port: 5999, host: B4 });
    const events = record(c, ['connect', 'error', 'close']);
    const [e] = (await once(c, 'error')) as [NodeErr];
    t.equal(e.code, 'ECONNREFUSED');
    t.equal(e.errno, -111);
    t.equal(e.syscall, 'connect');
    t.equal(e.address, B4);
    t.equal(e.port, 5999);
    t.equal(e.message, `connect ECONNREFUSED ${B4}:5999`);
    const [hadError] = await once(c, 'close');
    t.equal(hadError, true);
    t.same(events, ['error', 'close']);
  });

  await t.test('connect errors: no route → ENETUNREACH, a name → ENOTFOUND, bad port throws', async (t) => {
    const c1 = na.connect(80, '198.51.100.7');
    const [e1] = (await once(c1, 'error')) as [NodeErr];
    t.equal(e1.code, 'ENETUNREACH');
    const c2 = na.connect(80, 'example.invalid');
    const [e2] = (await once(c2, 'error')) as [NodeErr];
    t.equal(e2.code, 'ENOTFOUND');
    t.equal(e2.syscall, 'getaddrinfo');
    t.throws(() => na.connect(70000, B4), { code: 'ERR_SOCKET_BAD_PORT' });
  });

  await t.test('listen on a port in use → error EADDRINUSE with Node\'s message; close before listen → ERR_SERVER_NOT_RUNNING', async (t) => {
    const one = nb.createServer().listen(5001, B4);
    await once(one, 'listening');
    const two = nb.createServer();
    let listened = false;
    two.on('listening', () => (listened = true));
    two.listen(5001, B4);
    const [e] = (await once(two, 'error')) as [NodeErr];
    t.equal(e.code, 'EADDRINUSE');
    t.equal(e.errno, -98);
    t.equal(e.syscall, 'listen');
    t.equal(e.message, `listen EADDRINUSE: address already in use ${B4}:5001`);
    t.notOk(listened);
    t.equal(two.listening, false);
    const err = await new Promise<Error | undefined>((res) => two.close((e) => res(e)));
    t.equal((err as NodeErr).code, 'ERR_SERVER_NOT_RUNNING');
    const three = nb.createServer().listen(5001, '198.18.9.9');
    t.equal(((await once(three, 'error'))[0] as NodeErr).code, 'EADDRNOTAVAIL');
    one.close();
  });

  await t.test('IPv6 end to end, and a v6-only listener', async (t) => {
    const server = nb.createServer((s) => s.end(`${s.remoteAddress} ${s.remoteFamily}`));
    server.listen({ port: 5002, host: '::', ipv6Only: true });
    await once(server, 'listening');
    const c = na.connect(5002, B6);
    t.equal((await collect(c)).toString(), `${A6} IPv6`);
    t.equal(c.remoteFamily, 'IPv6');
    const c4 = na.connect(5002, B4);
    t.equal(((await once(c4, 'error'))[0] as NodeErr).code, 'ECONNREFUSED', 'v4 refused by a v6-only listener');
    server.close();
  });

  await t.test('echo of 3 MB byte-exact, counting bytesRead and bytesWritten', async (t) => {
    const server = nb.createServer((s) => s.pipe(s));
    server.listen(5003);
    await once(server, 'listening');
    const data = payload(3 << 20, 7);
    const c = na.connect(5003, B4);
    const parts: Buffer[] = [];
    let n = 0;
    const all = new Promise<void>((res) =>
      c.on('data', (d: Buffer) => {
        parts.push(d);
        if ((n += d.length) >= data.length) res();
      }),
    );
    c.write(data);
    await all;
    t.equal(sha(Buffer.concat(parts)), sha(data));
    t.equal(c.bytesRead, data.length);
    t.equal(c.bytesWritten, data.length);
    c.end();
    await once(c, 'close');
    server.close();
  });

  await t.test('string writes in utf8, latin1 and hex, short and long, also past a full send buffer → the bytes Buffer.from makes, bytesWritten in bytes', async (t) => {
    let serverSide: Socket | undefined;
    const server = nb.createServer({ pauseOnConnect: true }, (s) => (serverSide = s));
    server.listen(5023);
    await once(server, 'listening');
    const c = na.connect(5023, B4);
    await once(c, 'connect');
    const pieces: [string, BufferEncoding][] = [
      ['héllo wörld ✓ 😀\n', 'utf8'],
      ['caf\u00e9 \u00ff', 'latin1'],
      ['00ff10', 'hex'],
      ['ü'.repeat(20000), 'utf8'], // longer than the scratch buffer takes
    ];
    // More than the send buffer (256 KiB) and the reader's window hold while it is paused, so that later writes
    // wait for room.
    for (let i = 0; i < 60; i++) pieces.push([`${i}:${'ä€x'.repeat(2000)}\n`, 'utf8']);
    const expected = Buffer.concat(pieces.map(([text, enc]) => Buffer.from(text, enc)));
    for (const [text, enc] of pieces) c.write(text, enc);
    t.equal(c.bytesWritten, expected.length, 'bytesWritten counts bytes, buffered strings included');
    await waitFor(() => serverSide !== undefined, HANG_MS, 'the accepted socket');
    const got = collect(serverSide!);
    serverSide!.resume();
    c.end();
    const r = await within(got, HANG_MS, 'the strings');
    t.equal(r.length, expected.length);
    t.ok(r.equals(expected), 'byte-exact');
    t.equal(c.bytesWritten, expected.length);
    c.destroy();
    server.close();
  });

  await t.test('echo with the client half-closing while 3 MB are in flight → all back, then end', async (t) => {
    const server = nb.createServer((s) => s.pipe(s));
    server.listen(5013);
    await once(server, 'listening');
    const data = payload(3 << 20, 8);
    const c = na.connect(5013, B4);
    const got = collect(c);
    c.end(data);
    const r = await within(got, HANG_MS, 'the echo').catch(() => null);
    c.destroy();
    t.ok(r && sha(r) === sha(data), r ? 'all echoed' : `stalled after ${c.bytesRead} of ${data.length} bytes`);
    server.close();
  });

  await t.test('backpressure: a reader that stops makes write() false, bounded buffering, drain once it reads again', async (t) => {
    let serverSide: Socket | undefined;
    const server = nb.createServer({ pauseOnConnect: true }, (s) => (serverSide = s));
    server.listen(5004);
    await once(server, 'listening');
    const c = na.connect(5004, B4);
    await once(c, 'connect');
    const chunk = payload(64 * 1024, 3);
    let queued = 0;
    while (c.write(chunk)) queued += chunk.length;
    queued += chunk.length;
    // As node:net's (which writes into the kernel's socket buffer at once): false once the stack's send buffer
    // (256 KiB) is full and the stream holds what its high-water mark allows.
    t.ok(queued <= 256 * 1024 + 2 * chunk.length, `write() turned false after ${queued} bytes (send buffer and high-water mark)`);
    // Keep the writer writing whenever it may, with nobody reading on the other side, until the stacks stop taking
    // data (no drain for a while). On a busy machine that may be before they are full; every check below holds
    // at any moment of the fill, so it is only less thorough then, never wrong.
    let lastDrain = Date.now();
    const fill = () => {
      lastDrain = Date.now();
      while (c.write(chunk)) queued += chunk.length;
      queued += chunk.length;
    };
    c.on('drain', fill);
    await waitFor(() => Date.now() - lastDrain > 300, HANG_MS, 'the writer to stop draining');
    c.removeListener('drain', fill);
    const inFlight = c.bytesWritten - c.writableLength;
    // The writer's send buffer (256 KiB) and the reader's receive buffer (128 KiB; it only grows while read).
    t.ok(inFlight <= 512 * 1024, `the stacks hold ${inFlight} bytes while the reader is paused: bounded`);
    t.ok(c.writableLength <= 2 * chunk.length, `the writer's stream holds ${c.writableLength} bytes`);
    t.ok(c.writableNeedDrain, 'the writer still waits for drain');
    const total = c.bytesWritten;
    const got = collect(serverSide!);
    serverSide!.resume();
    await once(c, 'drain');
    t.pass('drain came once the reader read again');
    c.end();
    const all = await got;
    t.equal(all.length, total, `every byte written arrived (${all.length} of ${total})`);
    server.close();
  });

  await t.test('backpressure into the reader: push stops at the high-water mark while nobody consumes', async (t) => {
    const data = payload(4 << 20, 11);
    const server = nb.createServer((s) => s.end(data));
    server.listen(5005);
    await once(server, 'listening');
    const c = na.connect(5005, B4);
    await once(c, 'connect');
    await new Promise((r) => setTimeout(r, 500));
    t.ok(c.readableLength <= 128 * 1024, `the reader's stream holds ${c.readableLength} bytes, not the 4 MB`);
    t.ok(c.bytesRead < 2 << 20, `only ${c.bytesRead} bytes read from the stack while paused`);
    t.equal(sha(await collect(c)), sha(data), 'and it all arrives once read');
    server.close();
  });

  await t.test('half-close: end() sends FIN, the allowHalfOpen peer gets end, answers, then both close', async (t) => {
    const server = nb.createServer({ allowHalfOpen: true }, async (s) => {
      const req = await collect(s);
      t.equal(s.writable, true, 'the server can still write after the peer FIN');
      s.end(`got ${req.length} bytes: ${req.toString()}`);
    });
    server.listen(5006);
    await once(server, 'listening');
    const c = na.connect({ port: 5006, host: B4, allowHalfOpen: true });
    const events = record(c, ['finish', 'end', 'close']);
    c.end('question');
    const reply = await collect(c);
    t.equal(reply.toString(), 'got 8 bytes: question');
    await once(c, 'close');
    t.same(events, ['finish', 'end', 'close'], 'our FIN first, the reply and its FIN after');
    server.close();
  });

  await t.test('without allowHalfOpen the server side ends itself on the peer FIN', async (t) => {
    let serverEvents: string[] = [];
    const server = nb.createServer((s) => {
      serverEvents = record(s, ['end', 'finish', 'close']);
      s.resume();
    });
    server.listen(5007);
    await once(server, 'listening');
    const c = na.connect(5007, B4);
    c.resume();
    c.end('bye');
    await once(c, 'close');
    await waitFor(() => serverEvents.includes('close'), HANG_MS, "the server side's close");
    t.same(serverEvents, ['end', 'finish', 'close']);
    server.close();
  });

  await t.test('destroy with unread data resets: the peer gets error ECONNRESET (syscall read)', async (t) => {
    const server = nb.createServer({ pauseOnConnect: true }, (s) => {
      // Destroyed once the client's bytes wait unread in its receive queue (not after a fixed time: with nothing
      // unread, destroy would send FIN, not RST).
      const ep = (s as unknown as { ep: { inQueue(): number } }).ep;
      void waitFor(() => ep.inQueue() > 0, HANG_MS, 'the unread data').finally(() => s.destroy());
    });
    server.listen(5008);
    await once(server, 'listening');
    const c = na.connect(5008, B4);
    c.resume();
    c.write('unread data');
    const [e] = (await once(c, 'error')) as [NodeErr];
    t.equal(e.code, 'ECONNRESET');
    t.equal(e.errno, -104);
    t.equal(e.syscall, 'read');
    t.equal((await once(c, 'close'))[0], true);
    server.close();
  });

  await t.test('writing after the peer reset → EPIPE or ECONNRESET error', async (t) => {
    const server = nb.createServer((s) => s.resetAndDestroy());
    server.listen(5009);
    await once(server, 'listening');
    const c = na.connect(5009, B4);
    const failed = once(c, 'error');
    await once(c, 'connect');
    await new Promise((r) => setTimeout(r, 100));
    c.write('too late');
    const [e] = (await failed) as [NodeErr];
    t.match(e.code, /^(EPIPE|ECONNRESET)$/);
    server.close();
  });

  await t.test('setTimeout: timeout after idleness, pushed back by traffic, socket stays open', async (t) => {
    const server = nb.createServer((s) => s.resume());
    server.listen(5010);
    await once(server, 'listening');
    const c = na.connect(5010, B4);
    await once(c, 'connect');
    const start = Date.now();
    let timedOut = 0;
    c.on('timeout', () => (timedOut = Date.now()));
    c.setTimeout(600);
    t.equal(c.timeout, 600);
    await new Promise((r) => setTimeout(r, 100));
    const wroteAt = Date.now();
    c.write('activity');
    await waitFor(() => timedOut > 0, HANG_MS, "'timeout'");
    if (wroteAt - start >= 600) {
      // The event loop was held up past the first deadline (a loaded machine): the push-back was not exercised.
      t.comment(`the write came ${wroteAt - start} ms after setTimeout(600): push-back not reached`);
    } else {
      t.ok(timedOut - wroteAt >= 595, `timeout came ${timedOut - wroteAt} ms after the write, not 600 ms after set`);
    }
    t.equal(c.destroyed, false, 'timeout does not close the socket');
    c.setTimeout(0);
    c.destroy();
    server.close();
  });

  await t.test('setTimeout on the reading side: received data pushes the timeout back, counted once pushed', async (t) => {
    let timedOut = 0;
    let receivedAt = 0;
    let start = 0;
    const server = nb.createServer((s) => {
      s.on('timeout', () => (timedOut = Date.now()));
      s.on('data', () => (receivedAt = Date.now()));
      start = Date.now();
      s.setTimeout(600);
    });
    server.listen(5031);
    await once(server, 'listening');
    const c = na.connect(5031, B4);
    await once(c, 'connect');
    await waitFor(() => start > 0, HANG_MS, 'the accepted socket');
    await new Promise((r) => setTimeout(r, 150));
    c.write('activity');
    await waitFor(() => timedOut > 0, HANG_MS, "'timeout'");
    if (receivedAt === 0 || receivedAt - start >= 600) {
      t.comment(`the data came ${receivedAt - start} ms after setTimeout(600): push-back not reached`);
    } else {
      t.ok(timedOut - receivedAt >= 595, `timeout came ${timedOut - receivedAt} ms after the data, not 600 ms after set`);
    }
    c.destroy();
    server.close();
  });

  await t.test('setTimeout(ms), setTimeout(0), setTimeout(ms) as node:http does per request → no timeout while off, one after; activity after it re-arms it', async (t) => {
    const server = nb.createServer((s) => s.resume());
    server.listen(5024);
    await once(server, 'listening');
    const c = na.connect(5024, B4);
    await once(c, 'connect');
    let timeouts = 0;
    c.on('timeout', () => timeouts++);
    c.setTimeout(200);
    c.setTimeout(0);
    t.equal(c.timeout, undefined);
    await new Promise((r) => setTimeout(r, 500));
    t.equal(timeouts, 0, 'no timeout while turned off');
    c.setTimeout(200);
    await waitFor(() => timeouts === 1, HANG_MS, "'timeout' once turned on again");
    c.write('activity');
    await waitFor(() => timeouts === 2, HANG_MS, "a second 'timeout' after the activity (node:net re-arms on activity)");
    t.equal(c.destroyed, false);
    c.destroy();
    server.close();
  });

  await t.test('setNoDelay and setKeepAlive reach the endpoint options', async (t) => {
    const server = nb.createServer((s) => s.resume());
    server.listen(5011);
    await once(server, 'listening');
    const c = na.connect({ port: 5011, host: B4, noDelay: true, keepAlive: true, keepAliveInitialDelay: 30_000 });
    await once(c, 'connect');
    const ep = (c as unknown as { ep: { getOption(n: string): unknown } }).ep;
    t.equal(ep.getOption('TCP_NODELAY'), 1);
    t.equal(ep.getOption('SO_KEEPALIVE'), 1);
    t.equal(ep.getOption('TCP_KEEPIDLE'), 30);
    c.setNoDelay(false).setKeepAlive(false);
    t.equal(ep.getOption('TCP_NODELAY'), 0);
    t.equal(ep.getOption('SO_KEEPALIVE'), 0);
    c.destroy();
    server.close();
  });

  await t.test('server: connections count, close waits for the last connection, maxConnections drops', async (t) => {
    const accepted: Socket[] = [];
    const server = nb.createServer((s) => accepted.push(s));
    server.maxConnections = 2;
    let dropped = 0;
    server.on('drop', () => dropped++);
    server.listen(5012);
    await once(server, 'listening');
    const clients = [0, 1, 2].map(() => na.connect(5012, B4));
    clients.forEach((c) => c.on('error', () => {}));
    await Promise.all(clients.slice(0, 2).map((c) => once(c, 'connect')));
    await waitFor(() => dropped > 0, HANG_MS, 'the third connection dropped');
    t.equal(server.connections, 2);
    t.equal(dropped, 1, 'the third connection was dropped');
    let closed = false;
    server.close(() => (closed = true));
    await new Promise((r) => setTimeout(r, 50));
    t.notOk(closed, 'close waits for open connections');
    for (const s of accepted) s.destroy();
    await once(server, 'close');
    t.ok(closed);
    for (const c of clients) c.destroy();
  });

  await t.test('destroySoon: everything written goes out, then FIN and close without waiting for the peer', async (t) => {
    const server = nb.createServer((s) => {
      s.write('first ');
      s.destroySoon();
      t.notOk(s.writable, 'no longer writable');
      s.once('close', () => t.ok(s.destroyed, 'destroyed once written'));
    });
    server.listen(5020);
    const c = na.connect(5020, B4);
    c.setNoDelay(true);
    const got = await collect(c);
    t.equal(got.toString(), 'first ', 'the data, then end (the FIN)');
    c.destroy();
    server.close();
    await once(server, 'close');
  });

  await t.test('a gathered write (cork, several writes, uncork) leaves as one TCP segment, as writev does', async (t) => {
    const chunks = ['HTTP/1.1 200 OK\r\n', 'content-length: 5\r\n\r\n', 'hello'];
    let sent = 0;
    const server = nb.createServer({ noDelay: true }, (s) => {
      s.once('data', () => {
        const before = env.b.tcp.stats.segmentsSent;
        s.cork();
        for (const c of chunks) s.write(c);
        process.nextTick(() => s.uncork());
        s.once('drain', () => {});
        setTimeout(() => {
          sent = env.b.tcp.stats.segmentsSent - before;
          s.end();
        }, 50);
      });
    });
    server.listen(5021);
    const c = na.connect(5021, B4);
    c.setNoDelay(true);
    c.write('go');
    const got = await collect(c);
    t.equal(got.toString(), chunks.join(''));
    t.equal(sent, 1, 'three buffers, one data segment');
    c.destroy();
    server.close();
    await once(server, 'close');
  });

  await t.test('node:http answering Connection: close: the response and the FIN leave as one segment, large ones byte-exact', async (t) => {
    const sizes = [5, 40000, 3 << 20];
    let sent = -1;
    let before = 0;
    const httpServer = http.createServer((req, res) => {
      const n = Number(req.url!.slice(1));
      before = env.b.tcp.stats.segmentsSent;
      res.setHeader('content-length', n);
      res.end(payload(n, n));
    });
    const listener = nb.createServer({ noDelay: true }, (s) => httpServer.emit('connection', s));
    listener.listen(81);
    await once(listener, 'listening');
    for (const n of sizes) {
      const c = na.connect(81, B4);
      c.write(`GET /${n} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n`);
      const got = await collect(c);
      if (n === 5) sent = env.b.tcp.stats.segmentsSent - before;
      const body = got.subarray(got.indexOf('\r\n\r\n') + 4);
      t.equal(sha(body), sha(payload(n, n)), `${n} bytes arrive byte-exact, then the FIN`);
      t.match(got.toString('latin1', 0, 200), /connection: close/i);
      c.destroy();
    }
    t.equal(sent, 1, 'a small response and its FIN: one segment (two when the FIN followed apart)');
    listener.close();
    httpServer.closeAllConnections();
    await once(listener, 'close');
  });

  await t.test('a write held for the FIN (a last response ending in an empty chunk) goes out at once when no end() follows', async (t) => {
    let wrote = 0;
    const server = nb.createServer({ noDelay: true }, (s) => {
      s.once('data', () => {
        // What node:http's last response looks like to the socket, but without the end() node:http then makes.
        (s as unknown as { _httpMessage: { _last: boolean } })._httpMessage = { _last: true };
        s.cork();
        s.write('held');
        s.write('');
        wrote = performance.now();
        s.uncork();
      });
    });
    server.listen(5022);
    const c = na.connect(5022, B4);
    c.setNoDelay(true);
    c.write('go');
    const [d] = (await once(c, 'data')) as [Buffer];
    const took = performance.now() - wrote;
    t.equal(d.toString(), 'held');
    t.ok(took < 100, `arrived after ${took.toFixed(1)} ms, not at tcp(7)'s 200 ms cork ceiling`);
    c.destroy();
    server.close();
    await once(server, 'close');
  });

  await t.test('node:http server and client over the adapter: uploads and downloads with the right digests, keep-alive', async (t) => {
    const httpServer = http.createServer((req, res) => {
      if (req.method === 'POST') {
        const h = createHash('sha256');
        req.on('data', (d: Buffer) => h.update(d));
        req.on('end', () => res.end(h.digest('hex')));
        return;
      }
      const n = Number(req.url!.slice(1));
      res.setHeader('content-length', n);
      res.end(payload(n, n));
    });
    const listener = nb.createServer((s) => httpServer.emit('connection', s));
    listener.listen(80);
    await once(listener, 'listening');
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    (agent as unknown as { createConnection: unknown }).createConnection = (o: { port: number; host: string }) =>
      na.createConnection({ port: o.port, host: o.host });
    const request = (method: string, path: string, body?: Buffer) =>
      new Promise<{ status: number; body: Buffer; reused: boolean }>((resolve, reject) => {
        const req = http.request({ host: B4, port: 80, method, path, agent }, (res) => {
          const parts: Buffer[] = [];
          res.on('data', (d: Buffer) => parts.push(d));
          res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(parts), reused: req.reusedSocket }));
        });
        req.on('error', reject);
        req.end(body);
      });
    const up = payload(3 << 20, 5);
    const r1 = await request('POST', '/', up);
    t.equal(r1.status, 200);
    t.equal(r1.body.toString(), sha(up), 'the server hashed the 3 MB upload right');
    const r2 = await request('GET', `/${2 << 20}`);
    t.equal(sha(r2.body), sha(payload(2 << 20, 2 << 20)), 'the 2 MB download arrived byte-exact');
    t.ok(r2.reused, 'the second request reused the kept-alive connection');

    // And a plain http.request with createConnection, no agent.
    const r3 = await new Promise<string>((resolve, reject) => {
      const req = http.request(
        { method: 'GET', path: '/5', createConnection: () => na.connect(80, B4) as unknown as import('node:net').Socket },
        (res) => {
          let s = '';
          res.setEncoding('latin1');
          res.on('data', (d: string) => (s += d));
          res.on('end', () => resolve(s));
        },
      );
      req.on('error', reject);
      req.end();
    });
    t.equal(Buffer.from(r3, 'latin1').toString('hex'), payload(5, 5).toString('hex'));
    agent.destroy();
    listener.close();
    httpServer.closeAllConnections();
    await once(listener, 'close');
  });
});
