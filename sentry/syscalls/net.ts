/**
 * The trapped socket calls, one handler each: socket, bind, listen, connect, accept/accept4, getsockname,
 * getpeername, getsockopt, setsockopt, and the address-carrying sendto/recvfrom/sendmsg/recvmsg(/mmsg).
 * Each reads its arguments from the target's memory (msg.ts), checks the notification is still live before
 * acting on them, and answers through the Sentry (dispatch.ts); a call on an fd that is not ours is CONTINUEd.
 */
import * as ux from '../../lib/unix.ts';
import { LINUX as L } from '../socket/abi.ts';
import { type Accepted, SocketFile } from '../socket/file.ts';
import { ListenQueue } from '../datapath/listener.ts';
import { type StreamPump, stuff } from '../datapath/stream.ts';
import type { Received } from '../datapath/dgram.ts';
import { layOut } from '../socket/cmsg.ts';
import type { EventEmitter } from 'eventemitter3';
import { EventErr } from '../../netstack/waiter.ts';
import type { Call, Handler, Sentry, Sock } from './dispatch.ts';
import {
  EFAULT,
  EINVAL,
  MMSGHDR_LEN,
  type Mem,
  type MsgHdrRef,
  gather,
  int,
  iovTotal,
  ptr,
  readLen,
  readMsghdr,
  readSockaddr,
  scatter,
  writeLen,
  writeMsghdrOut,
  writeSockaddr,
} from './msg.ts';
import { formatSockaddr } from './strace.ts';

const EAGAIN = 11;
const EBADF = 9;
const EINPROGRESS = 115;
const EPIPE = 32;
const EALREADY = 114;
const EOPNOTSUPP = 95;
const ENOTCONN = 107;
const ENOPROTOOPT = 92;

/**
 * SO_ZEROCOPY is refused here as a kernel without it refuses it (ENOPROTOOPT, how programs detect the feature):
 * a sandboxed program's sends and its recvmsg(MSG_ERRQUEUE) run natively on its end of the Sentry's AF_UNIX pair,
 * so the netstack's completions would never reach it, and a program waiting for them before reusing a buffer
 * would wait forever. Programs then send as usual (copying), which is what tsvisor does anyway. SO_TIMESTAMPING's
 * transmit reports go on the same error queue and are refused for the same reason.
 */
function zeroCopyOption(level: number, name: number): boolean {
  return level === L.SOL_SOCKET && (name === L.SO_ZEROCOPY || name === L.SO_TIMESTAMPING);
}
/** How many bytes of an option value are read at most (the largest option is TCP_INFO's 248). */
const OPT_MAX = 512;

/** The call's memory (the target's). */
function mem(c: Call): Mem {
  return c.target;
}

/**
 * Runs `body` with our socket behind args[0] and, when `needDup` says so (for that socket), a dup of the
 * program's fd (closed afterwards unless `body` keeps it by returning 'keep'; -1 when not asked for): a call that
 * works on our Endpoint only spares the two system calls of taking and closing one. CONTINUEs when the fd is not
 * ours, answers -errno when it is not open.
 */
function withSock(
  s: Sentry,
  c: Call,
  body: (sock: Sock, dup: number) => void | 'keep',
  needDup: boolean | ((sock: Sock) => boolean) = true,
): void {
  const fd = int(c.n.args[0]!);
  const sock = s.lookup(c, fd);
  if (sock === undefined) return s.continue(c);
  if (typeof sock === 'number') return s.answer(c, sock);
  const need = typeof needDup === 'function' ? needDup(sock) : needDup;
  const dup = need ? s.programDup(c, fd, sock) : -1;
  if (need && dup < 0) return s.answer(c, dup);
  let keep: void | 'keep' = undefined;
  try {
    keep = body(sock, dup);
  } finally {
    if (keep !== 'keep' && dup >= 0) ux.close(dup);
  }
}

/** O_NONBLOCK of the program's open file description (fcntl and FIONBIO set it natively). */
function nonblocking(dup: number): boolean {
  const fl = ux.getFl(dup);
  return fl >= 0 && (fl & ux.U.O_NONBLOCK) !== 0;
}

/**
 * Resolves once `pump` has moved something to or from the program's end (it may be ready now), or the signal
 * aborts (false). Never a poll handle on the program's fd: libuv's would flip O_NONBLOCK on its open file
 * description.
 */
function movedOnce(pump: EventEmitter<{ moved: [] }>, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(false);
    const done = (v: boolean) => {
      pump.off('moved', onMoved);
      signal.removeEventListener('abort', onAbort);
      resolve(v);
    };
    const onMoved = () => done(true);
    const onAbort = () => done(false);
    pump.on('moved', onMoved);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

function socket(s: Sentry, c: Call): void {
  const [domain, type, protocol] = c.n.args.slice(0, 3).map(int) as [number, number, number];
  c.args = `${domain === L.AF_INET ? 'AF_INET' : domain === L.AF_INET6 ? 'AF_INET6' : domain}, ${type}, ${protocol}`;
  const file = SocketFile.open(s.stack, s.clock, domain, type, protocol);
  if (typeof file === 'number') return s.answer(c, file);
  // A raw socket keeps message boundaries like a datagram one, so it rides the same SOCK_SEQPACKET pair.
  const kind = file.type === L.SOCK_STREAM ? 'stream' : file.type === L.SOCK_DGRAM || file.type === L.SOCK_RAW ? 'dgram' : undefined;
  if (!kind) {
    file.close();
    return s.answer(c, -EOPNOTSUPP);
  }
  const [theirs, ours] = s.pair(kind, (type & L.SOCK_NONBLOCK) !== 0);
  const sock = s.register(file, kind, theirs, ours, c.target);
  const r = s.listener.addFd(c.n.id, theirs, { send: true, cloexec: (type & L.SOCK_CLOEXEC) !== 0 });
  ux.close(theirs);
  if (r < 0) {
    s.release(sock);
    // ENOENT: the call is gone (nothing to answer); otherwise (EMFILE) it still waits.
    if (r !== -2) s.answer(c, r);
    return;
  }
  s.answeredWithFd(c, r);
}

function bind(s: Sentry, c: Call): void {
  const addrp = ptr(c.n.args[1]!);
  const len = int(c.n.args[2]!);
  withSock(s, c, (sock) => {
    const sa = readSockaddr(mem(c), addrp, len);
    c.args = `${int(c.n.args[0]!)}, ${typeof sa === 'number' ? addrp : formatSockaddr(sa)}, ${len}`;
    if (typeof sa === 'number') return s.answer(c, sa);
    if (!s.listener.idValid(c.n.id)) return;
    s.answer(c, sock.file.bind(sa));
  }, false);
}

function listen(s: Sentry, c: Call): void {
  const backlog = int(c.n.args[1]!);
  c.args = `${int(c.n.args[0]!)}, ${backlog}`;
  withSock(s, c, (sock, dup) => {
    if (sock.kind !== 'stream') return s.answer(c, -EOPNOTSUPP);
    const r = sock.file.listen(backlog);
    if (r === 0) {
      if (sock.listen) sock.listen.setBacklog(backlog);
      else if (!sock.pump) {
        const ours = s.takeOurs(sock);
        sock.listen = new ListenQueue(ours, ux.dup(dup), sock.file, backlog);
        sock.listen.on('closed', () => s.forget(sock));
      }
    }
    s.answer(c, r);
  });
}

function connect(s: Sentry, c: Call): void {
  const addrp = ptr(c.n.args[1]!);
  const len = int(c.n.args[2]!);
  withSock(s, c, (sock, dup) => {
    const sa = readSockaddr(mem(c), addrp, len);
    c.args = `${int(c.n.args[0]!)}, ${typeof sa === 'number' ? addrp : formatSockaddr(sa)}, ${len}`;
    if (typeof sa === 'number') return s.answer(c, sa);
    if (!s.listener.idValid(c.n.id)) return;
    if (sock.kind === 'dgram') return s.answer(c, sock.file.connect(sa, true) as number);
    const nonblock = nonblocking(dup);
    const fresh = !sock.pump && !sock.listen;
    const r = sock.file.connect(sa, nonblock);
    // A failed connect's error, reported here as Linux's __inet_stream_connect reports it.
    s.takeFailMarker(sock, dup);
    if (typeof r === 'number') {
      if (fresh && r === 0) s.startStream(sock);
      if (fresh && r === -EINPROGRESS) s.startStream(sock, stuff(ux.dup(dup)));
      return s.answer(c, r);
    }
    // A blocking connect: the handshake goes on; its outcome answers the call.
    const keepDup = ux.dup(dup);
    s.park(c, async (signal) => {
      const out = await Promise.race([r, new Promise<number>((res) => signal.addEventListener('abort', () => res(-4), { once: true }))]);
      try {
        if (signal.aborted) return -4;
        if (fresh && out === 0) s.startStream(sock);
        // SO_SNDTIMEO ran out: the handshake goes on as after a non-blocking connect.
        if (fresh && out === -EINPROGRESS) s.startStream(sock, stuff(ux.dup(keepDup)));
        return out;
      } finally {
        ux.close(keepDup);
      }
    });
  });
}

function accept(s: Sentry, c: Call, flags: number): void {
  const addrp = ptr(c.n.args[1]!);
  const lenp = ptr(c.n.args[2]!);
  c.args = `${int(c.n.args[0]!)}, ${addrp ? `0x${addrp.toString(16)}` : 'NULL'}, ${lenp ? `0x${lenp.toString(16)}` : 'NULL'}${c.name === 'accept4' ? `, ${flags}` : ''}`;
  withSock(s, c, (sock, dup) => {
    // As Linux's __sys_accept4 and the protocols' accept: flags first, then a datagram socket (sock_no_accept),
    // then a stream socket that is not listening.
    if (flags & ~(L.SOCK_NONBLOCK | L.SOCK_CLOEXEC)) return s.answer(c, -EINVAL);
    if (sock.kind !== 'stream') return s.answer(c, -EOPNOTSUPP);
    if (!sock.listen) return s.answer(c, -EINVAL);
    if (addrp) {
      const room = readLen(mem(c), lenp);
      if (room < 0) return s.answer(c, room);
    }
    const q = sock.listen;
    const finish = (a: Accepted, parked: boolean): void => {
      const [theirs, ours] = s.pair('stream', (flags & L.SOCK_NONBLOCK) !== 0);
      const nsock = s.register(a.file, 'stream', theirs, ours, c.target, true);
      if (addrp) {
        const w = writeSockaddr(mem(c), addrp, lenp, sock.file.sockaddr(a.peer));
        if (w < 0) {
          ux.close(theirs);
          s.release(nsock);
          return s.answer(c, w, parked);
        }
      }
      const fd = s.listener.addFd(c.n.id, theirs, { send: true, cloexec: (flags & L.SOCK_CLOEXEC) !== 0 });
      ux.close(theirs);
      if (fd < 0) {
        s.release(nsock);
        if (fd !== -2) s.answer(c, fd, parked);
        return;
      }
      s.answeredWithFd(c, fd, parked);
    };
    const first = q.take(dup);
    if (typeof first !== 'number') return finish(first, false);
    if (first !== -EAGAIN || nonblocking(dup)) return s.answer(c, first);
    const keep = ux.dup(dup);
    s.park(c, async (signal) => {
      try {
        for (;;) {
          if (signal.aborted) return -4;
          const got = q.take(keep);
          if (typeof got !== 'number') {
            finish(got, true);
            return 'answered';
          }
          if (got !== -EAGAIN) return got;
          await new Promise<void>((res) => {
            const go = () => {
              q.off('ready', go);
              q.off('closed', go);
              signal.removeEventListener('abort', go);
              res();
            };
            q.on('ready', go);
            q.on('closed', go);
            signal.addEventListener('abort', go, { once: true });
          });
        }
      } finally {
        ux.close(keep);
      }
    });
  });
}

function names(which: 'getsockname' | 'getpeername'): Handler {
  return (s, c) => {
    const addrp = ptr(c.n.args[1]!);
    const lenp = ptr(c.n.args[2]!);
    c.args = `${int(c.n.args[0]!)}, 0x${addrp.toString(16)}, 0x${lenp.toString(16)}`;
    withSock(s, c, (sock) => {
      const room = readLen(mem(c), lenp);
      if (room < 0) return s.answer(c, room);
      const buf = new Uint8Array(128);
      const len = new Uint32Array([128]);
      const r = which === 'getsockname' ? sock.file.getsockname(buf, len) : sock.file.getpeername(buf, len);
      if (r < 0) return s.answer(c, r);
      s.answer(c, writeSockaddr(mem(c), addrp, lenp, buf.subarray(0, len[0]!)));
    }, false);
  };
}

function getsockopt(s: Sentry, c: Call): void {
  const [fd, level, name] = c.n.args.slice(0, 3).map(int) as [number, number, number];
  const valp = ptr(c.n.args[3]!);
  const lenp = ptr(c.n.args[4]!);
  c.args = `${fd}, ${level}, ${name}, 0x${valp.toString(16)}, 0x${lenp.toString(16)}`;
  if (level === L.SOL_SOCKET && name === L.SO_ERROR) {
    // A reset the program's end could not report (it had shut its sending side) after the Sentry let go of it.
    const e = s.takeUnsurfaced(c, fd);
    if (e !== undefined) {
      const room = readLen(mem(c), lenp);
      if (room < 0) return s.answer(c, room);
      const v = new Uint8Array(4);
      new DataView(v.buffer).setInt32(0, e, true);
      const n = Math.min(room, 4);
      if (n > 0 && !mem(c).write(valp, v.subarray(0, n))) return s.answer(c, -EFAULT);
      return s.answer(c, writeLen(mem(c), lenp, n) ? 0 : -EFAULT);
    }
  }
  withSock(s, c, (sock, dup) => {
    if (zeroCopyOption(level, name)) return s.answer(c, -ENOPROTOOPT);
    const room = readLen(mem(c), lenp);
    if (room < 0) return s.answer(c, room);
    const buf = new Uint8Array(Math.min(room, OPT_MAX));
    const len = new Uint32Array([buf.length]);
    const soError = level === L.SOL_SOCKET && name === L.SO_ERROR;
    // A failed connect's error that a read or write on the program's end reported already is gone, as on Linux.
    const unreported = soError ? s.takeFailMarker(sock, dup) : true;
    const r = sock.file.getsockopt(level, name, buf, len);
    if (r < 0) return s.answer(c, r);
    if (!unreported) buf.fill(0, 0, len[0]!);
    // SO_ERROR took the error: the marker that woke the program's poll for it goes too.
    if (soError) sock.dgram?.dropMarker(dup);
    if (len[0]! > 0 && !mem(c).write(valp, buf.subarray(0, len[0]!))) return s.answer(c, -EFAULT);
    s.answer(c, writeLen(mem(c), lenp, len[0]!) ? 0 : -EFAULT);
  }, (sock) => (sock.kind === 'dgram' || sock.failMarker === true) && level === L.SOL_SOCKET && name === L.SO_ERROR);
}

function setsockopt(s: Sentry, c: Call): void {
  const [fd, level, name] = c.n.args.slice(0, 3).map(int) as [number, number, number];
  const valp = ptr(c.n.args[3]!);
  const optlen = int(c.n.args[4]!);
  c.args = `${fd}, ${level}, ${name}, 0x${valp.toString(16)}, ${optlen}`;
  withSock(s, c, (sock, dup) => {
    if (optlen < 0) return s.answer(c, -EINVAL);
    if (zeroCopyOption(level, name)) return s.answer(c, -ENOPROTOOPT);
    const val = mem(c).read(valp, Math.min(optlen, OPT_MAX));
    if (!val) return s.answer(c, -EFAULT);
    if (!s.listener.idValid(c.n.id)) return;
    // UDP_CORK takes in (or, cleared, sends) only what the program sent after (before) it.
    if (level === L.IPPROTO_UDP) sock.dgram?.flushUp();
    const r = sock.file.setsockopt(level, name, val);
    // Timeouts also go on the program's end, where its reads and writes block natively.
    if (r === 0 && level === L.SOL_SOCKET && (name === L.SO_RCVTIMEO || name === L.SO_SNDTIMEO)) ux.setOpt(dup, level, name, val);
    s.answer(c, r);
  }, () => level === L.SOL_SOCKET && (name === L.SO_RCVTIMEO || name === L.SO_SNDTIMEO));
}

/** Where a received datagram goes in the program: its iovecs, and the name and control buffers when asked. */
interface DeliverTo {
  iov: { base: number; len: number }[];
  name: number;
  /** recvfrom: the socklen_t of the name; null for none (recvmsg keeps it in the msghdr). */
  lenp: number | null;
  /** recvmsg/recvmmsg: the struct msghdr, whose msg_namelen, msg_controllen and msg_flags are written back. */
  msghdr?: number;
  control?: number;
  controllen?: number;
}

/** Bytes of control messages built at most: more than every receive control message together takes. */
const CONTROL_MAX = 1024;

/**
 * Copies a received datagram into the program: payload, source and its length, and for recvmsg the control
 * messages the socket asked for (MSG_CTRUNC when msg_controllen is short); returns the call's result.
 */
function deliver(c: Call, sock: Sock, got: Received, flags: number, out: DeliverTo): number {
  const room = iovTotal(out.iov);
  const n = Math.min(room, got.data.length);
  if (!scatter(mem(c), out.iov, got.data.subarray(0, n))) return -EFAULT;
  const sa = got.from ? sock.file.sockaddr(got.from) : new Uint8Array(0);
  let namelen = sa.length;
  if (out.msghdr !== undefined) {
    // recvmsg: msg_namelen in the msghdr says the room; the name is truncated to it.
    const roomName = readLen(mem(c), out.msghdr + 8);
    if (out.name && sa.length && roomName > 0 && !mem(c).write(out.name, sa.subarray(0, Math.min(roomName, sa.length)))) return -EFAULT;
    if (!out.name) namelen = 0;
    let mflags = got.data.length > n ? L.MSG_TRUNC : 0;
    let controllen = 0;
    const cmsgs = got.control ? sock.file.controlMessages(got.control) : [];
    if (cmsgs.length > 0) {
      const buf = new Uint8Array(out.control ? Math.min(out.controllen ?? 0, CONTROL_MAX) : 0);
      const laid = layOut(buf, cmsgs);
      if (laid.truncated) mflags |= L.MSG_CTRUNC;
      if (laid.used > 0 && !mem(c).write(out.control!, buf.subarray(0, laid.used))) return -EFAULT;
      controllen = laid.used;
    }
    if (!writeMsghdrOut(mem(c), out.msghdr, namelen, mflags, controllen)) return -EFAULT;
  } else if (out.name && out.lenp !== null) {
    const w = writeSockaddr(mem(c), out.name, out.lenp, sa);
    if (w < 0) return w;
  }
  return flags & L.MSG_TRUNC ? got.data.length : n;
}

/** The most control bytes of a sendmsg read (more than all IP-level messages together take). */
const SEND_CONTROL_MAX = 4096;

/**
 * A sendmsg's control buffer when it holds an SOL_IP or SOL_IPV6 message (the Sentry then sends it, with that
 * TTL, TOS or source); undefined when it holds none (a native send is as good), -EFAULT when unreadable.
 */
function ipControl(m: Mem, h: MsgHdrRef): Uint8Array | undefined | number {
  if (!h.control || h.controllen < 16) return undefined;
  const b = m.read(h.control, Math.min(h.controllen, SEND_CONTROL_MAX));
  if (!b) return -EFAULT;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  for (let at = 0; at + 16 <= b.length; ) {
    const len = Number(v.getBigUint64(at, true));
    const level = v.getInt32(at + 8, true);
    if (level === L.SOL_IP || level === L.SOL_IPV6) return b;
    if (len < 16) return undefined;
    at += (len + 7) & ~7;
  }
  return undefined;
}

/**
 * recvmsg(MSG_ERRQUEUE) on a datagram socket: the Endpoint's error queue (IP_RECVERR's ICMP errors) through
 * SocketFile, its data, name, control messages and flags copied into the program's msghdr. Never blocks.
 */
function errQueue(c: Call, sock: Sock, m: MsgHdrRef, msgp: number, flags: number): number {
  const data = new Uint8Array(Math.min(iovTotal(m.iov), 65536));
  const msg = {
    name: m.name ? new Uint8Array(m.namelen) : null,
    namelen: 0,
    iov: [data],
    flags: 0,
    control: m.control ? new Uint8Array(Math.min(m.controllen, CONTROL_MAX)) : undefined,
    controllen: 0,
  };
  const r = sock.file.recvmsg(msg, flags, true) as number;
  if (r < 0) return r;
  if (!scatter(mem(c), m.iov, data.subarray(0, r))) return -EFAULT;
  if (msg.name && msg.namelen > 0 && !mem(c).write(m.name, msg.name.subarray(0, Math.min(m.namelen, msg.namelen)))) return -EFAULT;
  if (msg.controllen > 0 && !mem(c).write(m.control, msg.control!.subarray(0, msg.controllen))) return -EFAULT;
  return writeMsghdrOut(mem(c), msgp, m.name ? msg.namelen : 0, msg.flags, msg.controllen) ? r : -EFAULT;
}

/**
 * A datagram receive that wants the source (recvfrom with an address, recvmsg): through the pump's FIFO,
 * parked while nothing is queued on a blocking socket (then the pump hands it the next datagram).
 */
function receiveDgram(s: Sentry, c: Call, sock: Sock, dup: number, flags: number, put: (got: Received) => number): void | 'keep' {
  const pump = sock.dgram!;
  // __skb_recv_udp: a pending error (an ICMP error, SO_ERROR) is the answer before any datagram.
  const pending = () => {
    const e = sock.file.ep.takeError();
    // The marker that woke the program's poll for it goes with it.
    if (e) pump.dropMarker(dup);
    return e;
  };
  const err = pending();
  if (err) return s.answer(c, -err.errno);
  const first = pump.receive(dup, flags);
  if (typeof first !== 'number') return s.answer(c, put(first));
  if (first !== -EAGAIN || nonblocking(dup) || flags & L.MSG_DONTWAIT) return s.answer(c, first);
  s.park(c, async (signal) => {
    try {
      for (;;) {
        const next = await pump.nextFor(signal, (flags & L.MSG_PEEK) !== 0);
        if (next === 'aborted') return -4;
        // Handed over while the program's queue was empty: the datagram it would have received next.
        if (next !== 'moved') return put(next);
        if (pump.done) return -EBADF;
        const e = pending();
        if (e) return -e.errno;
        const got = pump.receive(dup, flags);
        if (typeof got !== 'number') return put(got);
        if (got !== -EAGAIN) return got;
      }
    } finally {
      ux.close(dup);
    }
  });
  return 'keep';
}

/**
 * A stream send with an address (meaningless for TCP, refused by the program's AF_UNIX end) through our dup of
 * that end; parked while the pair is full on a blocking socket.
 */
function streamSend(s: Sentry, c: Call, pump: StreamPump, dup: number, data: Uint8Array, flags: number): void | 'keep' {
  const send = () => ux.send(dup, data, flags | ux.U.MSG_DONTWAIT);
  const first = send();
  if (first !== -EAGAIN || nonblocking(dup) || flags & L.MSG_DONTWAIT) return s.answer(c, first);
  s.park(c, async (signal) => {
    try {
      for (;;) {
        if (!(await movedOnce(pump, signal))) return -4;
        const n = send();
        if (n !== -EAGAIN) return n;
      }
    } finally {
      ux.close(dup);
    }
  });
  return 'keep';
}

/** The buffer length argument of sendto/recvfrom. */
function iovLenOf(c: Call): number {
  return Math.min(Number(BigInt.asUintN(64, c.n.args[2]!)), 0x7ffff000);
}

function sendto(s: Sentry, c: Call): void {
  const bufp = ptr(c.n.args[1]!);
  const len = iovLenOf(c);
  const flags = int(c.n.args[3]!);
  const addrp = ptr(c.n.args[4]!);
  const alen = int(c.n.args[5]!);
  withSock(s, c, (sock, dup) => {
    const sa = addrp ? readSockaddr(mem(c), addrp, alen) : null;
    c.args = `${int(c.n.args[0]!)}, 0x${bufp.toString(16)}, ${len}, ${flags}, ${sa === null || typeof sa === 'number' ? addrp : formatSockaddr(sa)}, ${alen}`;
    if (typeof sa === 'number') return s.answer(c, sa);
    const data = mem(c).read(bufp, len);
    if (!data) return s.answer(c, -EFAULT);
    if (!s.listener.idValid(c.n.id)) return;
    if (sock.kind === 'stream') {
      if (!sock.pump && !sock.listen && flags & L.MSG_FASTOPEN) return fastOpenSend(s, c, sock, dup, sa, data, flags);
      if (!sock.pump) return s.answer(c, -EPIPE);
      if (flags & L.MSG_FASTOPEN) return fastOpenAgain(s, c, sock, sock.pump, dup, data, flags);
      return streamSend(s, c, sock.pump, dup, data, flags);
    }
    sock.dgram?.flushUp();
    s.answer(c, sock.file.sendmsg({ name: sa, namelen: sa?.length ?? 0, iov: [data], flags: 0 }, flags, true) as number);
  }, (sock) => sock.kind === 'stream');
}

/**
 * MSG_FASTOPEN on a stream socket that has its data path: EALREADY while a non-blocking caller's handshake
 * still runs (Linux's __inet_stream_connect), else a plain send on the program's end (the flag and the address
 * mean nothing once connected, and the AF_UNIX end would refuse the address).
 */
function fastOpenAgain(s: Sentry, c: Call, sock: Sock, pump: StreamPump, dup: number, data: Uint8Array, flags: number): void | 'keep' {
  const info = sock.file.ep.getOption('TCP_INFO');
  const state = typeof info === 'object' && !(info instanceof Uint8Array) && !('errno' in info) ? info['tcpi_state'] : undefined;
  const connecting = state === L.TCP_SYN_SENT || state === L.TCP_SYN_RECV;
  if (connecting && (nonblocking(dup) || flags & L.MSG_DONTWAIT)) return s.answer(c, -EALREADY);
  return streamSend(s, c, pump, dup, data, flags & ~L.MSG_FASTOPEN);
}

/**
 * sendto/sendmsg with MSG_FASTOPEN on a stream socket not connected yet: the Endpoint opens the connection with
 * the data in its SYN (SocketFile.sendmsg, RFC 7413), and the data path starts as after connect(): stuffed while
 * the handshake runs after a non-blocking call, or once it is over after a blocking one (which waits for it and
 * reports its outcome, as Linux's does).
 */
function fastOpenSend(s: Sentry, c: Call, sock: Sock, dup: number, sa: Uint8Array | null, data: Uint8Array, flags: number): void | 'keep' {
  const msg = { name: sa, namelen: sa?.length ?? 0, iov: [data], flags: 0 };
  if (nonblocking(dup) || flags & L.MSG_DONTWAIT) {
    const r = sock.file.sendmsg(msg, flags, true) as number;
    if (r >= 0 || r === -EINPROGRESS) s.startStream(sock, stuff(ux.dup(dup)));
    return s.answer(c, r);
  }
  s.park(c, async (signal) => {
    try {
      const out = await sock.file.sendmsg(msg, flags, false, signal);
      if (signal.aborted) return -4;
      if (out >= 0 && !sock.pump) s.startStream(sock);
      return out;
    } finally {
      ux.close(dup);
    }
  });
  return 'keep';
}

function recvfrom(s: Sentry, c: Call): void {
  const bufp = ptr(c.n.args[1]!);
  const len = iovLenOf(c);
  const flags = int(c.n.args[3]!);
  const addrp = ptr(c.n.args[4]!);
  const lenp = ptr(c.n.args[5]!);
  c.args = `${int(c.n.args[0]!)}, 0x${bufp.toString(16)}, ${len}, ${flags}, 0x${addrp.toString(16)}, 0x${lenp.toString(16)}`;
  // As __sys_recvfrom, the name's length is read and checked when the name is written back, after the receive.
  withSock(s, c, (sock, dup) => {
    if (sock.kind === 'stream') {
      if (!sock.pump) return s.answer(c, -ENOTCONN);
      // A connected stream: the program's end does what TCP would, natively (blocking there, not parked here),
      // and writes back the same empty name (length 0: the pair's ends are unnamed, as TCP gives no source).
      return s.continue(c);
    }
    return receiveDgram(s, c, sock, dup, flags, (got) => deliver(c, sock, got, flags, { iov: [{ base: bufp, len }], name: addrp, lenp: addrp ? lenp : null }));
  }, (sock) => sock.kind === 'dgram');
}

function sendmsg(s: Sentry, c: Call): void {
  const msgp = ptr(c.n.args[1]!);
  const flags = int(c.n.args[2]!);
  c.args = `${int(c.n.args[0]!)}, 0x${msgp.toString(16)}, ${flags}`;
  withSock(s, c, (sock, dup) => {
    const m = readMsghdr(mem(c), msgp);
    if (typeof m === 'number') return s.answer(c, m);
    const fastOpen = sock.kind === 'stream' && !sock.listen && (flags & L.MSG_FASTOPEN) !== 0;
    const control = sock.kind === 'dgram' ? ipControl(mem(c), m) : undefined;
    if (typeof control === 'number') return s.answer(c, control);
    // Without a destination, IP-level control messages or MSG_MORE (one datagram of several calls) the pair does
    // the same as the kernel would: a native send.
    const named = m.name !== 0 && m.namelen > 0;
    const more = sock.kind === 'dgram' && (flags & L.MSG_MORE) !== 0;
    if ((!named && !control && !more) || (sock.kind === 'stream' && !fastOpen)) return s.continue(c);
    const sa = named ? readSockaddr(mem(c), m.name, m.namelen) : null;
    if (typeof sa === 'number') return s.answer(c, sa);
    c.args = `${int(c.n.args[0]!)}, {msg_name=${sa ? formatSockaddr(sa) : 'NULL'}${control ? ', msg_control=...' : ''}, ...}, ${flags}`;
    const data = gather(mem(c), m.iov);
    if (typeof data === 'number') return s.answer(c, data);
    if (!s.listener.idValid(c.n.id)) return;
    if (fastOpen && sock.pump) return fastOpenAgain(s, c, sock, sock.pump, dup, data, flags);
    if (fastOpen) return fastOpenSend(s, c, sock, dup, sa, data, flags);
    sock.dgram?.flushUp();
    s.answer(c, sock.file.sendmsg({ name: sa, namelen: sa?.length ?? 0, iov: [data], flags: 0, control }, flags, true) as number);
  }, (sock) => sock.kind === 'stream' && (flags & L.MSG_FASTOPEN) !== 0);
}

function recvmsg(s: Sentry, c: Call): void {
  const msgp = ptr(c.n.args[1]!);
  const flags = int(c.n.args[2]!);
  c.args = `${int(c.n.args[0]!)}, 0x${msgp.toString(16)}, ${flags}`;
  withSock(s, c, (sock, dup) => {
    if (sock.kind === 'stream') return s.continue(c);
    const m = readMsghdr(mem(c), msgp);
    if (typeof m === 'number') return s.answer(c, m);
    if (flags & L.MSG_ERRQUEUE) {
      const r = errQueue(c, sock, m, msgp, flags);
      // Reading the queue may have cleared the pending error (Linux's ip_recv_error): then the marker goes.
      if (!sock.file.ep.readiness(EventErr)) sock.dgram?.dropMarker(dup);
      return s.answer(c, r);
    }
    return receiveDgram(s, c, sock, dup, flags, (got) => deliver(c, sock, got, flags, { iov: m.iov, name: m.name, lenp: null, msghdr: msgp, control: m.control, controllen: m.controllen }));
  }, (sock) => sock.kind === 'dgram');
}

function sendmmsg(s: Sentry, c: Call): void {
  const vec = ptr(c.n.args[1]!);
  const vlen = Math.min(int(c.n.args[2]!) >>> 0, 1024);
  const flags = int(c.n.args[3]!);
  c.args = `${int(c.n.args[0]!)}, 0x${vec.toString(16)}, ${vlen}, ${flags}`;
  withSock(s, c, (sock) => {
    if (sock.kind === 'stream') return s.continue(c);
    const msgs = [];
    for (let i = 0; i < vlen; i++) {
      const m = readMsghdr(mem(c), vec + i * MMSGHDR_LEN);
      if (typeof m === 'number') {
        if (i === 0) return s.answer(c, m);
        break;
      }
      msgs.push(m);
    }
    const controls = msgs.map((m) => ipControl(mem(c), m));
    if (!(flags & L.MSG_MORE) && msgs.every((m, i) => (!m.name || m.namelen === 0) && controls[i] === undefined)) return s.continue(c);
    if (!s.listener.idValid(c.n.id)) return;
    sock.dgram?.flushUp();
    let sent = 0;
    for (const [i, m] of msgs.entries()) {
      let sa: Uint8Array | number | null = null;
      if (m.name && m.namelen) sa = readSockaddr(mem(c), m.name, m.namelen);
      const data = gather(mem(c), m.iov);
      const control = controls[i];
      if (typeof sa === 'number' || typeof data === 'number' || typeof control === 'number') {
        if (sent === 0) return s.answer(c, typeof sa === 'number' ? sa : typeof data === 'number' ? data : (control as number));
        break;
      }
      const r = sock.file.sendmsg({ name: sa, namelen: sa?.length ?? 0, iov: [data], flags: 0, control }, flags, true) as number;
      if (r < 0) {
        if (sent === 0) return s.answer(c, r);
        break;
      }
      writeLen(mem(c), vec + sent * MMSGHDR_LEN + 56, r);
      sent++;
    }
    s.answer(c, sent);
  }, false);
}

function recvmmsg(s: Sentry, c: Call): void {
  const vec = ptr(c.n.args[1]!);
  const vlen = Math.min(int(c.n.args[2]!) >>> 0, 1024);
  const flags = int(c.n.args[3]!);
  c.args = `${int(c.n.args[0]!)}, 0x${vec.toString(16)}, ${vlen}, ${flags}`;
  withSock(s, c, (sock, dup) => {
    if (sock.kind === 'stream') return s.continue(c);
    if (vlen === 0) return s.answer(c, 0);
    // Every datagram queued now, at least one (parked for it on a blocking socket), as with MSG_WAITFORONE.
    let done = 0;
    const put = (got: Received): number => {
      for (let g: typeof got | number = got; ; ) {
        const at = vec + done * MMSGHDR_LEN;
        const m = readMsghdr(mem(c), at);
        if (typeof m === 'number') return done > 0 ? done : m;
        const n = deliver(c, sock, g, flags & ~L.MSG_TRUNC, { iov: m.iov, name: m.name, lenp: null, msghdr: at, control: m.control, controllen: m.controllen });
        if (n < 0) return done > 0 ? done : n;
        writeLen(mem(c), at + 56, n);
        done++;
        if (done >= vlen) return done;
        g = sock.dgram!.receive(dup, flags);
        if (typeof g === 'number') return done;
      }
    };
    return receiveDgram(s, c, sock, dup, flags, put);
  }, (sock) => sock.kind === 'dgram');
}

/** Handlers by call name. */
export const HANDLERS: Record<string, Handler> = {
  socket,
  bind,
  listen,
  connect,
  accept: (s, c) => accept(s, c, 0),
  accept4: (s, c) => accept(s, c, int(c.n.args[3]!)),
  getsockname: names('getsockname'),
  getpeername: names('getpeername'),
  getsockopt,
  setsockopt,
  sendto,
  recvfrom,
  sendmsg,
  recvmsg,
  sendmmsg,
  recvmmsg,
};
