/**
 * `TapEndpoint`: a LinkEndpoint on a TAP device created inside a network namespace. The kernel of that namespace
 * sees the TAP as its interface; our stack is the machine at the other end of the wire, so it has a MAC of its
 * own (given, or random and locally administered), unlike AfPacketEndpoint which shares the interface's.
 *
 * A TAP fd has no batched read: each wake-up on the main loop (libuv, `watchFd`) reads frames one read() each
 * until EAGAIN, hands each to the dispatcher from one reused buffer, then calls `deliverBatchEnd()`.
 * Sends are queued by reference (the link owns written frames) and written one writev() each on `flush()` or on
 * a microtask, with no copy. With `offloads`, every frame in both directions carries a virtio-net header
 * (IFF_VNET_HDR, TUNSETOFFLOAD of partial checksums and TSO over IPv4 and IPv6): the kernel hands over its TSO
 * super-frames whole and cuts ours, as on a veth through PACKET_VNET_HDR (lib/vnet.ts). The header is written into
 * native memory of the link's own, and the write gathers it, the frame and, from `writeGsoGather`, the payload
 * where it lies (a TCP send queue's chunks), so the kernel's copy in writev is the only one.
 */
import { getRandomValues } from 'node:crypto';
import koffi from 'koffi';
import {
  type GatherPayload,
  type GsoOptions,
  type LinkCapabilities,
  type LinkDispatcher,
  type LinkEndpoint,
  NO_OFFLOADS,
  RX_CSUM_VERIFIED,
  joinGather,
} from '../netstack/link/endpoint.ts';
import { type HostLinkCounters, newHostLinkCounters } from './counters.ts';
import { run } from './exec.ts';
import { C, type FdWatch, type NativeBuffer, SysError, check, errno, ifreq, mapMemory, memoryAddress, sys, watchFd } from './libc.ts';
import { IOVEC, MAX_GATHER, setIovec } from './mmsg.ts';
import { inNetns } from './netns.ts';
import { VNET_F_DATA_VALID, VNET_F_NEEDS_CSUM, VNET_HDR_LEN, writeEmptyVnetHeader, writeVnetHeader } from './vnet.ts';

// ioctl(2) with an integer argument (TUNSETOFFLOAD takes its flags by value).
const ioctlInt = koffi.load('libc.so.6').func('int ioctl(int fd, unsigned long req, unsigned long arg)') as (fd: number, req: number, arg: number) => number;
const IFF_VNET_HDR = 0x4000;
const TUNSETOFFLOAD = 0x400454d0;
// TUN_F_*: what the kernel may hand us (and we may hand it) unfinished: partial checksums, TSO of TCP over v4/v6.
const TUN_F_CSUM = 0x01;
const TUN_F_TSO4 = 0x02;
const TUN_F_TSO6 = 0x04;
// A super-frame: the kernel's GSO limit (64 KB of IP packet) plus the Ethernet header and a VLAN tag.
const MAX_GSO_FRAME = 65536 + 14 + 4;
// Frames queued before the queue is written at once (a TAP takes one frame per call, so this bounds only memory).
const TX_QUEUE = 256;
// Bytes between the queued frames' virtio-net headers in the link's native memory.
const HDR_STRIDE = 16;
// One write's iovecs: the virtio-net header, the frame, and a gathered payload's pieces.
const WRITE_IOVECS = 2 + MAX_GATHER;

/** Options for `TapEndpoint.open`. */
export interface TapOptions {
  /** The named network namespace to create the device in. */
  netns: string;
  /** The device name, e.g. "tap0" (at most 15 bytes). */
  dev: string;
  /** MTU to set on the device (default: the kernel's, 1500). */
  mtu?: number;
  /** The stack's MAC (default: random, locally administered unicast). */
  mac?: Uint8Array;
  /**
   * Checksum and segmentation offloads through the virtio-net header (IFF_VNET_HDR with TUNSETOFFLOAD): the kernel
   * hands over its TSO super-frames whole, with partial checksums, and cuts ours. Default false.
   */
  offloads?: boolean;
}

const ETH_HLEN = 14;
const VLAN_HLEN = 4;

/** A random locally administered unicast MAC (IEEE 802: bit 1 of the first octet set, bit 0 clear). */
export function randomMac(): Uint8Array {
  const m = getRandomValues(new Uint8Array(6));
  m[0] = (m[0]! & 0xfc) | 0x02;
  return m;
}

/** A LinkEndpoint on a TAP device (IFF_TAP | IFF_NO_PI) inside a network namespace. */
export class TapEndpoint implements LinkEndpoint {
  /** The device's MTU when opened. */
  readonly mtu: number;
  /** The stack's MAC: the far end of the TAP wire. */
  readonly macAddress: Uint8Array;
  /** The TAP device's name. */
  readonly dev: string;
  /** The namespace holding the device. */
  readonly netns: string;
  /** The TAP fd (for diagnostics; owned by the endpoint). */
  readonly fd: number;
  /**
   * Frames and bytes in and out, and drops. Frames the kernel drops because we read too slowly show up as the
   * device's tx_dropped (`ip -s link`), not here.
   */
  readonly counters: HostLinkCounters = newHostLinkCounters();
  /** A microtask after the first queued frame writes the queue (autoFlush). */
  readonly flushesItself = true;
  /** With offloads, writeGsoGather points the write at the payload instead of copying it behind the headers. */
  readonly gathers: boolean;
  /**
   * Frames queued by writeGsoGather with their payload pointed at rather than copied, and those payload bytes;
   * `joined` counts the gather frames copied after all (more pieces than a write takes, or memory without an address).
   */
  readonly txGather = { frames: 0, bytes: 0, joined: 0 };

  private readonly rxBuf: Uint8Array;
  private readonly maxFrame: number;
  /** Whether every frame carries a virtio-net header (see TapOptions.offloads). */
  private readonly vnet: boolean;
  /** Bytes in front of each frame read or written: the virtio-net header's, or none. */
  private readonly head: number;
  /** What the link offers the stack. */
  readonly capabilities: LinkCapabilities;
  // The send queue: its frames in order, each one's virtio-net header at HDR_STRIDE × its index in `txMem` (after
  // the headers, one write's iovecs), and for a gathered frame the payload's pieces (MAX_GATHER per entry) and
  // the owner that keeps them unchanged until written.
  private readonly txMem: NativeBuffer;
  private readonly txHdrAddr: number;
  private readonly iovAt: number;
  private readonly iovAddr: bigint;
  private readonly txFrames: (Uint8Array | null)[] = new Array<Uint8Array | null>(TX_QUEUE).fill(null);
  private readonly txOwners: (GatherPayload['owner'] | null)[] = new Array<GatherPayload['owner'] | null>(TX_QUEUE).fill(null);
  private readonly txPieces: (Uint8Array | null)[] = new Array<Uint8Array | null>(TX_QUEUE * MAX_GATHER).fill(null);
  private readonly txPieceCount = new Uint8Array(TX_QUEUE);
  private queued = 0;
  private flushScheduled = false;
  private readonly watch: FdWatch;
  private dispatcher: LinkDispatcher | null = null;
  private closed = false;

  private constructor(opts: TapOptions, fd: number, mtu: number) {
    this.netns = opts.netns;
    this.dev = opts.dev;
    this.fd = fd;
    this.mtu = mtu;
    this.macAddress = opts.mac ? opts.mac.slice() : randomMac();
    this.vnet = opts.offloads === true;
    this.head = this.vnet ? VNET_HDR_LEN : 0;
    this.gathers = this.vnet;
    this.iovAt = TX_QUEUE * HDR_STRIDE;
    this.txMem = mapMemory(this.iovAt + WRITE_IOVECS * IOVEC);
    this.txHdrAddr = Number(this.txMem.address);
    this.iovAddr = this.txMem.address + BigInt(this.iovAt);
    this.maxFrame = this.vnet ? Math.max(MAX_GSO_FRAME, mtu + ETH_HLEN + VLAN_HLEN) : mtu + ETH_HLEN + VLAN_HLEN;
    this.capabilities = this.vnet
      ? Object.freeze({ gso: true, maxGsoSize: MAX_GSO_FRAME - VLAN_HLEN, rxChecksumOffload: false, txChecksumOffload: true })
      : NO_OFFLOADS;
    // One spare byte tells an oversize frame from a full one.
    this.rxBuf = new Uint8Array(this.head + this.maxFrame + 1);
    this.watch = watchFd(fd, (readable, _writable, status) => {
      if (status < 0) return this.close();
      if (readable) this.receive();
    });
  }

  /** Creates the TAP device inside `netns`, sets its MTU and brings it up; rejects naming a missing namespace. */
  static async open(opts: TapOptions): Promise<TapEndpoint> {
    const { fd, mtu } = inNetns(opts.netns, () => {
      const fd = sys.open('/dev/net/tun', C.O_RDWR | C.O_NONBLOCK | C.O_CLOEXEC, 0);
      if (fd < 0) throw new SysError('open', errno(), '/dev/net/tun');
      try {
        const req = ifreq(opts.dev);
        new DataView(req.buffer).setUint16(16, C.IFF_TAP | C.IFF_NO_PI | (opts.offloads ? IFF_VNET_HDR : 0), true);
        check(sys.ioctl(fd, C.TUNSETIFF, req), 'ioctl', `TUNSETIFF ${opts.dev} in ${opts.netns}`);
        if (opts.offloads) check(ioctlInt(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6), 'ioctl', `TUNSETOFFLOAD ${opts.dev}`);
        return { fd, mtu: readMtu(opts.dev) };
      } catch (err) {
        sys.close(fd);
        throw err;
      }
    });
    try {
      if (opts.mtu !== undefined) run(['ip', '-n', opts.netns, 'link', 'set', 'dev', opts.dev, 'mtu', String(opts.mtu)]);
      run(['ip', '-n', opts.netns, 'link', 'set', 'dev', opts.dev, 'up']);
    } catch (err) {
      sys.close(fd);
      throw err;
    }
    return new TapEndpoint(opts, fd, opts.mtu ?? mtu);
  }

  attach(dispatcher: LinkDispatcher | null): void {
    this.dispatcher = dispatcher;
  }

  /** Lets the process exit while the endpoint is open. */
  unref(): void {
    this.watch.unref();
  }

  private receive(): void {
    const c = this.counters;
    const buf = this.rxBuf;
    const head = this.head;
    let delivered = 0;
    // Bounded so a flood cannot keep the main loop here forever; level-triggered polling brings us back.
    for (let budget = 1024; budget > 0 && !this.closed; budget--) {
      const n = sys.read(this.fd, buf, buf.length);
      if (n < 0) {
        if (errno() === C.EINTR) continue;
        break; // EAGAIN: drained
      }
      if (n - head > this.maxFrame || n < head) {
        c.rxTruncated++;
        continue;
      }
      const d = this.dispatcher;
      if (d === null) {
        c.rxUnattached++;
        continue;
      }
      c.rxFrames++;
      c.rxBytes += n - head;
      delivered++;
      // The kernel's verified (DATA_VALID) or unfinished (NEEDS_CSUM: a frame of this host's own) checksums.
      const verified = head > 0 && (buf[0]! & (VNET_F_DATA_VALID | VNET_F_NEEDS_CSUM)) !== 0;
      d.deliverFrame(buf.subarray(head, n), verified ? RX_CSUM_VERIFIED : 0);
    }
    if (delivered > 0 && !this.closed) {
      this.dispatcher?.deliverBatchEnd?.();
      if (this.queued > 0) this.flush();
    }
  }

  writeFrame(frame: Uint8Array): boolean {
    if (this.closed || !this.fits(frame)) return false;
    return this.enqueue(frame, null, null);
  }

  /** Queues `frame` behind a virtio-net header saying how the kernel is to cut it and finish its checksum. */
  writeGso(frame: Uint8Array, o: GsoOptions): boolean {
    if (this.closed || !this.vnet || !this.fits(frame)) return false;
    return this.enqueue(frame, o, null);
  }

  /** writeGso of `frame` followed by `payload`, which the write points at where it lies (see GatherPayload). */
  writeGsoGather(frame: Uint8Array, o: GsoOptions, payload: GatherPayload): boolean {
    if (payload.count > MAX_GATHER) {
      this.txGather.joined++;
      return this.writeGso(joinGather(frame, payload), o);
    }
    if (this.closed || !this.vnet) return false;
    if (frame.length + payload.length > this.maxFrame) {
      this.counters.txOversize++;
      return false;
    }
    return this.enqueue(frame, o, payload);
  }

  /** Whether `frame` is not larger than the link takes; counted in txOversize when it is. */
  private fits(frame: Uint8Array): boolean {
    if (frame.length <= this.maxFrame) return true;
    this.counters.txOversize++;
    return false;
  }

  /**
   * Queues one write: `frame` behind its virtio-net header (for `o`, or all zero for null: checksums as they are),
   * then `payload`'s pieces; written on a microtask, or at once when the queue is full.
   */
  private enqueue(frame: Uint8Array, o: GsoOptions | null, payload: GatherPayload | null): true {
    if (this.queued === TX_QUEUE) this.flush();
    const i = this.queued++;
    if (this.vnet) {
      if (o === null) writeEmptyVnetHeader(this.txMem.view, i * HDR_STRIDE);
      else writeVnetHeader(this.txMem.view, i * HDR_STRIDE, o);
    }
    this.txFrames[i] = frame;
    if (payload !== null) {
      const n = payload.count;
      for (let k = 0; k < n; k++) this.txPieces[i * MAX_GATHER + k] = payload.pieces[k]!;
      this.txPieceCount[i] = n;
      payload.owner.hold();
      this.txOwners[i] = payload.owner;
      this.txGather.frames++;
      this.txGather.bytes += payload.length;
    }
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(this.autoFlush);
    }
    return true;
  }

  private readonly autoFlush = (): void => {
    this.flushScheduled = false;
    if (this.queued > 0) this.flush();
  };

  flush(): void {
    if (this.closed) return;
    const n = this.queued;
    this.queued = 0;
    const c = this.counters;
    for (let i = 0; i < n; i++) {
      // A TAP write hands the frame to the kernel's receive path at once; it fails only when the device is
      // down or the frame is malformed, and then that one frame is lost.
      c.txCalls++;
      const sent = this.writeQueued(i);
      if (sent >= 0) {
        c.txFrames++;
        c.txBytes += sent;
      } else {
        c.txDropped++;
      }
      this.forget(i);
    }
  }

  /** Writes queue entry `i` with one writev (header, frame, pieces); returns the frame's bytes sent, or -1. */
  private writeQueued(i: number): number {
    const frame = this.txFrames[i]!;
    const pieces = this.txPieceCount[i]!;
    const fa = memoryAddress(frame);
    if (fa < 0) return this.writeJoined(i);
    let at = this.iovAt;
    if (this.vnet) at = this.putIovec(at, this.txHdrAddr + i * HDR_STRIDE, VNET_HDR_LEN);
    at = this.putIovec(at, fa, frame.length);
    let total = this.head + frame.length;
    for (let k = 0; k < pieces; k++) {
      const p = this.txPieces[i * MAX_GATHER + k]!;
      const a = memoryAddress(p);
      if (a < 0) return this.writeJoined(i);
      at = this.putIovec(at, a, p.length);
      total += p.length;
    }
    return sys.writev(this.fd, this.iovAddr, (at - this.iovAt) / IOVEC) === total ? total - this.head : -1;
  }

  /** Writes the iovec at `at` in txMem (base `addr`, `len` bytes); returns where the next one goes. */
  private putIovec(at: number, addr: number, len: number): number {
    setIovec(this.txMem.view, at, addr, len);
    return at + IOVEC;
  }

  /** Entry `i` copied into one array and written (memory writev cannot be pointed at: a SharedArrayBuffer's). */
  private writeJoined(i: number): number {
    const frame = this.txFrames[i]!;
    let len = this.head + frame.length;
    const pieces = this.txPieceCount[i]!;
    for (let k = 0; k < pieces; k++) len += this.txPieces[i * MAX_GATHER + k]!.length;
    const out = new Uint8Array(len);
    out.set(this.txMem.bytes.subarray(i * HDR_STRIDE, i * HDR_STRIDE + this.head));
    out.set(frame, this.head);
    let at = this.head + frame.length;
    for (let k = 0; k < pieces; k++) {
      const p = this.txPieces[i * MAX_GATHER + k]!;
      out.set(p, at);
      at += p.length;
    }
    if (pieces > 0) this.txGather.joined++;
    return sys.write(this.fd, out, len) === len ? len - this.head : -1;
  }

  /** Drops queue entry `i`'s references, releasing its payload's owner. */
  private forget(i: number): void {
    this.txFrames[i] = null;
    const n = this.txPieceCount[i]!;
    if (n === 0) return;
    for (let k = 0; k < n; k++) this.txPieces[i * MAX_GATHER + k] = null;
    this.txPieceCount[i] = 0;
    const owner = this.txOwners[i]!;
    this.txOwners[i] = null;
    owner.release();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.counters.txDropped += this.queued;
    for (let i = 0; i < this.queued; i++) this.forget(i);
    this.queued = 0;
    this.dispatcher = null;
    this.watch.close();
    sys.close(this.fd); // a non-persistent TAP device disappears with its last fd
    this.txMem.free();
  }

  /** Whether `close()` has run. */
  get isClosed(): boolean {
    return this.closed;
  }
}

/** The MTU of `dev` in the calling thread's namespace, through a throwaway datagram socket. */
function readMtu(dev: string): number {
  const s = check(sys.socket(C.AF_INET, C.SOCK_DGRAM | C.SOCK_CLOEXEC, 0), 'socket', 'AF_INET');
  try {
    const req = ifreq(dev);
    check(sys.ioctl(s, C.SIOCGIFMTU, req), 'ioctl', `SIOCGIFMTU ${dev}`);
    return new DataView(req.buffer).getInt32(16, true);
  } finally {
    sys.close(s);
  }
}
