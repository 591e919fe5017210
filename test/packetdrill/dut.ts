/**
 * A device under test as the interpreter sees it: a socket-call interface, a link on which the runner injects
 * the remote host's frames and captures the DUT's, and a clock (virtual for tsvisor, real for Linux). The
 * interpreter is the same for every DUT, so a difference in results is a difference between the stacks.
 */
import type { SocketSyscalls } from '../../sentry/socket/api.ts';
import type { Endpoints } from './packets.ts';

/** A frame the DUT sent, with the script time (ms) at which it left. */
export interface CapturedFrame {
  readonly frame: Uint8Array;
  readonly time: number;
  /** How many IP fragments the DUT sent this datagram in (reassembled by the runner); 1 when not fragmented. */
  readonly fragments?: number;
}

/** What became of a shell line. */
export interface ShellOutcome {
  /** ran: executed on the DUT; mapped: turned into a DUT setting; skipped: not applicable here. */
  readonly status: 'ran' | 'mapped' | 'skipped';
  readonly note: string;
  /** A command that ran and failed (exit status ≠ 0) makes the script fail, as in packetdrill. */
  readonly failed?: boolean;
  /** Parts of a command that ran that did not apply (a qdisc tsvisor has no equivalent of), for skipped lines. */
  readonly parts?: readonly { readonly text: string; readonly why: string }[];
}

/** Where and how a shell line runs: packetdrill runs it with /bin/sh in the script's folder. */
export interface ShellContext {
  /** The script's folder: relative paths (`../common/defaults.sh`) are relative to it. */
  readonly cwd: string;
  /** Added to the environment: PACKETDRILL_PID, which set_sysctls.py names its restore script after. */
  readonly env: Readonly<Record<string, string>>;
  /** The script's dialect: FreeBSD commands (sockstat, tcpdrop, net.inet sysctls) are never run on Linux. */
  readonly dialect: 'linux' | 'freebsd';
}

/** Per-script settings a DUT is built with. */
export interface DutConfig {
  readonly ipVersion: 4 | 6;
  /** Link MTU (--mtu), 1500 by default. */
  readonly mtu: number;
  /** --mss: inbound TCP packets with more payload go in as one GSO packet of segments this size. */
  readonly mss?: number;
  /** The DUT's link does TSO/GSO as packetdrill's tun device (upstream's own scripts); else MSS-sized frames. */
  readonly tso?: boolean;
  /** The script's own --remote_ip, which its shell lines may name (mapped to the runner's remote). */
  readonly scriptRemote?: string;
}

/** The DUTs: tsvisor's stack in this process, the host's kernel, tsvisor's stack behind the sandbox's traps. */
export type DutName = 'tsvisor' | 'linux' | 'sandbox';

/** One DUT instance, good for one script. */
export interface Dut {
  readonly name: DutName;
  readonly sys: SocketSyscalls;
  readonly endpoints: Endpoints;
  /** Marks script time 0. */
  start(): void;
  /** Script time now, in ms. */
  now(): number;
  /** The script time of a CLOCK_REALTIME instant (ms), for kernel timestamps (SCM_TIMESTAMPING); real-time DUTs only. */
  scriptTimeOfRealtime?(realtimeMs: number): number;
  /** Lets time pass until script time `t` (virtual: advances the clock, firing timers; real: sleeps). */
  waitUntil(t: number): Promise<void>;
  /** Lets time pass until `p` settles or script time reaches `deadline`; whether it settled. */
  waitFor(p: Promise<unknown>, deadline: number): Promise<boolean>;
  /** The next frame the DUT sent towards the remote host, waiting until `deadline` at most. */
  nextFrame(deadline: number): Promise<CapturedFrame | undefined>;
  /** Delivers a frame from the remote host to the DUT. */
  inject(frame: Uint8Array): void;
  /** Runs (Linux) or applies (tsvisor: sysctls into its settings table) a shell line. */
  shell(command: string, ctx: ShellContext): ShellOutcome | Promise<ShellOutcome>;
  /** Gives up on blocked calls (deadline passed). */
  abort(): void;
  /** Releases everything the DUT holds (namespaces, sockets, timers). */
  close(): Promise<void>;
}
