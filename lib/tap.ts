/**
 * `TapEndpoint`: a LinkEndpoint on a TAP device created inside a network namespace. The kernel of that namespace
 * sees the TAP as its interface; our stack is the machine at the other end of the wire, so it has a MAC of its
 * own (given, or random and locally administered), unlike AfPacketEndpoint which shares the interface's.
 *
 * A TAP fd has no batched read: each wake-up on the main loop (libuv, `watchFd`) reads frames one read() each
 * until EAGAIN, hands each to the dispatcher from one reused buffer, then calls `deliverBatchEnd()`.
 * Sends are queued by reference (the link owns written frames) and written one write() each on `flush()` or on
 * a microtask, with no copy. With `offloads`, every frame in both directions carries a virtio-net header
 * (IFF_VNET_HDR, TUNSETOFFLOAD of partial checksums and TSO over IPv4 and IPv6): the kernel hands over its TSO
 * super-frames whole and cuts ours, as on a veth through PACKET_VNET_HDR (lib/vnet.ts); each sent frame is then
 * copied once behind its header.
 */
import { getRandomValues } from 'node:crypto';
import koffi from 'koffi';
import { GsoType, type GsoOptions, type LinkCapabilities, type LinkDispatcher, type LinkEndpoint, NO_OFFLOADS, RX_CSUM_VERIFIED } from '../netstack/link/endpoint.ts';
import { type HostLinkCounters, newHostLinkCounters } from './counters.ts';
import { run } from './exec.ts';
import { C, type FdWatch, SysError, check, errno, ifreq, sys, watchFd } from './libc.ts';
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

  private readonly rxBuf: Uint8Array;
  private readonly maxFrame: number;
  /** Whether every frame carries a virtio-net header (see TapOptions.offloads). */
  private readonly vnet: boolean;
  /** Bytes in front of each frame read or written: the virtio-net header's, or none. */
  private readonly head: number;
  /** What the link offers the stack. */
  readonly capabilities: LinkCapabilities;
  private queue: Uint8Array[] = [];
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
      if (this.queue.length > 0) this.flush();
    }
  }

  writeFrame(frame: Uint8Array): boolean {
    if (this.closed || !this.fits(frame)) return false;
    return this.enqueue(this.vnet ? withVnetHeader(frame, NO_GSO) : frame);
  }

  /** Queues `frame` behind a virtio-net header saying how the kernel is to cut it and finish its checksum. */
  writeGso(frame: Uint8Array, o: GsoOptions): boolean {
    if (this.closed || !this.vnet || !this.fits(frame)) return false;
    return this.enqueue(withVnetHeader(frame, o));
  }

  /** Whether `frame` is not larger than the link takes; counted in txOversize when it is. */
  private fits(frame: Uint8Array): boolean {
    if (frame.length <= this.maxFrame) return true;
    this.counters.txOversize++;
    return false;
  }

  /** Queues the bytes of one write, flushed on a microtask. */
  private enqueue(out: Uint8Array): true {
    this.queue.push(out);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(this.autoFlush);
    }
    return true;
  }

  private readonly autoFlush = (): void => {
    this.flushScheduled = false;
    if (this.queue.length > 0) this.flush();
  };

  flush(): void {
    if (this.closed) return;
    const q = this.queue;
    this.queue = [];
    const c = this.counters;
    for (const f of q) {
      // A TAP write hands the frame to the kernel's receive path at once; it fails only when the device is
      // down or the frame is malformed, and then that one frame is lost.
      c.txCalls++;
      if (sys.write(this.fd, f, f.length) === f.length) {
        c.txFrames++;
        c.txBytes += f.length - this.head;
      } else {
        c.txDropped++;
      }
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.counters.txDropped += this.queue.length;
    this.queue = [];
    this.dispatcher = null;
    this.watch.close();
    sys.close(this.fd); // a non-persistent TAP device disappears with its last fd
  }

  /** Whether `close()` has run. */
  get isClosed(): boolean {
    return this.closed;
  }
}

const NO_GSO: GsoOptions = Object.freeze({ gsoType: GsoType.NONE, gsoSize: 0, hdrLen: 0 });

/** `frame` copied behind the virtio-net header for `o` (all zero for NO_GSO: a plain frame, checksums as they are). */
function withVnetHeader(frame: Uint8Array, o: GsoOptions): Uint8Array {
  const out = new Uint8Array(VNET_HDR_LEN + frame.length);
  const v = new DataView(out.buffer);
  if (o === NO_GSO) writeEmptyVnetHeader(v, 0);
  else writeVnetHeader(v, 0, o);
  out.set(frame, VNET_HDR_LEN);
  return out;
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
