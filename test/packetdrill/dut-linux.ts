/**
 * The Linux DUT: the host kernel in a fresh network namespace per script. A veth pair joins the DUT's
 * namespace (198.18.0.1, fd74:7376::1) to a peer namespace whose kernel holds no address and so stays silent;
 * the runner injects and captures frames on the peer end through an AF_PACKET socket and answers ARP/NDP for
 * the remote host (198.18.0.2, fd74:7376::2) itself. Time is real.
 *
 * The DUT's end is named tun0, as packetdrill's own device, so defaults.sh's `tc qdisc add dev tun0 root pfifo`
 * finds the device it names. For upstream packetdrill's scripts (DutConfig.tso) it keeps TSO/GSO and checksum
 * offload on, as packetdrill's tun device (netdev.c: TUN_F_CSUM|TUN_F_TSO4|TUN_F_TSO6): the kernel sends TSO
 * packets whole and the capture side reads them whole (PACKET_VNET_HDR); GRO stays off, as on a tun device, so
 * what the runner injects reaches TCP as injected, and `--mss` packets go in as GSO packets, as packetdrill
 * writes them to its tun device. Other corpora, written against MSS-sized segments, get offloads off.
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { parseAddress } from '../../netstack/addr.ts';
import { GsoType } from '../../netstack/link/endpoint.ts';
import { AfPacketEndpoint } from '../../lib/packet.ts';
import { inNetns } from '../../lib/netns.ts';
import { createVethPair, nsRun, type VethPair } from '../../lib/testnet.ts';
import { DUT_V4, DUT_V6, PACKETDRILL_DEFAULT_REMOTES, REMOTE_V4, REMOTE_V6, UPSTREAM_ADDRESSES } from './addresses.ts';
import { CaptureQueue, settledBy } from './capture.ts';
import type { CapturedFrame, Dut, DutConfig, ShellContext, ShellOutcome } from './dut.ts';
import { HostSyscalls, blockingWorkerReady } from './host-syscalls.ts';
import { type Endpoints, decodeFrame } from './packets.ts';
import { freebsdToLinux, mapShellAddresses, parseSysctl } from './shell.ts';

/** The DUT's interface name: packetdrill's tun device's, which upstream scripts name in tc and ip commands. */
const DUT_DEV = 'tun0';
/** How much of a command's stderr a failure message quotes. */
const STDERR_QUOTE = 300;

function macBytes(s: string): Uint8Array {
  return new Uint8Array(s.split(':').map((x) => parseInt(x, 16)));
}

let instance = 0;

/**
 * The part of this process's DUT namespace names before the per-script number: the whole pid, so two runs of the
 * same code at once (a CI run beside a developer's) never share a name, and neither removes the other's namespaces
 * as leftovers of a crashed run.
 */
export function linuxDutNetnsPrefix(prefix: string): string {
  return `${prefix}-${process.pid}`;
}

/**
 * Sets a sysctl of a namespace by writing /proc/sys from a thread inside it (net.* files belong to the
 * opener's network namespace): microseconds, where spawning sysctl(8) takes milliseconds and would make a
 * script's first events late.
 */
function writeSysctl(netns: string, key: string, value: string): void {
  if (!/^net\.[A-Za-z0-9_.-]+$/.test(key)) throw new Error(`not a net.* sysctl: ${key}`);
  inNetns(netns, () => writeFileSync(`/proc/sys/${key.replace(/\./g, '/')}`, value));
}

/** Where the host lists the congestion controls a network namespace other than the first may make its default. */
const ALLOWED_CC = '/proc/sys/net/ipv4/tcp_allowed_congestion_control';

/**
 * Lets a DUT namespace make CUBIC its default, as defaults.sh asks (`tcp_congestion_control=cubic`): Linux refuses
 * a child namespace a default outside the host's allowed list (EPERM), and a host whose own default is another
 * (bbr here: allowed "reno bbr") would otherwise run the scripts' cwnd arithmetic under that one. Adds cubic to
 * the host's allowed list (what unprivileged sockets may choose), once per process; the host's default stays, and
 * the list is put back as it was when the process exits, so a test run leaves the host's setting as it found it.
 */
function allowCubic(): void {
  if (cubicAllowed) return;
  cubicAllowed = true;
  let allowed: string;
  try {
    allowed = readFileSync(ALLOWED_CC, 'utf8').trim();
  } catch {
    return; // no such knob: nothing to widen
  }
  if (allowed.split(/\s+/).includes('cubic')) return;
  writeFileSync(ALLOWED_CC, `${allowed} cubic`);
  process.once('exit', () => {
    try {
      writeFileSync(ALLOWED_CC, allowed);
    } catch {
      // the host refused: nothing more an exiting process can do
    }
  });
}
let cubicAllowed = false;

/** Builds a Linux DUT for one script; `prefix` names its namespaces (`${prefix}-${pid}-${n}-a`/`-b`). */
export async function createLinuxDut(prefix: string, cfg: DutConfig): Promise<Dut> {
  allowCubic();
  const pair = createVethPair({
    prefix: `${linuxDutNetnsPrefix(prefix)}-${instance++}`,
    devA: DUT_DEV,
    offloads: cfg.tso === true,
    addrA: `${DUT_V4}/24`,
    // IPv6 only where the script uses it: a link MTU below 1280 (--mtu=72) refuses IPv6 addresses.
    addr6A: cfg.ipVersion === 6 ? `${DUT_V6}/64` : undefined,
    mtu: cfg.mtu === 1500 ? undefined : cfg.mtu,
    // Below 1280 the kernel takes IPv6 off the link, so there is no disable_ipv6 knob left to turn.
    ipv6: cfg.mtu < 1280 ? true : undefined,
  });
  try {
    // A tun device does no GRO: segments the runner injects reach TCP one by one.
    if (cfg.tso) nsRun(pair.nsA, ['ethtool', '-K', DUT_DEV, 'gro', 'off']);
    // As packetdrill routes its remote: a host route of its own on the DUT's device, which a script's
    // `ip route change REMOTE ... advmss N mtu lock M` then changes.
    if (cfg.ipVersion === 6) nsRun(pair.nsA, ['ip', '-6', 'route', 'add', `${REMOTE_V6}/128`, 'dev', DUT_DEV]);
    else nsRun(pair.nsA, ['ip', 'route', 'add', `${REMOTE_V4}/32`, 'dev', DUT_DEV]);
    const link = await AfPacketEndpoint.open({ netns: pair.nsB, dev: pair.devB, ringFrames: 256, offloads: cfg.tso === true });
    const dut = new LinuxDut(pair, link, cfg);
    await blockingWorkerReady();
    return dut;
  } catch (e) {
    pair.destroy();
    throw e;
  }
}

class LinuxDut implements Dut {
  readonly name = 'linux' as const;
  readonly sys: HostSyscalls;
  readonly endpoints: Endpoints;
  private t0 = performance.now();
  /** CLOCK_REALTIME (ms) minus performance.now(), to place the kernel's capture timestamps on the script clock. */
  private realOffset = wallOffset();
  private readonly frames: CaptureQueue;

  constructor(
    private readonly pair: VethPair,
    private readonly link: AfPacketEndpoint,
    private readonly cfg: DutConfig,
  ) {
    this.sys = new HostSyscalls(pair.nsA);
    this.endpoints = {
      dutMac: macBytes(pair.macA),
      remoteMac: macBytes(pair.macB),
      dutIp: parseAddress(cfg.ipVersion === 6 ? DUT_V6 : DUT_V4)!,
      remoteIp: parseAddress(cfg.ipVersion === 6 ? REMOTE_V6 : REMOTE_V4)!,
    };
    // No tunables beyond the namespace's defaults: packetdrill sets none of its own (defaults.sh and the script's
    // lines do), and a fresh namespace per script already keeps what one script taught the kernel from the next.
    // tcp_no_metrics_save=1, set here before, changed what a script's later connections inherit from its earlier.
    this.frames = new CaptureQueue(this.endpoints, (reply) => this.inject(reply));
    link.attach({
      deliverFrame: (frame) =>
        // The kernel's capture time, as packetdrill's sniffer uses it: not when this thread came round to the frame.
        this.frames.capture(frame, () => Math.min(this.now(), this.link.rxTimeMs - this.realOffset - this.t0)),
    });
  }

  start(): void {
    this.realOffset = wallOffset();
    this.t0 = performance.now();
  }

  now(): number {
    return performance.now() - this.t0;
  }

  scriptTimeOfRealtime(realtimeMs: number): number {
    return realtimeMs - this.realOffset - this.t0;
  }

  async waitUntil(t: number): Promise<void> {
    const d = t - this.now();
    if (d > 0) await new Promise((r) => setTimeout(r, d));
  }

  waitFor(p: Promise<unknown>, deadline: number): Promise<boolean> {
    return settledBy(p, deadline, () => this.now());
  }

  nextFrame(deadline: number): Promise<CapturedFrame | undefined> {
    return this.frames.next(deadline, () => this.now());
  }

  inject(frame: Uint8Array): void {
    const gso = !this.cfg.tso ? undefined : this.cfg.mss !== undefined ? gsoOf(frame, this.cfg.mss) : oversizeGso(frame, this.cfg.mtu);
    if (gso) this.link.writeGso(frame.slice(), gso);
    else this.link.writeFrame(frame.slice());
    this.link.flush();
  }

  shell(command: string, ctx: ShellContext): ShellOutcome | Promise<ShellOutcome> {
    const s = parseSysctl(command);
    if (s?.dialect === 'freebsd') {
      const sets = freebsdToLinux(s);
      if (!sets) return { status: 'skipped', note: `FreeBSD sysctl ${s.key} has no Linux equivalent` };
      for (const x of sets) {
        try {
          writeSysctl(this.pair.nsA, x.key, x.value);
        } catch (e) {
          return { status: 'ran', failed: true, note: `sysctl ${x.key}=${x.value}: ${(e as Error).message.split('\n')[0]}` };
        }
      }
      return { status: 'mapped', note: sets.map((x) => `${x.key}=${x.value}`).join(' ') };
    }
    if (ctx.dialect === 'freebsd') return { status: 'skipped', note: 'a FreeBSD command; not run on Linux' };
    return this.runShell(command, ctx);
  }

  /** /bin/sh -c `command` inside the DUT's namespace, as packetdrill's system() runs it inside its own. */
  private runShell(original: string, ctx: ShellContext): Promise<ShellOutcome> {
    const v6 = this.cfg.ipVersion === 6;
    const mapped = mapShellAddresses(original, v6 ? REMOTE_V6 : REMOTE_V4, [UPSTREAM_ADDRESSES[this.cfg.ipVersion].remote, ...PACKETDRILL_DEFAULT_REMOTES, ...(this.cfg.scriptRemote ? [this.cfg.scriptRemote] : [])]);
    const command = mapped.command;
    const parts = /\btun0\b/.test(command) ? [{ text: 'tun0', why: `the DUT's veth end (upstream: packetdrill's tun device), offloads as a tun device has them` }] : [];
    parts.push(...mapped.parts);
    return new Promise((resolve) => {
      let err = '';
      // Forked while the main thread is inside the namespace, so the shell and all it starts live there.
      const child = inNetns(this.pair.nsA, () =>
        spawn('/bin/sh', ['-c', command], { cwd: ctx.cwd, env: { ...process.env, ...ctx.env }, stdio: ['ignore', 'ignore', 'pipe'] }),
      );
      child.stderr!.on('data', (b: Buffer) => {
        if (err.length < STDERR_QUOTE) err += b.toString();
      });
      child.on('error', (e) => resolve({ status: 'ran', failed: true, note: e.message }));
      child.on('close', (code, signal) => {
        const failed = code !== 0;
        const why = signal ? `killed by ${signal}` : `exit status ${code}`;
        resolve({ status: 'ran', failed, note: failed ? `${why}${err.trim() ? `: ${err.trim().slice(0, STDERR_QUOTE)}` : ''}` : 'ran', parts });
      });
    });
  }

  abort(): void {
    this.sys.aborted = true;
  }

  async close(): Promise<void> {
    this.sys.aborted = true;
    this.sys.closeAll();
    this.link.close();
    this.pair.destroy();
  }
}

/**
 * GSO fields for an inbound TCP frame whose payload is longer than `mss`: packetdrill's --mss writes such a
 * packet to its tun device as one GSO packet with gso_size = mss, and the kernel takes it in as segments of that
 * size (one GRO-like packet).
 */
function gsoOf(frame: Uint8Array, mss: number): import('../../netstack/link/endpoint.ts').GsoOptions | undefined {
  const d = decodeFrame(frame);
  if (!d?.tcp || d.tcp.payload.length <= mss) return undefined;
  // The checksum is whole (over all the payload), not partial: the kernel verifies it as it comes, one packet.
  const hdrLen = frame.length - d.tcp.payload.length;
  return { gsoType: d.v === 4 ? GsoType.TCPV4 : GsoType.TCPV6, gsoSize: mss, hdrLen };
}

/**
 * GSO fields for an inbound TCP frame longer than the link MTU, or undefined for one that fits. packetdrill writes
 * such a packet (`< . 1:4001(4000)` without --mss) to its tun device, which takes any length; a veth drops a
 * frame over its MTU unless it is a GSO packet. So it goes in as a GSO packet whose segment size is nearly the
 * whole payload: the kernel takes it as GSO (it refuses gso_size ≥ what follows the fixed TCP header) and TCP
 * sees one packet of that length, as from the tun device.
 */
export function oversizeGso(frame: Uint8Array, mtu: number): import('../../netstack/link/endpoint.ts').GsoOptions | undefined {
  // The veth takes frames up to MTU + its Ethernet header + a VLAN tag's 4 bytes without GSO.
  if (frame.length <= mtu + 14 + 4) return undefined;
  const d = decodeFrame(frame);
  if (!d?.tcp) return undefined;
  const hdrLen = frame.length - d.tcp.payload.length;
  return { gsoType: d.v === 4 ? GsoType.TCPV4 : GsoType.TCPV6, gsoSize: Math.max(1, d.tcp.payload.length + d.tcp.optionsLength - 1), hdrLen };
}

/** CLOCK_REALTIME minus performance.now() in ms, to well under a millisecond (Date.now() read as it ticks). */
function wallOffset(): number {
  const d0 = Date.now();
  let d = d0;
  while (d === d0) d = Date.now();
  return d - performance.now();
}
