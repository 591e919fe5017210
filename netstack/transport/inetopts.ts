/**
 * Socket options that Linux takes on every inet socket (socket(7), ip(7), ipv6(7)) whose effect lies outside what
 * this stack does, kept so that programs setting them go on as they do on Linux and read back what they set:
 * - SO_PRIORITY: the queueing discipline's band (there is no qdisc here); above 6 needs CAP_NET_ADMIN (EPERM);
 * - SO_RCVLOWAT: kept and reported; TCP's readiness waits for it (its options cap it first), UDP's does not (Linux's
 *   datagram sockets ignore it too);
 * - SO_OOBINLINE: urgent data is not taken out of band here in any case;
 * - SO_DONTROUTE: kept and reported (routes are not bypassed);
 * - SO_SNDLOWAT: reads 1, and setting it is ENOPROTOOPT, as on Linux;
 * - IP_BIND_ADDRESS_NO_PORT: kept (a bind to port 0 reserves its port at once, as it does without the option);
 * - IP_FREEBIND / IPV6_FREEBIND (one flag, as in Linux's inet_sock): a bind to an address no interface holds is
 *   allowed (`freebind`, which the transports' bind consults).
 * A transport asks here after its own options (which come first: UDP's SO_BROADCAST has an effect, TCP's not).
 */
import { Err, type NetError } from '../errors.ts';
import type { OptionValue } from '../socket.ts';

/** Linux's default IP TTL / IPv6 hop limit (net.ipv4.ip_default_ttl), what IP_TTL and IPV6_UNICAST_HOPS read unset. */
export const DEFAULT_TTL = 64;
/** Linux's sk_rcvlowat ceiling (INT_MAX), what a negative SO_RCVLOWAT becomes. */
const INT_MAX = 0x7fffffff;
/** The highest SO_PRIORITY without CAP_NET_ADMIN (TC_PRIO_INTERACTIVE). */
const PRIORITY_UNPRIVILEGED = 6;

export class InetOptions {
  priority = 0;
  rcvlowat = 1;
  oobinline = false;
  dontroute = false;
  broadcast = false;
  bindAddressNoPort = false;
  freebind = false;

  /** A copy (an accepted connection inherits its listener's, as Linux clones the socket). */
  clone(): InetOptions {
    return Object.assign(new InetOptions(), this);
  }

  /** getsockopt: the value, or undefined when the option is not one of these. */
  get(name: string, family: 4 | 6): OptionValue | undefined {
    switch (name) {
      case 'SO_PRIORITY':
        return this.priority;
      case 'SO_RCVLOWAT':
        return this.rcvlowat;
      case 'SO_OOBINLINE':
        return +this.oobinline;
      case 'SO_DONTROUTE':
        return +this.dontroute;
      case 'SO_BROADCAST':
        return +this.broadcast;
      case 'SO_SNDLOWAT':
        return 1;
      case 'IP_BIND_ADDRESS_NO_PORT':
        return +this.bindAddressNoPort;
      case 'IP_FREEBIND':
        return +this.freebind;
      case 'IPV6_FREEBIND':
        return family === 6 ? +this.freebind : undefined;
    }
    return undefined;
  }

  /** setsockopt: undefined when done, an error, or 'unknown' when the option is not one of these. */
  set(name: string, value: OptionValue, family: 4 | 6): NetError | undefined | 'unknown' {
    if (this.get(name, family) === undefined) return 'unknown';
    const v = typeof value === 'boolean' ? +value : value;
    if (typeof v !== 'number' || !Number.isInteger(v)) return Err.InvalidArgument;
    switch (name) {
      case 'SO_PRIORITY':
        if (v < 0 || v > PRIORITY_UNPRIVILEGED) return Err.NotPermitted;
        this.priority = v;
        return undefined;
      case 'SO_RCVLOWAT':
        // sk_setsockopt: negative is INT_MAX, 0 is 1.
        this.rcvlowat = v < 0 ? INT_MAX : v || 1;
        return undefined;
      case 'SO_OOBINLINE':
        this.oobinline = v !== 0;
        return undefined;
      case 'SO_DONTROUTE':
        this.dontroute = v !== 0;
        return undefined;
      case 'SO_BROADCAST':
        this.broadcast = v !== 0;
        return undefined;
      case 'SO_SNDLOWAT':
        return Err.ProtocolNotAvailable;
      case 'IP_BIND_ADDRESS_NO_PORT':
        this.bindAddressNoPort = v !== 0;
        return undefined;
      case 'IP_FREEBIND':
      case 'IPV6_FREEBIND':
        this.freebind = v !== 0;
        return undefined;
    }
    return 'unknown';
  }
}
