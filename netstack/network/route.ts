/**
 * The routing table: longest-prefix match, then lowest metric (RFC 1812 §5.2.4.3 ordering, which hosts
 * use too). Entries are few, so a linear scan is clearer than a trie and fast enough.
 */
import { type Address, type Subnet, addressEqual, prefixMatch } from '../addr.ts';

/** One entry of the routing table. */
export interface RouteEntry {
  /** Destinations this entry covers. */
  readonly destination: Subnet;
  /** The next hop; absent for an on-link route. */
  readonly gateway?: Address;
  /** The gateway's neighbour-cache key (addressKey), kept so that a path through it does not build it again. */
  readonly gatewayKey?: string;
  /** The NIC packets leave through. */
  readonly nicId: number;
  /** Lower wins among equally long prefixes. */
  readonly metric: number;
}

/** The address-family-agnostic routing table of a stack. */
export class RouteTable {
  private entries: RouteEntry[] = [];

  /** Adds an entry; returns false when an identical one (destination, gateway, NIC) already exists. */
  add(e: RouteEntry): boolean {
    if (this.entries.some((x) => sameRoute(x, e))) return false;
    this.entries.push(e);
    return true;
  }

  /** Removes entries matching destination (and gateway/NIC when given); returns how many went. */
  remove(destination: Subnet, gateway?: Address, nicId?: number): number {
    const before = this.entries.length;
    this.entries = this.entries.filter(
      (x) =>
        !(
          x.destination.prefixLength === destination.prefixLength &&
          prefixMatch(x.destination.address, destination.address, destination.prefixLength) &&
          (gateway === undefined || (x.gateway !== undefined && addressEqual(x.gateway, gateway))) &&
          (nicId === undefined || x.nicId === nicId)
        ),
    );
    return before - this.entries.length;
  }

  /** Removes exactly this entry object (as returned by list()). */
  removeExact(e: RouteEntry): void {
    this.entries = this.entries.filter((x) => x !== e);
  }

  /** Removes every entry through a NIC (when it goes away). */
  removeNic(nicId: number): void {
    this.entries = this.entries.filter((x) => x.nicId !== nicId);
  }

  /** The best entry for `dst`, optionally restricted to one NIC; undefined when nothing matches. */
  lookup(dst: Address, nicId?: number): RouteEntry | undefined {
    let best: RouteEntry | undefined;
    for (const e of this.entries) {
      if (e.destination.address.length !== dst.length) continue;
      if (nicId !== undefined && e.nicId !== nicId) continue;
      if (!prefixMatch(e.destination.address, dst, e.destination.prefixLength)) continue;
      if (
        !best ||
        e.destination.prefixLength > best.destination.prefixLength ||
        (e.destination.prefixLength === best.destination.prefixLength && e.metric < best.metric)
      ) {
        best = e;
      }
    }
    return best;
  }

  /** A copy of all entries, in insertion order. */
  list(): RouteEntry[] {
    return [...this.entries];
  }
}

function sameRoute(a: RouteEntry, b: RouteEntry): boolean {
  if (a.nicId !== b.nicId || a.destination.prefixLength !== b.destination.prefixLength) return false;
  if (!prefixMatch(a.destination.address, b.destination.address, a.destination.prefixLength)) return false;
  if (a.destination.address.length !== b.destination.address.length) return false;
  if ((a.gateway === undefined) !== (b.gateway === undefined)) return false;
  return a.gateway === undefined || addressEqual(a.gateway, b.gateway!);
}
