import { spawn } from 'node:child_process';
import { existsSync, readlinkSync } from 'node:fs';
import t, { type Test } from 'tap';
import { C, check, sockaddrIn, sys } from '../../lib/libc.ts';
import { MmsgBatch } from '../../lib/mmsg.ts';
import { inNetns } from '../../lib/netns.ts';
import { TapEndpoint } from '../../lib/tap.ts';
import { deleteNetns, run } from '../../lib/testnet.ts';
import { arp, echoReply, ip4, parseArp, parseEchoRequest, udp } from '../lib/frames.ts';
import { HANG_MS, waitFor } from '../lib/wait.ts';

const NS = 'tsv-lib-tap';
const KERNEL_IP = '198.18.40.1';
const STACK_IP = '198.18.40.2';

deleteNetns(NS);
run(['ip', 'netns', 'add', NS]);
t.teardown(() => deleteNetns(NS));

async function openTap(t: Test) {
  const ep = await TapEndpoint.open({ netns: NS, dev: 'tap0' });
  t.teardown(() => ep.close());
  run(['ip', '-n', NS, 'addr', 'add', `${KERNEL_IP}/24`, 'dev', 'tap0']);
  run(['ip', 'netns', 'exec', NS, 'sysctl', '-qw', 'net.ipv6.conf.tap0.disable_ipv6=1']);
  const kernelMac = JSON.parse(run(['ip', '-n', NS, '-j', 'link', 'show', 'dev', 'tap0']))[0].address as string;
  return { ep, kernelMac };
}

/** A kernel UDP socket inside the namespace, bound or connected as asked. */
function kernelUdp(t: Test, bindPort?: number, connectTo?: [string, number]): number {
  const fd = inNetns(NS, () => check(sys.socket(C.AF_INET, C.SOCK_DGRAM | C.SOCK_NONBLOCK | C.SOCK_CLOEXEC, 0), 'socket'));
  t.teardown(() => sys.close(fd));
  if (bindPort !== undefined) check(sys.bind(fd, sockaddrIn(ip4(KERNEL_IP), bindPort), 16), 'bind');
  if (connectTo) check(sys.connect(fd, sockaddrIn(ip4(connectTo[0]), connectTo[1]), 16), 'connect');
  return fd;
}

t.test('open → device up in the namespace with a locally administered MAC', async (t) => {
  const { ep } = await openTap(t);
  t.equal(ep.mtu, 1500);
  t.equal(ep.macAddress[0]! & 0x03, 0x02, 'locally administered unicast');
  const link = JSON.parse(run(['ip', '-n', NS, '-j', 'link', 'show', 'dev', 'tap0']))[0];
  t.ok(link.flags.includes('UP'));
});

t.test('ARP request sent → kernel replies through the TAP', async (t) => {
  const { ep, kernelMac } = await openTap(t);
  const frames: Uint8Array[] = [];
  ep.attach({ deliverFrame: (f) => void frames.push(f.slice()) });
  ep.writeFrame(arp(1, ep.macAddress, ip4(STACK_IP), new Uint8Array(6), ip4(KERNEL_IP)));
  const isReply = (f: Uint8Array) => parseArp(f)?.op === 2 && parseArp(f)!.senderIp.join('.') === KERNEL_IP;
  await waitFor(() => frames.some(isReply), HANG_MS, 'ARP reply');
  const a = parseArp(frames.find(isReply)!)!;
  t.equal(Array.from(a.senderMac, (b) => b.toString(16).padStart(2, '0')).join(':'), kernelMac);
  t.equal(ep.counters.txFrames, 1);
});

t.test('kernel pings the stack address → answered by hand through the TAP', async (t) => {
  const { ep } = await openTap(t);
  let echoes = 0;
  ep.attach({
    deliverFrame(f) {
      const a = parseArp(f);
      if (a && a.op === 1 && a.targetIp.join('.') === STACK_IP) {
        ep.writeFrame(arp(2, ep.macAddress, ip4(STACK_IP), a.senderMac, a.senderIp));
        return;
      }
      if (parseEchoRequest(f)?.dst.join('.') === STACK_IP) {
        echoes++;
        ep.writeFrame(echoReply(f, ep.macAddress)!);
      }
    },
  });
  const code = await new Promise<number | null>((resolve) => {
    const p = spawn('ip', ['netns', 'exec', NS, 'ping', '-c', '3', '-i', '0.2', '-W', '20', STACK_IP], { stdio: 'ignore' });
    p.on('exit', resolve);
  });
  t.equal(code, 0);
  t.equal(echoes, 3);
});

t.test('1000 datagrams each way between the kernel and the TAP → none lost, in order', async (t) => {
  const { ep, kernelMac } = await openTap(t);
  run(['ip', '-n', NS, 'neigh', 'replace', STACK_IP, 'lladdr', Array.from(ep.macAddress, (b) => b.toString(16).padStart(2, '0')).join(':'), 'dev', 'tap0']);
  const seqs: number[] = [];
  let batchEnds = 0;
  ep.attach({
    deliverFrame(f) {
      if (f.length === 14 + 20 + 8 + 4 && f[23] === 17) seqs.push((f[42]! << 8) | f[43]!);
    },
    deliverBatchEnd: () => void batchEnds++,
  });
  // Kernel → TAP: a kernel UDP socket in the namespace sends to the stack's address.
  const tx = kernelUdp(t, undefined, [STACK_IP, 5000]);
  const msg = new Uint8Array(4);
  let sent = 0;
  for (let chunk = 0; chunk < 10; chunk++) {
    for (let i = 0; i < 100; i++) {
      const seq = chunk * 100 + i;
      msg[0] = seq >> 8;
      msg[1] = seq & 0xff;
      if (sys.send(tx, msg, 4, 0) === 4) sent++;
    }
    await new Promise((r) => setTimeout(r, 2));
  }
  t.equal(sent, 1000, 'kernel socket sent all');
  await waitFor(() => seqs.length >= 1000, HANG_MS, '1000 datagrams at the TAP');
  t.same(seqs, Array.from({ length: 1000 }, (_, i) => i), 'kernel → TAP: all, in order');
  t.ok(batchEnds < 1000, `batched (${batchEnds} batch ends)`);

  // TAP → kernel: the stack sends to a kernel UDP socket, which counts them with recvmmsg.
  const rx = kernelUdp(t, 6000);
  const batch = new MmsgBatch(64, 64);
  t.teardown(() => batch.free());
  const got: number[] = [];
  const drain = () => {
    for (;;) {
      const n = batch.recv(rx, C.MSG_DONTWAIT);
      if (n <= 0) break;
      for (let i = 0; i < n; i++) got.push((batch.slot(i)[0]! << 8) | batch.slot(i)[1]!);
    }
  };
  const data = new Uint8Array(8);
  const kmac = kernelMac.split(':').map((h) => parseInt(h, 16));
  for (let chunk = 0; chunk < 10; chunk++) {
    for (let i = 0; i < 100; i++) {
      const seq = chunk * 100 + i;
      data[0] = seq >> 8;
      data[1] = seq & 0xff;
      ep.writeFrame(udp(ep.macAddress, new Uint8Array(kmac), ip4(STACK_IP), ip4(KERNEL_IP), 5000, 6000, data));
    }
    ep.flush();
    drain();
    await new Promise((r) => setTimeout(r, 2));
  }
  await waitFor(() => (drain(), got.length >= 1000), HANG_MS, '1000 datagrams at the kernel');
  t.same(got, Array.from({ length: 1000 }, (_, i) => i), 'TAP → kernel: all, in order');
  t.equal(ep.counters.txFrames, 1000);
  t.equal(ep.counters.txDropped, 0);
});

t.test('close → fd closed, device gone, idempotent', async (t) => {
  const ep = await TapEndpoint.open({ netns: NS, dev: 'tap1' });
  const fd = ep.fd;
  t.match(readlinkSync(`/proc/self/fd/${fd}`), /tun/);
  ep.close();
  ep.close();
  t.notOk(existsSync(`/proc/self/fd/${fd}`) && readlinkSync(`/proc/self/fd/${fd}`).includes('tun'), 'fd closed');
  t.throws(() => run(['ip', '-n', NS, 'link', 'show', 'dev', 'tap1']), /does not exist/);
  t.equal(ep.writeFrame(new Uint8Array(60)), false);
});

t.test('missing namespace → error naming it', async (t) => {
  await t.rejects(TapEndpoint.open({ netns: 'tsv-lib-nope', dev: 'tap0' }), /network namespace 'tsv-lib-nope' does not exist/);
});
