/**
 * The system-call half of the interpreter: evaluates a script's call arguments to live values (fds mapped from
 * the script's numbers, `...` sockaddrs to the DUT's or the remote's address and the script's ports, buffers,
 * iovecs, msghdrs, option values), makes the call on the DUT's socket interface, and checks the result and the
 * output arguments (errno by name, getsockopt values, poll revents, epoll events, tcp_info fields).
 */
import { ERRNO_NAMES } from '../../netstack/errors.ts';
import { parseAddress } from '../../netstack/addr.ts';
import { LINUX as L, encodeSockaddr, linuxConstant } from '../../sentry/socket/abi.ts';
import type { EpollEvent, PollFd } from '../../sentry/socket/api.ts';
import { UPSTREAM_ADDRESSES } from './addresses.ts';
import { HostSyscalls, type MsgHdrWithControl, NullBuffer } from './host-syscalls.ts';
import type { Dut } from './dut.ts';
import type { Profile } from './interpreter.ts';
import type { Expr, SyscallAction } from './script.ts';
import { Mismatch, ScriptError } from './verdict.ts';

/** What the call half needs from the interpreter. */
export interface CallContext {
  readonly dut: Dut;
  readonly profile: Profile;
  readonly ipVersion: 4 | 6;
  readonly bindPort: number;
  readonly connectPort: number;
  /** Records a difference the profile forgave. */
  lenient(what: string): void;
  /** The timing tolerance of the event being run (ms). */
  toleranceMs(): number;
  /** listen() succeeded: the next inbound SYN opens a new connection. */
  onListen(): void;
  /** connect() is being called: the DUT opens actively towards the connect port. */
  onConnect(): void;
}

/** Where script fds that no call returned are sent (beyond any fd limit). */
const UNMAPPED_FD_BASE = 0x3fff0000;

/** Linux's EFAULT. */
const EFAULT = 14;

/** Evaluates and runs a script's system calls on one DUT. */
export class Calls {
  private readonly fdMap = new Map<number, number>();
  /** Live fds that opened actively (a later MSG_FASTOPEN send on them is data, not a new connection). */
  private readonly connected = new Set<number>();
  /** The live fd of the socket under test (the last one socket() or accept() returned), for python asserts. */
  private underTest: number | undefined;

  constructor(private readonly ctx: CallContext) {}

  /** A socket opens actively (connect, or the first MSG_FASTOPEN send): a new connection for the interpreter. */
  private connecting(fdExpr: Expr | undefined): void {
    const fd = this.liveFd(fdExpr);
    if (this.connected.has(fd)) return;
    this.connected.add(fd);
    this.ctx.onConnect();
  }

  private liveFd(e: Expr | undefined): number {
    const v = this.int(e);
    // A number the script never got from a call must not reach one of the runner's own fds (Linux DUT):
    // it becomes an fd no process has, so both DUTs answer EBADF.
    return this.fdMap.get(v) ?? (v >= 0 ? UNMAPPED_FD_BASE + v : v);
  }

  private int(e: Expr | undefined): number {
    if (!e) throw new ScriptError('missing argument');
    switch (e.t) {
      case 'int':
        return e.v;
      case 'ident': {
        const v = linuxConstant(e.name) ?? EXTRA_CONSTANTS[e.name];
        if (v === undefined) throw new ScriptError(`unknown constant ${e.name}`);
        return v;
      }
      case 'or':
        return e.items.reduce((acc, x) => acc | this.int(x), 0);
      case 'list':
        if (e.items.length === 1) return this.int(e.items[0]);
        break;
      case 'call':
        if ((e.name === 'htons' || e.name === 'htonl' || e.name === 'ntohs') && e.args.length === 1) return this.int(e.args[0]);
        break;
    }
    throw new ScriptError(`expected an integer argument, found ${describeExpr(e)}`);
  }

  private family(): number {
    return this.ctx.ipVersion === 6 ? L.AF_INET6 : L.AF_INET;
  }

  /** A sockaddr from `...` (the DUT's or the remote's default) or a `{sa_family=..., sin_port=..., sin_addr=...}`. */
  private sockaddr(e: Expr | undefined, side: 'local' | 'remote'): Uint8Array {
    const ep = this.ctx.dut.endpoints;
    if (!e || e.t === 'ellipsis') {
      return side === 'local'
        ? encodeSockaddr({ family: this.family(), address: ep.dutIp, port: this.ctx.bindPort })
        : encodeSockaddr({ family: this.family(), address: ep.remoteIp, port: this.ctx.connectPort });
    }
    if (e.t === 'ident' || e.t === 'int') {
      // A bare family (sendto(..., AF_UNSPEC, ...)): a sockaddr of that family and nothing else.
      const b = new Uint8Array(16);
      new DataView(b.buffer).setUint16(0, this.int(e), true);
      return b;
    }
    if (e.t === 'struct') {
      let family = this.family();
      let port = side === 'local' ? this.ctx.bindPort : this.ctx.connectPort;
      let address: Uint8Array = side === 'local' ? ep.dutIp : ep.remoteIp;
      for (const f of e.fields) {
        if (f.name === 'sa_family' || f.name === 'sin_family' || f.name === 'sin6_family') family = this.int(f.value);
        else if (f.name === 'sin_port' || f.name === 'sin6_port') port = this.int(f.value);
        else if (f.name === 'sin_addr' || f.name === 'sin6_addr') address = this.address(f.value, side);
      }
      return encodeSockaddr({ family, address, port });
    }
    throw new ScriptError(`expected a socket address ("..." or {sa_family=..., ...}), found ${describeExpr(e)}`);
  }

  private address(e: Expr, side: 'local' | 'remote'): Uint8Array {
    const ep = this.ctx.dut.endpoints;
    const text = e.t === 'call' && e.args[0]?.t === 'str' ? e.args[0].v : e.t === 'str' ? e.v : undefined;
    if (text === undefined) return side === 'local' ? ep.dutIp : ep.remoteIp;
    // packetdrill's default addresses stand for the two ends; ours replace them.
    if (text === UPSTREAM_ADDRESSES[4].local || text === UPSTREAM_ADDRESSES[6].local) return ep.dutIp;
    if (text === UPSTREAM_ADDRESSES[4].remote || text === UPSTREAM_ADDRESSES[6].remote) return ep.remoteIp;
    if (text === '0.0.0.0' || text === 'INADDR_ANY') return new Uint8Array(4);
    if (text === '::' || text === 'in6addr_any') return new Uint8Array(16);
    return parseAddress(text) ?? (() => { throw new ScriptError(`bad address "${text}"`); })();
  }

  /** Whether `e` is a NULL buffer. */
  private static isNull(e: Expr | undefined): boolean {
    return e?.t === 'ident' && e.name === 'NULL';
  }

  /**
   * Whether a call on a NULL buffer of a non-zero length faults in the runner's copy-in: so for a DUT without an
   * address space of its own (tsvisor in this process), as the Sentry's copy from a program's memory would; the
   * host kernel is given the null pointer itself (NullBuffer) and answers for itself.
   */
  private faults(buf: Expr | undefined, len: Expr | undefined): boolean {
    return Calls.isNull(buf) && this.int(len) > 0 && !(this.ctx.dut.sys instanceof HostSyscalls);
  }

  /** A buffer the call fills: NullBuffer for NULL. */
  private outBuffer(e: Expr | undefined, len: number): Uint8Array {
    return Calls.isNull(e) ? new NullBuffer(len) : new Uint8Array(len);
  }

  private buffer(e: Expr | undefined, len: number): Uint8Array {
    if (Calls.isNull(e)) return new NullBuffer(len);
    if (e?.t === 'str') {
      const b = new TextEncoder().encode(e.v);
      const out = new Uint8Array(len);
      out.set(b.subarray(0, len));
      return out;
    }
    return new Uint8Array(len);
  }

  private iovecs(e: Expr | undefined): Uint8Array[] {
    if (!e || e.t === 'ellipsis') return [];
    if (e.t !== 'list') throw new ScriptError(`expected an iovec array [{iov_base=..., iov_len=N}], found ${describeExpr(e)}`);
    return e.items.map((it) => {
      if (it.t !== 'struct') throw new ScriptError('expected {iov_base=..., iov_len=N} or {..., N}');
      // Named (FreeBSD's scripts) or positional as packetdrill's grammar has it: {..., 40}.
      const len = it.fields.find((f) => f.name === 'iov_len') ?? (it.fields[1] && !it.fields[1].name ? it.fields[1] : undefined);
      const base = it.fields.find((f) => f.name === 'iov_base') ?? (it.fields[0] && !it.fields[0].name ? it.fields[0] : undefined);
      return this.buffer(base?.value, this.int(len?.value));
    });
  }

  private msghdr(e: Expr | undefined, send: boolean): MsgHdrWithControl {
    if (!e || e.t !== 'struct') throw new ScriptError('expected a msghdr {msg_name(...)=..., msg_iov(N)=[...], msg_flags=0}');
    const field = (n: string) => e.fields.find((f) => f.name === n)?.value;
    const name = field('msg_name');
    const control = field('msg_control');
    const cmsgs = control && control.t !== 'ellipsis' ? this.cmsgs(control) : undefined;
    return {
      name: name ? (send ? this.sockaddr(name, 'remote') : new Uint8Array(28)) : null,
      namelen: 0,
      iov: this.iovecs(field('msg_iov')),
      flags: 0,
      // sendmsg sends the script's control messages.
      // recvmsg gets room for exactly the cmsgs the script expects, as packetdrill's msghdr_new sizes it.
      control: cmsgs ? (send ? cmsgs : new Uint8Array(cmsgs.length)) : undefined,
    };
  }

  /** A `msg_control=[{cmsg_level=..., cmsg_type=..., cmsg_data=...}, ...]` list as the kernel lays cmsgs out. */
  private cmsgs(e: Expr): Uint8Array {
    if (e.t !== 'list') throw new ScriptError(`expected msg_control=[{cmsg_level=..., cmsg_type=..., cmsg_data=...}], found ${describeExpr(e)}`);
    const parts = e.items.map((it) => {
      if (it.t !== 'struct') throw new ScriptError('expected {cmsg_level=..., cmsg_type=..., cmsg_data=...}');
      const get = (n: string) => it.fields.find((f) => f.name === n)?.value;
      const level = this.int(get('cmsg_level'));
      return encodeCmsg(level, this.int(get('cmsg_type')), this.cmsgData(get('cmsg_data'), level));
    });
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let off = 0;
    for (const p of parts) {
      out.set(p, off);
      off += p.length;
    }
    return out;
  }

  /** cmsg_data: a sock_extended_err, an scm_timestamping, or an int. */
  private cmsgData(e: Expr | undefined, level: number): Uint8Array {
    if (!e) throw new ScriptError('missing cmsg_data');
    if (e.t === 'struct' && e.fields.some((f) => f.name === 'ee_errno')) {
      // ip(v6)_recv_error appends the offender's sockaddr to the sock_extended_err (not compared).
      const b = new Uint8Array(16 + (level === L.SOL_IP ? 16 : 28));
      const v = new DataView(b.buffer);
      const g = (n: string) => {
        const f = e.fields.find((x) => x.name === n)?.value;
        return f ? this.int(f) : 0;
      };
      v.setUint32(0, g('ee_errno'), true);
      b[4] = g('ee_origin');
      b[5] = g('ee_type');
      b[6] = g('ee_code');
      v.setUint32(8, g('ee_info') >>> 0, true);
      v.setUint32(12, g('ee_data') >>> 0, true);
      return b;
    }
    if (e.t === 'struct' && e.fields.some((f) => f.name === 'scm_sec' || f.name === 'scm_nsec')) {
      // struct scm_timestamping: three timespecs, the script gives the first (software) one in script time.
      const b = new Uint8Array(48);
      const v = new DataView(b.buffer);
      const g = (n: string) => {
        const f = e.fields.find((x) => x.name === n)?.value;
        return f ? this.int(f) : 0;
      };
      v.setBigInt64(0, BigInt(g('scm_sec')), true);
      v.setBigInt64(8, BigInt(g('scm_nsec')), true);
      return b;
    }
    const b = new Uint8Array(4);
    new DataView(b.buffer).setInt32(0, this.int(e), true);
    return b;
  }

  /** Compares received control bytes with the expected ones as run_system_call.c's cmsg_expect_eq does. */
  private checkCmsgs(expected: Uint8Array, actual: Uint8Array): void {
    const es = decodeCmsgs(expected);
    const as = decodeCmsgs(actual);
    for (let i = 0; i < Math.min(es.length, as.length); i++) {
      const e = es[i]!;
      const a = as[i]!;
      if (a.level !== e.level) throw new Mismatch(`recvmsg() cmsg ${i}: level ${a.level}, expected ${e.level}`);
      if (a.type !== e.type) throw new Mismatch(`recvmsg() cmsg ${i}: type ${a.type}, expected ${e.type}`);
      if (a.data.length !== e.data.length) throw new Mismatch(`recvmsg() cmsg ${i}: length ${a.data.length + 16}, expected ${e.data.length + 16}`);
      const ev = new DataView(e.data.buffer, e.data.byteOffset, e.data.length);
      const av = new DataView(a.data.buffer, a.data.byteOffset, a.data.length);
      if ((a.level === L.SOL_IP && a.type === IP_RECVERR) || (a.level === L.SOL_IPV6 && a.type === IPV6_RECVERR)) {
        const names = ['ee_errno', 'ee_origin', 'ee_type', 'ee_code', 'ee_info', 'ee_data'];
        const read = (v: DataView) => [v.getUint32(0, true), v.getUint8(4), v.getUint8(5), v.getUint8(6), v.getUint32(8, true), v.getUint32(12, true)];
        const [ex, ax] = [read(ev), read(av)];
        names.forEach((n, k) => {
          if (ex[k] !== ax[k]) throw new Mismatch(`recvmsg() cmsg ${i}: sock_extended_err ${n} = ${ax[k]}, expected ${ex[k]}`);
        });
      } else if (a.level === L.SOL_SOCKET && a.type === SCM_TIMESTAMPING) {
        for (let k = 0; k < 3; k++) {
          const es = Number(ev.getBigInt64(16 * k, true)) * 1000 + Number(ev.getBigInt64(16 * k + 8, true)) / 1e6;
          if (es === 0) continue; // a zero timestamp is not checked
          const at = Number(av.getBigInt64(16 * k, true)) * 1000 + Number(av.getBigInt64(16 * k + 8, true)) / 1e6;
          const live = this.ctx.dut.scriptTimeOfRealtime?.(at);
          if (live === undefined) throw new ScriptError('SCM_TIMESTAMPING times need a DUT on the real-time clock');
          if (Math.abs(live - es) > this.ctx.toleranceMs()) throw new Mismatch(`recvmsg() cmsg ${i}: timestamp ${k} at ${(live / 1000).toFixed(6)}s, expected ${(es / 1000).toFixed(6)}s`);
        }
      } else if (a.data.some((x, k) => x !== e.data[k])) {
        throw new Mismatch(`recvmsg() cmsg ${i}: data ${[...a.data].join(',')}, expected ${[...e.data].join(',')}`);
      }
    }
    if (as.length > es.length) throw new Mismatch(`recvmsg() received more than ${es.length} cmsgs`);
    if (as.length < es.length) throw new Mismatch(`recvmsg() received only ${as.length} cmsgs`);
  }

  /** Evaluates an option value argument into bytes. */
  private optval(e: Expr | undefined, len: number | undefined): Uint8Array {
    if (!e) throw new ScriptError('missing option value');
    if (e.t === 'str') return cString(e.v);
    if (e.t === 'struct') {
      const get = (n: string) => {
        const f = e.fields.find((x) => x.name === n);
        return f ? this.int(f.value) : 0;
      };
      const b = new Uint8Array(e.fields.some((f) => f.name === 'tv_sec') ? 16 : 8);
      const v = new DataView(b.buffer);
      if (b.length === 16) {
        v.setBigInt64(0, BigInt(get('tv_sec')), true);
        v.setBigInt64(8, BigInt(get('tv_usec')), true);
      } else {
        v.setInt32(0, get('l_onoff'), true);
        v.setInt32(4, get('l_linger'), true);
      }
      return b;
    }
    const b = new Uint8Array(len ?? 4);
    if (b.length >= 4) new DataView(b.buffer).setInt32(0, this.int(e), true);
    else if (b.length >= 1) b[0] = this.int(e);
    return b;
  }

  /** Checks a call's result against the script's (errno by name, fds mapped), then its output arguments. */
  verifyResult(c: SyscallAction, r: number, check: ((r: number) => void) | undefined): void {
    const errName = (n: number) => errnoName(-n);
    if (c.result !== undefined) {
      if (c.result < 0) {
        if (r >= 0) throw new Mismatch(`${c.name}() = ${r}, expected -1 ${c.errno ?? ''}`);
        if (c.errno === undefined) return;
        const want = linuxConstant(c.errno) ?? EXTRA_CONSTANTS[c.errno];
        if (want === undefined) throw new ScriptError(`unknown errno ${c.errno}`);
        if (-r !== want) throw new Mismatch(`${c.name}() = -1 ${errName(r)}, expected -1 ${c.errno}`);
      } else if (r < 0) {
        throw new Mismatch(`${c.name}() = -1 ${errName(r)}, expected ${c.result}`);
      } else if (!FD_RETURNING.has(c.name) && r !== c.result) {
        if (c.name === 'fcntl' && this.ctx.profile === 'freebsd' && (r & ~L.O_NONBLOCK) === (c.result & ~L.O_NONBLOCK)) this.ctx.lenient(`fcntl() = ${r} accepted for ${c.result}`);
        else throw new Mismatch(`${c.name}() = ${r}, expected ${c.result}`);
      }
      if (FD_RETURNING.has(c.name) && r >= 0) {
        this.fdMap.set(c.result, r);
        this.connected.delete(r); // a number reused: a new socket that has not opened yet
      }
      if ((c.name === 'socket' || c.name.startsWith('accept')) && r >= 0) this.underTest = r;
    }
    if (r >= 0) check?.(r);
  }

  /** Starts a call; `check` verifies its output arguments once it succeeded. */
  /** Starts a call with its arguments evaluated to live values; `check` verifies its outputs once it succeeded. */
  invoke(c: SyscallAction): { value: number | Promise<number>; check?: (r: number) => void } {
    const s = this.ctx.dut.sys;
    const a = c.args;
    const fd = () => this.liveFd(a[0]);
    switch (c.name) {
      case 'socket': {
        const domain = a[0]?.t === 'ellipsis' ? this.family() : this.int(a[0]);
        return { value: s.socket(domain, this.int(a[1]), this.int(a[2])) };
      }
      case 'bind':
        return { value: s.bind(fd(), this.sockaddr(a[1], 'local')) };
      case 'listen': {
        const r = s.listen(fd(), this.int(a[1]));
        if (r === 0) this.ctx.onListen();
        return { value: r };
      }
      case 'connect': {
        this.connecting(a[0]);
        return { value: s.connect(fd(), this.sockaddr(a[1], 'remote')) };
      }
      case 'accept':
      case 'accept4': {
        const flags = c.name === 'accept4' ? this.int(a[3]) : 0;
        return { value: s.accept4(fd(), new Uint8Array(28), new Uint32Array([28]), flags) };
      }
      case 'read':
        if (this.faults(a[1], a[2])) return { value: -EFAULT };
        return { value: s.read(fd(), this.outBuffer(a[1], this.int(a[2]))) };
      case 'write':
        if (this.faults(a[1], a[2])) return { value: -EFAULT };
        return { value: s.write(fd(), this.buffer(a[1], this.int(a[2]))) };
      case 'recv':
        if (this.faults(a[1], a[2])) return { value: -EFAULT };
        return { value: s.recvfrom(fd(), this.outBuffer(a[1], this.int(a[2])), this.int(a[3]), null, null) };
      case 'send':
        if (this.faults(a[1], a[2])) return { value: -EFAULT };
        return { value: s.sendto(fd(), this.buffer(a[1], this.int(a[2])), this.int(a[3]), null) };
      case 'recvfrom':
        if (this.faults(a[1], a[2])) return { value: -EFAULT };
        return { value: s.recvfrom(fd(), this.outBuffer(a[1], this.int(a[2])), this.int(a[3]), new Uint8Array(28), new Uint32Array([28])) };
      case 'sendto': {
        const to = a[4] === undefined ? null : this.sockaddr(a[4], 'remote');
        // MSG_FASTOPEN connects as it sends (the SYN carries the data): the DUT opens actively.
        if (this.faults(a[1], a[2])) return { value: -EFAULT };
        if (this.int(a[3]) & EXTRA_CONSTANTS.MSG_FASTOPEN!) this.connecting(a[0]);
        return { value: s.sendto(fd(), this.buffer(a[1], this.int(a[2])), this.int(a[3]), to) };
      }
      case 'readv':
        return { value: s.readv(fd(), this.iovecs(a[1])) };
      case 'writev':
        return { value: s.writev(fd(), this.iovecs(a[1])) };
      case 'sendmsg':
        if (this.int(a[2]) & EXTRA_CONSTANTS.MSG_FASTOPEN!) this.connecting(a[0]);
        return { value: s.sendmsg(fd(), this.msghdr(a[1], true), this.int(a[2])) };
      case 'recvmsg': {
        const m = this.msghdr(a[1], false);
        const expected = m.control;
        const want = a[1]?.t === 'struct' ? a[1].fields.find((f) => f.name === 'msg_flags')?.value : undefined;
        return {
          value: s.recvmsg(fd(), m, this.int(a[2])),
          check: () => {
            if (want && want.t !== 'ellipsis' && m.flags !== this.int(want)) throw new Mismatch(`recvmsg() msg_flags = ${m.flags}, expected ${this.int(want)}`);
            if (expected) {
              const got = m.control!.subarray(0, m.controllen ?? 0);
              // The expected bytes were re-encoded into the buffer the call filled: take them from the script again.
              this.checkCmsgs(this.cmsgs(a[1]!.t === 'struct' ? a[1].fields.find((f) => f.name === 'msg_control')!.value : a[1]!), got);
            }
          },
        };
      }
      case 'pipe': {
        const host = this.host(c.name);
        const fds = new Int32Array(2);
        const list = a[0]?.t === 'list' ? a[0].items : [];
        return {
          value: host.pipe(fds),
          check: () => list.forEach((x, k) => x.t === 'int' && this.fdMap.set(x.v, fds[k]!)),
        };
      }
      case 'splice':
        return { value: this.host(c.name).splice(fd(), this.liveFd(a[2]), this.int(a[4]), this.int(a[5])) };
      case 'open': {
        const path = a[0]?.t === 'str' ? a[0].v : undefined;
        if (path === undefined) throw new ScriptError('open() needs a path string');
        const host = this.host(c.name);
        return { value: host.open(path, this.int(a[1]), a[2] ? this.int(a[2]) : 0o644) };
      }
      case 'sendfile': {
        const off = a[2]?.t === 'list' ? new BigInt64Array([BigInt(this.int(a[2]))]) : null;
        return { value: this.host(c.name).sendfile(fd(), this.liveFd(a[1]), off, this.int(a[3])) };
      }
      case 'shutdown':
        return { value: s.shutdown(fd(), this.int(a[1])) };
      case 'close': {
        const live = fd();
        const r = s.close(live);
        // A lingering close (a Promise) has already freed the fd, as Linux's close does before it waits.
        if (typeof r !== 'number' || r === 0) {
          this.fdMap.delete(this.int(a[0]));
          this.connected.delete(live);
        }
        return { value: r };
      }
      case 'getsockname':
      case 'getpeername': {
        const buf = new Uint8Array(28);
        const len = new Uint32Array([28]);
        return { value: c.name === 'getsockname' ? s.getsockname(fd(), buf, len) : s.getpeername(fd(), buf, len) };
      }
      case 'getsockopt':
        return this.getsockopt(c);
      case 'setsockopt': {
        const len = a[4] && a[4].t !== 'ellipsis' ? this.int(a[4]) : undefined;
        return { value: s.setsockopt(fd(), this.int(a[1]), this.int(a[2]), this.optval(a[3], len)) };
      }
      case 'fcntl':
        return { value: s.fcntl(fd(), this.int(a[1]), a[2] ? this.int(a[2]) : 0) };
      case 'ioctl': {
        const arg = new Int32Array([a[2] && a[2].t === 'list' && a[2].items[0]?.t !== 'ellipsis' ? this.int(a[2]) : 0]);
        const req = this.int(a[1]);
        const expectOut = req !== L.FIONBIO && a[2]?.t === 'list' && a[2].items[0] && a[2].items[0].t !== 'ellipsis' ? this.int(a[2]) : undefined;
        return {
          value: s.ioctl(fd(), req, arg),
          check: () => {
            if (expectOut !== undefined && arg[0] !== expectOut) throw new Mismatch(`ioctl() wrote ${arg[0]}, expected ${expectOut}`);
          },
        };
      }
      case 'poll':
        return this.poll(c);
      case 'epoll_create':
      case 'epoll_create1':
        return { value: s.epollCreate(c.name === 'epoll_create1' ? this.int(a[0]) : 0) };
      case 'epoll_ctl': {
        const evs = a[3]?.t === 'struct' ? this.epollEvent(a[3]) : null;
        return { value: s.epollCtl(this.liveFd(a[0]), this.int(a[1]), this.liveFd(a[2]), evs) };
      }
      case 'epoll_wait': {
        const out: EpollEvent[] = [];
        const want = a[1]?.t === 'struct' ? this.epollEvent(a[1]) : undefined;
        return {
          value: s.epollWait(this.liveFd(a[0]), out, this.int(a[2]), this.int(a[3])),
          check: (r) => {
            if (want && r > 0 && (out[0]!.events !== want.events || out[0]!.data !== want.data)) {
              throw new Mismatch(`epoll_wait() event {events=${out[0]!.events}, data=${out[0]!.data}}, expected {events=${want.events}, data=${want.data}}`);
            }
          },
        };
      }
      default:
        throw new ScriptError(`system call ${c.name}() is not supported by the runner`);
    }
  }

  /** The DUT's calls beyond sockets (pipe, splice, open, sendfile): the Linux DUT has them; tsvisor's socket layer not yet. */
  private host(name: string): HostSyscalls {
    const s = this.ctx.dut.sys;
    if (!(s instanceof HostSyscalls)) throw new ScriptError(`${name}() is not served by tsvisor's socket layer yet (a gap listed in DIVERGENCES.md)`);
    return s;
  }

  private epollEvent(e: Expr & { t: 'struct' }): EpollEvent {
    const ev = e.fields.find((f) => f.name === 'events');
    const data = e.fields.find((f) => f.name === 'fd' || f.name === 'u64' || f.name === 'u32' || f.name === 'ptr');
    const fdLike = data?.name === 'fd';
    return { events: ev ? this.int(ev.value) : 0, data: data ? (fdLike ? this.liveFd(data.value) : this.int(data.value)) : 0 };
  }

  private poll(c: SyscallAction): { value: number | Promise<number>; check: (r: number) => void } {
    const list = c.args[0];
    if (list?.t !== 'list') throw new ScriptError('expected poll([{fd=..., events=..., revents=...}], n, timeout)');
    const want: (number | undefined)[] = [];
    const fds: PollFd[] = list.items.map((it) => {
      if (it.t !== 'struct') throw new ScriptError('expected {fd=..., events=..., revents=...}');
      const g = (n: string) => it.fields.find((f) => f.name === n)?.value;
      const rev = g('revents');
      want.push(rev && rev.t !== 'ellipsis' ? this.int(rev) : undefined);
      return { fd: this.liveFd(g('fd')), events: this.int(g('events')), revents: 0 };
    });
    return {
      value: this.ctx.dut.sys.poll(fds, this.int(c.args[2])),
      check: () => {
        fds.forEach((f, i) => {
          if (want[i] !== undefined && f.revents !== want[i]) throw new Mismatch(`poll() revents = 0x${f.revents.toString(16)}, expected 0x${want[i]!.toString(16)}`);
        });
      },
    };
  }

  private getsockopt(c: SyscallAction): { value: number; check: (r: number) => void } {
    const a = c.args;
    const level = this.int(a[1]);
    const name = this.int(a[2]);
    const valExpr = a[3];
    const lenExpr = a[4];
    const wantLen = lenExpr && lenExpr.t === 'list' && lenExpr.items[0]?.t === 'int' ? lenExpr.items[0].v : undefined;
    const buf = new Uint8Array(Math.max(wantLen ?? 4, valExpr?.t === 'struct' ? 256 : 4));
    const len = new Uint32Array([wantLen ?? buf.length]);
    const r = this.ctx.dut.sys.getsockopt(this.liveFd(a[0]), level, name, buf, len);
    return {
      value: r,
      check: () => {
        if (!valExpr || valExpr.t === 'ellipsis') return;
        const v = new DataView(buf.buffer);
        if (valExpr.t === 'list' && valExpr.items[0]?.t !== 'ellipsis') {
          const want = this.int(valExpr);
          const got = len[0]! >= 4 ? (want > 0x7fffffff ? v.getUint32(0, true) : v.getInt32(0, true)) : buf[0]!;
          if (got !== want) {
            const isBuf = level === L.SOL_SOCKET && (name === L.SO_RCVBUF || name === L.SO_SNDBUF);
            if (this.ctx.profile === 'freebsd' && isBuf) this.ctx.lenient(`getsockopt buffer size ${got} accepted for ${want}`);
            else throw new Mismatch(`getsockopt() value = ${name === L.SO_ERROR ? errnoName(got) || got : got}, expected ${describeExpr(valExpr)}`);
          }
        } else if (valExpr.t === 'struct') {
          for (const f of valExpr.fields) {
            if (f.value.t === 'ellipsis' || !f.name) continue;
            const off = STRUCT_FIELDS[f.name];
            if (off === undefined) throw new ScriptError(`getsockopt: unknown field ${f.name}`);
            const got = off[1] === 1 ? buf[off[0]]! : v.getUint32(off[0], true);
            if (got !== this.int(f.value)) throw new Mismatch(`getsockopt() ${f.name} = ${got}, expected ${describeExpr(f.value)}`);
          }
        }
        if (wantLen !== undefined && len[0] !== wantLen) throw new Mismatch(`getsockopt() optlen = ${len[0]}, expected ${wantLen}`);
      },
    };
  }
  /** TCP_INFO bytes of the socket under test (for a %{ }% block), or why there are none. */
  tcpInfo(): Uint8Array | string {
    if (this.underTest === undefined) return 'no socket to use for code';
    const buf = new Uint8Array(256);
    const len = new Uint32Array([buf.length]);
    const r = this.ctx.dut.sys.getsockopt(this.underTest, L.IPPROTO_TCP, L.TCP_INFO, buf, len);
    if (r < 0) return `getsockopt(TCP_INFO) = -1 ${errnoName(-r)}`;
    return buf;
  }
}

/**
 * Linux constants upstream's scripts use that the Sentry's ABI table (sentry/socket/abi.ts) does not carry yet:
 * Fast Open, TCP_INQ, MSG_ZEROCOPY completions and SO_TIMESTAMPING (include/uapi/linux/{tcp,errqueue,net_tstamp}.h).
 */
export const EXTRA_CONSTANTS: Readonly<Record<string, number>> = {
  NULL: 0,
  ENOMSG: 42,
  TCP_FASTOPEN: 23, TCP_FASTOPEN_CONNECT: 30, TCP_FASTOPEN_KEY: 33, TCP_FASTOPEN_NO_COOKIE: 34, TCP_INQ: 36, TCP_CM_INQ: 36,
  TCP_NOTSENT_LOWAT: 25, TCP_USER_TIMEOUT: 18, TCP_MD5SIG: 14, TCP_REPAIR: 19, TCP_TX_DELAY: 37,
  IP_FREEBIND: 15, SO_MARK: 36, SO_ZEROCOPY: 60, SO_TIMESTAMPING: 37, SCM_TIMESTAMPING: 37, SO_MEMINFO: 55,
  MSG_ZEROCOPY: 0x4000000, MSG_FASTOPEN: 0x20000000, MSG_ERRQUEUE: 0x2000, MSG_EOR: 0x80, MSG_MORE: 0x8000,
  SO_EE_ORIGIN_NONE: 0, SO_EE_ORIGIN_LOCAL: 1, SO_EE_ORIGIN_ICMP: 2, SO_EE_ORIGIN_ICMP6: 3, SO_EE_ORIGIN_TIMESTAMPING: 4,
  SO_EE_ORIGIN_ZEROCOPY: 5, SO_EE_CODE_ZEROCOPY_COPIED: 1,
  SCM_TSTAMP_SND: 0, SCM_TSTAMP_SCHED: 1, SCM_TSTAMP_ACK: 2,
  SOF_TIMESTAMPING_TX_HARDWARE: 1, SOF_TIMESTAMPING_TX_SOFTWARE: 2, SOF_TIMESTAMPING_RX_HARDWARE: 4,
  SOF_TIMESTAMPING_RX_SOFTWARE: 8, SOF_TIMESTAMPING_SOFTWARE: 16, SOF_TIMESTAMPING_SYS_HARDWARE: 32,
  SOF_TIMESTAMPING_RAW_HARDWARE: 64, SOF_TIMESTAMPING_OPT_ID: 128, SOF_TIMESTAMPING_TX_SCHED: 256,
  SOF_TIMESTAMPING_TX_ACK: 512, SOF_TIMESTAMPING_OPT_CMSG: 1024, SOF_TIMESTAMPING_OPT_TSONLY: 2048,
  SOF_TIMESTAMPING_OPT_STATS: 4096, SOF_TIMESTAMPING_OPT_PKTINFO: 8192, SOF_TIMESTAMPING_OPT_TX_SWHW: 16384,
  SIOCINQ: 0x541b, SIOCOUTQ: 0x5411, SIOCOUTQNSQ: 0x894b, FIONREAD: 0x541b,
  EPOLLEXCLUSIVE: 1 << 28, EPOLLWAKEUP: 1 << 29, EPOLLONESHOT: 1 << 30, EPOLLET: -0x80000000,
  SPLICE_F_MOVE: 1, SPLICE_F_NONBLOCK: 2, SPLICE_F_MORE: 4,
};

/** Calls whose result is a new fd (compared as "some fd", then mapped). */
const FD_RETURNING = new Set(['socket', 'accept', 'accept4', 'epoll_create', 'epoll_create1', 'open']);

const IP_RECVERR = 11;
const IPV6_RECVERR = 25;
const SCM_TIMESTAMPING = 37;

/** A script string's bytes with C's escapes (\xNN, \n, \t, \\, \", octal), as packetdrill's lexer reads them. */
export function cString(s: string): Uint8Array {
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c !== '\\' || i + 1 >= s.length) {
      out.push(...new TextEncoder().encode(c));
      continue;
    }
    const n = s[++i]!;
    let m: RegExpExecArray | null;
    if (n === 'x' && (m = /^[0-9a-fA-F]{1,2}/.exec(s.slice(i + 1)))) {
      out.push(parseInt(m[0], 16));
      i += m[0].length;
    } else if ((m = /^[0-7]{1,3}/.exec(s.slice(i)))) {
      out.push(parseInt(m[0], 8) & 0xff);
      i += m[0].length - 1;
    } else out.push({ n: 10, t: 9, r: 13, '0': 0 }[n] ?? n.charCodeAt(0));
  }
  return new Uint8Array(out);
}

/** One control message as the kernel lays it out: cmsghdr (len, level, type), data, padding to 8 bytes. */
function encodeCmsg(level: number, type: number, data: Uint8Array): Uint8Array {
  const b = new Uint8Array(16 + ((data.length + 7) & ~7));
  const v = new DataView(b.buffer);
  v.setBigUint64(0, BigInt(16 + data.length), true);
  v.setInt32(8, level, true);
  v.setInt32(12, type, true);
  b.set(data, 16);
  return b;
}

/** Control bytes back into messages. */
function decodeCmsgs(b: Uint8Array): { level: number; type: number; data: Uint8Array }[] {
  const out: { level: number; type: number; data: Uint8Array }[] = [];
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  for (let off = 0; off + 16 <= b.length; ) {
    const len = Number(v.getBigUint64(off, true));
    if (len < 16 || off + len > b.length) break;
    out.push({ level: v.getInt32(off + 8, true), type: v.getInt32(off + 12, true), data: b.subarray(off + 16, off + len) });
    off += (len + 7) & ~7;
  }
  return out;
}

/** Offsets and sizes of struct linger and struct tcp_info fields a script may check. */
const STRUCT_FIELDS: Record<string, [number, number]> = {
  l_onoff: [0, 4], l_linger: [4, 4],
  tcpi_state: [0, 1], tcpi_ca_state: [1, 1], tcpi_retransmits: [2, 1], tcpi_probes: [3, 1], tcpi_backoff: [4, 1],
  tcpi_options: [5, 1], tcpi_rto: [8, 4], tcpi_ato: [12, 4], tcpi_snd_mss: [16, 4], tcpi_rcv_mss: [20, 4],
  tcpi_unacked: [24, 4], tcpi_sacked: [28, 4], tcpi_lost: [32, 4], tcpi_retrans: [36, 4], tcpi_fackets: [40, 4],
  tcpi_pmtu: [60, 4], tcpi_rcv_ssthresh: [64, 4], tcpi_rtt: [68, 4], tcpi_rttvar: [72, 4], tcpi_snd_ssthresh: [76, 4],
  tcpi_snd_cwnd: [80, 4], tcpi_advmss: [84, 4], tcpi_reordering: [88, 4], tcpi_rcv_rtt: [92, 4], tcpi_rcv_space: [96, 4],
  tcpi_total_retrans: [100, 4],
};

/** The name of an errno (0 printed as 0). */
export function errnoName(e: number): string {
  return e === 0 ? '0' : (ERRNO_NAMES[e] ?? `errno ${e}`);
}

/** An expression as the script wrote it, for messages. */
export function describeExpr(e: Expr): string {
  switch (e.t) {
    case 'int':
      return String(e.v);
    case 'ellipsis':
      return '...';
    case 'ident':
      return e.name;
    case 'str':
      return `"${e.v}"`;
    case 'or':
      return e.items.map(describeExpr).join('|');
    case 'list':
      return `[${e.items.map(describeExpr).join(', ')}]`;
    case 'struct':
      return `{${e.fields.map((f) => (f.name ? `${f.name}=` : '') + describeExpr(f.value)).join(', ')}}`;
    case 'call':
      return `${e.name}(${e.args.map(describeExpr).join(', ')})`;
  }
}
