// RX_LOAN on a packet ring: a dispatcher with returnLoans gets the super-frames' slots lent (small frames are copied
// as before), and is asked to end the loans before a later batch once the earlier one's microtasks (its readers)
// have run, and at close.
import { spawn } from 'node:child_process';
import t, { type Test } from 'tap';
import { AfPacketEndpoint } from '../../lib/packet.ts';
import { createVethPair } from '../../lib/testnet.ts';
import { type LinkDispatcher, RX_LOAN } from '../../netstack/link/endpoint.ts';
import { HANG_MS, waitFor, waitListening } from '../lib/wait.ts';

const A_IP = '198.19.30.33';
const B_IP = '198.19.30.34';

const net = createVethPair({ prefix: 'tpr-loan', addrA: `${A_IP}/28`, addrB: `${B_IP}/28`, offloads: true });
t.teardown(() => net.destroy());

/** Has B's kernel send 1 MB over TCP to a sink in A (with TSO on: super-frames), watched by A's endpoint. */
async function stream(t: Test, port: number): Promise<void> {
  const procs: ReturnType<typeof spawn>[] = [];
  t.teardown(() => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  });
  procs.push(spawn('ip', ['netns', 'exec', net.nsA, 'socat', '-u', `TCP-LISTEN:${port},reuseaddr`, 'OPEN:/dev/null'], { stdio: 'ignore' }));
  await waitListening(net.nsA, port);
  const client = spawn('ip', ['netns', 'exec', net.nsB, 'sh', '-c', `head -c ${1 << 20} /dev/zero | socat -u - TCP:${A_IP}:${port}`], { stdio: 'ignore' });
  procs.push(client);
  await new Promise((r) => client.on('exit', r));
}

t.test('a dispatcher with returnLoans → super-frames lent, small frames not; loans ended after their microtasks and at close', async (t) => {
  const ep = await AfPacketEndpoint.open({ netns: net.nsA, dev: net.devA, offloads: true, ringFrames: 512 });
  const log: string[] = [];
  let lentSmall = 0;
  const d: LinkDispatcher = {
    deliverFrame(f, flags = 0) {
      const lent = (flags & RX_LOAN) !== 0;
      if (lent && f.length <= 1514) lentSmall++;
      log.push(lent ? 'lent' : 'rx');
      queueMicrotask(() => log.push('reader'));
    },
    returnLoans() {
      log.push('return');
    },
  };
  ep.attach(d);
  await stream(t, 5001);
  await waitFor(() => log.filter((e) => e === 'return').length >= 2, HANG_MS, 'loans lent and ended');
  t.ok(log.includes('lent') && log.includes('rx'), 'super-frames lent, the others delivered as before');
  t.equal(lentSmall, 0, 'no frame of the MTU lent');
  const firstLent = log.indexOf('lent');
  const firstReturn = log.indexOf('return');
  t.ok(log.slice(firstLent, firstReturn).includes('reader'), 'the first loans ended after a reader queued with them ran');
  const before = log.filter((e) => e === 'return').length;
  ep.close();
  t.equal(log.filter((e) => e === 'return').length, before + 1, 'close ends the loans still out');
  await new Promise((r) => setImmediate(r));
});

t.test('a dispatcher without returnLoans → nothing lent, as before', async (t) => {
  const ep = await AfPacketEndpoint.open({ netns: net.nsA, dev: net.devA, offloads: true, ringFrames: 512 });
  t.teardown(() => ep.close());
  let big = 0;
  let lent = 0;
  ep.attach({
    deliverFrame: (f, fl = 0) => {
      if (f.length > 1514) big++;
      if ((fl & RX_LOAN) !== 0) lent++;
    },
  });
  await stream(t, 5002);
  await waitFor(() => big > 0, HANG_MS, 'a super-frame');
  t.equal(lent, 0, 'no frame flagged RX_LOAN');
});
