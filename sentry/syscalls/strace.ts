/**
 * --strace lines, one per trapped call, in strace's shape:
 *   [tid] connect(3, {AF_INET, 198.18.0.1:80}, 16) = -EINPROGRESS <23 µs>
 * A parked call prints `<unfinished ...>` when it parks and `<... name resumed> = result <time>` when answered;
 * a call left to the kernel prints `= ? (continued)`, because CONTINUE has no result the Sentry sees.
 */
import { formatAddress } from '../../netstack/addr.ts';
import { ERRNO_NAMES } from '../../netstack/errors.ts';
import { LINUX as L, decodeSockaddr } from '../socket/abi.ts';

/** Names of the address families strace prints. */
const FAMILIES: Record<number, string> = { 0: 'AF_UNSPEC', 1: 'AF_UNIX', 2: 'AF_INET', 10: 'AF_INET6', 16: 'AF_NETLINK', 17: 'AF_PACKET' };

/** A sockaddr as strace shows it: {AF_INET, 198.18.0.1:80}, {AF_INET6, [fd74:7376::1]:80}. */
export function formatSockaddr(b: Uint8Array | null | undefined): string {
  if (!b) return 'NULL';
  const sa = decodeSockaddr(b);
  if (sa === 'short') return `{sa_family=?, len=${b.length}}`;
  if (sa === 'family') {
    const f = b[0]! | (b[1]! << 8);
    return `{${FAMILIES[f] ?? f}}`;
  }
  if (sa.family === L.AF_UNSPEC) return '{AF_UNSPEC}';
  const host = formatAddress(sa.address);
  return sa.family === L.AF_INET ? `{AF_INET, ${host}:${sa.port}}` : `{AF_INET6, [${host}]:${sa.port}}`;
}

/** A result as strace prints it: the number, or -ENAME for -errno (ERESTARTSYS by its kernel name). */
export function formatResult(r: number): string {
  if (r >= 0) return String(r);
  if (r === -512) return '? ERESTARTSYS';
  return `-${ERRNO_NAMES[-r] ?? `E${-r}`}`;
}

/** Microseconds or milliseconds, as the line's <time>. */
function formatTime(ms: number): string {
  return ms < 10 ? `${Math.round(ms * 1000)} µs` : `${ms.toFixed(1)} ms`;
}

/** The strace printer of one Sentry. */
export class Strace {
  constructor(private readonly out: (line: string) => void) {}

  /** A call answered at once. */
  done(tid: number, name: string, args: string, result: number, ms: number): void {
    this.out(`[${tid}] ${name}(${args}) = ${formatResult(result)} <${formatTime(ms)}>`);
  }

  /** A call that was parked. */
  unfinished(tid: number, name: string, args: string): void {
    this.out(`[${tid}] ${name}(${args} <unfinished ...>`);
  }

  /** A parked call answered. */
  resumed(tid: number, name: string, result: number, ms: number): void {
    this.out(`[${tid}] <... ${name} resumed> = ${formatResult(result)} <${formatTime(ms)}>`);
  }

  /** A call left to the kernel. */
  continued(tid: number, name: string, args: string): void {
    this.out(`[${tid}] ${name}(${args}) = ? (continued)`);
  }
}
