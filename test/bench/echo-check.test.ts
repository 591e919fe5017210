// The syn-flood row's legitimate client (bench/echo-check.ts) counts every connection once, as ok only with the
// exact bytes back: run against servers on an in-memory netstack pair (tsvisor/net) that echo, corrupt, cut short,
// stay silent or are not there.
import t from 'tap';
import type { Duplex } from 'node:stream';
import { echoCheck, payloadFor } from '../../bench/echo-check.ts';
import { bindNet, type Socket } from '../../netstack/adapter/net.ts';
import { B4, twoNetstacks } from '../netstack/adapter/helpers.ts';

/** A server on stack b at `port` whose connections `serve` handles (the i-th connection, counting from 0). */
function server(net: ReturnType<typeof bindNet>, port: number, serve: (s: Socket, i: number) => void): Promise<() => void> {
  let i = 0;
  const open = new Set<Socket>();
  const srv = net.createServer((s) => {
    open.add(s);
    s.on('close', () => open.delete(s));
    s.on('error', () => {});
    serve(s, i++);
  });
  return new Promise((resolve) =>
    srv.listen(port, () =>
      resolve(() => {
        srv.close();
        for (const s of open) s.destroy();
      }),
    ),
  );
}

/** Collects a connection's bytes until the client's FIN, then calls `answer` with them. */
function whole(s: Socket, answer: (data: Buffer) => void): void {
  const parts: Buffer[] = [];
  s.on('data', (d: Buffer) => parts.push(d));
  s.on('end', () => answer(Buffer.concat(parts)));
}

t.test('payloads differ per connection and are reproducible', async (t) => {
  t.same(payloadFor(3, 7), payloadFor(3, 7));
  t.notSame(payloadFor(3, 7), payloadFor(3, 8));
  for (let i = 0; i < 50; i++) t.ok(payloadFor(1, i).length >= 1 && payloadFor(1, i).length <= 4096);
});

t.test('echo, corrupted, short, silent and refused connections are each counted once under their reason', async (t) => {
  const net2 = twoNetstacks();
  t.teardown(() => net2.close());
  const na = bindNet(net2.a);
  const nb = bindNet(net2.b);
  const connect = (o: { host: string; port: number }) => na.connect(o) as unknown as Duplex;
  const stops: (() => void)[] = [];
  t.teardown(() => stops.forEach((s) => s()));
  stops.push(await server(nb, 7, (s) => s.pipe(s)));
  // Every fifth connection gets one byte flipped.
  stops.push(
    await server(nb, 8, (s, i) =>
      whole(s, (d) => {
        if (i % 5 === 4 && d.length > 0) d[d.length - 1] ^= 0xff;
        s.end(d);
      }),
    ),
  );
  stops.push(await server(nb, 9, (s) => whole(s, (d) => s.end(d.subarray(0, d.length >> 1)))));
  stops.push(await server(nb, 10, () => {}));

  const base = { host: B4, parallel: 8, timeoutMs: 20_000 };
  const echo = await echoCheck(connect, { ...base, port: 7, count: 40 });
  t.match(echo, { ok: 40, failed: 0, reasons: {} }, 'an echo server: all 40 ok');
  t.ok(echo.p50_ms > 0 && echo.max_ms >= echo.p50_ms, 'latencies of the successful ones');

  const flipped = await echoCheck(connect, { ...base, port: 8, count: 40 });
  t.match(flipped, { ok: 32, failed: 8, reasons: { mismatch: 8 } }, 'one byte wrong in every fifth: 8 mismatches');

  // Payloads of one byte come back empty when halved: those are short too.
  const short = await echoCheck(connect, { ...base, port: 9, count: 12 });
  t.match(short, { ok: 0, failed: 12, reasons: { short: 12 } }, 'half the bytes then FIN: short');

  const silent = await echoCheck(connect, { ...base, port: 10, count: 6, parallel: 6, timeoutMs: 300 });
  t.match(silent, { ok: 0, failed: 6, reasons: { timeout: 6 } }, 'a server that never answers: timeouts');

  const late = await echoCheck(connect, { ...base, port: 10, count: 20, parallel: 4, timeoutMs: 60_000, deadlineMs: 300 });
  t.match(late, { ok: 0, failed: 20, reasons: { timeout: 4, 'not started': 16 } }, 'the deadline ends the check: open ones time out, the rest never start');

  const refused = await echoCheck(connect, { ...base, port: 11, count: 5 });
  t.match(refused, { ok: 0, failed: 5, reasons: { ECONNREFUSED: 5 } }, 'no listener: refused');
});
