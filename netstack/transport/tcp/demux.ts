/**
 * The 4-tuple table of TCP's demultiplexer (Linux's established hash, ehash): connections and compact TIME-WAITs
 * by local address and port, remote address and port. Open addressing over plain arrays, linear probing, keyed
 * hash (a random seed, as Linux's inet_ehashfn keys jhash), deletion by backward shift, so that a removed entry
 * leaves no reference behind.
 *
 * Not a `Map` keyed by a string of the tuple: besides the string built for every lookup, V8's Map kept whole
 * endpoints alive through young-generation collections after they had been deleted from it (an HTTP server's
 * every connection copied twice and promoted, measured: 3 MB of 10 MB survived each scavenge, issue 13), which a
 * slot overwritten with `undefined` does not.
 */
import type { Address } from '../../addr.ts';

/** What the table files an entry under: its 4-tuple, fixed while it is in the table. */
export interface TupleKeyed {
  readonly localAddr: Address | null;
  readonly localPort: number;
  readonly remoteAddr: Address | null;
  readonly remotePort: number;
}

// Smallest capacity (a power of two); the table grows at half full and shrinks below an eighth.
const MIN_CAPACITY = 64;

/** Entries keyed by their 4-tuple. */
export class TupleTable<T extends TupleKeyed> {
  private slots: (T | undefined)[];
  // Each slot's hash, so that a backward shift and a resize never hash an entry again.
  private hashes: Int32Array;
  private mask: number;
  private count = 0;

  constructor(private readonly seed: number) {
    this.slots = new Array<T | undefined>(MIN_CAPACITY).fill(undefined);
    this.hashes = new Int32Array(MIN_CAPACITY);
    this.mask = MIN_CAPACITY - 1;
  }

  /** Number of entries. */
  get size(): number {
    return this.count;
  }

  /** The entry with this 4-tuple, if any. */
  get(local: Address, localPort: number, remote: Address, remotePort: number): T | undefined {
    const h = tupleHash(this.seed, local, localPort, remote, remotePort);
    const slots = this.slots;
    const mask = this.mask;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const e = slots[i];
      if (e === undefined) return undefined;
      if (
        this.hashes[i] === h &&
        e.localPort === localPort &&
        e.remotePort === remotePort &&
        sameAddress(e.remoteAddr!, remote) &&
        sameAddress(e.localAddr!, local)
      ) {
        return e;
      }
    }
  }

  /** Files `e` under its 4-tuple, replacing the entry that held it. */
  set(e: T): void {
    if ((this.count + 1) * 2 > this.slots.length) this.resize(this.slots.length * 2);
    const h = tupleHash(this.seed, e.localAddr!, e.localPort, e.remoteAddr!, e.remotePort);
    const mask = this.mask;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const o = this.slots[i];
      if (o === undefined) {
        this.slots[i] = e;
        this.hashes[i] = h;
        this.count++;
        return;
      }
      if (o === e || (this.hashes[i] === h && sameTuple(o, e))) {
        this.slots[i] = e;
        return;
      }
    }
  }

  /** Removes `e` (only that very entry: another one under its 4-tuple stays); whether it was there. */
  delete(e: T): boolean {
    const h = tupleHash(this.seed, e.localAddr!, e.localPort, e.remoteAddr!, e.remotePort);
    const slots = this.slots;
    const mask = this.mask;
    let i = h & mask;
    for (; ; i = (i + 1) & mask) {
      const o = slots[i];
      if (o === undefined) return false;
      if (o === e) break;
    }
    // Backward shift (Knuth's Algorithm R): pull later entries of the run into the hole when their home slot does
    // not lie cyclically after it, so lookups never need a tombstone.
    let hole = i;
    for (let j = (i + 1) & mask; ; j = (j + 1) & mask) {
      const o = slots[j];
      if (o === undefined) break;
      const home = this.hashes[j]! & mask;
      const between = hole <= j ? hole < home && home <= j : hole < home || home <= j;
      if (between) continue;
      slots[hole] = o;
      this.hashes[hole] = this.hashes[j]!;
      hole = j;
    }
    slots[hole] = undefined;
    this.count--;
    if (this.count * 8 < slots.length && slots.length > MIN_CAPACITY) this.resize(slots.length / 2);
    return true;
  }

  private resize(capacity: number): void {
    const old = this.slots;
    const oldHashes = this.hashes;
    this.slots = new Array<T | undefined>(capacity).fill(undefined);
    this.hashes = new Int32Array(capacity);
    this.mask = capacity - 1;
    for (let i = 0; i < old.length; i++) {
      const e = old[i];
      if (e === undefined) continue;
      const h = oldHashes[i]!;
      let j = h & this.mask;
      while (this.slots[j] !== undefined) j = (j + 1) & this.mask;
      this.slots[j] = e;
      this.hashes[j] = h;
    }
  }
}

function sameTuple(a: TupleKeyed, b: TupleKeyed): boolean {
  return (
    a.localPort === b.localPort &&
    a.remotePort === b.remotePort &&
    sameAddress(a.remoteAddr!, b.remoteAddr!) &&
    sameAddress(a.localAddr!, b.localAddr!)
  );
}

/** Byte-wise address equality without allocation (both are wire-form addresses). */
export function sameAddress(a: Address, b: Address): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** An address's bytes from `i` as one 32-bit word (big-endian). */
function word(a: Address, i: number): number {
  return (a[i]! << 24) | (a[i + 1]! << 16) | (a[i + 2]! << 8) | a[i + 3]!;
}

/** Mixes `k` into the running hash `h` (MurmurHash3's block step). */
function mix(h: number, k: number): number {
  k = Math.imul(k, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  h ^= Math.imul(k, 0x1b873593);
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

/** The keyed hash of a 4-tuple: every address byte and both ports, under `seed`. */
export function tupleHash(seed: number, local: Address, localPort: number, remote: Address, remotePort: number): number {
  let h = mix(seed, (localPort << 16) | remotePort);
  for (let i = 0; i < remote.length; i += 4) h = mix(h, word(remote, i));
  for (let i = 0; i < local.length; i += 4) h = mix(h, word(local, i));
  // MurmurHash3's finalizer: every input bit reaches the low bits the mask keeps.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}
