// The adapters' shared pieces: Node-shaped errors from stack errors, host text, address text as Node prints it.
import { spawn } from 'node:child_process';
import t from 'tap';
import { coalesced, formatHost, nodeError, resolveHost } from '../../../netstack/adapter/common.ts';
import { parseAddress } from '../../../netstack/addr.ts';
import { Err } from '../../../netstack/errors.ts';
import { HANG_MS } from '../../lib/wait.ts';

t.test('nodeError: code, negative errno, syscall, address and message as Node formats them', async (t) => {
  const table: [Parameters<typeof nodeError>, { message: string; code: string; errno: number; syscall: string; address?: string; port?: number }][] = [
    [[Err.ConnectionRefused, 'connect', '198.18.0.2', 80], { message: 'connect ECONNREFUSED 198.18.0.2:80', code: 'ECONNREFUSED', errno: -111, syscall: 'connect', address: '198.18.0.2', port: 80 }],
    [[Err.AddressInUse, 'listen', '::', 80, true], { message: 'listen EADDRINUSE: address already in use :::80', code: 'EADDRINUSE', errno: -98, syscall: 'listen', address: '::', port: 80 }],
    [[Err.AddressInUse, 'bind', '0.0.0.0', 53], { message: 'bind EADDRINUSE 0.0.0.0:53', code: 'EADDRINUSE', errno: -98, syscall: 'bind' }],
    [[Err.ConnectionReset, 'read'], { message: 'read ECONNRESET', code: 'ECONNRESET', errno: -104, syscall: 'read' }],
    [[Err.ClosedForSend, 'write'], { message: 'write EPIPE', code: 'EPIPE', errno: -32, syscall: 'write' }],
    [[Err.MessageTooLong, 'send', 'fd74:7376::2', 9], { message: 'send EMSGSIZE fd74:7376::2:9', code: 'EMSGSIZE', errno: -90, syscall: 'send' }],
    [[Err.TimedOut, 'connect', '198.18.0.9', 22], { message: 'connect ETIMEDOUT 198.18.0.9:22', code: 'ETIMEDOUT', errno: -110, syscall: 'connect' }],
  ];
  for (const [args, want] of table) {
    const e = nodeError(...args);
    t.ok(e instanceof Error);
    t.match(e, want, want.message);
  }
  t.notOk('port' in nodeError(Err.ConnectionReset, 'read'), 'no port when none was given');
});

t.test('coalesced: asked many times in a task → runs once after it, in the order asked; one that throws leaves the others to run', async (t) => {
  const ran: string[] = [];
  const a = coalesced(() => ran.push('a'));
  const b = coalesced(() => {
    ran.push('b');
    // Asked again while running: runs once more, after the runs already queued.
    if (ran.filter((x) => x === 'b').length === 1) b();
  });
  const c = coalesced(() => {
    ran.push('c');
    a();
  });
  b();
  a();
  b();
  c();
  a();
  t.same(ran, [], 'nothing runs inside the task that asked');
  await null;
  await new Promise((r) => setImmediate(r));
  t.same(ran, ['b', 'a', 'c', 'b', 'a'], 'each once per ask before it ran, in order; asks made while running run in the same pass');
  const errors: unknown[] = [];
  const onError = (e: unknown) => errors.push(e);
  process.prependListener('uncaughtException', onError);
  try {
    ran.length = 0;
    const bad = coalesced(() => {
      ran.push('bad');
      throw new Error('boom');
    });
    bad();
    a();
    await new Promise((r) => setImmediate(r));
  } finally {
    process.removeListener('uncaughtException', onError);
  }
  t.same(ran, ['bad', 'a'], 'the run after the one that threw still runs');
  t.equal(errors.length, 1, 'the error is reported as an uncaught exception, as a microtask of its own would be');
});

t.test('resolveHost: IP literals, [v6], localhost; names do not resolve', async (t) => {
  t.same(resolveHost('198.18.0.2', 0), parseAddress('198.18.0.2'));
  t.same(resolveHost('[fd74:7376::2]', 0), parseAddress('fd74:7376::2'));
  t.same(resolveHost('localhost', 4), parseAddress('127.0.0.1'));
  t.same(resolveHost('localhost', 6), parseAddress('::1'));
  t.equal(resolveHost('example.invalid', 0), null);
  t.equal(resolveHost('198.18.0.256', 0), null);
});

t.test('formatHost: IPv4-mapped addresses end in dotted quad, as Node prints them', async (t) => {
  t.equal(formatHost(parseAddress('::ffff:198.18.0.1')!), '::ffff:198.18.0.1');
  t.equal(formatHost(parseAddress('fd74:7376::1')!), 'fd74:7376::1');
  t.equal(formatHost(parseAddress('::')!), '::');
  t.equal(formatHost(parseAddress('198.18.0.1')!), '198.18.0.1');
});

// A process of its own, since what is tested is whether that process ends: a server that never closes its side
// and a client whose end() is still in flight when both stacks close. Before the stack's close released them,
// sockets like these held the loop for ever (test files stayed alive after their last test).
const MID_CLOSE = `
import { bindNet } from './netstack/adapter/net.ts';
import { twoNetstacks } from './test/netstack/adapter/helpers.ts';
const env = twoNetstacks();
const server = bindNet(env.b).createServer((s) => s.on('error', () => {}));
server.listen(80, '198.18.0.2', () => {
  const c = bindNet(env.a).connect(80, '198.18.0.2');
  c.on('error', () => {});
  c.on('connect', () => {
    c.end('bye');
    env.close();
    console.log('closed with', c.destroyed ? 'a destroyed' : 'an open', 'client and a listening server');
  });
});
`;

t.test('stack closed while a connection is mid-close and a server listens → the sockets stop holding the loop', async (t) => {
  const p = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', MID_CLOSE], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  p.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  p.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
  // Only a hang reaches the bound: the process then waits on our sockets.
  const hang = setTimeout(() => p.kill('SIGKILL'), HANG_MS);
  const code = await new Promise<number | null>((r) => p.once('exit', (c) => r(c)));
  clearTimeout(hang);
  t.equal(code, 0, out);
  t.match(out, /^closed with an open client and a listening server$/m, 'the sockets were still open when the stacks closed');
});
