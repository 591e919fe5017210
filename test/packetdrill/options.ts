/**
 * A script's `--name=value` lines (and packetdrill's command-line options, which a script may carry the same
 * way): each one packetdrill's config.c knows is either honoured as upstream honours it, accepted with a note
 * saying why it changes nothing here, or reported as unsupported, so a script is never run under a setting
 * the runner silently ignored.
 */

/** What a script's options ask of the runner. */
export interface ScriptConfig {
  ipVersion: 4 | 6;
  /** Link MTU (--mtu), 1500 by default (upstream's tun default). */
  mtu: number;
  /** --tolerance_usecs, in ms (upstream's default 4 ms). */
  toleranceMs: number;
  /** --tolerance_percent: the tolerance grows to this share of the time since the last event (default 12.5). */
  tolerancePercent: number;
  /** --strict_segments: an outbound packet line matches one segment only (no aggregation of TSO-split ones). */
  strictSegments: boolean;
  /** --tcp_ts_tick_usecs: check outbound TS val against the script's, at this clock rate (0: not checked). */
  tsTickUs: number;
  /** --non_fatal=packet,syscall: mismatches of these kinds are reported and the script goes on. */
  nonFatal: ReadonlySet<'packet' | 'syscall'>;
  /** --mss: inbound TCP packets longer than this are injected as one GSO packet of segments this size. */
  mss?: number;
  bindPort: number;
  connectPort: number;
  /** Options accepted with a note (no effect needed here), for the result's skipped lines. */
  notes: { text: string; why: string }[];
  /** Options the runner cannot honour; a script with any ends as an error naming them. */
  unsupported: string[];
}

/** Options packetdrill itself has that change nothing in this runner, and why. */
const NO_EFFECT: Readonly<Record<string, string>> = {
  local_ip: 'the runner uses its own DUT address (198.18.0.1 / fd74:7376::1); values derived from addresses (TFO cookies) are computed for it',
  remote_ip: 'the runner uses its own remote address (198.18.0.2 / fd74:7376::2)',
  gateway_ip: 'the remote host is on the DUT\'s link; there is no gateway',
  netmask_ip: 'the runner\'s link prefix is /24 (/64)',
  send_omit_free: 'the runner never frees a send buffer the kernel may still read (MSG_ZEROCOPY)',
  tcp_ts_ecr_scaled: 'inbound TS ecr values without an exact outbound TS val are always interpolated from the first one',
  speed: 'the link has no rate; packetdrill\'s tun speed only shows in ethtool',
  verbose: 'output option',
  debug: 'output option',
  dry_run: 'the runner always runs the script',
  define: 'definitions are applied while parsing',
};

/** Options whose mechanism the runner does not have. */
const UNSUPPORTED: ReadonlySet<string> = new Set([
  'wire_client', 'wire_server', 'wire_server_ip', 'wire_server_at', 'wire_server_port', 'wire_client_dev', 'wire_server_dev',
  'so_filename', 'so_flags', 'code_command', 'code_format', 'code_sockopt', 'init_scripts', 'is_anyip', 'psp_udp_port',
]);

/** Reads a script's options the way packetdrill's config.c does (same defaults and range checks). */
export function scriptConfig(options: Readonly<Record<string, string>>): ScriptConfig {
  const cfg: ScriptConfig = {
    ipVersion: 4,
    mtu: 1500,
    toleranceMs: 4,
    tolerancePercent: 12.5,
    strictSegments: false,
    tsTickUs: 0,
    nonFatal: new Set(),
    bindPort: 8080,
    connectPort: 8080,
    notes: [],
    unsupported: [],
  };
  const bad = (name: string, v: string, why = '') => cfg.unsupported.push(`--${name}=${v}${why ? `: ${why}` : ' (bad value)'}`);
  const int = (v: string) => (/^-?\d+$/.test(v.trim()) ? Number(v) : NaN);
  for (const [name, v] of Object.entries(options)) {
    switch (name) {
      case 'ip_version':
        if (v === 'ipv4') cfg.ipVersion = 4;
        else if (v === 'ipv6') cfg.ipVersion = 6;
        else bad(name, v, v === 'ipv4-mapped-ipv6' ? 'IPv4-mapped IPv6 sockets are not supported by the runner' : 'expected ipv4 or ipv6');
        break;
      case 'mtu':
        if (int(v) >= 0) cfg.mtu = int(v);
        else bad(name, v);
        break;
      case 'tolerance_usecs':
        if (int(v) > 0) cfg.toleranceMs = int(v) / 1000;
        else bad(name, v);
        break;
      case 'tolerance_percent':
        if (Number(v) >= 0 && Number(v) <= 100) cfg.tolerancePercent = Number(v);
        else bad(name, v);
        break;
      case 'strict_segments':
        cfg.strictSegments = true;
        break;
      case 'tcp_ts_tick_usecs':
        if (int(v) >= 0 && int(v) <= 1_000_000) cfg.tsTickUs = int(v);
        else bad(name, v);
        break;
      case 'non_fatal':
        for (const k of v.split(',').map((x) => x.trim())) {
          if (k === 'packet' || k === 'syscall') (cfg.nonFatal as Set<string>).add(k);
          else bad(name, v, `unknown kind "${k}" (packet, syscall)`);
        }
        break;
      case 'mss':
        if (int(v) > 0) cfg.mss = int(v);
        else bad(name, v);
        break;
      case 'bind_port':
      case 'connect_port':
        if (int(v) > 0 && int(v) <= 0xffff) cfg[name === 'bind_port' ? 'bindPort' : 'connectPort'] = int(v);
        else bad(name, v);
        break;
      default:
        if (NO_EFFECT[name] !== undefined) cfg.notes.push({ text: `--${name}${v ? `=${v}` : ''}`, why: NO_EFFECT[name]! });
        else if (UNSUPPORTED.has(name)) cfg.unsupported.push(`--${name}: not supported by the runner`);
        else cfg.unsupported.push(`--${name}: not an option packetdrill knows`);
    }
  }
  return cfg;
}
