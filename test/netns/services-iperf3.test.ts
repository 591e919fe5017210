// The iperf3 service of `tsvisor serve` on a real veth, driven by the stock iperf3 client from the peer namespace:
// UDP both ways (-u, -u -R), paced to -b, with 32- and 64-bit counters, over IPv4 and IPv6; --bidir over UDP and
// TCP; each read back from the client's JSON, where the server's half of the figures came in the results exchange.
import t, { type Test } from 'tap';
import type { ChildProcess } from 'node:child_process';
import { createVethPair } from '../../lib/testnet.ts';
import { HANG_MS } from '../lib/wait.ts';
import { nsExec, startServe, stop } from './serve-helpers.ts';

const SVC4 = '198.18.112.2';
const PEER4 = '198.18.112.1';
const SVC6 = 'fd74:7376:b112::2';
const PEER6 = 'fd74:7376:b112::1';
const LEN = 1200;

interface Sum {
  bytes: number;
  packets?: number;
  lost_packets?: number;
  bits_per_second: number;
  jitter_ms?: number;
}
interface End {
  sum_sent: Sum;
  sum_received: Sum;
  sum_sent_bidir_reverse?: Sum;
  sum_received_bidir_reverse?: Sum;
}

t.test('iperf3 service on a veth: UDP both ways, paced, --bidir over UDP and TCP, IPv4 and IPv6', async (t) => {
  const pair = createVethPair({ prefix: 'tsvB-i3', addrA: `${SVC4}/24`, addrB: `${PEER4}/24`, addr6A: `${SVC6}/64`, addr6B: `${PEER6}/64` });
  let child: ChildProcess | undefined;
  t.teardown(async () => {
    if (child) await stop(child);
    pair.destroy();
  });
  child = (await startServe(['--netns', pair.nsA, '--dev', pair.devA, '--service', 'iperf3'])).child;

  const iperf3 = async (host: string, args: string[]): Promise<End> => {
    const r = await nsExec(pair.nsB, ['iperf3', '-c', host, '-t', '1', '-J', '--connect-timeout', String(HANG_MS), ...args], { timeoutMs: 2 * HANG_MS });
    const j = JSON.parse(r.stdout.toString() || '{}') as { error?: string; end?: End };
    if (j.error || !j.end) throw new Error(`iperf3 ${args.join(' ')}: ${j.error ?? r.stderr}`);
    return j.end;
  };

  /**
   * A UDP direction's figures: every datagram is LEN bytes, and the receiver counted what the sender sent. Rates
   * are low (a few Mbit/s at most) so that a receiver descheduled by other load for a second still has room in
   * its socket buffer or ring: loss here means the path lost datagrams, not that the machine was busy. The
   * pacing itself is checked exactly on a virtual clock in test/cli/services/iperf3.test.ts.
   */
  const checkUdp = (t: Test, what: string, sent: Sum, received: Sum, rate: number, streams = 1) => {
    t.ok(sent.packets! > 0.5 * ((rate / 8) / LEN), `${what}: ${sent.packets} datagrams sent at ${(sent.bits_per_second / 1e6).toFixed(2)} Mbit/s`);
    t.equal(sent.bytes, sent.packets! * LEN, `${what}: sender bytes = datagrams × ${LEN}`);
    t.ok(sent.bits_per_second < rate * 1.1, `${what}: the sender kept to -b ${rate / 1e6}M`);
    // iperf3's receiver ends on the control connection's TEST_END, which can overtake the last datagram of a
    // stream still in its socket: at most one datagram per stream may go uncounted at the tail (a gap before it
    // is counted as lost, below).
    const tail = sent.packets! - received.packets!;
    t.ok(tail >= 0 && tail <= streams, `${what}: the receiver's highest count is the sender's last (${received.packets} of ${sent.packets}, ${streams} stream(s))`);
    t.ok(received.lost_packets! <= sent.packets! / 100, `${what}: ${received.lost_packets} lost (at most 1%)`);
    t.equal(received.bytes, (received.packets! - received.lost_packets!) * LEN, `${what}: receiver bytes = received datagrams × ${LEN}`);
    t.ok(received.jitter_ms! >= 0 && received.jitter_ms! < 50, `${what}: jitter ${received.jitter_ms!.toFixed(3)} ms`);
  };

  await t.test('-u: the client sends, the service counts datagrams, loss and jitter', async (t) => {
    const e = await iperf3(SVC4, ['-u', '-b', '2M', '-l', String(LEN)]);
    checkUdp(t, 'client → service', e.sum_sent, e.sum_received, 2e6);
  });

  await t.test('-u -R: the service sends, paced to -b, with 64-bit counters', async (t) => {
    const e = await iperf3(SVC4, ['-u', '-R', '-b', '1M', '-l', String(LEN), '--udp-counters-64bit']);
    checkUdp(t, 'service → client', e.sum_sent, e.sum_received, 1e6);
    // The pacer sends by elapsed time, so late ticks on a busy machine catch up: only the last tick's lateness is lost.
    t.ok(e.sum_sent.bits_per_second > 1e6 * 0.7, `service → client: ${(e.sum_sent.bits_per_second / 1e6).toFixed(2)} Mbit/s, near -b 1M`);
  });

  await t.test('-u -R -P 2 over IPv6: two paced streams', async (t) => {
    const e = await iperf3(SVC6, ['-u', '-R', '-P', '2', '-b', '1M', '-l', String(LEN)]);
    checkUdp(t, 'service → client, 2 streams', e.sum_sent, e.sum_received, 2e6, 2);
  });

  await t.test('-u --bidir: both directions at once', async (t) => {
    const e = await iperf3(SVC4, ['-u', '--bidir', '-b', '1M', '-l', String(LEN)]);
    checkUdp(t, 'client → service', e.sum_sent, e.sum_received, 1e6);
    checkUdp(t, 'service → client', e.sum_sent_bidir_reverse!, e.sum_received_bidir_reverse!, 1e6);
  });

  await t.test('--bidir over TCP, 2 streams each way: data flows both ways and both ends report it', async (t) => {
    const e = await iperf3(SVC4, ['--bidir', '-P', '2']);
    for (const [k, s] of Object.entries(e).filter(([k]) => k.startsWith('sum_'))) {
      t.ok((s as Sum).bytes > 100000, `${k}: ${(s as Sum).bytes} bytes`);
    }
    t.ok(e.sum_received.bytes <= e.sum_sent.bytes, 'client → service: the service received at most what was sent');
    t.ok(e.sum_received_bidir_reverse!.bytes <= e.sum_sent_bidir_reverse!.bytes, 'service → client: the client received at most what was sent');
  });

  await t.test('TCP after the UDP tests: the service took every test down and serves the next', async (t) => {
    const e = await iperf3(SVC4, ['-R']);
    t.ok(e.sum_received.bytes > 100000, `-R: ${e.sum_received.bytes} bytes`);
  });

  t.equal(await stop(child), 0, 'serve exits 0 on SIGTERM');
  child = undefined;
});
