/**
 * Fragment reassembly shared by IPv4 (RFC 791 §3.2, RFC 815) and IPv6 (RFC 8200 §4.5). Datagrams are keyed by
 * the caller (source, destination, protocol, identification). Any overlap that is not an exact duplicate
 * discards the whole datagram, as RFC 5722 requires for IPv6 and we choose for IPv4 too (overlaps only serve
 * evasion attacks). Memory is bounded per datagram and in total; the oldest datagrams are evicted first.
 */
import type { Clock, Timer } from '../clock.ts';

/** Limits of a reassembler. */
export interface ReassemblyConfig {
  /** How long a datagram may take to complete (IPv4 30 s, IPv6 60 s, as Linux's ipfrag_time). */
  readonly timeoutMs: number;
  /** Total bytes held across datagrams (Linux ipfrag_high_thresh, 4 MiB). */
  readonly memoryLimit: number;
  /** Fragments per datagram: enough for a 65535-byte datagram over a 68-byte MTU. */
  readonly maxFragments: number;
}

/** Bookkeeping bytes charged per fragment so floods of tiny fragments hit the memory limit too. */
export const FRAGMENT_OVERHEAD = 256;

/** Defaults of the IPv4 reassembler. */
export const IPV4_REASSEMBLY: ReassemblyConfig = { timeoutMs: 30_000, memoryLimit: 4 << 20, maxFragments: 2048 };
/** Defaults of the IPv6 reassembler. */
export const IPV6_REASSEMBLY: ReassemblyConfig = { timeoutMs: 60_000, memoryLimit: 4 << 20, maxFragments: 2048 };

/** One fragment handed to the reassembler. */
export interface Fragment<M> {
  /** Identifies the datagram. */
  readonly key: string;
  /** Byte offset of `data` in the reassembled payload. */
  readonly offset: number;
  /** The fragment's payload (copied when kept). */
  readonly data: Uint8Array;
  /** The more-fragments flag. */
  readonly more: boolean;
  /** Largest reassembled payload allowed (65535 minus the headers that precede it). */
  readonly maxLength: number;
  /** What the caller needs from the first fragment (headers to rebuild and to quote); given when offset is 0. */
  readonly meta?: M;
}

/** The outcome of adding one fragment. */
export type FragmentResult<M> =
  | { readonly kind: 'complete'; readonly payload: Uint8Array; readonly meta: M }
  | { readonly kind: 'queued' }
  | {
      readonly kind: 'dropped';
      /** Why: overlap, too-big, inconsistent, duplicate, empty, too-many-fragments or no-memory. */
      readonly reason: string;
    };

interface Piece {
  readonly start: number;
  readonly end: number;
  readonly data: Uint8Array;
}

interface Datagram<M> {
  readonly key: string;
  pieces: Piece[];
  total: number;
  received: number;
  cost: number;
  meta: M | undefined;
  timer: Timer;
}

/** A set of datagrams under reassembly, for one address family. */
export class Reassembler<M> {
  private readonly datagrams = new Map<string, Datagram<M>>();
  private bytes = 0;

  constructor(
    private readonly clock: Clock,
    private readonly config: ReassemblyConfig,
    /** Told when a datagram times out; `meta` is set when its first fragment had arrived (RFC 792 code 1). */
    private readonly onTimeout: (meta: M | undefined) => void,
    /** Told when a datagram is evicted for memory. */
    private readonly onEvict: () => void = () => {},
  ) {}

  /** Datagrams in progress. */
  get size(): number {
    return this.datagrams.size;
  }

  /** Bytes charged against the memory limit. */
  get memory(): number {
    return this.bytes;
  }

  /** Adds one fragment; returns the whole payload when this fragment completed its datagram. */
  add(f: Fragment<M>): FragmentResult<M> {
    const start = f.offset;
    const end = f.offset + f.data.length;
    if (end > f.maxLength) {
      this.discard(f.key);
      return { kind: 'dropped', reason: 'too-big' };
    }
    if (f.data.length === 0 && f.more) return { kind: 'dropped', reason: 'empty' };
    const cost = f.data.length + FRAGMENT_OVERHEAD;
    let d = this.datagrams.get(f.key);
    if (!d) {
      if (!this.makeRoom(cost)) return { kind: 'dropped', reason: 'no-memory' };
      d = {
        key: f.key,
        pieces: [],
        total: -1,
        received: 0,
        cost: 0,
        meta: undefined,
        timer: this.clock.schedule(this.config.timeoutMs, () => this.timeout(f.key)),
      };
      this.datagrams.set(f.key, d);
    }
    // A last fragment fixes the length; everything must agree with it (RFC 8200 §4.5 and RFC 791 alike).
    if (!f.more) {
      if ((d.total >= 0 && d.total !== end) || (d.pieces.length > 0 && d.pieces[d.pieces.length - 1]!.end > end)) {
        this.discard(f.key);
        return { kind: 'dropped', reason: 'inconsistent' };
      }
    } else if (d.total >= 0 && end > d.total) {
      this.discard(f.key);
      return { kind: 'dropped', reason: 'inconsistent' };
    }
    // Pieces are sorted by start; in-order arrival makes the search from the end O(1).
    const ps = d.pieces;
    let i = ps.length;
    while (i > 0 && ps[i - 1]!.start > start) i--;
    const prev = i > 0 ? ps[i - 1] : undefined;
    const next = i < ps.length ? ps[i] : undefined;
    if (prev && prev.start === start && prev.end === end && sameBytes(prev.data, f.data)) {
      return { kind: 'dropped', reason: 'duplicate' };
    }
    if ((prev && prev.end > start) || (next && next.start < end)) {
      this.discard(f.key);
      return { kind: 'dropped', reason: 'overlap' };
    }
    if (ps.length >= this.config.maxFragments) {
      this.discard(f.key);
      return { kind: 'dropped', reason: 'too-many-fragments' };
    }
    if (d.cost > 0 && !this.makeRoom(cost, f.key)) {
      this.discard(f.key);
      return { kind: 'dropped', reason: 'no-memory' };
    }
    ps.splice(i, 0, { start, end, data: f.data.slice() });
    d.received += f.data.length;
    d.cost += cost;
    this.bytes += cost;
    if (!f.more) d.total = end;
    if (start === 0 && f.meta !== undefined) d.meta = f.meta;
    if (d.total < 0 || d.received !== d.total || d.meta === undefined) return { kind: 'queued' };
    // No overlaps and as many bytes as the total: the pieces tile [0, total) exactly.
    const payload = new Uint8Array(d.total);
    for (const p of ps) payload.set(p.data, p.start);
    const meta = d.meta;
    this.discard(f.key);
    return { kind: 'complete', payload, meta };
  }

  /** Forgets every datagram and cancels its timer. */
  clear(): void {
    for (const key of [...this.datagrams.keys()]) this.discard(key);
  }

  private timeout(key: string): void {
    const d = this.datagrams.get(key);
    if (!d) return;
    this.discard(key);
    this.onTimeout(d.meta);
  }

  private discard(key: string): void {
    const d = this.datagrams.get(key);
    if (!d) return;
    d.timer.cancel();
    this.bytes -= d.cost;
    this.datagrams.delete(key);
  }

  // Evicts the oldest datagrams (insertion order), never `keep`, until `cost` more bytes fit.
  private makeRoom(cost: number, keep?: string): boolean {
    if (cost > this.config.memoryLimit) return false;
    for (const key of this.datagrams.keys()) {
      if (this.bytes + cost <= this.config.memoryLimit) break;
      if (key === keep) continue;
      this.discard(key);
      this.onEvict();
    }
    return this.bytes + cost <= this.config.memoryLimit;
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
