/**
 * A profiling driver for the TCP paths: moves 1 GiB between the two stacks of bench/micro/pair.ts (MTU from the
 * first argument, default 1500) and prints the rate; run it under `node --import tsx --cpu-prof
 * --cpu-prof-dir=out/prof bench/micro/tcp-prof.ts 1500` and read the profile with bench/profile-top.ts.
 */
import { tcpPair } from './pair.ts';
const mtu = Number(process.argv[2] ?? 1500);
const data = new Uint8Array(65536).fill(0x5a);
const pair = tcpPair(mtu);
pair.pump(data, 4 << 20);
const t0 = performance.now();
const N = 1 << 30;
pair.pump(data, N);
const s = (performance.now() - t0) / 1000;
console.log(`mtu ${mtu}: ${(N * 8 / s / 1e9).toFixed(3)} Gbit/s`);
