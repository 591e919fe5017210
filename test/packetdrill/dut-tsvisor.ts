/**
 * The tsvisor DUT: a Netstack in this process on a VirtualClock, one NIC on a ChannelEndpoint whose written
 * frames the runner captures and into which it injects the remote host's, and the Sentry's socket layer
 * serving the script's system calls. Time only moves when the interpreter waits, one timer at a time, so a
 * script with a 60 s timeout takes milliseconds and every frame carries the exact virtual time it left at.
 */
import { parseAddress } from '../../netstack/addr.ts';
import { type Clock, VirtualClock } from '../../netstack/clock.ts';
import { ChannelEndpoint } from '../../netstack/link/channel.ts';
import { Netstack } from '../../netstack/netstack.ts';
import { SocketLayer } from '../../sentry/socket/syscalls.ts';
import { DUT_V4, DUT_V6, REMOTE_V4, REMOTE_V6 } from './addresses.ts';
import { CaptureQueue } from './capture.ts';
import type { CapturedFrame, Dut, DutConfig, ShellContext, ShellOutcome } from './dut.ts';
import type { Endpoints } from './packets.ts';
import { applyShell, freebsdToLinux, parseSysctl } from './shell.ts';

/** Builds a tsvisor DUT for one script. */
export function createTsvisorDut(cfg: DutConfig): Dut {
  return new TsvisorDut(cfg);
}

/**
 * What both netstack DUTs are built on: a Netstack on `clock` with one in-memory channel NIC at the DUT's address,
 * whose sent frames `frames` captures at script time `now()`. `label` names the DUT in errors.
 */
export function netstackOnChannel(
  cfg: DutConfig,
  clock: Clock,
  now: () => number,
  label: string,
): { endpoints: Endpoints; netstack: Netstack; link: ChannelEndpoint; frames: CaptureQueue } {
  const v4 = cfg.ipVersion === 4;
  const endpoints: Endpoints = {
    dutMac: new Uint8Array([0x02, 0, 0, 0, 0, 0x01]),
    remoteMac: new Uint8Array([0x02, 0, 0, 0, 0, 0x02]),
    dutIp: parseAddress(v4 ? DUT_V4 : DUT_V6)!,
    remoteIp: parseAddress(v4 ? REMOTE_V4 : REMOTE_V6)!,
  };
  const netstack = new Netstack({ clock, seed: 1, dadTransmits: 0 });
  // For upstream's scripts the link offloads as packetdrill's tun device does (TSO out, any length in).
  const link = new ChannelEndpoint({ clock, mtu: cfg.mtu, macAddress: endpoints.dutMac, name: 'dut', gso: cfg.tso === true });
  // Neighbour answers are delivered on the clock, never re-entering the stack from inside its own send path.
  const frames = new CaptureQueue(endpoints, (reply) => link.inject(reply));
  link.onWrite = (frame) => frames.capture(frame, now);
  const nic = netstack.stack.addNic(link, { name: DUT_NIC });
  const e = netstack.stack.addAddress(nic, { address: endpoints.dutIp, prefixLength: v4 ? 24 : 64 });
  if (e) throw new Error(`${label}: cannot add ${v4 ? `${DUT_V4}/24` : `${DUT_V6}/64`}: ${e}`);
  return { endpoints, netstack, link, frames };
}

/** The DUT's NIC: packetdrill's tun0. */
const DUT_NIC = 'dut0';

/**
 * A shell line on a DUT built on tsvisor's netstack: sysctls go to the stack's settings table (applyShell), FreeBSD
 * ones through their Linux equivalents; what cannot apply comes back as parts. `restore` keeps what
 * set_sysctls.py saved for its restore script, by file name.
 */
export function netstackShell(netstack: Netstack, restore: Map<string, { key: string; value: string }[]>, command: string, ctx: ShellContext): ShellOutcome {
  const s = parseSysctl(command);
  if (s?.dialect === 'freebsd') {
    const sets = freebsdToLinux(s);
    if (!sets) return { status: 'skipped', note: `FreeBSD sysctl ${s.key} has no tsvisor equivalent` };
    const parts: { text: string; why: string }[] = [];
    for (const x of sets) {
      const r = netstack.sysctl.set(x.key, x.value);
      if ('error' in r) return { status: 'skipped', note: r.error };
      if (!r.applied) parts.push({ text: `${x.key}=${x.value}`, why: r.why });
    }
    return { status: 'mapped', note: sets.map((x) => `${x.key}=${x.value}`).join(' '), parts };
  }
  if (ctx.dialect === 'freebsd') return { status: 'skipped', note: 'a FreeBSD command; tsvisor has no equivalent' };
  const r = applyShell(command, ctx, {
    sysctl: netstack.sysctl,
    restore,
    flushMetrics: () => netstack.tcp.fastOpenCache.clear(),
    // The DUT's one NIC stands for packetdrill's tun0.
    setTso: (dev, on) => {
      const nic = netstack.stack.nics().find((n) => n.name === DUT_NIC);
      return dev === 'tun0' && nic !== undefined && netstack.stack.setNicTso(nic.id, on);
    },
  });
  const note = r.applied.length ? `settings: ${r.applied.join(' ')}` : 'no setting applied';
  return { status: r.applied.length ? 'mapped' : 'ran', note: r.failed ?? note, failed: r.failed !== undefined, parts: r.parts };
}

const flush = () => new Promise<void>((r) => setImmediate(r));
/** Timers fired at one virtual instant before the DUT is declared stuck in a loop. */
const MAX_STEPS = 200_000;
/** CLOCK_REALTIME (ms) at the virtual clock's 0, for the kernel timestamps the socket layer reports. */
const WALL_EPOCH_MS = Date.UTC(2026, 0, 1);

class TsvisorDut implements Dut {
  readonly name = 'tsvisor' as const;
  readonly sys: SocketLayer;
  readonly endpoints: Endpoints;
  readonly clock = new VirtualClock(0);
  readonly netstack: Netstack;
  private readonly link: ChannelEndpoint;
  private readonly frames: CaptureQueue;
  /** What set_sysctls.py saved for its restore script, by file name. */
  private readonly restore = new Map<string, { key: string; value: string }[]>();
  private t0 = 0;
  private aborted = false;

  constructor(cfg: DutConfig) {
    ({ endpoints: this.endpoints, netstack: this.netstack, link: this.link, frames: this.frames } = netstackOnChannel(cfg, this.clock, () => this.now(), 'tsvisor DUT'));
    this.sys = new SocketLayer(this.netstack, this.clock, (ms) => WALL_EPOCH_MS + ms);
  }

  start(): void {
    this.t0 = this.clock.now();
  }

  now(): number {
    return this.clock.now() - this.t0;
  }

  scriptTimeOfRealtime(realtimeMs: number): number {
    return realtimeMs - WALL_EPOCH_MS - this.t0;
  }

  /** Fires timers one deadline at a time up to script time `t` (or until `stop()`), letting promises settle between. */
  private async advance(t: number, stop: () => boolean): Promise<void> {
    const target = this.t0 + t;
    await flush();
    let steps = 0;
    for (;;) {
      if (stop() || this.aborted) return;
      const next = this.clock.nextDeadline();
      if (next === undefined || next > target) break;
      if (++steps > MAX_STEPS) throw new Error(`tsvisor DUT: more than ${MAX_STEPS} timers before ${t} ms (a timer loop?)`);
      this.clock.advanceTo(next);
      await flush();
    }
    if (target > this.clock.now()) this.clock.advanceTo(target);
    await flush();
  }

  async waitUntil(t: number): Promise<void> {
    await this.advance(t, () => false);
  }

  async waitFor(p: Promise<unknown>, deadline: number): Promise<boolean> {
    let settled = false;
    p.then(
      () => (settled = true),
      () => (settled = true),
    );
    await this.advance(Math.max(deadline, this.now()), () => settled);
    return settled;
  }

  async nextFrame(deadline: number): Promise<CapturedFrame | undefined> {
    if (!this.frames.length) await this.advance(Math.max(deadline, this.now()), () => this.frames.length > 0);
    return this.frames.shift();
  }

  inject(frame: Uint8Array): void {
    this.link.inject(frame);
    this.clock.runDue();
  }

  /** Sysctls go to the stack's settings table (applyShell); what cannot apply comes back as parts. */
  shell(command: string, ctx: ShellContext): ShellOutcome {
    return netstackShell(this.netstack, this.restore, command, ctx);
  }

  abort(): void {
    this.aborted = true;
  }

  async close(): Promise<void> {
    this.aborted = true;
    // A lingering close's Promise is left behind: the stack it waits on goes away just below.
    for (const fd of this.sys.openFds()) void this.sys.close(fd);
    this.netstack.close();
    this.link.close();
  }
}
