/**
 * The neighbour cache that ARP (RFC 826) and NDP (RFC 4861) share: per NIC and family, IP address → MAC with
 * the neighbour unreachability detection states of RFC 4861 §7.3.2 (INCOMPLETE, REACHABLE, STALE, DELAY,
 * PROBE, FAILED) and the event table of its appendix C. The protocol-specific parts (how to solicit, what to do
 * with packets that could not be sent) are hooks, so one state machine serves both families.
 */
import { type Address, addressKey } from '../addr.ts';
import type { Clock, Timer } from '../clock.ts';
import { type GatherPayload, type GsoOptions, joinGather } from '../link/endpoint.ts';
import type { Rng } from '../rand.ts';

/** A neighbour entry's state (RFC 4861 §7.3.2). */
export type NeighborState = 'incomplete' | 'reachable' | 'stale' | 'delay' | 'probe' | 'failed';

/** Timing and size limits; defaults are RFC 4861 §10 constants and Linux's table limits. */
export interface NeighborConfig {
  /** BaseReachableTime; each entry's ReachableTime is uniform in [0.5, 1.5] × this (RFC 4861 §6.3.2). */
  readonly reachableTimeMs: number;
  /** RetransTimer between solicitations. */
  readonly retransTimeMs: number;
  /** MAX_MULTICAST_SOLICIT: probes while INCOMPLETE. */
  readonly maxMulticastProbes: number;
  /** MAX_UNICAST_SOLICIT: probes while PROBE. */
  readonly maxUnicastProbes: number;
  /** DELAY_FIRST_PROBE_TIME. */
  readonly delayFirstProbeMs: number;
  /** Bytes of frames held per entry while resolving (Linux unres_qlen_bytes). */
  readonly queueBytes: number;
  /** Entries per cache (Linux gc_thresh3). */
  readonly maxEntries: number;
  /** Unused STALE and FAILED entries are forgotten after this long (Linux gc_staletime). */
  readonly gcMs: number;
}

/** RFC 4861 §10 defaults; queue and table bounds as Linux's defaults. */
export const DEFAULT_NEIGHBOR_CONFIG: NeighborConfig = {
  reachableTimeMs: 30_000,
  retransTimeMs: 1_000,
  maxMulticastProbes: 3,
  maxUnicastProbes: 3,
  delayFirstProbeMs: 5_000,
  queueBytes: 212_992,
  maxEntries: 1024,
  gcMs: 60_000,
};

/** What a cache asks of its protocol (ARP or NDP) and its NIC. */
export interface NeighborHooks {
  /**
   * Sends a solicitation for `target`: broadcast/multicast when `mac` is undefined, else unicast to it;
   * `prompt` is a queued frame that caused it, whose source address the solicitation should use.
   */
  solicit(target: Address, mac: Uint8Array | undefined, prompt: Uint8Array | undefined): void;
  /**
   * Sends a frame whose destination MAC (bytes 0..6) has been filled in; `gso` marks a super-frame for writeGso,
   * `payload` the rest of its bytes when they are gathered (see Route.sendGso).
   */
  transmit(frame: Uint8Array, gso: GsoOptions | undefined, payload?: GatherPayload): void;
  /** Frames that were queued for `target` and are dropped because resolution failed. */
  unreachable(target: Address, frames: Uint8Array[]): void;
  /** Counts an event: "queueDrops", "resolutionFailures", "tableFull", "stateChanges". */
  count(counter: string): void;
}

/**
 * A cheap handle on one neighbour entry that a route holds, so an upper layer can confirm reachability per
 * segment without a table lookup (as Linux's dst keeps its neighbour); opaque outside this module.
 */
export interface NeighborRef {
  readonly target: Address;
}

interface Entry extends NeighborRef {
  readonly target: Address;
  state: NeighborState;
  /**
   * When an upper layer last confirmed forward progress (RFC 4861 §7.3.1), Linux's neigh->confirmed: only
   * stamped, and read when the REACHABLE or DELAY timer expires, so confirming costs no timer work.
   */
  confirmedAt: number;
  /** This entry's ReachableTime, drawn when it last became REACHABLE. */
  reachableMs: number;
  /** Still in the table: a route's handle to a forgotten entry must be looked up again. */
  live: boolean;
  mac: Uint8Array | undefined;
  probes: number;
  timer: Timer | undefined;
  queue: Uint8Array[];
  /** The GSO options of each queued frame (undefined for plain frames). */
  queueGso: (GsoOptions | undefined)[];
  queued: number;
  usedAt: number;
}

/** A snapshot of one entry, for tests and the CLI. */
export interface NeighborInfo {
  readonly address: Address;
  readonly state: NeighborState;
  readonly mac: Uint8Array | undefined;
}

/** One NIC's neighbour cache for one address family. */
export class NeighborCache {
  private readonly entries = new Map<string, Entry>();
  private readonly config: NeighborConfig;

  constructor(
    private readonly clock: Clock,
    private readonly rng: Rng,
    private readonly hooks: NeighborHooks,
    config: Partial<NeighborConfig> = {},
  ) {
    this.config = { ...DEFAULT_NEIGHBOR_CONFIG, ...config };
  }

  /** Number of entries, for bounds checks. */
  get size(): number {
    return this.entries.size;
  }

  /** The entry for `target`, or undefined. */
  get(target: Address): NeighborInfo | undefined {
    const e = this.entries.get(addressKey(target));
    return e && { address: e.target, state: e.state, mac: e.mac };
  }

  /** All entries. */
  list(): NeighborInfo[] {
    return [...this.entries.values()].map((e) => ({ address: e.target, state: e.state, mac: e.mac }));
  }

  /**
   * Sends `frame` (destination MAC still to fill in) to `target`: at once when its MAC is known, else queued
   * while the address is resolved (RFC 4861 §7.2.2, §7.3.3), as a copy, since `frame` may be link memory that is
   * valid only until the link's next call. `gso` goes with a super-frame to the link's writeGso; a gather
   * `payload` is pointed at only when sent at once, else joined to the frame (its pieces may change once we return).
   */
  send(target: Address, frame: Uint8Array, key = addressKey(target), gso?: GsoOptions, payload?: GatherPayload): void {
    let e = this.entries.get(key);
    if (e !== undefined && e.state !== 'incomplete' && e.state !== 'failed') {
      this.transmit(e, frame, gso, payload);
      return;
    }
    if (payload !== undefined) frame = joinGather(frame, payload);
    if (e && e.state === 'failed') {
      // Linux restarts resolution for a failed entry on the next packet rather than failing at once.
      this.forget(e);
      e = undefined;
    }
    if (!e) {
      if (!this.makeRoom()) {
        this.hooks.count('tableFull');
        this.hooks.unreachable(target, [frame.slice()]);
        return;
      }
      e = {
        target,
        state: 'incomplete',
        confirmedAt: -Infinity,
        reachableMs: 0,
        live: true,
        mac: undefined,
        probes: 0,
        timer: undefined,
        queue: [],
        queueGso: [],
        queued: 0,
        usedAt: 0,
      };
      this.entries.set(key, e);
      this.enqueue(e, frame, gso);
      this.hooks.count('stateChanges');
      this.probeIncomplete(e);
      return;
    }
    e.usedAt = this.clock.now();
    this.enqueue(e, frame, gso);
  }

  /**
   * Information carried by an unsolicited message: an NS with a source link-layer option (RFC 4861 §7.2.3) or
   * an ARP request or gratuitous ARP (RFC 826 "merge"). Creates a STALE entry only when `create` is set.
   */
  learn(target: Address, mac: Uint8Array, create: boolean): void {
    const e = this.entries.get(addressKey(target));
    if (!e) {
      if (!create || !this.makeRoom()) return;
      const fresh: Entry = {
        target,
        state: 'stale',
        confirmedAt: -Infinity,
        reachableMs: 0,
        live: true,
        mac: mac.slice(),
        probes: 0,
        timer: undefined,
        queue: [],
        queueGso: [],
        queued: 0,
        usedAt: this.clock.now(),
      };
      this.entries.set(addressKey(target), fresh);
      this.enter(fresh, 'stale');
      return;
    }
    if (e.state === 'incomplete' || e.state === 'failed') {
      e.mac = mac.slice();
      this.enter(e, 'stale');
      this.flushQueue(e);
      return;
    }
    if (!sameMac(e.mac, mac)) {
      e.mac = mac.slice();
      this.enter(e, 'stale');
    }
  }

  /**
   * A neighbour advertisement (RFC 4861 §7.2.5) or an ARP reply (solicited and override both set): confirms
   * or updates an existing entry; advertisements for unknown targets are ignored.
   */
  advertise(target: Address, mac: Uint8Array | undefined, solicited: boolean, override: boolean): void {
    const e = this.entries.get(addressKey(target));
    if (!e) return;
    if (e.state === 'incomplete' || e.state === 'failed') {
      if (!mac) return;
      e.mac = mac.slice();
      this.enter(e, solicited ? 'reachable' : 'stale');
      this.flushQueue(e);
      return;
    }
    const differs = mac !== undefined && !sameMac(e.mac, mac);
    if (!override && differs) {
      if (e.state === 'reachable') this.enter(e, 'stale');
      return;
    }
    if (differs) e.mac = mac.slice();
    if (solicited) this.enter(e, 'reachable');
    else if (differs) this.enter(e, 'stale');
  }

  /** Forward-progress confirmation from an upper layer (RFC 4861 §7.3.1) by address; routes use `confirmRef`. */
  confirm(target: Address): void {
    const e = this.entries.get(addressKey(target));
    if (e) this.confirmRef(e, this.clock.now());
  }

  /** A handle on the entry for `target` for `confirmRef`, or undefined while there is none. */
  ref(target: Address, key = addressKey(target)): NeighborRef | undefined {
    return this.entries.get(key);
  }

  /**
   * Forward-progress confirmation (RFC 4861 §7.3.1) at time `now`, e.g. a TCP ACK for new data: stamps the entry
   * as Linux's neigh_confirm does, and the REACHABLE and DELAY timers then keep it REACHABLE instead of probing.
   * An entry without a link address (INCOMPLETE, FAILED) is not stamped: only a solicitation's answer resolves it.
   * The timers count only stamps made since they were armed (REACHABLE for ReachableTime, DELAY for
   * DELAY_FIRST_PROBE_TIME), so a stamp from before a new link address or a resolution never vouches for it.
   * False when `ref`'s entry has left the table, so the holder looks it up again.
   */
  confirmRef(ref: NeighborRef, now: number): boolean {
    const e = ref as Entry;
    if (!e.live) return false;
    if (e.state !== 'incomplete' && e.state !== 'failed') e.confirmedAt = now;
    return true;
  }

  /** Drops the entry for `target` (queued frames are discarded silently). */
  remove(target: Address): void {
    const e = this.entries.get(addressKey(target));
    if (e) this.forget(e);
  }

  /** Drops every entry and cancels every timer. */
  clear(): void {
    for (const e of [...this.entries.values()]) this.forget(e);
  }

  private enqueue(e: Entry, frame: Uint8Array, gso: GsoOptions | undefined): void {
    // A copy: the frame may live in the link's send memory (LinkEndpoint.frameBuffer), valid only until the
    // link's next call, and a frame held while resolving outlives many of those.
    e.queue.push(frame.slice());
    e.queueGso.push(gso);
    e.queued += frame.length;
    // Oldest frames go first, as Linux's __neigh_event_send does.
    while (e.queued > this.config.queueBytes && e.queue.length > 0) {
      const old = e.queue.shift()!;
      e.queueGso.shift();
      e.queued -= old.length;
      this.hooks.count('queueDrops');
    }
  }

  private flushQueue(e: Entry): void {
    const q = e.queue;
    const g = e.queueGso;
    e.queue = [];
    e.queueGso = [];
    e.queued = 0;
    for (let i = 0; i < q.length; i++) this.transmit(e, q[i]!, g[i]);
  }

  private transmit(e: Entry, frame: Uint8Array, gso: GsoOptions | undefined, payload?: GatherPayload): void {
    const mac = e.mac!;
    frame[0] = mac[0]!;
    frame[1] = mac[1]!;
    frame[2] = mac[2]!;
    frame[3] = mac[3]!;
    frame[4] = mac[4]!;
    frame[5] = mac[5]!;
    e.usedAt = this.clock.now();
    if (e.state === 'stale') this.enter(e, 'delay');
    this.hooks.transmit(frame, gso, payload);
  }

  private probeIncomplete(e: Entry): void {
    e.probes++;
    this.hooks.solicit(e.target, undefined, e.queue[e.queue.length - 1]);
    this.arm(e, this.config.retransTimeMs);
  }

  private enter(e: Entry, state: NeighborState): void {
    if (e.state !== state) this.hooks.count('stateChanges');
    e.state = state;
    e.timer?.cancel();
    e.timer = undefined;
    e.probes = 0;
    switch (state) {
      case 'reachable':
        e.reachableMs = this.config.reachableTimeMs * (0.5 + this.rng.nextFloat());
        this.arm(e, e.reachableMs);
        break;
      case 'delay':
        this.arm(e, this.config.delayFirstProbeMs);
        break;
      case 'stale':
      case 'failed':
        this.arm(e, this.config.gcMs);
        break;
      default:
        break;
    }
  }

  private arm(e: Entry, ms: number): void {
    e.timer?.cancel();
    e.timer = this.clock.schedule(ms, () => {
      e.timer = undefined;
      this.expire(e);
    });
  }

  // One timer per entry; what its expiry means depends on the state (RFC 4861 appendix C, "timeout" rows).
  private expire(e: Entry): void {
    switch (e.state) {
      case 'incomplete':
        if (e.probes < this.config.maxMulticastProbes) {
          this.probeIncomplete(e);
          return;
        }
        this.fail(e);
        return;
      case 'reachable': {
        // Confirmed within ReachableTime: still reachable until that confirmation ages (Linux neigh_timer_handler).
        const left = e.confirmedAt + e.reachableMs - this.clock.now();
        if (left > 0) {
          this.arm(e, left);
          return;
        }
        this.enter(e, 'stale');
        return;
      }
      case 'delay': {
        // RFC 4861 §7.3.3: a confirmation while in DELAY returns the entry to REACHABLE without a probe.
        const now = this.clock.now();
        if (now - e.confirmedAt < this.config.delayFirstProbeMs) {
          this.enter(e, 'reachable');
          this.arm(e, e.confirmedAt + e.reachableMs - now);
          return;
        }
        this.enter(e, 'probe');
        e.probes = 1;
        this.hooks.solicit(e.target, e.mac, undefined);
        this.arm(e, this.config.retransTimeMs);
        return;
      }
      case 'probe': {
        // RFC 4861 appendix C: upper-layer confirmation in PROBE → REACHABLE too (Linux keeps probing): with frames
        // lost under load, a probe's answer may be lost while the connections' ACKs still arrive.
        const now = this.clock.now();
        if (now - e.confirmedAt < this.config.retransTimeMs) {
          this.enter(e, 'reachable');
          this.arm(e, e.confirmedAt + e.reachableMs - now);
          return;
        }
        if (e.probes < this.config.maxUnicastProbes) {
          e.probes++;
          this.hooks.solicit(e.target, e.mac, undefined);
          this.arm(e, this.config.retransTimeMs);
          return;
        }
        this.fail(e);
        return;
      }
      case 'stale':
      case 'failed':
        this.forget(e);
        return;
    }
  }

  private fail(e: Entry): void {
    this.hooks.count('resolutionFailures');
    const q = e.queue;
    e.queue = [];
    e.queueGso = [];
    e.queued = 0;
    e.mac = undefined;
    this.enter(e, 'failed');
    if (q.length > 0) this.hooks.unreachable(e.target, q);
  }

  private forget(e: Entry): void {
    e.live = false;
    e.timer?.cancel();
    e.timer = undefined;
    e.queue = [];
    e.queueGso = [];
    e.queued = 0;
    this.entries.delete(addressKey(e.target));
  }

  // Bounds the table like Linux's forced GC: evict the least recently used STALE or FAILED entry.
  private makeRoom(): boolean {
    if (this.entries.size < this.config.maxEntries) return true;
    let victim: Entry | undefined;
    for (const e of this.entries.values()) {
      if (e.state !== 'stale' && e.state !== 'failed') continue;
      if (!victim || e.usedAt < victim.usedAt) victim = e;
    }
    if (!victim) return false;
    this.forget(victim);
    return true;
  }
}

function sameMac(a: Uint8Array | undefined, b: Uint8Array): boolean {
  if (!a) return false;
  for (let i = 0; i < 6; i++) if (a[i] !== b[i]) return false;
  return true;
}
