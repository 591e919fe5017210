import { execFileSync, spawn } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import t from 'tap';
import type { LinkDispatcher } from '../../netstack/link/endpoint.ts';
import { AfPacketEndpoint } from '../../lib/packet.ts';
import { createVethPair } from '../../lib/testnet.ts';
import { arp, echoReply, ip4, mac, parseArp, parseEchoRequest, udp } from '../lib/frames.ts';
import { HANG_MS, waitFor } from '../lib/wait.ts';

const A_IP = '198.18.10.1';
const B_IP = '198.18.10.2';
const STACK_IP = '198.18.10.99'; // answered by the test through the endpoint, unknown to A's kernel

const net = createVethPair({ prefix: 'tsv-lib', addrA: `${A_IP}/24`, addrB: `${B_IP}/24` });
t.teardown(() => net.destroy());

/** A dispatcher that records copies of every frame and counts batch ends. */
function recorder(onFrame?: (f: Uint8Array) => void) {
  const frames: Uint8Array[] = [];
  let batches = 0;
  const d: LinkDispatcher = {
    deliverFrame(f) {
      frames.push(f.slice());
      onFrame?.(f);
    },
    deliverBatchEnd() {
      batches++;
    },
  };
  return { d, frames, batches: () => batches };
}

t.test('open reads the interface MAC and MTU', async (t) => {
  const ep = await AfPacketEndpoint.open({ netns: net.nsA, dev: net.devA });
  t.teardown(() => ep.close());
  t.same([...ep.macAddress], [...mac(net.macA)]);
  t.equal(ep.mtu, 1500);
  t.ok(ep.ifindex > 0);
});

t.test('missing namespace or interface → error naming it', async (t) => {
  await t.rejects(AfPacketEndpoint.open({ netns: 'tsv-lib-nope', dev: 'veth-a' }), /network namespace 'tsv-lib-nope' does not exist/);
  await t.rejects(AfPacketEndpoint.open({ netns: net.nsA, dev: 'nosuchdev0' }), /no interface 'nosuchdev0' in network namespace 'tsv-lib-a'/);
});

t.test('ARP request sent → kernel in B replies through the endpoint', async (t) => {
  const ep = await AfPacketEndpoint.open({ netns: net.nsA, dev: net.devA });
  t.teardown(() => ep.close());
  const rec = recorder();
  ep.attach(rec.d);
  const req = arp(1, ep.macAddress, ip4(STACK_IP), new Uint8Array(6), ip4(B_IP));
  t.equal(ep.writeFrame(req), true);
  // No explicit flush: the microtask flush must send it.
  const isReply = (f: Uint8Array) => {
    const a = parseArp(f);
    return a !== null && a.op === 2 && a.senderIp.join('.') === B_IP && a.targetIp.join('.') === STACK_IP;
  };
  await waitFor(() => rec.frames.some(isReply), HANG_MS, 'ARP reply from B');
  const reply = rec.frames.find(isReply)!;
  t.same([...reply.subarray(0, 6)], [...ep.macAddress], 'unicast to our MAC');
  t.same([...parseArp(reply)!.senderMac], [...mac(net.macB)], 'B tells its MAC');
  t.equal(ep.counters.txFrames, 1);
  t.equal(ep.counters.txBytes, 42);
  t.ok(rec.batches() >= 1, 'deliverBatchEnd called');
  t.notOk(rec.frames.some((f) => f.length === 42 && f.every((b, i) => b === req[i])), 'own frame not seen');
});

t.test('B pings an address the test answers by hand → ping succeeds', async (t) => {
  const ep = await AfPacketEndpoint.open({ netns: net.nsA, dev: net.devA });
  t.teardown(() => ep.close());
  let echoes = 0;
  ep.attach({
    deliverFrame(f) {
      const a = parseArp(f);
      if (a && a.op === 1 && a.targetIp.join('.') === STACK_IP) {
        ep.writeFrame(arp(2, ep.macAddress, ip4(STACK_IP), a.senderMac, a.senderIp));
        return;
      }
      const req = parseEchoRequest(f);
      if (req && req.dst.join('.') === STACK_IP) {
        echoes++;
        ep.writeFrame(echoReply(f, ep.macAddress)!);
      }
    },
  });
  const code = await new Promise<number | null>((resolve) => {
    const p = spawn('ip', ['netns', 'exec', net.nsB, 'ping', '-c', '3', '-i', '0.2', '-W', '20', STACK_IP], {
      stdio: 'ignore',
    });
    p.on('exit', (c) => resolve(c));
  });
  t.equal(code, 0, 'ping exit status');
  t.equal(echoes, 3, 'three echo requests answered');
});

t.test('1000 frames from B → all received in order, in batches', async (t) => {
  const a = await AfPacketEndpoint.open({ netns: net.nsA, dev: net.devA });
  const b = await AfPacketEndpoint.open({ netns: net.nsB, dev: net.devB });
  t.teardown(() => {
    a.close();
    b.close();
  });
  const seqs: number[] = [];
  const rec = recorder((f) => {
    if (f.length === 14 + 20 + 8 + 64 && f[23] === 17 && f[37] === 0x39) seqs.push((f[42]! << 8) | f[43]!);
  });
  a.attach(rec.d);
  const payload = new Uint8Array(64);
  let accepted = 0;
  for (let chunk = 0; chunk < 10; chunk++) {
    for (let i = 0; i < 100; i++) {
      const seq = chunk * 100 + i;
      payload[0] = seq >> 8;
      payload[1] = seq & 0xff;
      if (b.writeFrame(udp(b.macAddress, a.macAddress, ip4(B_IP), ip4(A_IP), 4000, 0x1239, payload))) accepted++;
    }
    b.flush();
    await new Promise((r) => setTimeout(r, 2));
  }
  await waitFor(() => seqs.length >= 1000, HANG_MS, '1000 frames');
  t.equal(accepted, 1000, 'writeFrame accepted all');
  t.equal(b.counters.txFrames, 1000);
  t.equal(b.counters.txDropped, 0);
  t.same(seqs, Array.from({ length: 1000 }, (_, i) => i), 'every frame, in order');
  a.refreshCounters();
  t.equal(a.counters.rxDropped, 0);
  t.equal(a.counters.rxTruncated, 0);
  t.ok(rec.batches() < 1000, `fewer batch ends than frames (${rec.batches()})`);
});

t.test('frames both ways between two endpoints, larger than a queue', async (t) => {
  const a = await AfPacketEndpoint.open({ netns: net.nsA, dev: net.devA, sendQueue: 16 });
  const b = await AfPacketEndpoint.open({ netns: net.nsB, dev: net.devB, sendQueue: 16 });
  t.teardown(() => {
    a.close();
    b.close();
  });
  const atA = recorder();
  const atB = recorder();
  a.attach(atA.d);
  b.attach(atB.d);
  const full = new Uint8Array(1500 - 28).fill(0xab); // a full-MTU IPv4 packet
  for (let i = 0; i < 40; i++) {
    a.writeFrame(udp(a.macAddress, b.macAddress, ip4(A_IP), ip4(B_IP), 1, 2, full));
    b.writeFrame(udp(b.macAddress, a.macAddress, ip4(B_IP), ip4(A_IP), 2, 1, full));
  }
  const big = (r: ReturnType<typeof recorder>) => r.frames.filter((f) => f.length === 1514).length;
  await waitFor(() => big(atA) === 40 && big(atB) === 40, HANG_MS, '40 full frames each way');
  t.equal(a.writeFrame(new Uint8Array(1500 + 14 + 4 + 1)), false, 'oversize refused');
  t.equal(a.counters.txOversize, 1);
  t.equal(a.counters.txFrames, 40);
  t.equal(a.counters.rxFrames >= 40, true);
});

t.test('close → fd closed, idempotent, writes refused', async (t) => {
  const ep = await AfPacketEndpoint.open({ netns: net.nsA, dev: net.devA });
  const fd = ep.fd;
  t.match(readlinkSync(`/proc/self/fd/${fd}`), /^socket:/);
  ep.close();
  t.throws(() => readlinkSync(`/proc/self/fd/${fd}`), { code: 'ENOENT' });
  ep.close();
  t.equal(ep.writeFrame(new Uint8Array(60)), false);
});

t.test('a process with an endpoint opened and closed exits by itself', async (t) => {
  const script = `
    import { AfPacketEndpoint } from './lib/packet.ts';
    const ep = await AfPacketEndpoint.open({ netns: ${JSON.stringify(net.nsA)}, dev: ${JSON.stringify(net.devA)} });
    ep.attach({ deliverFrame() {} });
    ep.writeFrame(new Uint8Array(60));
    setTimeout(() => ep.close(), 50);
  `;
  // One that does not exit is killed after a hang bound and ends without a status.
  const code = await new Promise<number | null>((resolve) => {
    const p = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: new URL('../..', import.meta.url).pathname,
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const timer = setTimeout(() => p.kill('SIGKILL'), HANG_MS);
    p.on('exit', (c) => {
      clearTimeout(timer);
      resolve(c);
    });
  });
  t.equal(code, 0, 'exited with status 0 (not killed)');
});

/**
 * Runs a child process that sends `count` UDP frames from B to A, one every `gapUs` µs, through its own endpoint;
 * resolves to the number of gaps longer than `longUs` µs between sends (the sender descheduled by other load).
 */
async function streamFromChild(count: number, gapUs: number, longUs = 1000): Promise<number> {
  const script = `
    import { AfPacketEndpoint } from './lib/packet.ts';
    import { ip4, udp } from './test/lib/frames.ts';
    const b = await AfPacketEndpoint.open({ netns: ${JSON.stringify(net.nsB)}, dev: ${JSON.stringify(net.devB)} });
    const f = udp(b.macAddress, new Uint8Array(${JSON.stringify([...mac(net.macA)])}), ip4('${B_IP}'), ip4('${A_IP}'), 4000, 0x123a, new Uint8Array(18));
    await new Promise((r) => setTimeout(r, 100));
    let last = -Infinity;
    let long = 0;
    for (let i = 0; i < ${count}; i++) {
      // Each gap is measured from the previous send, so a sender that was descheduled never catches up in a burst.
      const now = performance.now();
      if (now - last > ${longUs} / 1000) long++;
      last = now;
      const next = now + ${gapUs} / 1000;
      b.writeFrame(f);
      b.flush();
      while (performance.now() < next);
    }
    b.close();
    process.stdout.write(String(long - 1));
  `;
  let out = '';
  const code = await new Promise<number | null>((resolve) => {
    const p = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: new URL('../..', import.meta.url).pathname,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    p.stdout.on('data', (d: Buffer) => (out += d));
    const timer = setTimeout(() => p.kill('SIGKILL'), HANG_MS);
    p.on('exit', (c) => {
      clearTimeout(timer);
      resolve(c);
    });
  });
  if (code !== 0) throw new Error(`sender exited with ${code}`);
  return Number(out);
}

const isStreamFrame = (f: Uint8Array) => f.length === 60 && f[23] === 17 && f[36] === 0x12 && f[37] === 0x3a;

t.test('lone frames 20 ms apart → one wake-up each, never a busy poll', async (t) => {
  const a = await AfPacketEndpoint.open({ netns: net.nsA, dev: net.devA, busyPollUs: 1000 });
  t.teardown(() => a.close());
  let got = 0;
  let inBatch = 0;
  let maxBatch = 0;
  a.attach({
    deliverFrame: (f) => void (isStreamFrame(f) && (got++, inBatch++)),
    deliverBatchEnd() {
      maxBatch = Math.max(maxBatch, inBatch);
      inBatch = 0;
    },
  });
  await streamFromChild(10, 20_000);
  await waitFor(() => got === 10, HANG_MS, '10 frames');
  // On a loaded machine the receiver may sleep through two sends; then those frames were not lone ones.
  if (maxBatch > 1) {
    t.comment(`receiver found ${maxBatch} frames at once (starved by other load): lone-frame case not reached`);
    return;
  }
  t.equal(a.rxPoll.wakeups, 10, 'one wake-up per frame');
  t.equal(a.rxPoll.busyPolls, 0, 'no busy poll after a lone frame');
  t.equal(a.rxPoll.caught, 0);
});

t.test('a stream 100 µs apart from another process → busy polls, few wake-ups', async (t) => {
  const a = await AfPacketEndpoint.open({ netns: net.nsA, dev: net.devA, busyPollUs: 1000 });
  t.teardown(() => a.close());
  let got = 0;
  a.attach({ deliverFrame: (f) => void (isStreamFrame(f) && got++) });
  const pauses = await streamFromChild(2000, 100, 1000);
  await waitFor(() => got === 2000, HANG_MS, '2000 frames');
  const p = a.rxPoll;
  t.equal(got, 2000, 'all frames delivered');
  // A wake-up that finds several frames, or comes within the 1 ms window of the previous one, polls; how many
  // frames the polls catch rather than the first drain depends on how the scheduler runs sender and receiver
  // on a busy machine (bench/link-rate.ts measures that), so only the switch into polling is checked here.
  t.ok(p.busyPolls > 0, `busy polls happened (${JSON.stringify(p)})`);
  // Polling catches frames that would each have cost a wake-up: fewer wake-ups than half the frames. (How many
  // fewer depends on the scheduler: a sender paused past the 1 ms window by other load lets the receiver sleep,
  // which CI's loaded runs showed at 520 wake-ups for 18 pauses; bench/link-rate.ts measures the rate.)
  t.ok(p.caught > 0 && p.wakeups < 1000, `polls caught frames, wake-ups under half the frames (${p.wakeups}, ${pauses} sender pauses)`);
});

t.test('busy polling → the microtasks a batch queued run before the next batch is delivered', async (t) => {
  // Applications read and answer in microtasks (tsvisor/net's pump, node:http): a poll that delivered batch
  // after batch from one synchronous loop held every answer back until the poll ended (issue 15).
  const a = await AfPacketEndpoint.open({ netns: net.nsA, dev: net.devA, busyPollUs: 1000 });
  t.teardown(() => a.close());
  let got = 0;
  let answerPending = false;
  let starved = 0;
  let batches = 0;
  a.attach({
    deliverFrame(f) {
      if (!isStreamFrame(f)) return;
      if (answerPending) starved++;
      got++;
    },
    deliverBatchEnd() {
      batches++;
      answerPending = true;
      queueMicrotask(() => (answerPending = false));
    },
  });
  await streamFromChild(2000, 100);
  await waitFor(() => got === 2000, HANG_MS, '2000 frames');
  t.ok(a.rxPoll.busyPolls > 0, `busy polls happened (${JSON.stringify(a.rxPoll)})`);
  t.equal(starved, 0, `no batch delivered while the previous one's microtasks waited (${batches} batches)`);
});

t.test("a batch's replies and what microtasks and ticks write after it → one send call", async (t) => {
  // A new connection's SYN-ACK is written in the batch, the response and FIN of another by node:http in the
  // microtasks and ticks after it; each send call wakes the peer's receiver anew, so they go together (issue 13).
  const ep = await AfPacketEndpoint.open({ netns: net.nsA, dev: net.devA });
  t.teardown(() => ep.close());
  const probe = (n: number) => arp(1, ep.macAddress, ip4(STACK_IP), new Uint8Array(6), ip4(`198.18.10.${200 + n}`));
  let before: { calls: number; frames: number } | null = null;
  let after: { calls: number; frames: number } | null = null;
  const sent = () => ({ calls: ep.counters.txCalls, frames: ep.counters.txFrames });
  ep.attach({
    deliverFrame(f) {
      const a = parseArp(f);
      if (before !== null || !a || a.op !== 1 || a.targetIp.join('.') !== STACK_IP) return;
      before = sent();
      ep.writeFrame(probe(0));
      queueMicrotask(() => {
        ep.writeFrame(probe(1));
        process.nextTick(() => {
          ep.writeFrame(probe(2));
          void Promise.resolve().then(() => {
            ep.writeFrame(probe(3));
            setImmediate(() => (after = sent()));
          });
        });
      });
    },
    deliverBatchEnd() {},
  });
  // B must ask: an entry left by an earlier test and gone stale would make ping send at once and probe only
  // after the 5 s delay, past ping's life (a load-dependent hang of this test).
  execFileSync('ip', ['-n', net.nsB, 'neigh', 'flush', 'to', STACK_IP]);
  const ping = spawn('ip', ['netns', 'exec', net.nsB, 'ping', '-c', '1', '-W', '2', STACK_IP], { stdio: 'ignore' });
  t.teardown(() => ping.kill());
  await waitFor(() => after !== null, HANG_MS, "B's ARP request and the four answers");
  t.same([after!.calls - before!.calls, after!.frames - before!.frames], [1, 4], 'four frames in one sendmmsg');
});

t.test('a stream overflowing the ring while it drains → every frame delivered or counted, the counters read at most once a batch and 100 ms', async (t) => {
  const a = await AfPacketEndpoint.open({ netns: net.nsA, dev: net.devA, ringFrames: 64 });
  t.teardown(() => a.close());
  let delivered = 0;
  let batches = 0;
  a.attach({
    deliverFrame(f) {
      if (!isStreamFrame(f)) return;
      delivered++;
      // A slow receiver: the sender refills (and overflows) the ring while it drains.
      const until = performance.now() + 0.03;
      while (performance.now() < until);
    },
    deliverBatchEnd: () => void batches++,
  });
  // The kernel's drop count is read when it marks slots LOSING (filled while drops were unread); count the reads.
  let reads = 0;
  const refresh = a.refreshCounters.bind(a);
  a.refreshCounters = () => (reads++, refresh());
  const sent = 3000;
  const start = performance.now();
  await streamFromChild(sent, 5);
  await waitFor(() => delivered + a.counters.rxDropped >= sent, HANG_MS, 'every frame delivered or counted');
  t.equal(delivered + a.counters.rxDropped, sent, `${delivered} delivered + ${a.counters.rxDropped} dropped`);
  t.ok(a.counters.rxDropped > 0, 'the ring overflowed');
  t.ok(reads >= 1 && reads <= batches, `${reads} counter reads for ${batches} batches`);
  // The drops of the last 100 ms are read by a timer when no later frame says LOSING; none read more often.
  const ms = performance.now() - start;
  t.ok(reads <= Math.ceil(ms / 100) + 1, `${reads} counter reads in ${ms.toFixed(0)} ms`);
});
