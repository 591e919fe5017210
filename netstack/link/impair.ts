/**
 * A fault-injecting link: wraps any link and applies seeded loss, duplication, reordering, delay with jitter
 * and bit corruption to the frames crossing it, in the manner of Linux's netem qdisc (which our kernel lacks).
 * Every decision comes from its own seeded Rng and every delay from the clock, so a run is reproducible.
 */

import type { Clock, Timer } from '../clock.ts';
import { Rng } from '../rand.ts';
import { type LinkCapabilities, type LinkDispatcher, type LinkEndpoint, RX_CSUM_VERIFIED } from './endpoint.ts';

/** Which directions an impairment applies to: received frames, sent frames, or both. */
export type ImpairDirection = 'both' | 'in' | 'out';

/** What an ImpairEndpoint does; probabilities are in [0, 1], times in ms. */
export interface ImpairSpec {
  /** Probability that a frame is dropped. */
  loss: number;
  /** Probability that a frame is sent twice. */
  dup: number;
  /** Probability that a frame is held back and sent after the next one. */
  reorder: number;
  /** Probability that one random bit of a frame is flipped. */
  corrupt: number;
  /** Delay added to every frame, in ms. */
  delayMs: number;
  /** Each frame's delay varies uniformly by up to ± this many ms (order is still kept). */
  jitterMs: number;
  /** Seed of the decisions. */
  seed: number;
  /** Directions impaired. */
  dir: ImpairDirection;
}

/** The spec that changes nothing. */
export const NO_IMPAIRMENT: Readonly<ImpairSpec> = Object.freeze({
  loss: 0,
  dup: 0,
  reorder: 0,
  corrupt: 0,
  delayMs: 0,
  jitterMs: 0,
  seed: 1,
  dir: 'both',
});

const PROBABILITIES = ['loss', 'dup', 'reorder', 'corrupt'] as const;
const NUMBER_RE = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;
const UNITS: Record<string, number> = { '': 1, ms: 1, us: 0.001, s: 1000 };

/**
 * Parses "loss=0.02,dup=0.01,reorder=0.02,delay=1ms,jitter=0.5ms,corrupt=0.001,seed=7,dir=both" (any subset, any
 * order; delay and jitter take ms, us or s, bare numbers are ms) into a spec, or returns a one-line error.
 */
export function parseImpairSpec(text: string): ImpairSpec | string {
  const spec: ImpairSpec = { ...NO_IMPAIRMENT };
  const seen = new Set<string>();
  const trimmed = text.trim();
  if (trimmed === '') return spec;
  for (const item of trimmed.split(',')) {
    const eq = item.indexOf('=');
    if (eq < 0) return `impair: expected key=value, got "${item.trim()}"`;
    const key = item.slice(0, eq).trim();
    const value = item.slice(eq + 1).trim();
    if (seen.has(key)) return `impair: ${key} given twice`;
    seen.add(key);
    switch (key) {
      case 'loss':
      case 'dup':
      case 'reorder':
      case 'corrupt': {
        if (!NUMBER_RE.test(value)) return `impair: ${key} is not a number: "${value}"`;
        const p = Number(value);
        if (!(p >= 0 && p <= 1)) return `impair: ${key} must be a probability in [0,1], got ${value}`;
        spec[key] = p;
        break;
      }
      case 'delay':
      case 'jitter': {
        const m = /^(.*?)(ms|us|s)?$/.exec(value)!;
        const num = m[1]!;
        if (!NUMBER_RE.test(num)) return `impair: ${key} is not a duration: "${value}"`;
        const ms = Number(num) * UNITS[m[2] ?? '']!;
        if (!(ms >= 0 && Number.isFinite(ms))) return `impair: ${key} must be a non-negative duration, got ${value}`;
        if (key === 'delay') spec.delayMs = ms;
        else spec.jitterMs = ms;
        break;
      }
      case 'seed': {
        if (!/^\d+$/.test(value) || Number(value) > 0xffffffff) {
          return `impair: seed must be an integer in [0, 4294967295], got "${value}"`;
        }
        spec.seed = Number(value);
        break;
      }
      case 'dir':
        if (value !== 'both' && value !== 'in' && value !== 'out') {
          return `impair: dir must be both, in or out, got "${value}"`;
        }
        spec.dir = value;
        break;
      default:
        return `impair: unknown key "${key}" (known: loss, dup, reorder, corrupt, delay, jitter, seed, dir)`;
    }
  }
  return spec;
}

/** Counters of what an ImpairEndpoint did, over both directions. */
export interface ImpairCounters {
  /** Frames dropped by `loss` (and frames discarded on close while held). */
  dropped: number;
  /** Extra copies sent by `dup`. */
  duplicated: number;
  /** Frames that another frame overtook because of `reorder`. */
  reordered: number;
  /** Frames that waited in a delay queue. */
  delayed: number;
  /** Frames with a bit flipped by `corrupt`. */
  corrupted: number;
}

/** Options of an ImpairEndpoint beyond the spec. */
export interface ImpairOptions {
  /** How long a frame held back for reordering waits for a successor before going alone; 1 ms by default. */
  reorderHoldMs?: number;
}

interface Queued {
  at: number;
  frame: Uint8Array;
  flags: number;
}

/**
 * One direction's pipeline after the per-frame decisions: the reorder slot and the delay queue. Frames leave in
 * the order they entered, except for the one held back for reordering.
 */
class Lane {
  private queue: Queued[] = [];
  private lastAt = -Infinity;
  private timer: Timer | null = null;
  private held: Uint8Array | null = null;
  private heldFlags = 0;
  private heldTimer: Timer | null = null;

  constructor(
    private readonly link: ImpairEndpoint,
    private readonly clock: Clock,
    /** Hands a frame on with its RX_* flags. */
    private readonly emit: (frame: Uint8Array, flags: number) => void,
    /** Ends a burst of frames released from a timer (flush or deliverBatchEnd). */
    private readonly end: () => void,
  ) {}

  /** Takes one frame after loss/dup/corrupt; `owned` says whether it may be kept without copying. */
  accept(frame: Uint8Array, owned: boolean, flags = 0): void {
    if (this.held === null && this.link.roll(this.link.spec.reorder)) {
      this.held = owned ? frame : frame.slice();
      this.heldFlags = flags;
      this.heldTimer = this.clock.schedule(this.link.reorderHoldMs, () => {
        this.heldTimer = null;
        const h = this.held!;
        this.held = null;
        this.stage(h, true, true, this.heldFlags);
      });
      return;
    }
    this.stage(frame, owned, false, flags);
    if (this.held !== null) {
      const h = this.held;
      this.held = null;
      this.heldTimer!.cancel();
      this.heldTimer = null;
      this.link.counters.reordered++;
      this.stage(h, true, false, this.heldFlags);
    }
  }

  /** Drops everything waiting; returns how many frames that was. */
  clear(): number {
    const n = this.queue.length + (this.held ? 1 : 0);
    this.timer?.cancel();
    this.heldTimer?.cancel();
    this.timer = this.heldTimer = null;
    this.queue = [];
    this.held = null;
    return n;
  }

  private stage(frame: Uint8Array, owned: boolean, fromTimer: boolean, flags: number): void {
    const spec = this.link.spec;
    let d = spec.delayMs;
    if (spec.jitterMs > 0) d += (2 * this.link.rng.nextFloat() - 1) * spec.jitterMs;
    if (d <= 0 && this.queue.length === 0) {
      this.emit(frame, flags);
      if (fromTimer) this.end();
      return;
    }
    // Never before a frame queued earlier, so jitter does not reorder.
    const at = Math.max(this.clock.now() + Math.max(0, d), this.lastAt);
    this.lastAt = at;
    this.queue.push({ at, frame: owned ? frame : frame.slice(), flags });
    if (d > 0) this.link.counters.delayed++;
    if (this.timer === null) this.arm();
  }

  private arm(): void {
    this.timer = this.clock.schedule(this.queue[0]!.at - this.clock.now(), () => this.run());
  }

  private run(): void {
    this.timer = null;
    const limit = Math.max(this.clock.now(), this.queue[0]!.at);
    let k = 0;
    while (k < this.queue.length && this.queue[k]!.at <= limit) k++;
    const batch = this.queue.splice(0, k);
    for (const q of batch) this.emit(q.frame, q.flags);
    this.end();
    if (this.queue.length && this.timer === null) this.arm();
  }
}

/** A link wrapper that impairs traffic in one or both directions, deterministically per seed. */
export class ImpairEndpoint implements LinkEndpoint {
  /** What this link does; read on every frame, so it may be changed while running (not `seed`). */
  spec: ImpairSpec;
  /** What it did. */
  readonly counters: ImpairCounters = { dropped: 0, duplicated: 0, reordered: 0, delayed: 0, corrupted: 0 };
  /** The decisions' source, seeded from `spec.seed`. */
  readonly rng: Rng;
  /** See ImpairOptions.reorderHoldMs. */
  readonly reorderHoldMs: number;
  /**
   * Receive-side offloads only: a wrapped link that delivers GRO'd super-frames still does (so the stack must
   * accept them), but there is no writeGso and no tx checksum offload, so the stack sends MTU-sized frames whose
   * loss and reordering mean what they would on a wire.
   */
  readonly capabilities: LinkCapabilities | undefined;

  private dispatcher: LinkDispatcher | null = null;
  private readonly inLane: Lane;
  private readonly outLane: Lane;
  private closed = false;

  private readonly tap: LinkDispatcher = {
    deliverFrame: (frame, flags) => {
      if (this.spec.dir === 'out') this.dispatcher?.deliverFrame(frame, flags);
      else this.impair(frame, false, this.inLane, flags ?? 0);
    },
    deliverBatchEnd: () => {
      this.dispatcher?.deliverBatchEnd?.();
    },
  };

  constructor(
    private readonly inner: LinkEndpoint,
    clock: Clock,
    spec: Partial<ImpairSpec> = {},
    opts: ImpairOptions = {},
  ) {
    this.spec = { ...NO_IMPAIRMENT, ...spec };
    for (const k of PROBABILITIES) {
      const p = this.spec[k];
      if (!(p >= 0 && p <= 1)) throw new RangeError(`ImpairEndpoint: ${k} must be in [0,1], got ${p}`);
    }
    this.rng = new Rng(this.spec.seed);
    this.reorderHoldMs = opts.reorderHoldMs ?? 1;
    const c = inner.capabilities;
    this.capabilities = c?.gso ? Object.freeze({ ...c, txChecksumOffload: false }) : undefined;
    this.inLane = new Lane(
      this,
      clock,
      (f, flags) => this.dispatcher?.deliverFrame(f, flags),
      () => this.dispatcher?.deliverBatchEnd?.(),
    );
    this.outLane = new Lane(
      this,
      clock,
      (f) => {
        this.inner.writeFrame(f);
      },
      () => this.inner.flush(),
    );
  }

  get mtu(): number {
    return this.inner.mtu;
  }

  get macAddress(): Uint8Array {
    return this.inner.macAddress;
  }

  attach(dispatcher: LinkDispatcher | null): void {
    this.dispatcher = dispatcher;
    this.inner.attach(dispatcher ? this.tap : null);
  }

  /**
   * Impairs and hands on the frame. While this direction is impaired it returns true whatever happens next, as
   * a frame lost on the wire would count as sent; otherwise it returns the wrapped link's answer.
   */
  writeFrame(frame: Uint8Array): boolean {
    if (this.closed) return false;
    if (this.spec.dir === 'in') return this.inner.writeFrame(frame);
    return this.impair(frame, true, this.outLane);
  }

  flush(): void {
    this.inner.flush();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.counters.dropped += this.inLane.clear() + this.outLane.clear();
    this.inner.close();
  }

  /** True with probability p (draws nothing when p is 0, so an unused knob does not shift the stream). */
  roll(p: number): boolean {
    return p > 0 && this.rng.nextFloat() < p;
  }

  private impair(frame: Uint8Array, owned: boolean, lane: Lane, flags = 0): boolean {
    const s = this.spec;
    if (this.roll(s.loss)) {
      this.counters.dropped++;
      return true;
    }
    // The duplicate is copied before either goes on: the wrapped link owns each frame it is given and may
    // change it, and corruption must hit one copy only.
    const dup = this.roll(s.dup) ? frame.slice() : null;
    if (dup) this.counters.duplicated++;
    for (let i = 0; i < (dup ? 2 : 1); i++) {
      let f = i === 0 ? frame : dup!;
      let own = owned || i > 0;
      let fl = flags;
      if (f.length > 0 && this.roll(s.corrupt)) {
        if (!own) {
          f = f.slice();
          own = true;
        }
        const bit = this.rng.nextInt(f.length * 8);
        f[bit >>> 3]! ^= 1 << (bit & 7);
        this.counters.corrupted++;
        // A bit flipped on the wire was never verified: the receiver must check (and drop) it.
        fl &= ~RX_CSUM_VERIFIED;
      }
      lane.accept(f, own, fl);
    }
    return true;
  }
}
