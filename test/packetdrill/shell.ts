/**
 * What the runner does with a script's shell lines: the sysctl lines that set TCP defaults are recognised in
 * both dialects (Linux's `sysctl -q net.ipv4.tcp_x=v`, FreeBSD's `sysctl -w net.inet.tcp.x=v`) and turned into
 * a setting of the DUT where one exists; everything else is reported as skipped, never dropped silently.
 */

/** A recognised sysctl assignment. */
export interface Sysctl {
  readonly key: string;
  readonly value: string;
  readonly dialect: 'linux' | 'freebsd';
}

/** Parses `sysctl [-q] [-w] key=value` (one assignment); undefined for any other command. */
export function parseSysctl(command: string): Sysctl | undefined {
  const m = /^\s*sysctl((?:\s+-[qwn]+)*)\s+([A-Za-z0-9_.\-/]+)\s*=\s*(\S+)\s*$/.exec(command);
  if (!m) return undefined;
  const key = m[2]!.replace(/\//g, '.');
  if (key.startsWith('net.inet.') || key.startsWith('kern.')) return { key, value: m[3]!, dialect: 'freebsd' };
  if (/^net\.(ipv4|ipv6|core)\./.test(key)) return { key, value: m[3]!, dialect: 'linux' };
  return undefined;
}

/**
 * FreeBSD TCP sysctls with a Linux equivalent (net.ipv4.*), value mapping included; the rest have none
 * (blackhole, hostcache, insecure_rst, rexmit_*, buffer sizes) and are skipped visibly.
 */
export function freebsdToLinux(s: Sysctl): { key: string; value: string }[] | undefined {
  switch (s.key) {
    case 'net.inet.tcp.rfc1323':
      return [
        { key: 'net.ipv4.tcp_timestamps', value: s.value === '0' ? '0' : '1' },
        { key: 'net.ipv4.tcp_window_scaling', value: s.value === '0' ? '0' : '1' },
      ];
    case 'net.inet.tcp.sack.enable':
      return [{ key: 'net.ipv4.tcp_sack', value: s.value }];
    case 'net.inet.tcp.ecn.enable':
      // FreeBSD 0 off, 1 request and accept, 2 accept only: Linux's tcp_ecn uses the same three values.
      return [{ key: 'net.ipv4.tcp_ecn', value: s.value }];
    default:
      return undefined;
  }
}
