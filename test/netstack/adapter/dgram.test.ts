// tsvisor/dgram on two in-memory Netstacks: node:dgram's events, arguments, errors and their order.
import { once } from 'node:events';
import t from 'tap';
import { bindDgram, createSocket, type RemoteInfo, type Socket } from '../../../netstack/adapter/dgram.ts';
import { A4, A6, B4, B6, twoNetstacks } from './helpers.ts';

type NodeErr = Error & { code: string; errno: number; syscall: string; address?: string; port?: number };

function nextMessage(s: Socket): Promise<[Buffer, RemoteInfo]> {
  return once(s, 'message') as Promise<[Buffer, RemoteInfo]>;
}

function nextError(s: Socket): Promise<NodeErr> {
  return once(s, 'error').then(([e]) => e as NodeErr);
}

t.test('dgram', async (t) => {
  const env = twoNetstacks();
  t.teardown(() => env.close());

  await t.test('bind → listening, send → message with rinfo, close → close (in that order)', async (t) => {
    const events: string[] = [];
    const srv = createSocket(env.b, 'udp4');
    srv.on('listening', () => events.push('listening'));
    srv.on('close', () => events.push('close'));
    let bindCb = false;
    srv.bind(4000, B4, () => (bindCb = true));
    t.same(events, [], 'listening is asynchronous');
    await once(srv, 'listening');
    t.ok(bindCb, 'the bind callback ran on listening');
    t.same(srv.address(), { address: B4, family: 'IPv4', port: 4000 });

    const cli = createSocket(env.a, 'udp4');
    const got = nextMessage(srv);
    const sent = await new Promise<[Error | null, number | undefined]>((res) =>
      cli.send(Buffer.from('hello, netstack'), 4000, B4, (e, n) => res([e, n])),
    );
    t.same(sent, [null, 15], 'send callback (null, bytes)');
    const [msg, rinfo] = await got;
    t.equal(msg.toString(), 'hello, netstack');
    const cport = cli.address().port;
    t.ok(cport >= 1024, 'the client was bound implicitly to an ephemeral port');
    t.same(rinfo, { address: A4, family: 'IPv4', port: cport, size: 15 });

    // The echo back, sent from inside the message handler (re-entering the adapter).
    srv.on('message', (m, r) => srv.send(m, r.port, r.address));
    const back = nextMessage(cli);
    cli.send('ping', 4000, B4);
    const [m2, r2] = await back;
    t.equal(m2.toString(), 'ping');
    t.same(r2, { address: B4, family: 'IPv4', port: 4000, size: 4 });

    srv.close();
    await once(srv, 'close');
    t.same(events, ['listening', 'close']);
    t.throws(() => srv.close(), { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' }, 'closing twice throws');
    t.throws(() => srv.send('x', 1, B4), { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' });
    cli.close();
  });

  await t.test('bind to a port in use → error EADDRINUSE (errno -98, syscall bind), then bind again works', async (t) => {
    const one = createSocket(env.b, 'udp4').bind(4001);
    await once(one, 'listening');
    const two = createSocket(env.b, 'udp4');
    let listened = false;
    two.on('listening', () => (listened = true));
    two.bind(4001);
    const e = await nextError(two);
    t.equal(e.code, 'EADDRINUSE');
    t.equal(e.errno, -98);
    t.equal(e.syscall, 'bind');
    t.equal(e.address, '0.0.0.0');
    t.equal(e.port, 4001);
    t.equal(e.message, 'bind EADDRINUSE 0.0.0.0:4001');
    t.notOk(listened, 'no listening after a failed bind');
    two.bind(4002);
    await once(two, 'listening');
    t.equal(two.address().port, 4002);
    t.throws(() => two.bind(4003), { code: 'ERR_SOCKET_ALREADY_BOUND' });
    one.close();
    two.close();
  });

  await t.test('bind to an address the stack does not have → EADDRNOTAVAIL', async (t) => {
    const s = createSocket(env.b, 'udp4');
    s.bind(4004, '198.18.9.9');
    const e = await nextError(s);
    t.equal(e.code, 'EADDRNOTAVAIL');
    t.equal(e.errno, -99);
    s.close();
  });

  await t.test('state checks throw as Node does before bind', async (t) => {
    const s = createSocket(env.a, 'udp4');
    t.throws(() => s.address(), { code: 'EBADF', syscall: 'getsockname', errno: -9 });
    t.throws(() => s.setRecvBufferSize(4096), { code: 'ERR_SOCKET_BUFFER_SIZE' });
    t.throws(() => s.setBroadcast(true), { code: 'EBADF' });
    t.throws(() => s.remoteAddress(), { code: 'ERR_SOCKET_DGRAM_NOT_CONNECTED' });
    t.throws(() => s.disconnect(), { code: 'ERR_SOCKET_DGRAM_NOT_CONNECTED' });
    t.throws(() => s.send('x', 0, B4), { code: 'ERR_SOCKET_BAD_PORT' });
    t.throws(() => s.send('x', 70000, B4), { code: 'ERR_SOCKET_BAD_PORT' });
    t.throws(() => createSocket(env.a, 'udp5' as 'udp4'), { code: 'ERR_SOCKET_BAD_TYPE' });
    s.bind();
    await once(s, 'listening');
    s.setRecvBufferSize(8192);
    t.equal(s.getRecvBufferSize(), 16384, 'SO_RCVBUF reads back doubled, as Linux');
    t.throws(() => s.setTTL(0), { code: 'EINVAL', syscall: 'setTTL' });
    t.equal(s.setTTL(7), 7);
    s.close();
  });

  await t.test('connect → connect event, send without address, remoteAddress, disconnect', async (t) => {
    const srv = createSocket(env.b, 'udp4').bind(4010);
    await once(srv, 'listening');
    const cli = createSocket(env.a, 'udp4');
    const order: string[] = [];
    cli.on('listening', () => order.push('listening'));
    cli.on('connect', () => order.push('connect'));
    cli.connect(4010, B4);
    t.throws(() => cli.connect(4010, B4), { code: 'ERR_SOCKET_DGRAM_IS_CONNECTED' });
    await once(cli, 'connect');
    t.same(order, ['listening', 'connect'], 'implicit bind, then connect');
    t.same(cli.remoteAddress(), { address: B4, family: 'IPv4', port: 4010 });
    t.throws(() => cli.send('x', 4010, B4), { code: 'ERR_SOCKET_DGRAM_IS_CONNECTED' });
    const got = nextMessage(srv);
    cli.send(Buffer.from('0123456789'), 2, 5, (e) => t.equal(e, null));
    const [m] = await got;
    t.equal(m.toString(), '23456', 'offset/length on a connected socket');
    cli.disconnect();
    t.throws(() => cli.remoteAddress(), { code: 'ERR_SOCKET_DGRAM_NOT_CONNECTED' });
    const got2 = nextMessage(srv);
    cli.send(['two ', Buffer.from('parts')], 4010, B4);
    t.equal((await got2)[0].toString(), 'two parts', 'a list of buffers is one datagram');
    cli.close();
    srv.close();
  });

  await t.test('connected socket, nobody on the port → ICMP port unreachable → error ECONNREFUSED (recvmsg)', async (t) => {
    const cli = createSocket(env.a, 'udp4');
    await new Promise<void>((res) => cli.connect(4099, B4, () => res()));
    cli.send('anyone?');
    const e = await nextError(cli);
    t.equal(e.code, 'ECONNREFUSED');
    t.equal(e.errno, -111);
    t.equal(e.syscall, 'recvmsg');
    cli.close();
  });

  await t.test('connect callback gets the error instead of an error event', async (t) => {
    const cli = createSocket(env.a, 'udp4');
    let emitted = false;
    cli.on('error', () => (emitted = true));
    const e = await new Promise<NodeErr>((res) => cli.connect(9, '198.51.100.1', (err) => res(err as NodeErr)));
    t.equal(e.code, 'ENETUNREACH', 'no route to a network the stack does not know');
    t.equal(e.syscall, 'connect');
    t.notOk(emitted);
    t.throws(() => cli.remoteAddress(), { code: 'ERR_SOCKET_DGRAM_NOT_CONNECTED' });
    cli.close();
  });

  await t.test('send errors: EMSGSIZE to the callback, EACCES for broadcast without setBroadcast, else an error event', async (t) => {
    const cli = createSocket(env.a, 'udp4');
    const big = Buffer.alloc(65508);
    const e1 = await new Promise<NodeErr>((res) => cli.send(big, 4020, B4, (e) => res(e as NodeErr)));
    t.equal(e1.code, 'EMSGSIZE');
    t.equal(e1.message, `send EMSGSIZE ${B4}:4020`);
    // The subnet's broadcast: the limited one (255.255.255.255) would need a default route, which env has not.
    const e2 = nextError(cli);
    cli.send('x', 4020, '198.18.0.255');
    t.equal((await e2).code, 'EACCES');
    cli.setBroadcast(true);
    const e3 = await new Promise<Error | null>((res) => cli.send('x', 4020, '198.18.0.255', (e) => res(e)));
    t.equal(e3, null, 'allowed after setBroadcast(true)');
    const e5 = await new Promise<NodeErr>((res) => cli.send('x', 4020, '255.255.255.255', (e) => res(e as NodeErr)));
    t.equal(e5.code, 'ENETUNREACH', 'the limited broadcast with no route for it, as Linux');
    const e4 = await new Promise<NodeErr>((res) => cli.send('x', 4020, 'no.such.host', (e) => res(e as NodeErr)));
    t.equal(e4.code, 'ENOTFOUND');
    cli.close();
  });

  await t.test('udp6: IPv6 peers, and IPv4 peers as ::ffff: on a dual-stack socket', async (t) => {
    const dgram = bindDgram(env.b);
    const srv = dgram.createSocket({ type: 'udp6' }).bind(4030);
    await once(srv, 'listening');
    t.same(srv.address(), { address: '::', family: 'IPv6', port: 4030 });
    const c6 = createSocket(env.a, 'udp6');
    const got6 = nextMessage(srv);
    c6.send('six', 4030, B6);
    const [m6, r6] = await got6;
    t.equal(m6.toString(), 'six');
    t.same(r6, { address: A6, family: 'IPv6', port: c6.address().port, size: 3 });
    const c4 = createSocket(env.a, 'udp4');
    const got4 = nextMessage(srv);
    c4.send('four', 4030, B4);
    const [, r4] = await got4;
    t.equal(r4.address, `::ffff:${A4}`);
    t.equal(r4.family, 'IPv6');
    for (const s of [srv, c6, c4]) s.close();
  });

  await t.test('many datagrams in a burst all arrive, byte-exact and in order', async (t) => {
    const srv = createSocket(env.b, 'udp4').bind(4040);
    await once(srv, 'listening');
    const cli = createSocket(env.a, 'udp4');
    const got: number[] = [];
    const done = new Promise<void>((res) =>
      srv.on('message', (m) => {
        got.push(m.readUInt32BE(0));
        if (got.length === 100) res();
      }),
    );
    for (let i = 0; i < 100; i++) {
      const b = Buffer.alloc(512, i);
      b.writeUInt32BE(i, 0);
      cli.send(b, 4040, B4);
    }
    await done;
    t.same(got, Array.from({ length: 100 }, (_, i) => i));
    srv.close();
    cli.close();
  });

  await t.test('an AbortSignal closes the socket', async (t) => {
    const ac = new AbortController();
    const s = createSocket(env.a, { type: 'udp4', signal: ac.signal }).bind();
    await once(s, 'listening');
    ac.abort();
    await once(s, 'close');
    t.pass('closed');
  });
});
