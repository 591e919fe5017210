/**
 * The tsvisor DUT: a Netstack in this process on a VirtualClock, one NIC on a ChannelEndpoint whose written
 * frames the runner captures and into which it injects the remote host's, and the Sentry's socket layer
 * serving the script's system calls. Time only moves when the interpreter waits, one timer at a time, so a
 * script with a 60 s timeout takes milliseconds and every frame carries the exact virtual time it left at.
 */
import { parseAddress } from '../../netstack/addr.ts';
import { VirtualClock } from '../../netstack/clock.ts';
import { ChannelEndpoint } from '../../netstack/link/channel.ts';
import { Netstack } from '../../netstack/netstack.ts';
import type { TcpConfig } from '../../netstack/transport/tcp/protocol.ts';
import { SocketLayer } from '../../sentry/socket/syscalls.ts';
import { DUT_V4, DUT_V6, REMOTE_V4, REMOTE_V6 } from './addresses.ts';
import type { CapturedFrame, Dut, DutConfig, ShellOutcome } from './dut.ts';
import { Reassembler } from './fragments.ts';
import { type Endpoints, decodeFrame, isNoise, neighborReply } from './packets.ts';
import { freebsdToLinux, parseSysctl } from './shell.ts';

/** Linux sysctls (net.ipv4.*) with a TcpConfig field, and how their value converts. */
const SYSCTL_TO_TCP: Record<string, (v: string) => Partial<TcpConfig>> = {
  'net.ipv4.tcp_timestamps': (v) => ({ timestamps: v !== '0' }),
  'net.ipv4.tcp_sack': (v) => ({ sack: v !== '0' }),
  'net.ipv4.tcp_window_scaling': (v) => ({ windowScaling: v !== '0' }),
  'net.ipv4.tcp_syn_retries': (v) => ({ synRetries: Number(v) }),
  'net.ipv4.tcp_synack_retries': (v) => ({ synAckRetries: Number(v) }),
  'net.ipv4.tcp_retries2': (v) => ({ retries2: Number(v) }),
  'net.ipv4.tcp_fin_timeout': (v) => ({ finTimeout: Number(v) * 1000 }),
  'net.ipv4.tcp_syncookies': (v) => ({ synCookies: v !== '0' }),
  'net.ipv4.tcp_keepalive_time': (v) => ({ keepIdle: Number(v) }),
  'net.ipv4.tcp_keepalive_intvl': (v) => ({ keepIntvl: Number(v) }),
  'net.ipv4.tcp_keepalive_probes': (v) => ({ keepCnt: Number(v) }),
  'net.ipv4.tcp_challenge_ack_limit': (v) => ({ challengeAckLimit: Number(v) }),
  'net.ipv4.tcp_congestion_control': (v) => ({ congestion: v }),
};

/** The TcpConfig fields a shell line sets, or why it sets none. */
function tcpSettings(command: string): { set: Partial<TcpConfig>; note: string } | string {
  const s = parseSysctl(command);
  if (!s) return 'not a sysctl the runner knows; not run';
  const sets = s.dialect === 'linux' ? [{ key: s.key, value: s.value }] : freebsdToLinux(s);
  if (!sets) return `FreeBSD sysctl ${s.key} has no tsvisor equivalent`;
  let set: Partial<TcpConfig> = {};
  for (const x of sets) {
    const conv = SYSCTL_TO_TCP[x.key];
    if (!conv) return `sysctl ${x.key} has no tsvisor equivalent`;
    set = { ...set, ...conv(x.value) };
  }
  return { set, note: sets.map((x) => `${x.key}=${x.value}`).join(' ') };
}

/** Builds a tsvisor DUT for one script. */
export function createTsvisorDut(cfg: DutConfig): Dut {
  return new TsvisorDut(cfg);
}

const flush = () => new Promise<void>((r) => setImmediate(r));
/** Timers fired at one virtual instant before the DUT is declared stuck in a loop. */
const MAX_STEPS = 200_000;

class TsvisorDut implements Dut {
  readonly name = 'tsvisor' as const;
  readonly sys: SocketLayer;
  readonly endpoints: Endpoints;
  readonly clock = new VirtualClock(0);
  readonly netstack: Netstack;
  private readonly link: ChannelEndpoint;
  private readonly queue: CapturedFrame[] = [];
  private readonly reassembler = new Reassembler();
  private readonly applied = new Set<string>();
  private t0 = 0;
  private aborted = false;

  constructor(cfg: DutConfig) {
    const v4 = cfg.ipVersion === 4;
    this.endpoints = {
      dutMac: new Uint8Array([0x02, 0, 0, 0, 0, 0x01]),
      remoteMac: new Uint8Array([0x02, 0, 0, 0, 0, 0x02]),
      dutIp: parseAddress(v4 ? DUT_V4 : DUT_V6)!,
      remoteIp: parseAddress(v4 ? REMOTE_V4 : REMOTE_V6)!,
    };
    let tcp: Partial<TcpConfig> = {};
    for (const c of cfg.prelude ?? []) {
      const r = tcpSettings(c);
      if (typeof r !== 'string') {
        tcp = { ...tcp, ...r.set };
        this.applied.add(c);
      }
    }
    this.netstack = new Netstack({ clock: this.clock, seed: 1, dadTransmits: 0, tcp });
    this.link = new ChannelEndpoint({ clock: this.clock, mtu: cfg.mtu, macAddress: this.endpoints.dutMac, name: 'dut' });
    this.link.onWrite = (frame) => this.captured(frame);
    const nic = this.netstack.stack.addNic(this.link, { name: 'dut0' });
    const dut = v4 ? `${DUT_V4}/24` : `${DUT_V6}/64`;
    const e = this.netstack.stack.addAddress(nic, { address: this.endpoints.dutIp, prefixLength: v4 ? 24 : 64 });
    if (e) throw new Error(`tsvisor DUT: cannot add ${dut}: ${e}`);
    this.sys = new SocketLayer(this.netstack, this.clock);
  }

  private captured(frame: Uint8Array): void {
    const copy = frame.slice();
    const reply = neighborReply(this.endpoints, copy);
    if (reply) {
      // Delivered on the clock, never re-entering the stack from inside its own send path.
      this.link.inject(reply);
      return;
    }
    const whole = this.reassembler.push(copy);
    if (!whole) return;
    const d = decodeFrame(whole.frame);
    if (!d || isNoise(d)) return;
    this.queue.push({ frame: whole.frame, time: this.now(), fragments: whole.fragments });
  }

  start(): void {
    this.t0 = this.clock.now();
  }

  now(): number {
    return this.clock.now() - this.t0;
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
    if (!this.queue.length) await this.advance(Math.max(deadline, this.now()), () => this.queue.length > 0);
    return this.queue.shift();
  }

  inject(frame: Uint8Array): void {
    this.link.inject(frame);
    this.clock.runDue();
  }

  shell(command: string): ShellOutcome {
    const r = tcpSettings(command);
    if (typeof r === 'string') return { status: 'skipped', note: r };
    if (this.applied.has(command)) return { status: 'mapped', note: `${r.note} (applied when the stack was built)` };
    return { status: 'skipped', note: `${r.note}: tsvisor's TCP settings are fixed once the stack runs` };
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
