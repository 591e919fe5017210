/**
 * A stack's settings table keyed by Linux's sysctl names (`net.ipv4.tcp_sack`, ...), with Linux's defaults
 * and value checks (net/ipv4/sysctl_net_ipv4.c), so that what a Linux program or test sets with sysctl(8) means
 * the same here. A setting TCP already has a knob for reaches it at once (new connections see it, as on Linux);
 * the others are kept in the table, and `set` says so, so a caller can report that they changed nothing yet.
 */
import type { TcpConfig } from './transport/tcp/protocol.ts';

/** One setting: its Linux default, how a written value is checked and normalised, and its TCP knob if any. */
interface SysctlDef {
  /** Linux's default, as /proc/sys shows it. */
  readonly linux: string;
  /** The value as Linux stores it, or an error message saying what is wrong with `v`. */
  readonly check: (v: string) => { value: string } | { error: string };
  /** The TcpConfig fields the value sets, or a reason the stack cannot honour this value. */
  readonly tcp?: (v: string) => Partial<TcpConfig> | string;
  /** The value the current TcpConfig amounts to (for settings with a knob, whose default is the stack's). */
  readonly read?: (c: Readonly<TcpConfig>) => string;
  /** A setting of the ephemeral port range rather than of TCP (ip_local_port_range), shared by TCP and UDP. */
  readonly ports?: true;
}

/** The stack's ephemeral ports, as the table reads and sets them (PortManager). */
export interface EphemeralPorts {
  readonly ephemeralRange: { low: number; high: number };
  setEphemeralRange(low: number, high: number): void;
}

/** ip_local_port_range: two ports "low high", low not above high (Linux's ipv4_local_port_range). */
const portRange: SysctlDef['check'] = (v) => {
  const parts = v.trim().split(/\s+/);
  const [low, high] = parts.map(Number);
  if (parts.length !== 2 || parts.some((p) => !/^\d+$/.test(p)) || low! < 1 || high! > 65535 || low! > high!) {
    return { error: `"${v}" is not two ports "low high" in [1, 65535], low not above high` };
  }
  return { value: `${low}\t${high}` };
};

/** An integer in [min, max], in any base strtol reads (sysctl accepts "0x70403"). */
function int(min: number, max: number): SysctlDef['check'] {
  return (v) => {
    const t = v.trim();
    const n = /^-?(0x[0-9a-f]+|\d+)$/i.test(t) ? Number(t.replace(/^(-?)0x/i, '$10x')) : NaN;
    if (!Number.isInteger(n) || n < min || n > max) return { error: `"${v}" is not an integer in [${min}, ${max}]` };
    return { value: String(n) };
  };
}

/** Three integers "min default max", each at least 1 (tcp_rmem, tcp_wmem). */
const triple: SysctlDef['check'] = (v) => {
  const parts = v.trim().split(/\s+/);
  if (parts.length !== 3 || parts.some((p) => !/^\d+$/.test(p) || Number(p) < 1 || Number(p) > 0x7fffffff)) {
    return { error: `"${v}" is not three positive integers "min default max"` };
  }
  return { value: parts.join('\t') };
};

/** tcp_fastopen_key: one or two keys of four 32-bit hex words ("a1a1a1a1-b2b2b2b2-c3c3c3c3-d4d4d4d4"). */
const tfoKey: SysctlDef['check'] = (v) => {
  const keys = v.trim().split(',');
  const word = /^[0-9a-f]{1,8}$/i;
  if (keys.length > 2 || keys.some((k) => k.split('-').length !== 4 || k.split('-').some((w) => !word.test(w)))) {
    return { error: `"${v}" is not a key of four hex words "xxxxxxxx-xxxxxxxx-xxxxxxxx-xxxxxxxx"` };
  }
  return { value: keys.map((k) => k.split('-').map((w) => w.toLowerCase().padStart(8, '0')).join('-')).join(',') };
};

const bool = (f: keyof TcpConfig) => (v: string) => ({ [f]: v !== '0' }) as Partial<TcpConfig>;
const num = (f: keyof TcpConfig, scale = 1) => (v: string) => ({ [f]: Number(v) * scale }) as Partial<TcpConfig>;
const U32 = 0xffffffff;
const INT_MAX = 0x7fffffff;

/** The settings a table holds: those Linux's own TCP tests (packetdrill's defaults.sh and scripts) set, and more. */
const DEFS: Readonly<Record<string, SysctlDef>> = {
  'net.ipv4.tcp_timestamps': { linux: '1', check: int(0, 2), tcp: bool('timestamps'), read: (c) => (c.timestamps ? '1' : '0') },
  'net.ipv4.tcp_window_scaling': { linux: '1', check: int(0, 1), tcp: bool('windowScaling'), read: (c) => (c.windowScaling ? '1' : '0') },
  'net.ipv4.tcp_sack': { linux: '1', check: int(0, 1), tcp: bool('sack'), read: (c) => (c.sack ? '1' : '0') },
  'net.ipv4.tcp_syn_retries': { linux: '6', check: int(1, 127), tcp: num('synRetries'), read: (c) => String(c.synRetries) },
  'net.ipv4.tcp_syn_linear_timeouts': {
    linux: '4',
    check: int(0, 127),
    tcp: num('synLinearTimeouts'),
    read: (c) => String(c.synLinearTimeouts),
  },
  'net.ipv4.tcp_synack_retries': { linux: '5', check: int(0, 255), tcp: num('synAckRetries'), read: (c) => String(c.synAckRetries) },
  'net.ipv4.tcp_retries2': { linux: '15', check: int(0, 255), tcp: num('retries2'), read: (c) => String(c.retries2) },
  'net.ipv4.ip_local_port_range': { linux: '32768\t60999', check: portRange, ports: true },
  'net.ipv4.tcp_tw_reuse': { linux: '2', check: int(0, 2), tcp: num('twReuse'), read: (c) => String(c.twReuse) },
  'net.ipv4.tcp_moderate_rcvbuf': { linux: '1', check: int(0, 1), tcp: bool('moderateRcvbuf'), read: (c) => (c.moderateRcvbuf ? '1' : '0') },
  'net.ipv4.tcp_orphan_retries': { linux: '0', check: int(0, 255), tcp: num('orphanRetries'), read: (c) => String(c.orphanRetries) },
  'net.ipv4.tcp_fin_timeout': { linux: '60', check: int(1, INT_MAX), tcp: num('finTimeout', 1000), read: (c) => String(Math.round(c.finTimeout / 1000)) },
  'net.ipv4.tcp_keepalive_time': { linux: '7200', check: int(1, 32767), tcp: num('keepIdle'), read: (c) => String(c.keepIdle) },
  'net.ipv4.tcp_keepalive_intvl': { linux: '75', check: int(1, 32767), tcp: num('keepIntvl'), read: (c) => String(c.keepIntvl) },
  'net.ipv4.tcp_keepalive_probes': { linux: '9', check: int(1, 127), tcp: num('keepCnt'), read: (c) => String(c.keepCnt) },
  'net.ipv4.tcp_challenge_ack_limit': { linux: String(INT_MAX), check: int(0, INT_MAX), tcp: num('challengeAckLimit'), read: (c) => String(c.challengeAckLimit) },
  'net.ipv4.tcp_invalid_ratelimit': { linux: '500', check: int(0, INT_MAX), tcp: num('invalidAckIntervalMs'), read: (c) => String(c.invalidAckIntervalMs) },
  'net.ipv4.tcp_max_tw_buckets': { linux: '262144', check: int(0, INT_MAX), tcp: num('maxTimeWait'), read: (c) => String(c.maxTimeWait) },
  'net.core.somaxconn': { linux: '4096', check: int(0, INT_MAX), tcp: num('somaxconn'), read: (c) => String(c.somaxconn) },
  'net.ipv4.tcp_syncookies': {
    linux: '1',
    check: int(0, 2),
    tcp: (v) => ({ synCookies: v !== '0', synCookiesAlways: v === '2' }),
    read: (c) => (!c.synCookies ? '0' : c.synCookiesAlways ? '2' : '1'),
  },
  'net.ipv4.tcp_congestion_control': {
    linux: 'cubic',
    check: (v) => (['cubic', 'reno'].includes(v.trim()) ? { value: v.trim() } : { error: `"${v}" is not an available congestion control (cubic, reno)` }),
    tcp: (v) => ({ congestion: v }),
    read: (c) => c.congestion,
  },
  'net.ipv4.tcp_rmem': {
    linux: '4096\t131072\t6291456',
    check: triple,
    tcp: (v) => {
      const [, def, max] = v.split('\t').map(Number);
      return { rcvBuf: def!, maxRcvBuf: max! };
    },
    read: (c) => `4096\t${c.rcvBuf}\t${c.maxRcvBuf}`,
  },
  'net.ipv4.tcp_wmem': {
    linux: '4096\t16384\t4194304',
    check: triple,
    tcp: (v) => {
      const [, def, max] = v.split('\t').map(Number);
      return { sndBuf: def!, maxSndBuf: max! };
    },
    read: (c) => `4096\t${c.sndBuf}\t${c.maxSndBuf}`,
  },
  'net.ipv4.tcp_fastopen': { linux: '1', check: int(0, INT_MAX), tcp: num('fastOpen'), read: (c) => String(c.fastOpen) },
  'net.ipv4.tcp_fastopen_key': {
    linux: '00000000-00000000-00000000-00000000',
    check: tfoKey,
    tcp: (v) => ({ fastOpenKey: v }),
    read: (c) => c.fastOpenKey,
  },
  'net.ipv4.tcp_pacing_ss_ratio': { linux: '200', check: int(0, 1000), tcp: num('pacingSsRatio'), read: (c) => String(c.pacingSsRatio) },
  'net.ipv4.tcp_pacing_ca_ratio': { linux: '120', check: int(0, 1000), tcp: num('pacingCaRatio'), read: (c) => String(c.pacingCaRatio) },
  'net.ipv4.tcp_min_tso_segs': { linux: '2', check: int(1, 255), tcp: num('minTsoSegs'), read: (c) => String(c.minTsoSegs) },
  'net.ipv4.tcp_slow_start_after_idle': {
    linux: '1',
    check: int(0, 1),
    tcp: bool('slowStartAfterIdle'),
    read: (c) => (c.slowStartAfterIdle ? '1' : '0'),
  },
  'net.ipv4.tcp_ecn': {
    linux: '2',
    check: int(0, 5),
    // 3 asks for AccECN, which tsvisor does not speak: it asks for RFC 3168 ECN instead; 4 and 5 only accept.
    tcp: num('ecn'),
    read: (c) => String(c.ecn),
  },
  'net.ipv4.tcp_ecn_fallback': { linux: '1', check: int(0, 1), tcp: bool('ecnFallback'), read: (c) => (c.ecnFallback ? '1' : '0') },
  'net.ipv4.tcp_notsent_lowat': { linux: String(U32), check: int(0, U32), tcp: num('notsentLowat'), read: (c) => String(c.notsentLowat) },
  'net.ipv4.tcp_reordering': { linux: '3', check: int(1, INT_MAX), tcp: num('reordering'), read: (c) => String(c.reordering) },
  'net.ipv4.tcp_max_reordering': { linux: '300', check: int(1, INT_MAX), tcp: num('maxReordering'), read: (c) => String(c.maxReordering) },
  'net.ipv4.tcp_dsack': { linux: '1', check: int(0, 1), tcp: bool('dsack'), read: (c) => (c.dsack ? '1' : '0') },
  'net.ipv4.tcp_rfc1337': { linux: '0', check: int(0, 1), tcp: bool('rfc1337'), read: (c) => (c.rfc1337 ? '1' : '0') },
  // Kept, not yet read by tsvisor's TCP.
  'net.ipv4.tcp_frto': { linux: '2', check: int(0, 2) },
  'net.ipv4.tcp_early_retrans': { linux: '3', check: int(0, 4) },
  'net.ipv4.tcp_recovery': { linux: '1', check: int(0, INT_MAX) },
  'net.ipv4.tcp_tso_win_divisor': { linux: '3', check: int(1, 255) },
  'net.ipv4.tcp_ecn_option': { linux: '2', check: int(0, 2) },
  'net.ipv4.tcp_fastopen_blackhole_timeout_sec': { linux: '0', check: int(0, INT_MAX) },
  'net.ipv4.tcp_mtu_probing': { linux: '0', check: int(0, 2) },
  'net.ipv4.tcp_base_mss': { linux: '1024', check: int(1, INT_MAX) },
  'net.ipv4.tcp_min_rtt_wlen': { linux: '300', check: int(0, 86400) },
  'net.ipv4.tcp_no_metrics_save': { linux: '0', check: int(0, 1) },
  'net.ipv4.tcp_autocorking': { linux: '1', check: int(0, 1) },
  'net.ipv4.tcp_adv_win_scale': { linux: '1', check: int(-31, 31) },
  'net.ipv4.tcp_limit_output_bytes': { linux: '1048576', check: int(0, INT_MAX) },
  'net.ipv4.tcp_comp_sack_nr': { linux: '44', check: int(0, 255) },
  'net.ipv4.tcp_retries1': { linux: '3', check: int(0, 255) },
  'net.ipv4.tcp_thin_linear_timeouts': { linux: '0', check: int(0, 1) },
};

/** What `set` did: the value stored and whether TCP honours it, or why the value was refused. */
export type SysctlResult = { readonly value: string; readonly applied: true } | { readonly value: string; readonly applied: false; readonly why: string } | { readonly error: string };

/** One stack's settings. */
export class SysctlTable {
  private readonly values = new Map<string, string>();

  /**
   * `config` is the TCP configuration the table starts from (settings with a knob read their value from it) and
   * `configure` hands TCP the fields a setting changes.
   */
  constructor(
    config: Readonly<TcpConfig>,
    private readonly configure: (fields: Partial<TcpConfig>) => void,
    private readonly ports?: EphemeralPorts,
  ) {
    for (const [key, d] of Object.entries(DEFS)) this.values.set(key, d.read ? d.read(config) : d.linux);
    if (ports) this.values.set('net.ipv4.ip_local_port_range', `${ports.ephemeralRange.low}\t${ports.ephemeralRange.high}`);
  }

  /** Every key the table knows. */
  keys(): string[] {
    return [...this.values.keys()];
  }

  /** Whether `key` is a setting of the table. */
  has(key: string): boolean {
    return this.values.has(key);
  }

  /** The value as /proc/sys would show it, or undefined for a key the table does not have. */
  get(key: string): string | undefined {
    return this.values.get(key);
  }

  /** Linux's default for `key`. */
  linuxDefault(key: string): string | undefined {
    return DEFS[key]?.linux;
  }

  /** Sets `key` (Linux's name) to `value` as sysctl -w would; an unknown key or a bad value is an error value. */
  set(key: string, value: string): SysctlResult {
    const d = DEFS[key];
    if (!d) return { error: `unknown setting ${key}` };
    const r = d.check(value);
    if ('error' in r) return { error: `${key}: ${r.error}` };
    this.values.set(key, r.value);
    if (d.ports && this.ports) {
      const [low, high] = r.value.split('\t').map(Number);
      this.ports.setEphemeralRange(low!, high!);
      return { value: r.value, applied: true };
    }
    if (!d.tcp) return { value: r.value, applied: false, why: "kept in the settings table; tsvisor's TCP does not read it yet" };
    const fields = d.tcp(r.value);
    if (typeof fields === 'string') return { value: r.value, applied: false, why: fields };
    this.configure(fields);
    return { value: r.value, applied: true };
  }
}
