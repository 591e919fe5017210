/**
 * The Linux DUT: the host kernel in a fresh network namespace per script. A veth pair joins the DUT's
 * namespace (198.18.0.1, fd74:7376::1) to a peer namespace whose kernel holds no address and so stays silent;
 * the runner injects and captures frames on the peer end through an AF_PACKET socket and answers ARP/NDP for
 * the remote host (198.18.0.2, fd74:7376::2) itself. Offloads are off on both ends; time is real.
 */
import { parseAddress } from '../../netstack/addr.ts';
import { AfPacketEndpoint } from '../../lib/packet.ts';
import { writeFileSync } from 'node:fs';
import { inNetns } from '../../lib/netns.ts';
import { createVethPair, type VethPair } from '../../lib/testnet.ts';
import { DUT_V4, DUT_V6, REMOTE_V4, REMOTE_V6 } from './addresses.ts';
import type { CapturedFrame, Dut, DutConfig, ShellOutcome } from './dut.ts';
import { HostSyscalls } from './host-syscalls.ts';
import { Reassembler } from './fragments.ts';
import { type Endpoints, decodeFrame, isNoise, neighborReply } from './packets.ts';
import { freebsdToLinux, parseSysctl } from './shell.ts';


function macBytes(s: string): Uint8Array {
  return new Uint8Array(s.split(':').map((x) => parseInt(x, 16)));
}

let instance = 0;

/**
 * Sets a sysctl of a namespace by writing /proc/sys from a thread inside it (net.* files belong to the
 * opener's network namespace): microseconds, where spawning sysctl(8) takes milliseconds and would make a
 * script's first events late.
 */
function writeSysctl(netns: string, key: string, value: string): void {
  if (!/^net\.[A-Za-z0-9_.-]+$/.test(key)) throw new Error(`not a net.* sysctl: ${key}`);
  inNetns(netns, () => writeFileSync(`/proc/sys/${key.replace(/\./g, '/')}`, value));
}

/** Builds a Linux DUT for one script; `prefix` names its namespaces (`${prefix}-${n}-a`/`-b`). */
export async function createLinuxDut(prefix: string, cfg: DutConfig): Promise<Dut> {
  const pair = createVethPair({
    prefix: `${prefix}-${process.pid % 10000}-${instance++}`,
    addrA: `${DUT_V4}/24`,
    // IPv6 only where the script uses it: a link MTU below 1280 (--mtu=72) refuses IPv6 addresses.
    addr6A: cfg.ipVersion === 6 ? `${DUT_V6}/64` : undefined,
    mtu: cfg.mtu === 1500 ? undefined : cfg.mtu,
    // Below 1280 the kernel takes IPv6 off the link, so there is no disable_ipv6 knob left to turn.
    ipv6: cfg.mtu < 1280 ? true : undefined,
  });
  try {
    const link = await AfPacketEndpoint.open({ netns: pair.nsB, dev: pair.devB, ringFrames: 256 });
    return new LinuxDut(pair, link, cfg);
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
  private readonly queue: CapturedFrame[] = [];
  private readonly reassembler = new Reassembler();
  private waiter: (() => void) | undefined;

  constructor(
    private readonly pair: VethPair,
    private readonly link: AfPacketEndpoint,
    cfg: DutConfig,
  ) {
    this.sys = new HostSyscalls(pair.nsA);
    this.endpoints = {
      dutMac: macBytes(pair.macA),
      remoteMac: macBytes(pair.macB),
      dutIp: parseAddress(cfg.ipVersion === 6 ? DUT_V6 : DUT_V4)!,
      remoteIp: parseAddress(cfg.ipVersion === 6 ? REMOTE_V6 : REMOTE_V4)!,
    };
    // The DUT's tunables that packetdrill's own harness sets for Linux runs, so results do not depend on
    // what an earlier connection taught the kernel.
    writeSysctl(pair.nsA, 'net.ipv4.tcp_no_metrics_save', '1');
    link.attach({
      deliverFrame: (frame) => {
        const copy = frame.slice();
        const reply = neighborReply(this.endpoints, copy);
        if (reply) {
          this.inject(reply);
          return;
        }
        const whole = this.reassembler.push(copy);
        if (!whole) return;
        const d = decodeFrame(whole.frame);
        if (!d || isNoise(d)) return;
        this.queue.push({ frame: whole.frame, time: this.now(), fragments: whole.fragments });
        this.waiter?.();
      },
    });
  }

  start(): void {
    this.t0 = performance.now();
  }

  now(): number {
    return performance.now() - this.t0;
  }

  async waitUntil(t: number): Promise<void> {
    const d = t - this.now();
    if (d > 0) await new Promise((r) => setTimeout(r, d));
  }

  async waitFor(p: Promise<unknown>, deadline: number): Promise<boolean> {
    let settled = false;
    p.then(
      () => (settled = true),
      () => (settled = true),
    );
    await Promise.resolve();
    while (!settled && this.now() < deadline) await new Promise((r) => setTimeout(r, Math.min(2, Math.max(0, deadline - this.now()))));
    await Promise.resolve();
    return settled;
  }

  async nextFrame(deadline: number): Promise<CapturedFrame | undefined> {
    for (;;) {
      const f = this.queue.shift();
      if (f) return f;
      const left = deadline - this.now();
      if (left <= 0) return undefined;
      await new Promise<void>((r) => {
        const timer = setTimeout(r, left);
        this.waiter = () => {
          clearTimeout(timer);
          this.waiter = undefined;
          r();
        };
      });
    }
  }

  inject(frame: Uint8Array): void {
    this.link.writeFrame(frame.slice());
    this.link.flush();
  }

  shell(command: string): ShellOutcome {
    const s = parseSysctl(command);
    if (!s) return { status: 'skipped', note: 'not a sysctl the runner knows; not run' };
    const sets = s.dialect === 'linux' ? [{ key: s.key, value: s.value }] : freebsdToLinux(s);
    if (!sets) return { status: 'skipped', note: `FreeBSD sysctl ${s.key} has no Linux equivalent` };
    for (const x of sets) {
      try {
        writeSysctl(this.pair.nsA, x.key, x.value);
      } catch (e) {
        return { status: 'ran', failed: true, note: `sysctl ${x.key}=${x.value}: ${(e as Error).message.split('\n')[0]}` };
      }
    }
    return { status: s.dialect === 'linux' ? 'ran' : 'mapped', note: sets.map((x) => `${x.key}=${x.value}`).join(' ') };
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
