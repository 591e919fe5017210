// The services of `tsvisor serve` on an in-memory Netstack, driven from a second one through tsvisor/net and
// tsvisor/dgram: echo, discard and chargen over TCP and UDP, and the http service's routes, with their stats.
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import t from 'tap';
import { createSocket } from '../../../netstack/adapter/dgram.ts';
import { bindNet, type Socket } from '../../../netstack/adapter/net.ts';
import { NetError } from '../../../netstack/errors.ts';
import { chargenPattern, PERIOD } from '../../../cli/services/chargen.ts';
import { type RunningService, SERVICE_NAMES, startService } from '../../../cli/services/registry.ts';
import { B4, B6, twoNetstacks } from '../../netstack/adapter/helpers.ts';
import { HANG_MS, waitFor, within } from '../../lib/wait.ts';

function collect(s: Socket): Promise<Buffer> {
  const parts: Buffer[] = [];
  s.on('data', (d: Buffer) => parts.push(d));
  return once(s, 'end').then(() => Buffer.concat(parts));
}

t.test('chargen pattern: RFC 864 lines of 72 printable characters, rotating by one, CR LF', async (t) => {
  const p = Buffer.from(chargenPattern());
  t.equal(p.length, PERIOD);
  t.equal(PERIOD, 95 * 74);
  const lines = p.toString('latin1').split('\r\n');
  t.equal(lines[0], ' !"#$%&\'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefg');
  t.equal(lines[1], '!"#$%&\'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefgh');
  t.equal(lines[94], '~ !"#$%&\'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdef');
  t.ok(lines.slice(0, 95).every((l) => l.length === 72));
});

t.test('services', async (t) => {
  const MINE = ['echo', 'discard', 'chargen', 'http'];
  t.same(SERVICE_NAMES.filter((n) => MINE.includes(n)), MINE);
  const env = twoNetstacks();
  const net = bindNet(env.a);
  const running: RunningService[] = [];
  t.teardown(() => {
    for (const s of running) s.close();
    env.close();
  });
  const sockets = (f: 4 | 6, ty: 'stream' | 'dgram' | 'raw', p?: number) => env.b.socket(f, ty, p);
  for (const name of MINE) {
    const r = startService(name, sockets);
    if (r instanceof NetError) throw new Error(`${name}: ${r}`);
    running.push(...r);
  }
  const svc = (name: string, proto: 'tcp' | 'udp') => running.find((s) => s.name === name && s.proto === proto)!;
  t.same(
    running.map((s) => `${s.name}/${s.proto}:${s.port}`),
    ['echo/udp:7', 'echo/tcp:7', 'discard/udp:9', 'discard/tcp:9', 'chargen/udp:19', 'chargen/tcp:19', 'http/tcp:80'],
  );

  await t.test('starting a service on a port in use → the stack error, nothing left open', async (t) => {
    const r = startService('echo', sockets);
    t.ok(r instanceof NetError);
    t.equal((r as NetError).code, 'EADDRINUSE');
    const r2 = startService('echo', sockets, 1007);
    t.notOk(r2 instanceof NetError, 'another port works');
    for (const s of r2 as RunningService[]) s.close();
    const r3 = startService('echo', sockets, 1007);
    t.notOk(r3 instanceof NetError, 'and is free again after close');
    for (const s of r3 as RunningService[]) s.close();
  });

  await t.test('tcp echo: 1 MB back byte-exact over IPv4 and IPv6; our FIN afterwards answered by FIN', async (t) => {
    for (const host of [B4, B6]) {
      const data = Buffer.alloc(1 << 20);
      for (let i = 0; i < data.length; i++) data[i] = (i * 13 + 5) & 0xff;
      const c = net.connect({ port: 7, host, allowHalfOpen: true });
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
      t.ok(Buffer.concat(parts).equals(data), `echo over ${host}`);
      c.end();
      await once(c, 'end');
      await once(c, 'close');
    }
    t.equal(svc('echo', 'tcp').stats.bytesIn, 2 << 20);
    t.equal(svc('echo', 'tcp').stats.bytesOut, 2 << 20);
  });

  // The echo service closes (LAST-ACK) with data still queued; TCP's LAST-ACK processing returns before
  // snd.output() (transport/tcp/input.ts), so ACKs no longer release the rest and the connection stalls.
  await t.test('tcp echo: client half-closes with 1 MB in flight → every byte back, then FIN', async (t) => {
    const data = Buffer.alloc(1 << 20, 0x5a);
    const c = net.connect({ port: 7, host: B4, allowHalfOpen: true });
    const got = collect(c);
    c.end(data);
    const r = await within(got, HANG_MS, 'the echo').catch(() => null);
    c.destroy();
    t.ok(r?.equals(data), r ? 'all echoed' : `stalled after ${c.bytesRead} of ${data.length} bytes`);
  });

  await t.test('tcp discard reads everything and sends nothing', async (t) => {
    const c = net.connect({ port: 9, host: B4, allowHalfOpen: true });
    const got = collect(c);
    c.end(Buffer.alloc(300_000, 1));
    t.equal((await got).length, 0);
    await waitFor(() => svc('discard', 'tcp').stats.bytesIn >= 300_000, HANG_MS, 'the discard service to count it all').catch(() => {});
    t.equal(svc('discard', 'tcp').stats.bytesIn, 300_000);
  });

  await t.test('tcp chargen streams the pattern from its start, until the client closes', async (t) => {
    const c = net.connect(19, B4);
    const parts: Buffer[] = [];
    let n = 0;
    await new Promise<void>((res) =>
      c.on('data', (d: Buffer) => {
        parts.push(d);
        n += d.length;
        if (n >= 3 * PERIOD) res();
      }),
    );
    c.destroy();
    const got = Buffer.concat(parts).subarray(0, 3 * PERIOD);
    const p = Buffer.from(chargenPattern(3));
    t.ok(got.equals(p), 'three periods of the pattern, exact');
    await waitFor(() => svc('chargen', 'tcp').stats.open === 0, HANG_MS, 'chargen to close').catch(() => {});
    t.equal(svc('chargen', 'tcp').stats.open, 0, 'the service closed its side after the client went');
  });

  await t.test('udp echo and chargen answer each datagram', async (t) => {
    const u = createSocket(env.a, 'udp4');
    u.send('ping', 7, B4);
    const [m] = (await once(u, 'message')) as [Buffer];
    t.equal(m.toString(), 'ping');
    const lens: number[] = [];
    for (let i = 0; i < 10; i++) {
      u.send('x', 19, B4);
      const [d] = (await once(u, 'message')) as [Buffer];
      t.ok(d.equals(Buffer.from(chargenPattern()).subarray(0, d.length)), 'chargen datagram is the pattern');
      lens.push(d.length);
    }
    t.ok(lens.every((l) => l >= 0 && l <= 512));
    t.ok(new Set(lens).size > 1, `random lengths ${lens.join(' ')}`);
    u.close();
    t.equal(svc('chargen', 'udp').stats.datagrams, 10);
  });

  await t.test('http: GET /, GET /bytes/N exact, POST /sha256, 404, keep-alive, stats', async (t) => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    (agent as unknown as { createConnection: unknown }).createConnection = (o: { port: number; host: string }) =>
      net.createConnection({ port: o.port, host: o.host });
    const request = (method: string, path: string, body?: Buffer) =>
      new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer; reused: boolean }>((resolve, reject) => {
        const req = http.request({ host: B4, port: 80, method, path, agent }, (res) => {
          const parts: Buffer[] = [];
          res.on('data', (d: Buffer) => parts.push(d));
          res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(parts), reused: req.reusedSocket }));
        });
        req.on('error', reject);
        req.end(body);
      });
    const index = await request('GET', '/');
    t.equal(index.status, 200);
    t.match(index.headers['content-type'], /^text\/html/);
    t.match(index.body.toString(), /<h1>tsvisor<\/h1>/);

    for (const n of [0, 1, 255, 256, 257, 65536, 1_000_003]) {
      const r = await request('GET', `/bytes/${n}`);
      const want = Buffer.from(Uint8Array.from({ length: n }, (_, i) => i & 0xff));
      t.equal(r.headers['content-length'], String(n));
      t.ok(r.body.equals(want), `/bytes/${n}: byte i is i mod 256`);
    }
    const body = Buffer.alloc(2_500_000);
    for (let i = 0; i < body.length; i++) body[i] = (i * 31) & 0xff;
    const h = await request('POST', '/sha256', body);
    t.equal(h.body.toString(), `${createHash('sha256').update(body).digest('hex')}\n`);
    const empty = await request('POST', '/sha256');
    t.equal(empty.body.toString(), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n');
    for (const [m, p] of [['GET', '/nothing'], ['GET', '/bytes/x'], ['PUT', '/sha256'], ['POST', '/']]) {
      t.equal((await request(m!, p!)).status, 404, `${m} ${p} → 404`);
    }
    const last = await request('GET', '/');
    t.ok(last.reused, 'one kept-alive connection served them all');
    const stats = svc('http', 'tcp').stats;
    t.equal(stats.connections, 1);
    t.equal(stats.requests, 15);
    t.equal(stats.notFound, 4);
    t.equal(stats.bytesIn, 2_500_000);
    agent.destroy();
  });

  await t.test('http: /bytes/10000000000 starts streaming without buffering it', async (t) => {
    const c = net.connect(80, B4);
    c.write('GET /bytes/10000000000 HTTP/1.1\r\nHost: x\r\n\r\n');
    let n = 0;
    await new Promise<void>((res) =>
      c.on('data', (d: Buffer) => {
        n += d.length;
        if (n > 4 << 20) res();
      }),
    );
    const before = process.memoryUsage().rss;
    c.pause();
    await new Promise((r) => setTimeout(r, 300));
    t.ok(process.memoryUsage().rss - before < 64 << 20, 'memory stays flat while the client does not read');
    c.destroy();
    t.ok(n > 4 << 20);
  });
});
