/**
 * What a flood SYN costs the serving stack once SYN cookies answer it, which machine load does not change: one
 * Netstack with a listener (backlog 4096) on a link that counts what it is given and answers ARP for the gateway,
 * fed spoofed SYNs (random sources in 198.18.130.0/24, off-link, so answers go through the gateway as in the bench)
 * in batches of 64 as a packet ring delivers them (flagged checksum-verified, as the kernel flags a veth's frames),
 * on a virtual clock (1 ms per batch). The first 4096 fill the SYN
 * queue; then it counts, per SYN: frames sent, timers scheduled, clock reads, garbage collections, and CPU.
 * Run: `node --import tsx bench/micro/syn-work.ts [SYNS]`.
 */
import { PerformanceObserver } from 'node:perf_hooks';
import { parseAddress, parseSubnet } from '../../netstack/addr.ts';
import { VirtualClock } from '../../netstack/clock.ts';
import { type LinkDispatcher, type LinkEndpoint, RX_CSUM_VERIFIED, RX_MORE } from '../../netstack/link/endpoint.ts';
import { Netstack } from '../../netstack/netstack.ts';
import type { Endpoint } from '../../netstack/socket.ts';
import { CountingClock } from './counted.ts';

const SERVER_MAC = Uint8Array.of(2, 0, 0, 0, 0, 2);
const GATEWAY_MAC = Uint8Array.of(2, 0, 0, 0, 0, 1);
const SERVER = parseAddress('198.18.0.2')!;
const GATEWAY = parseAddress('198.18.0.1')!;

/** A link that counts frames sent and answers ARP requests for the gateway (as the client namespace would). */
class SinkLink implements LinkEndpoint {
  readonly mtu = 1500;
  readonly macAddress = SERVER_MAC;
  readonly flushesItself = true;
  dispatcher: LinkDispatcher | null = null;
  frames = 0;
  private arpReplies: Uint8Array[] = [];
  attach(d: LinkDispatcher | null): void {
    this.dispatcher = d;
  }
  writeFrame(frame: Uint8Array): boolean {
    this.frames++;
    if (frame[12] === 0x08 && frame[13] === 0x06 && frame[21] === 1) this.arpReplies.push(arpReply(frame));
    return true;
  }
  flush(): void {}
  close(): void {}
  /** Delivers the ARP replies owed (outside the delivery that asked, as a wire would). */
  answerArp(): void {
    const q = this.arpReplies;
    this.arpReplies = [];
    for (const f of q) this.dispatcher!.deliverFrame(f, 0);
  }
}

function arpReply(req: Uint8Array): Uint8Array {
  const f = new Uint8Array(42);
  f.set(req.subarray(6, 12), 0);
  f.set(GATEWAY_MAC, 6);
  f[12] = 0x08;
  f[13] = 0x06;
  f.set(req.subarray(14, 20), 14); // htype, ptype, hlen, plen
  f[21] = 2;
  f.set(GATEWAY_MAC, 22);
  f.set(req.subarray(38, 42), 28); // sender IP: the address asked for
  f.set(req.subarray(22, 32), 32); // target: the asker's MAC and IP
  return f;
}

function sum16(b: Uint8Array, from: number, to: number, s: number): number {
  for (let i = from; i < to; i += 2) s += (b[i]! << 8) | b[i + 1]!;
  return s;
}
function fold(s: number): number {
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/** A spoofed SYN from a random address of 198.18.130.0/24 and port to SERVER:7, with an MSS option. */
function synFrame(rand: () => number): Uint8Array {
  const f = new Uint8Array(14 + 20 + 24);
  f.set(SERVER_MAC, 0);
  f.set(GATEWAY_MAC, 6);
  f[12] = 0x08;
  const ip = 14;
  f.set([0x45, 0, 0, 44, 0, 0, 0x40, 0, 64, 6, 0, 0, 198, 18, 130, 1 + (rand() % 254)], ip);
  f.set(SERVER, ip + 16);
  const c = fold(sum16(f, ip, ip + 20, 0));
  f[ip + 10] = c >> 8;
  f[ip + 11] = c & 0xff;
  const t = ip + 20;
  const sport = 1024 + (rand() % 64512);
  const isn = rand();
  f.set([sport >> 8, sport & 0xff, 0, 7, isn >>> 24, (isn >>> 16) & 0xff, (isn >>> 8) & 0xff, isn & 0xff, 0, 0, 0, 0, 6 << 4, 0x02, 0xfa, 0xf0, 0, 0, 0, 0, 2, 4, 5, 0xb4], t);
  const tc = fold(sum16(f, t, t + 24, sum16(f, ip + 12, ip + 20, 6 + 24)));
  f[t + 16] = tc >> 8;
  f[t + 17] = tc & 0xff;
  return f;
}

const syns = Number(process.argv[2] ?? 400_000);
let x = 12345;
const rand = () => (x = (Math.imul(x, 1664525) + 1013904223) >>> 0);
const frames = Array.from({ length: 4096 }, () => synFrame(rand));
/** Gives frame `f` a fresh source port and ISN (its TCP checksum is left stale: frames are delivered as verified). */
function refresh(f: Uint8Array): Uint8Array {
  const r = rand();
  f[34] = 4 + ((r >>> 8) & 0xfb);
  f[35] = r >>> 16;
  f[38] = rand() >>> 24;
  return f;
}

const clock = new VirtualClock();
const counting = new CountingClock(clock);
const link = new SinkLink();
const server = new Netstack({ clock: counting, seed: 2, dadTransmits: 0 });
const nic = server.stack.addNic(link);
server.stack.addAddress(nic, parseSubnet('198.18.0.2/24')!);
server.stack.addRoute({ destination: parseSubnet('0.0.0.0/0')!, gateway: GATEWAY, nicId: nic });
const l = server.socket(4, 'stream') as Endpoint;
l.bind({ address: new Uint8Array(4), port: 7 });
l.listen(4096);

let next = 0;
/** Delivers `n` SYNs in ring-sized batches (the link's RX_MORE within a batch), 1 ms of virtual time per batch. */
function flood(n: number): void {
  const d = link.dispatcher!;
  for (let done = 0; done < n; ) {
    const batch = Math.min(64, n - done);
    for (let i = 0; i < batch; i++) {
      const f = refresh(frames[next++ & 4095]!);
      d.deliverFrame(f, RX_CSUM_VERIFIED | (i < batch - 1 ? RX_MORE : 0));
    }
    d.deliverBatchEnd?.();
    link.answerArp();
    done += batch;
    clock.advance(1);
  }
}

flood(4096 + 50_000); // the queue fills, then a warm-up under cookies
const stats = () => server.counters();
const s0 = { ...stats() };
const f0 = link.frames;
const c0 = { nows: counting.nows, schedules: counting.schedules };
let gcs = 0;
const gcWatch = new PerformanceObserver((list) => (gcs += list.getEntries().length));
gcWatch.observe({ entryTypes: ['gc'] });
const heap0 = process.memoryUsage().heapUsed;
const cpu0 = process.cpuUsage();
const t0 = performance.now();
flood(syns);
const cpu = process.cpuUsage(cpu0);
const ms = performance.now() - t0;
await new Promise((r) => setTimeout(r, 50));
gcWatch.disconnect();
const s1 = stats();
const per = (k: string) => ((s1[k]! - s0[k]!) / syns).toFixed(3);
process.stdout.write(
  `${syns} flood SYNs under SYN cookies, per SYN (serving stack):\n` +
    `  SYN-ACKs by cookie ${per('tcp.syncookiesSent')}, frames out ${((link.frames - f0) / syns).toFixed(3)}, listen drops ${per('tcp.listenDrops')}\n` +
    `  clock reads ${((counting.nows - c0.nows) / syns).toFixed(2)}, timers scheduled ${((counting.schedules - c0.schedules) / syns).toFixed(3)}\n` +
    `  garbage collections per 100,000 SYNs ${((gcs * 100000) / syns).toFixed(1)} (heap ${((process.memoryUsage().heapUsed - heap0) / 1e6).toFixed(1)} MB after)\n` +
    `  CPU ${((cpu.user + cpu.system) / syns).toFixed(3)} µs per SYN (wall ${((ms * 1000) / syns).toFixed(3)} µs; ${Math.round(syns / (ms / 1000))} SYN/s on one core)\n` +
    `  half-open connections ${s1['tcp.passiveOpens']! - 0} opened in all; connections in the table ${server.tcp.connectionCount}\n`,
);
process.exit(0);
