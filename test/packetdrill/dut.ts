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
}

/** Per-script settings a DUT is built with. */
export interface DutConfig {
  readonly ipVersion: 4 | 6;
  /** Link MTU (--mtu), 1500 by default. */
  readonly mtu: number;
  /**
   * The shell lines before the script's first other event: a DUT whose settings are fixed once it runs
   * (tsvisor's TCP configuration) applies the sysctls among them when it is built.
   */
  readonly prelude?: readonly string[];
}

/** One DUT instance, good for one script. */
export interface Dut {
  readonly name: 'tsvisor' | 'linux';
  readonly sys: SocketSyscalls;
  readonly endpoints: Endpoints;
  /** Marks script time 0. */
  start(): void;
  /** Script time now, in ms. */
  now(): number;
  /** Lets time pass until script time `t` (virtual: advances the clock, firing timers; real: sleeps). */
  waitUntil(t: number): Promise<void>;
  /** Lets time pass until `p` settles or script time reaches `deadline`; whether it settled. */
  waitFor(p: Promise<unknown>, deadline: number): Promise<boolean>;
  /** The next frame the DUT sent towards the remote host, waiting until `deadline` at most. */
  nextFrame(deadline: number): Promise<CapturedFrame | undefined>;
  /** Delivers a frame from the remote host to the DUT. */
  inject(frame: Uint8Array): void;
  /** Applies a shell line where the DUT knows it. */
  shell(command: string): ShellOutcome;
  /** Gives up on blocked calls (deadline passed). */
  abort(): void;
  /** Releases everything the DUT holds (namespaces, sockets, timers). */
  close(): Promise<void>;
}
