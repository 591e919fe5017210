// Accepted connections hold their listener's port (accept.ts holdPort, ports.ts inherit): bind() conflicts with
// the listener and with its established and TIME-WAIT children by Linux's rules. The expectations are what
// Linux 6.x answered for the same sequence (python3 sockets in a namespace): a child shares its port with a new
// socket only when both set SO_REUSEADDR; a new listener may then listen too; nothing blocks once all are CLOSED.
import t from 'tap';
import { type Address, parseAddress } from '../../../../netstack/addr.ts';
import { Err } from '../../../../netstack/errors.ts';
import type { TcpEndpoint } from '../../../../netstack/transport/tcp/endpoint.ts';
import { State, stateName } from '../../../../netstack/transport/tcp/state.ts';
import { netstackPair } from './helper.ts';

const PORT = 5000;
const SERVER = parseAddress('198.18.0.2')!;

type Pair = ReturnType<typeof netstackPair>;

/** A listener on B (SO_REUSEADDR as given) with one accepted connection from A. */
function served(env: Pair, listenerReuse: boolean) {
  const { clock, a, b } = env;
  const listener = b.socket(4, 'stream') as TcpEndpoint;
  if (listenerReuse) listener.setOption('SO_REUSEADDR', 1);
  if (listener.bind({ address: new Uint8Array(4), port: PORT }) || listener.listen(4)) throw new Error('listen');
  const client = a.socket(4, 'stream') as TcpEndpoint;
  client.connect({ address: SERVER, port: PORT });
  clock.advance(10);
  const r = listener.accept();
  if ('errno' in r) throw new Error('no connection');
  return { listener, client, child: r.endpoint as TcpEndpoint };
}

/** What bind (and listen, when asked) of a fresh socket on B's port answers: 'ok' or the error's name. */
function tryBind(env: Pair, reuse: boolean, listen = false, address: Address = new Uint8Array(4)): string {
  const s = env.b.socket(4, 'stream') as TcpEndpoint;
  if (reuse) s.setOption('SO_REUSEADDR', 1);
  const e = s.bind({ address, port: PORT }) ?? (listen ? s.listen(1) : undefined);
  s.close();
  return e ? e.kind : 'ok';
}

type Phase = 'listener and child' | 'child ESTABLISHED only' | 'child TIME-WAIT only' | 'child CLOSED after TIME-WAIT';
/** Brings the connection to `phase`; the server side closes first, so its child is the one in TIME-WAIT. */
function reach(env: Pair, s: ReturnType<typeof served>, phase: Phase): void {
  if (phase === 'listener and child') return;
  s.listener.close();
  if (phase === 'child ESTABLISHED only') return;
  s.child.close();
  env.clock.advance(10);
  s.client.close();
  env.clock.advance(10);
  if (phase === 'child TIME-WAIT only') return;
  env.clock.advance(4 * env.b.tcp.config.msl);
}

const EIU = Err.AddressInUse.kind;
// [listener SO_REUSEADDR, phase, new socket SO_REUSEADDR, new socket listens, Linux's answer]
const table: [boolean, Phase, boolean, boolean, string][] = [
  [false, 'listener and child', false, false, EIU],
  [false, 'listener and child', true, false, EIU],
  [true, 'listener and child', false, false, EIU],
  [true, 'listener and child', true, false, EIU],
  [false, 'child ESTABLISHED only', false, false, EIU],
  [false, 'child ESTABLISHED only', true, false, EIU],
  [false, 'child ESTABLISHED only', true, true, EIU],
  [true, 'child ESTABLISHED only', false, false, EIU],
  [true, 'child ESTABLISHED only', true, false, 'ok'],
  [true, 'child ESTABLISHED only', true, true, 'ok'],
  [false, 'child TIME-WAIT only', false, false, EIU],
  [false, 'child TIME-WAIT only', true, false, EIU],
  [false, 'child TIME-WAIT only', true, true, EIU],
  [true, 'child TIME-WAIT only', false, false, EIU],
  [true, 'child TIME-WAIT only', true, false, 'ok'],
  [true, 'child TIME-WAIT only', true, true, 'ok'],
  [false, 'child CLOSED after TIME-WAIT', false, true, 'ok'],
  [true, 'child CLOSED after TIME-WAIT', false, true, 'ok'],
];

for (const [lreuse, phase, reuse, listen, want] of table) {
  const who = `listener ${lreuse ? 'with' : 'without'} SO_REUSEADDR`;
  const what = `bind${reuse ? ' with SO_REUSEADDR' : ''}${listen ? ' + listen' : ''}`;
  t.test(`${who}, ${phase}: ${what} → ${want}`, async (t) => {
    const env = netstackPair();
    const s = served(env, lreuse);
    reach(env, s, phase);
    const childState: Record<Phase, State> = {
      'listener and child': State.Established,
      'child ESTABLISHED only': State.Established,
      'child TIME-WAIT only': State.TimeWait,
      'child CLOSED after TIME-WAIT': State.Closed,
    };
    t.equal(stateName(s.child.state), stateName(childState[phase]), 'the child is where the phase says');
    t.equal(tryBind(env, reuse, listen), want);
    // A specific address overlaps the child's too (the child is bound to 198.18.0.2).
    t.equal(tryBind(env, reuse, listen, SERVER), want, 'same answer for the specific address');
  });
}

t.test('accepted child reports the listener SO_REUSEADDR (Linux copies it)', async (t) => {
  const env = netstackPair();
  t.equal(served(env, true).child.getOption('SO_REUSEADDR'), 1);
  t.equal(served(netstackPair(), false).child.getOption('SO_REUSEADDR'), 0);
});

t.test('child reset by the peer → its port reservation goes with it', async (t) => {
  const env = netstackPair();
  const s = served(env, false);
  s.listener.close();
  t.equal(tryBind(env, false), EIU, 'held while the child lives');
  s.client.setOption('SO_LINGER', { onoff: 1, linger: 0 });
  s.client.close();
  env.clock.advance(10);
  t.equal(stateName(s.child.state), 'CLOSED', 'RST closed the child');
  t.equal(tryBind(env, false), 'ok', 'free again at once');
  t.equal(env.b.ports.count(6, PORT), 0, 'no reservation left behind');
});

t.test('listener closed with an unaccepted child → child reset, port free', async (t) => {
  const { clock, a, b } = netstackPair();
  const listener = b.socket(4, 'stream') as TcpEndpoint;
  listener.bind({ address: new Uint8Array(4), port: PORT });
  listener.listen(4);
  const client = a.socket(4, 'stream') as TcpEndpoint;
  client.connect({ address: SERVER, port: PORT });
  clock.advance(10);
  t.equal(b.ports.count(6, PORT), 2, 'listener and its established, unaccepted child');
  listener.close();
  clock.advance(10);
  t.equal(b.ports.count(6, PORT), 0);
  t.equal(client.takeError(), Err.ConnectionReset, 'the client saw the RST');
});

t.test('a child completed by SYN cookie holds the port as well', async (t) => {
  const { clock, a, b } = netstackPair();
  const listener = b.socket(4, 'stream') as TcpEndpoint;
  listener.bind({ address: new Uint8Array(4), port: PORT });
  listener.listen(1);
  // Two SYNs in the same millisecond: the first fills the one-entry SYN queue, the second gets a cookie.
  const c1 = a.socket(4, 'stream') as TcpEndpoint;
  const c2 = a.socket(4, 'stream') as TcpEndpoint;
  c1.connect({ address: SERVER, port: PORT });
  c2.connect({ address: SERVER, port: PORT });
  clock.advance(10);
  t.equal(b.tcp.stats.syncookiesRecv, 1, 'one connection completed by cookie');
  const children: TcpEndpoint[] = [];
  for (let r = listener.accept(); !('errno' in r); r = listener.accept()) children.push(r.endpoint as TcpEndpoint);
  t.equal(children.length, 2);
  listener.close();
  t.equal(b.ports.count(6, PORT), 2, 'both children hold the port');
  const ports = children.map((c) => c.remoteAddress() as { port: number }).map((p) => p.port);
  const cookieChild = children[ports.indexOf((c2.localAddress() as { port: number }).port)]!;
  const queuedChild = children.find((c) => c !== cookieChild)!;
  queuedChild.setOption('SO_LINGER', { onoff: 1, linger: 0 });
  queuedChild.close();
  t.equal(tryBind({ clock, a, b }, false), EIU, 'the cookie child alone still holds it');
  cookieChild.setOption('SO_LINGER', { onoff: 1, linger: 0 });
  cookieChild.close();
  t.equal(tryBind({ clock, a, b }, false), 'ok', 'free once both are gone');
});

t.test('tcp_syncookies = 2 → every SYN answered with a cookie, none queued, and the connections carry data', async (t) => {
  const { clock, a, b } = netstackPair();
  t.same(b.sysctl.set('net.ipv4.tcp_syncookies', '2'), { value: '2', applied: true });
  const listener = b.socket(4, 'stream') as TcpEndpoint;
  listener.bind({ address: new Uint8Array(4), port: PORT });
  listener.listen(16);
  const clients = [0, 1, 2].map(() => a.socket(4, 'stream') as TcpEndpoint);
  for (const c of clients) c.connect({ address: SERVER, port: PORT });
  clock.advance(1);
  t.equal(listener.listener!.synQueue.size, 0, 'the SYN queue stays empty');
  clock.advance(10);
  t.equal(b.tcp.stats.syncookiesSent, 3, 'three cookies sent, with room in the SYN queue');
  t.equal(b.tcp.stats.syncookiesRecv, 3, 'three connections completed by cookie');
  const children: TcpEndpoint[] = [];
  for (let r = listener.accept(); !('errno' in r); r = listener.accept()) children.push(r.endpoint as TcpEndpoint);
  t.equal(children.length, 3);
  for (const [i, c] of clients.entries()) t.equal(c.write(new TextEncoder().encode(`hello ${i}`)), 7);
  clock.advance(10);
  const got = children.map((c) => {
    const r = c.read({ maxBytes: 100 });
    return 'data' in r ? new TextDecoder().decode(r.data) : `error ${JSON.stringify(r)}`;
  });
  t.same(got.sort(), ['hello 0', 'hello 1', 'hello 2'], 'each connection carries its client\'s bytes');
  // Back to 1: a SYN with room in the queue is queued again.
  b.sysctl.set('net.ipv4.tcp_syncookies', '1');
  const late = a.socket(4, 'stream') as TcpEndpoint;
  late.connect({ address: SERVER, port: PORT });
  clock.advance(10);
  t.equal(b.tcp.stats.syncookiesSent, 3, 'no cookie for it');
  t.equal(stateName(late.state), 'ESTABLISHED');
});

t.test('an accepted connection holds its port without a readiness subscriber of the stack', async (t) => {
  const env = netstackPair();
  const s = served(env, false);
  t.equal(s.child.waiter.size, 0, 'nobody but the application waits on the child');
  t.equal(env.b.ports.count(6, PORT), 2, 'yet the child holds the port');
  s.listener.close();
  s.child.setOption('SO_LINGER', { onoff: 1, linger: 0 });
  s.child.close();
  t.equal(env.b.ports.count(6, PORT), 0, 'given back when it closes');
});
