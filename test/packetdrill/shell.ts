/**
 * What the runner does with a script's shell lines: the sysctl lines that set TCP defaults are recognised in
 * both dialects (Linux's `sysctl -q net.ipv4.tcp_x=v`, FreeBSD's `sysctl -w net.inet.tcp.x=v`) and turned into
 * a setting of the DUT where one exists; everything else is reported as skipped, never dropped silently.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

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

/** What `applyShell` needs: the DUT's settings table and the saved values set_sysctls.py would restore. */
export interface ShellTarget {
  /** The settings table (Netstack.sysctl). */
  readonly sysctl: {
    set(key: string, value: string): { value: string; applied: true } | { value: string; applied: false; why: string } | { error: string };
    get(key: string): string | undefined;
  };
  /** Restore lists by the name of the file set_sysctls.py would have written. */
  readonly restore: Map<string, { key: string; value: string }[]>;
  /** `ip tcp_metrics flush`: forgets what TCP keeps per destination (the client's Fast Open cookies). */
  readonly flushMetrics?: () => void;
  /** `ethtool -K DEV tso on|off`: the DUT's device TSO; false when DEV is not the DUT's device or has no TSO. */
  readonly setTso?: (dev: string, on: boolean) => boolean;
}

/** The outcome of one simple command of a shell line. */
interface Step {
  /** Exit status as sh would see it (skipped commands count as 0: they are reported, not failed). */
  status: number;
  error?: string;
}

/**
 * Applies a shell line to a DUT that runs no shell (tsvisor): reads it as /bin/sh would, one simple command at a
 * time (lines, `;`, `$((…))`, `$PPID`, redirections to /dev/null, quotes), following the `.sh` files it runs, and
 * turns `sysctl`, `set_sysctls.py`, its restore script and `echo … > /proc/sys/…` into settings of the table;
 * everything else is listed as not applied. The line fails when its last command fails, as sh's status does.
 */
export function applyShell(command: string, ctx: { cwd: string; env: Readonly<Record<string, string>> }, target: ShellTarget): { applied: string[]; parts: { text: string; why: string }[]; failed?: string } {
  const applied: string[] = [];
  const parts: { text: string; why: string }[] = [];
  const pid = ctx.env.PACKETDRILL_PID ?? String(process.pid);
  const expand = (s: string) =>
    s
      .replace(/\$\(\(([0-9+\-*/ ()]+)\)\)/g, (_, e: string) => String(Math.trunc(arith(e))))
      .replace(/\$\{?(PPID|PACKETDRILL_PID)\}?/g, pid);
  const setOne = (key: string, value: string, text: string): Step => {
    const r = target.sysctl.set(key, value);
    if ('error' in r) return { status: 255, error: r.error };
    if (r.applied) applied.push(`${key}=${r.value}`);
    else parts.push({ text, why: r.why });
    return { status: 0 };
  };
  const runFile = (path: string, depth: number): Step => {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (e) {
      return { status: 127, error: `${path}: ${(e as NodeJS.ErrnoException).code ?? 'cannot read'}` };
    }
    return runText(text, depth + 1);
  };
  const runSimple = (raw: string, depth: number): Step => {
    const words = splitWords(expand(raw.replace(/\s*\d?>+\s*\/dev\/null|\s*\d?>&\d/g, '')));
    if (!words.length) return { status: 0 };
    const [cmd, ...args] = words as [string, ...string[]];
    const base = cmd.split('/').pop()!;
    if (base === 'sysctl') {
      const assigns = args.filter((a) => !a.startsWith('-'));
      const ignoreUnknown = args.some((a) => /^-\w*e/.test(a));
      let last: Step = { status: 0 };
      for (const a of assigns) {
        const eq = a.indexOf('=');
        if (eq < 0) {
          last = target.sysctl.get(a.replace(/\//g, '.')) === undefined ? { status: 255, error: `unknown setting ${a}` } : { status: 0 };
          continue;
        }
        const key = a.slice(0, eq).replace(/\//g, '.');
        const step = setOne(key, a.slice(eq + 1), a);
        if (step.status && !(ignoreUnknown && step.error?.startsWith('unknown setting'))) last = step;
      }
      return last;
    }
    if (base === 'set_sysctls.py') {
      const saved: { key: string; value: string }[] = [];
      let last: Step = { status: 0 };
      for (const a of args) {
        const m = /^\/proc\/sys\/(.+?)=(.*)$/.exec(a);
        if (!m) return { status: 1, error: `set_sysctls.py: expected /proc/sys/KEY=VALUE, found "${a}"` };
        const key = m[1]!.replace(/\//g, '.');
        const old = target.sysctl.get(key);
        if (old === undefined) return { status: 1, error: `cat: /proc/sys/${m[1]}: No such file or directory` };
        saved.push({ key, value: old });
        last = setOne(key, m[2]!, `${key}=${m[2]}`);
      }
      target.restore.set(`/tmp/sysctl_restore_${pid}.sh`, saved);
      return last;
    }
    const restore = target.restore.get(cmd);
    if (restore) {
      for (const r of restore) setOne(r.key, r.value, `${r.key}=${r.value} (restored)`);
      return { status: 0 };
    }
    if (cmd === 'echo' && /^\/proc\/sys\//.test(raw.split('>').pop()!.trim())) {
      const m = /^echo\s+(.*?)\s*>\s*\/proc\/sys\/(\S+)\s*$/.exec(expand(raw).trim());
      if (m) return setOne(m[2]!.replace(/\//g, '.'), splitWords(m[1]!).join(' '), raw.trim());
    }
    if (cmd.endsWith('.sh') && depth < 8) return runFile(resolve(ctx.cwd, cmd), depth);
    if (base === 'ip' && args[0] === 'tcp_metrics') {
      if (target.flushMetrics && /^f/.test(args[1] ?? '')) {
        target.flushMetrics();
        applied.push('ip tcp_metrics flush (Fast Open cookies)');
      } else parts.push({ text: raw.trim(), why: 'tsvisor keeps no TCP metrics but Fast Open cookies; only a flush applies' });
      return { status: 0 };
    }
    if (base === 'ethtool' && args[0] === '-K' && target.setTso && args.length >= 4) {
      // Linux's TCP segments in software when the device takes no TSO (gso off included): only tso decides whether
      // super-frames leave, so each "tso"/"gso" pair says the same; other features are not the DUT's to change.
      const dev = args[1]!;
      const rest: string[] = [];
      let tso: boolean | undefined;
      for (let i = 2; i + 1 < args.length; i += 2) {
        const [feature, value] = [args[i]!, args[i + 1]!];
        if ((feature === 'tso' || feature === 'gso') && (value === 'on' || value === 'off')) tso = tso === false ? false : value === 'on';
        else rest.push(`${feature} ${value}`);
      }
      if (tso !== undefined && target.setTso(dev, tso)) applied.push(`${dev} tso ${tso ? 'on' : 'off'}`);
      else if (tso !== undefined) rest.unshift(`tso/gso on ${dev}`);
      if (rest.length) parts.push({ text: raw.trim(), why: `not applied: ${rest.join(', ')} (only the DUT device's tso/gso)` });
      return { status: 0 };
    }
    const why =
      base === 'tc' ? 'tsvisor has no qdiscs (packetdrill: the tun device\'s)' :
      base === 'ip' ? 'tsvisor\'s routes and links are the runner\'s; not applied' :
      `not a command the tsvisor DUT can apply`;
    parts.push({ text: raw.trim(), why });
    return { status: 0 };
  };
  const runText = (text: string, depth: number): Step => {
    let last: Step = { status: 0 };
    // sh joins a line ending in a backslash with the next one.
    for (const line of text.replace(/\\\n/g, ' ').split('\n')) {
      const code = line.replace(/(^|\s)#.*$/, '').trim();
      if (code === '' || code.startsWith('#!')) continue;
      for (const simple of code.split(/\s*;\s*/)) if (simple.trim()) last = runSimple(simple, depth);
    }
    return last;
  };
  const last = runText(command, 0);
  return { applied, parts, failed: last.status ? (last.error ?? `exit status ${last.status}`) : undefined };
}

/** Words of a simple command as sh splits them: quotes ("…", '…') may open anywhere in a word. */
function splitWords(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '"' || c === "'") {
      let j = s.indexOf(c, i + 1);
      if (j < 0) j = s.length;
      cur += s.slice(i + 1, j);
      i = j;
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) out.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (inWord) out.push(cur);
  return out;
}

/** Integer arithmetic of `$((…))`: + - * / and parentheses; NaN for anything else. */
function arith(e: string): number {
  const s = e.replace(/\s+/g, '');
  let i = 0;
  const atom = (): number => {
    if (s[i] === '(') {
      i++;
      const v = sum();
      return s[i++] === ')' ? v : NaN;
    }
    if (s[i] === '-') {
      i++;
      return -atom();
    }
    const m = /^\d+/.exec(s.slice(i));
    if (!m) return NaN;
    i += m[0].length;
    return Number(m[0]);
  };
  const product = (): number => {
    let v = atom();
    while (s[i] === '*' || s[i] === '/') v = s[i++] === '*' ? v * atom() : Math.trunc(v / atom());
    return v;
  };
  const sum = (): number => {
    let v = product();
    while (s[i] === '+' || s[i] === '-') v = s[i++] === '+' ? v + product() : v - product();
    return v;
  };
  const v = sum();
  return i === s.length ? v : NaN;
}

/**
 * A shell line with the addresses upstream's scripts name (run_all.py's remote, packetdrill's default remotes, a
 * script's own --remote_ip) replaced by the runner's remote, and `via GATEWAY` dropped: upstream routes the remote
 * through a gateway on its tun device (`ip route change 192.0.2.1 via 192.168.0.2 dev tun0 advmss 600`), while
 * the runner's remote is on the DUT's link with a host route of its own. What was changed comes back as parts.
 */
export function mapShellAddresses(command: string, remote: string, scriptRemotes: readonly string[]): { command: string; parts: { text: string; why: string }[] } {
  const parts: { text: string; why: string }[] = [];
  let out = command;
  for (const a of new Set(scriptRemotes.map((r) => r.replace(/\/\d+$/, '').toLowerCase()))) {
    const re = new RegExp(`(?<![0-9A-Za-z:.])${a.replace(/[.]/g, '\\.')}(?![0-9A-Za-z:.])`, 'gi');
    if (re.test(out)) {
      out = out.replace(re, remote);
      parts.push({ text: a, why: `the script's remote address, run as the runner's ${remote}` });
    }
  }
  out = out.replace(/\s+via\s+([0-9A-Fa-f:.]+)/g, (_m, gw: string) => {
    parts.push({ text: `via ${gw}`, why: "dropped: the runner's remote is on the DUT's link, with no gateway" });
    return '';
  });
  return { command: out, parts };
}
