// The TCP data path over real AF_UNIX socketpairs: the "program" is the test holding one end of the pair
// (node:net over the fd, or raw recv/send), the Sentry's StreamPump pumps the other end into netstack A, and the
// peer is a node:net-shaped server on netstack B across an in-memory channel on the real clock.
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import t from 'tap';
import * as ux from '../../../lib/unix.ts';
import { bindNet, type Socket as NsSocket } from '../../../netstack/adapter/net.ts';
import { parseAddress } from '../../../netstack/addr.ts';
import { CHUNK, StreamPump, stuff } from '../../../sentry/datapath/stream.ts';
import { LINUX as L, encodeSockaddr } from '../../../sentry/socket/abi.ts';
import { SocketFile } from '../../../sentry/socket/file.ts';
import { B4, twoNetstacks } from '../../netstack/adapter/helpers.ts';
import { seededBytes } from '../../netstack/transport/tcp/helper.ts';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const payload = (n: number, seed: number) => {
  const b = seededBytes(n, seed);
  return Buffer.from(b.buffer, b.byteOffset, b.length);
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until `cond()` holds, checking every 5 ms, for at most 20 s (a bound for a loaded machine, not a time check). */
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 4000; i++) {
    if (cond()) return;
    await sleep(5);
  }
  throw new Error(`timed out waiting for ${what}`);
}

function collect(s: net.Socket | NsSocket): Promise<Buffer> {
  const parts: Buffer[] = [];
  s.on('data', (d: Buffer) => parts.push(d));
  return once(s, 'end').then(() => Buffer.concat(parts));
}

type Tap = { teardown(fn: () => void): void };
type Env = ReturnType<typeof twoNetstacks>;

/** A server on B's `port` handing each connection to `onConn`; the test's teardown closes it and its sockets. */
async function peerServer(t: Tap, env: Env, port: number, onConn: (s: NsSocket) => void, allowHalfOpen = false) {
  const conns: NsSocket[] = [];
  const server = bindNet(env.b).createServer({ allowHalfOpen }, (s) => {
    conns.push(s);
    s.on('error', () => {});
    onConn(s);
  });
  server.listen(port);
  await once(server, 'listening');
  t.teardown(() => {
    for (const s of conns) s.destroy();
    server.close();
  });
  return server;
}

/** A sandboxed socket on A connected (blocking connect) to B:port, with its pair and pump. */
async function sandboxConnect(env: Env, port: number) {
  const file = SocketFile.open(env.a, env.clock, L.AF_INET, L.SOCK_STREAM, 0) as SocketFile;
  const r = await file.connect(encodeSockaddr({ family: L.AF_INET, address: parseAddress(B4)!, port }), false);
  if (r !== 0) throw new Error(`connect ${r}`);
  const [prog, ours] = ux.socketPair('stream');
  let closed = false;
  const pump = new StreamPump({ fd: ours, file, programEnd: () => ux.dup(prog), onClose: () => (closed = true) });
  return { file, prog, pump, isClosed: () => closed };
}

t.test('4 MB each way at once → both sha256 match; FIN after the data both ways; pump released', async (t) => {
  const env = twoNetstacks();
  t.teardown(() => env.close());
  const up = payload(4 << 20, 1);
  const down = payload(4 << 20, 2);
  let peerGot: Promise<Buffer> | undefined;
  const server = await peerServer(t, env, 5000, (s) => {
    peerGot = collect(s);
    s.end(down);
  });
  const c = await sandboxConnect(env, 5000);
  const program = new net.Socket({ fd: c.prog, readable: true, writable: true });
  const progGot = collect(program);
  program.end(up);
  const [a, b] = await Promise.all([progGot, until(() => !!peerGot, 'accept').then(() => peerGot!)]);
  t.equal(sha(a), sha(down), 'program received the peer bytes intact');
  t.equal(sha(b), sha(up), 'peer received the program bytes intact');
  t.equal(c.pump.stats.bytesUp, up.length);
  t.equal(c.pump.stats.bytesDown, down.length);
  program.destroy();
  await until(c.isClosed, 'pump release after the program closed');
  t.ok(c.pump.done);
});

t.test('backpressure: a program that does not read stalls the peer; memory stays within the buffers + one chunk', async (t) => {
  const env = twoNetstacks();
  t.teardown(() => env.close());
  const big = payload(16 << 20, 3);
  let peer: NsSocket | undefined;
  const server = await peerServer(t, env, 5001, (s) => {
    peer = s;
    s.end(big);
  });
  const c = await sandboxConnect(env, 5001);
  await until(() => !!peer, 'accept');
  // The program does not read: bytes pile up in the pair, then in netstack A, then the window closes.
  await until(() => c.pump.stats.bytesDown > 0, 'first bytes');
  let last = -1;
  for (let i = 0; i < 200 && c.pump.stats.bytesDown !== last; i++) {
    last = c.pump.stats.bytesDown;
    await sleep(50);
  }
  t.equal(c.pump.stats.bytesDown, last, 'the pump stopped moving bytes once the pair was full');
  t.ok(last < big.length / 2, `only ${last} of ${big.length} bytes left the peer's side`);
  const held = (c.pump as unknown as { pendingDown: Uint8Array | null }).pendingDown?.length ?? 0;
  t.ok(held <= CHUNK, `the pump holds ${held} ≤ one chunk`);
  t.ok(c.file.ep.inQueue() <= 4 << 20, `netstack A holds ${c.file.ep.inQueue()} bytes (its receive buffer)`);
  // Now read: everything arrives, intact.
  const program = new net.Socket({ fd: c.prog, readable: true, writable: true });
  const got = await collect(program);
  t.equal(sha(got), sha(big));
  program.destroy();
  await until(c.isClosed, 'release');
});

t.test('backpressure upward: a peer that does not read stalls the program writes; all arrives when it reads', async (t) => {
  const env = twoNetstacks();
  t.teardown(() => env.close());
  const big = payload(16 << 20, 4);
  let peer: NsSocket | undefined;
  const server = await peerServer(t, env, 5002, (s) => {
    peer = s;
    s.pause();
  });
  const c = await sandboxConnect(env, 5002);
  const program = new net.Socket({ fd: c.prog, readable: true, writable: true });
  program.end(big);
  await until(() => !!peer && c.pump.stats.bytesUp > 0, 'first bytes up');
  let last = -1;
  for (let i = 0; i < 200 && c.pump.stats.bytesUp !== last; i++) {
    last = c.pump.stats.bytesUp;
    await sleep(50);
  }
  t.ok(last < big.length / 2, `stalled at ${last} of ${big.length}`);
  t.ok(program.writableLength > 0, 'the program has unsent bytes (its writes would block)');
  const held = (c.pump as unknown as { pendingUp: Uint8Array | null }).pendingUp?.length ?? 0;
  t.ok(held <= CHUNK, `the pump holds ${held} ≤ one chunk`);
  const got = collect(peer!);
  peer!.resume();
  t.equal(sha(await got), sha(big));
  program.destroy();
});

t.test('half-close both ways: program FIN after its data, then the peer still sends, then the peer FIN → EOF', async (t) => {
  const env = twoNetstacks();
  t.teardown(() => env.close());
  let peer: NsSocket | undefined;
  const peerData: Buffer[] = [];
  let peerEnded = false;
  const server = await peerServer(t, env, 5003, (s) => {
    peer = s;
    s.on('data', (d: Buffer) => peerData.push(d));
    s.on('end', () => (peerEnded = true));
  }, true);
  server.on('error', () => {});
  const c = await sandboxConnect(env, 5003);
  t.equal(ux.send(c.prog, new TextEncoder().encode('request')), 7);
  t.equal(ux.shutdown(c.prog, ux.U.SHUT_WR), 0);
  await until(() => peerEnded, 'FIN at the peer');
  t.equal(Buffer.concat(peerData).toString(), 'request', 'FIN came after the bytes');
  t.notOk(c.isClosed(), 'a half-close is not a close');
  peer!.end('response');
  const buf = new Uint8Array(64);
  let got = '';
  await until(() => {
    const n = ux.recv(c.prog, buf);
    if (n > 0) got += Buffer.from(buf.subarray(0, n)).toString();
    return n === 0;
  }, 'EOF at the program');
  t.equal(got, 'response');
  t.equal(ux.close(c.prog), 0);
  await until(c.isClosed, 'release after the close following both half-closes');
});

t.test('remote RST → the program reads ECONNRESET, then EPIPE on write; pump released', async (t) => {
  const env = twoNetstacks();
  t.teardown(() => env.close());
  let peer: NsSocket | undefined;
  const server = await peerServer(t, env, 5004, (s) => (peer = s));
  const c = await sandboxConnect(env, 5004);
  await until(() => !!peer, 'accept');
  peer!.resetAndDestroy();
  await until(c.isClosed, 'pump release on the reset');
  const buf = new Uint8Array(16);
  t.equal(ux.recv(c.prog, buf), -ux.U.ECONNRESET);
  t.equal(ux.send(c.prog, buf), -ux.U.EPIPE);
  const ev = ux.pollNow(c.prog, ux.U.POLLIN | ux.U.POLLOUT | ux.U.POLLRDHUP);
  t.ok(ev & ux.U.POLLHUP, 'POLLHUP');
  ux.close(c.prog);
});

t.test('program close with SO_LINGER {1, 0} → the peer sees ECONNRESET; plain close → the peer sees FIN', async (t) => {
  const env = twoNetstacks();
  t.teardown(() => env.close());
  const peers: NsSocket[] = [];
  const server = await peerServer(t, env, 5005, (s) => peers.push(s));
  const rst = await sandboxConnect(env, 5005);
  const linger = new Uint8Array(8);
  new DataView(linger.buffer).setInt32(0, 1, true);
  t.equal(rst.file.setsockopt(L.SOL_SOCKET, L.SO_LINGER, linger), 0);
  const fin = await sandboxConnect(env, 5005);
  await until(() => peers.length === 2, 'accepts');
  const errs: string[] = [];
  const ends: number[] = [];
  peers.forEach((p, i) => {
    p.on('error', (e: Error & { code?: string }) => errs.push(`${i}:${e.code}`));
    p.on('end', () => ends.push(i));
    p.resume();
  });
  ux.close(rst.prog);
  ux.close(fin.prog);
  await until(() => errs.length === 1 && ends.length === 1, 'peer outcomes');
  t.same(errs, ['0:ECONNRESET']);
  t.same(ends, [1]);
});

t.test('program close with received bytes unread → what it wrote reaches the peer, then a RST (ECONNRESET), not a FIN', async (t) => {
  const env = twoNetstacks();
  t.teardown(() => env.close());
  let peer: NsSocket | undefined;
  const server = await peerServer(t, env, 5008, (s) => (peer = s));
  const c = await sandboxConnect(env, 5008);
  await until(() => !!peer, 'accept');
  const got: Buffer[] = [];
  let outcome = '';
  peer!.on('data', (d: Buffer) => got.push(d));
  peer!.on('error', (e: Error & { code?: string }) => (outcome ||= `error ${e.code}`));
  peer!.on('end', () => (outcome ||= 'end'));
  peer!.write('never read');
  await until(() => ux.inQueue(c.prog) === 10, 'the bytes in the program end');
  t.equal(ux.send(c.prog, new TextEncoder().encode('last words')), 10);
  ux.close(c.prog);
  await until(() => outcome !== '', 'the peer outcome');
  t.equal(outcome, 'error ECONNRESET', 'Linux tcp_close: unread data → RST');
  t.equal(Buffer.concat(got).toString(), 'last words', 'what the program wrote before its close arrived first');
  await until(c.isClosed, 'pump release');
});

t.test('program half-closes, then closes with what the peer sent after that unread → a RST after its FIN', async (t) => {
  const env = twoNetstacks();
  t.teardown(() => env.close());
  let peer: NsSocket | undefined;
  const server = await peerServer(t, env, 5010, (s) => (peer = s), true);
  const c = await sandboxConnect(env, 5010);
  await until(() => !!peer, 'accept');
  peer!.on('end', () => peer!.write('after your FIN'));
  peer!.resume();
  ux.shutdown(c.prog, ux.U.SHUT_WR);
  await until(() => ux.inQueue(c.prog) === 14, 'the peer\'s bytes in the program end');
  const state = () => Number((c.file.ep.getOption('TCP_INFO') as Record<string, number>)['tcpi_state']);
  t.equal(state(), 5, 'FIN-WAIT-2: our FIN acknowledged, the peer still sending');
  ux.close(c.prog);
  await until(c.isClosed, 'pump release');
  // A FIN would leave the orphan in FIN-WAIT-2 (it was there); the RST ends it at once.
  t.equal(state(), 7, 'CLOSED: the close was an abort');
});

t.test('after the peer\'s FIN the program sends and the closed peer resets → EPIPE on the next send, reads 0 (CLOSE-WAIT)', async (t) => {
  const env = twoNetstacks();
  t.teardown(() => env.close());
  let peer: NsSocket | undefined;
  const server = await peerServer(t, env, 5009, (s) => (peer = s));
  const c = await sandboxConnect(env, 5009);
  await until(() => !!peer, 'accept');
  peer!.end();
  const buf = new Uint8Array(16);
  await until(() => ux.recv(c.prog, buf) === 0, 'the FIN as end of file');
  peer!.destroy();
  // The peer's socket is gone: this data is answered with a RST, which Linux reports in CLOSE-WAIT as EPIPE.
  t.equal(ux.send(c.prog, new TextEncoder().encode('x')), 1);
  await until(c.isClosed, 'pump release on the reset');
  t.equal(ux.send(c.prog, buf, ux.U.MSG_DONTWAIT | ux.U.MSG_NOSIGNAL), -ux.U.EPIPE);
  t.equal(ux.recv(c.prog, buf), 0, 'end of file, not ECONNRESET');
  ux.close(c.prog);
});

t.test('non-blocking connect: POLLOUT clear until the handshake ends (200 ms RTT); junk drained; SO_SNDBUF restored', async (t) => {
  const env = twoNetstacks({ latencyMs: 100 });
  t.teardown(() => env.close());
  let peer: NsSocket | undefined;
  const peerData: Buffer[] = [];
  const server = await peerServer(t, env, 5006, (s) => {
    peer = s;
    s.on('data', (d: Buffer) => peerData.push(d));
  });
  const file = SocketFile.open(env.a, env.clock, L.AF_INET, L.SOCK_STREAM, 0) as SocketFile;
  const [prog, ours] = ux.socketPair('stream');
  const before = ux.sndBuf(prog);
  const start = performance.now();
  t.equal(file.connect(encodeSockaddr({ family: L.AF_INET, address: parseAddress(B4)!, port: 5006 }), true), -115);
  const s = stuff(ux.dup(prog));
  t.ok(s.bytes > 0, `${s.bytes} junk bytes`);
  t.equal(ux.pollNow(prog, ux.U.POLLOUT), 0, 'POLLOUT clear right after EINPROGRESS');
  t.equal(ux.send(prog, new Uint8Array(10)), -ux.U.EAGAIN, 'writes would block');
  const pump = new StreamPump({ fd: ours, file, connecting: s });
  await until(() => (ux.pollNow(prog, ux.U.POLLOUT) & ux.U.POLLOUT) !== 0, 'POLLOUT');
  const waited = performance.now() - start;
  t.ok(waited >= 190, `writable after ${waited.toFixed(0)} ms, not before the handshake's 200 ms`);
  t.equal(ux.sndBuf(prog), before, 'SO_SNDBUF restored');
  const v = new Uint8Array(4);
  const vl = new Uint32Array([4]);
  t.equal(file.getsockopt(L.SOL_SOCKET, L.SO_ERROR, v, vl), 0);
  t.same([...v], [0, 0, 0, 0], 'SO_ERROR 0');
  t.equal(ux.send(prog, new TextEncoder().encode('first bytes')), 11);
  await until(() => Buffer.concat(peerData).length === 11, 'data at the peer');
  t.equal(Buffer.concat(peerData).toString(), 'first bytes', 'no junk reached the peer');
  t.ok(peer);
  ux.close(prog);
  await until(() => pump.done, 'release');
});

t.test('non-blocking connect refused → POLLOUT|POLLHUP on the program end, SO_ERROR ECONNREFUSED once', async (t) => {
  const env = twoNetstacks();
  t.teardown(() => env.close());
  const file = SocketFile.open(env.a, env.clock, L.AF_INET, L.SOCK_STREAM, 0) as SocketFile;
  const [prog, ours] = ux.socketPair('stream');
  t.equal(file.connect(encodeSockaddr({ family: L.AF_INET, address: parseAddress(B4)!, port: 5999 }), true), -115);
  const pump = new StreamPump({ fd: ours, file, connecting: stuff(ux.dup(prog)), programEnd: () => ux.dup(prog) });
  await until(() => (ux.pollNow(prog, ux.U.POLLOUT) & ux.U.POLLOUT) !== 0, 'POLLOUT');
  t.ok(ux.pollNow(prog, ux.U.POLLOUT) & ux.U.POLLHUP, 'POLLHUP too');
  // Later events on the dead Endpoint must leave its error for the program, however long it takes to ask.
  await sleep(150);
  t.notOk(pump.done, 'the socket is still the program\'s');
  const v = new Uint8Array(4);
  const vl = new Uint32Array([4]);
  t.equal(file.getsockopt(L.SOL_SOCKET, L.SO_ERROR, v, vl), 0);
  t.equal(new DataView(v.buffer).getInt32(0, true), 111, 'ECONNREFUSED');
  t.equal(file.getsockopt(L.SOL_SOCKET, L.SO_ERROR, v, vl), 0);
  t.equal(new DataView(v.buffer).getInt32(0, true), 0, 'then 0');
  t.equal(ux.recv(prog, new Uint8Array(4)), 0, 'reads end');
  ux.close(prog);
  await until(() => pump.done, 'release after the program closes');
});
