/**
 * `AfPacketEndpoint`: a LinkEndpoint on an AF_PACKET socket bound to one interface of a network namespace,
 * as gVisor's fdbased endpoint does for runsc.
 *
 * Receive: a PACKET_MMAP TPACKET_V2 ring shared with the kernel and viewed without copy. Readiness comes from
 * libuv on the main thread (`watchFd`); each wake-up walks the filled slots (at most a budget of about 1 MB, then
 * back to the event loop so that applications read between bursts), hands each frame to the dispatcher
 * as a view into the ring (flagged RX_MORE when the next slot is already filled), gives the slot back, then calls
 * `deliverBatchEnd()`: no syscall and no thread hop per frame. TPACKET_V2 rather than V3 because V3 only wakes
 * the reader when a whole block is retired (full, or after a timeout of at least a millisecond), which would add
 * that latency to every lone request; V2 wakes per frame when idle and still batches everything that arrived
 * meanwhile under load. Under a stream, each kernel wake-up costs the sending CPU a few µs (it runs the veth's
 * receive softirq and wakes us), so a wake-up that finds a stream keeps polling the ring for `busyPollUs` after
 * the last frame instead of going back to sleep; a lone frame never polls, so a request/response exchange keeps
 * its latency and costs no extra CPU. The poll runs from the event loop's check phase (setImmediate), not in a
 * loop inside the wake-up: the applications' reads and writes are microtasks and timers that only run between
 * event-loop turns, and a synchronous spin held every kept-alive HTTP response back by at least `busyPollUs`
 * (issue 15: a third of the kernel's requests per second).
 *
 * Send: `writeFrame` copies into a native queue, `flush()` sends it with one sendmmsg, and the event loop's check
 * phase (setImmediate) flushes whatever nobody flushed: a received batch's replies (ACKs, SYN-ACKs) go in one call
 * with everything the applications wrote in the microtasks and ticks after it. node:http answers a request and
 * closes the connection a few ticks apart; a flush at the batch's end and a microtask after the first write sent
 * the SYN-ACKs, each response and each FIN in calls of their own, each call waking the peer's receiver anew
 * (issue 13: 1.2 calls per new connection at 8 concurrent, 0.3 so). A full socket buffer keeps the rest queued
 * until the fd is writable. A caller that builds its frame in the view `frameBuffer()` hands out (the next free
 * queue slot) is queued without that copy, and `writeGsoGather` queues a super-frame whose payload stays where it
 * lies (a TCP send queue's chunks): its message gathers the headers in the slot and the payload from there, so
 * the kernel's copy in sendmmsg is the only one (issue 13: our copy into the slot was 10% of serve's samples
 * sending with 4 streams). The queue is a ring; with `sendThread`, large batches go to a thread
 * that makes the sendmmsg calls (lib/send-thread.ts), and a full ring waits for it rather than drop.
 *
 * Offloads, by default off: without PACKET_VNET_HDR the kernel would hand over GSO frames larger than the MTU
 * and frames with unfinished checksums, so the interface's peer must have TSO/GSO/GRO and tx checksum offload
 * off (testnet does this); larger frames are counted in rxTruncated and dropped, unfinished checksums in
 * rxCsumNotReady. With `offloads: true` the socket has PACKET_VNET_HDR (lib/vnet.ts) and the veth keeps its
 * offloads: super-frames are delivered whole from a ring of 64 KB slots on a second packet socket, while MTU-sized
 * frames keep a ring of many 2 KB slots (socket filters split the traffic by size, and frames go up in the order
 * the kernel received them), so a burst of small frames is not limited by 256 big slots; frames the kernel marked NEEDS_CSUM (a partial
 * checksum from a stack on this host, which Linux itself treats as verified) or DATA_VALID are delivered with
 * RX_CSUM_VERIFIED and their checksum field as it is, so no byte of them is summed in JS; every sent frame carries
 * a virtio_net_hdr (all zero from writeFrame), and `writeGso` hands the kernel whole TCP/UDP super-frames to
 * segment. `capabilities` tells the stack which.
 *
 * SYNs (`synRing`, on by default): bare SYNs go to a ring of small slots on a socket of their own, which
 * each wake-up walks after the others with a budget of its own. Under a SYN flood beyond what the thread can answer
 * the kernel then drops SYNs alone, as Linux's own listen path sheds them: the segments of established connections,
 * and the ACKs (or first data) that complete handshakes answered with cookies, neither fall out of a full ring nor
 * wait behind its backlog. Before it, a legitimate connection failed whenever the full ring dropped its ACK and a
 * later segment then failed the cookie check (answered with a RST); now only losing its SYN twice fails it.
 *
 * Fanout (`fanout`), for a stack split into shards on several threads: each shard's endpoint is a member of one
 * PACKET_FANOUT_HASH group, and the kernel hands it only the flows its symmetric hash gives that member. ARP, NDP
 * and ICMP errors, which that hash gives to one member by their addresses alone, reach every member through a
 * third socket outside the group; socket filters (lib/packet-filter.ts) keep every frame in exactly one of an
 * endpoint's rings.
 */
import {
  type GatherPayload,
  type LinkDispatcher,
  type LinkEndpoint,
  RX_CSUM_VERIFIED,
  RX_LOAN,
  RX_MORE,
  joinGather,
} from '../netstack/link/endpoint.ts';
import { type HostLinkCounters, newHostLinkCounters } from './counters.ts';
import { type BpfInsn, type SteerSpec, encodeFilter, frameFilter, sharedFilter, steerProgram, synFilter } from './packet-filter.ts';
import {
  C,
  type FdWatch,
  type NativeBuffer,
  SysError,
  check,
  errno,
  ifreq,
  mapMemory,
  setIntOption,
  sys,
  watchFd,
} from './libc.ts';
import { spawn } from 'node:child_process';
import { MAX_GATHER, MmsgBatch } from './mmsg.ts';
import { MAX_SEND_SLOTS, SendThread } from './send-thread.ts';
import { NetnsHandle, inNetns } from './netns.ts';
import {
  type GsoOptions,
  GsoType,
  type LinkCapabilities,
  NO_OFFLOADS,
  VNET_F_DATA_VALID,
  VNET_F_NEEDS_CSUM,
  VNET_HDR_LEN,
  writeEmptyVnetHeader,
  writeVnetHeader,
} from './vnet.ts';

/** Options for `AfPacketEndpoint.open`. */
export interface AfPacketOptions {
  /** The network namespace holding the interface: a name, a path to a namespace file, or an open handle. */
  netns: string | NetnsHandle;
  /** The interface, e.g. "eth0". */
  dev: string;
  /**
   * Slots of the ring for MTU-sized frames (default 4096); more absorbs longer bursts while the main thread is
   * busy. Super-frames (with `offloads` or `superFrames`) have a ring of 256 64 KB slots of their own.
   */
  ringFrames?: number;
  /** Frames queued before a forced flush (default 256). */
  sendQueue?: number;
  /** Socket send buffer in bytes (default 4 MiB), so bursts do not hit EAGAIN. */
  sendBuffer?: number;
  /**
   * After a wake-up that found a stream (more than one frame), how long to keep watching the ring for the next
   * frame before going back to the event loop, in µs (default 50; 0 turns it off). Under load this replaces
   * most kernel wake-ups (and the peer CPU's cost of making them) by a few polls of a ring slot; a lone frame
   * never spins, so an idle request/response exchange keeps its latency and costs no extra CPU.
   */
  busyPollUs?: number;
  /**
   * PACKET_VNET_HDR (default false): receive GRO'd super-frames, and frames with partial or kernel-verified
   * checksums flagged RX_CSUM_VERIFIED; send super-frames with `writeGso`; the interface keeps TSO/GSO/GRO and
   * checksum offload on.
   */
  offloads?: boolean;
  /**
   * Without offloads, still take super-frames in (default false): a peer doing TSO (a veth's default, which
   * nothing on this side can turn off) hands over segments larger than the MTU even to a socket without the vnet
   * header, with partial checksums. They get a ring of their own, as with offloads, and the link tells the stack
   * it may receive such frames; without this they are truncated and dropped (rxTruncated).
   */
  superFrames?: boolean;
  /**
   * Be one member of a PACKET_FANOUT_HASH group of the namespace (the shards of `serve --threads`): the kernel
   * gives this endpoint only the flows whose hash falls to it. The socket of MTU-sized frames joins group
   * `group`; with super-frames, the socket of large frames joins `group + 1`, which reassembles IPv4 fragments
   * before hashing (PACKET_FANOUT_FLAG_DEFRAG), so a fragmented datagram reaches the member that owns its flow;
   * the socket of bare SYNs (`synRing`) joins `group + 2`, so groups group to group + 2 must be free.
   * Members of one group must be opened one after another, in the same order for every group: the kernel picks
   * a member by its position, and a flow's small frames and super-frames must land on the same endpoint. ARP, NDP
   * and ICMP errors bypass the group: a third socket, outside it, hands every member a copy (lib/packet-filter.ts).
   * With `steer` the groups are PACKET_FANOUT_CBPF ones that pick the member by local port instead (steerProgram):
   * what a member's stack opens comes back to it when its ephemeral ports are its share (Netstack ephemeralShare);
   * `setSteering` changes the ports every member serves.
   */
  fanout?: { group: number; steer?: SteerSpec };
  /**
   * Make bulk sends on a thread of their own (default false; lib/send-thread.ts): on a veth the kernel runs the
   * peer's receive inside our sendmmsg, and a batch of HANDOFF_MIN frames and HANDOFF_BYTES or more handed over
   * lets this thread go on meanwhile. Smaller batches, and all of them until the thread is up (tens of ms), are
   * sent by the endpoint itself. `true` starts the thread at open; `'on-bulk'` at the first batch it would take,
   * so that an endpoint that only ever answers requests never starts one.
   */
  sendThread?: boolean | 'on-bulk';
  /**
   * Give bare SYNs (no ACK, no RST; up to SYN_SLOT_FRAME bytes) a ring of their own, drained after the others
   * (default true; a fanout member's socket for them joins group + 2). A SYN flood then overflows that ring alone:
   * the connections already made, and the ACKs that complete handshakes, keep their frames and do not wait behind a
   * backlog of SYNs.
   */
  synRing?: boolean;
}

/** Offload activity of an endpoint opened with `offloads: true`. */
export interface VnetCounters {
  /** Received super-frames (gso_type set), delivered whole. */
  rxGsoFrames: number;
  /**
   * Received frames delivered with RX_CSUM_VERIFIED: NEEDS_CSUM (partial checksum, left as it is) or DATA_VALID
   * (checked by the kernel).
   */
  rxCsumVerified: number;
  /** Received frames with a virtio_net_hdr pointing outside the frame, dropped. */
  rxBadVnetHeader: number;
  /** Super-frames handed to the kernel by writeGso. */
  txGsoFrames: number;
  /** writeGso calls refused for bad offload fields or size. */
  txGsoRefused: number;
}

const TP_STATUS_USER = 1 << 0;
const TP_STATUS_LOSING = 1 << 2;
const TP_STATUS_CSUMNOTREADY = 1 << 3;
// A TPACKET_V2 frame starts with tpacket2_hdr (32 bytes) and sockaddr_ll; the kernel puts the MAC header at
// tp_mac, 66 bytes in for Ethernet, so a slot needs about 80 bytes on top of the frame.
const RING_HEADROOM = 96;
// Largest frame with offloads: an IPv4 datagram or IPv6 payload of at most 65535 bytes, Ethernet header and a tag.
const MAX_GSO_FRAME = 0xffff + 40 + 14 + 4;
const PAGE_SIZE = 4096;
const ETH_HLEN = 14;
const VLAN_HLEN = 4;
// What one receive() call delivers at most: about 1 MB either way (measured on a veth with 4 iperf3 streams:
// 16 super-frames beat 64 and a whole ring by 10–40%, 4 was too few), and with offloads 64 frames, 16 of them
// super-frames.
const RX_BUDGET_BYTES = 1 << 20;
// How long a full send ring waits, at most, for the send thread's batch in flight to free slots.
const ROOM_WAIT_MS = 100;
// Fewest queued frames worth handing to the send thread: its wake-up and sleep cost the process a few µs of CPU,
// which the batch's transmit (each frame runs the peer's receive) must outweigh. On 2 cores, keep-alive HTTP at 32
// connections handed over 18 frames a batch; handing over every batch cost 3-4 µs more CPU per request at 8.
const HANDOFF_MIN = 16;
// Fewest queued bytes worth handing to the send thread: bulk transfers queue tens of KB per frame (a batch of 16
// super-frames is ~1 MB), request/response traffic a few hundred bytes per frame. Only bulk pays for the hand-off:
// at 32 keep-alive connections a flush held 15-18 small responses, and handing those over cost the serving thread
// more CPU per request than their transmit took off it, 19-27% of the requests per second on a loaded machine.
const HANDOFF_BYTES = 256 << 10;
// How often, at most, a ring's LOSING mark has the drop counts read (refreshCounters; readers of the counters
// refresh them themselves, so this only bounds how stale counters.rxDropped gets between reads).
const LOSS_READ_MS = 100;
// Frames one receive() delivers with offloads, of which at most RX_BUDGET_SUPER super-frames (16 super-frames beat
// 64, see RX_BUDGET_BYTES). Small frames are cheap to hold and costly to hand over in small batches: every batch
// ends with a flush (one sendmmsg) and an event-loop turn, and under a SYN flood batches of 16 frames took
// 590,000–630,000 SYNs in 3 s at 300,000 offered, batches of 64 680,000–695,000.
const RX_BUDGET_OFFLOADS = 64;
const RX_BUDGET_SUPER = 16;
const RX_BUDGET = 512;
// Slots of the ring of 64 KB slots for super-frames: about 17 MB of kernel memory, allocated when it is set up.
const BIG_RING_FRAMES = 256;

interface OpenedSocket {
  fd: number;
  /** A second packet socket for the super-frame ring, when asked for. */
  bigFd: number;
  /** A packet socket for the frames every fanout member sees (ARP, NDP, ICMP errors), for a fanout member. */
  sharedFd: number;
  /** A packet socket for bare SYNs, when asked for. */
  synFd: number;
  ifindex: number;
  mac: Uint8Array;
  mtu: number;
}

/** A packet socket of the current namespace, receiving nothing until bound. */
function packetSocket(): number {
  return check(sys.socket(C.AF_PACKET, C.SOCK_RAW | C.SOCK_NONBLOCK | C.SOCK_CLOEXEC, 0), 'socket', 'AF_PACKET');
}

/** Creates the packet socket(s) inside the namespace and reads the interface's index, MAC and MTU. */
function openSocket(netns: string | NetnsHandle, dev: string, two: boolean, shared: boolean, syn: boolean): OpenedSocket {
  const label = netns instanceof NetnsHandle ? netns.label : netns;
  return inNetns(netns, () => {
    // Protocol 0 receives nothing until bind(), so no frame of another interface slips into the ring.
    const fd = packetSocket();
    let bigFd = -1;
    let sharedFd = -1;
    try {
      const req = ifreq(dev);
      if (sys.ioctl(fd, C.SIOCGIFINDEX, req) < 0) {
        const e = errno();
        if (e === C.ENODEV) throw new SysError('ioctl', e, `no interface '${dev}' in network namespace '${label}'`);
        throw new SysError('ioctl', e, `SIOCGIFINDEX ${dev} in ${label}`);
      }
      const ifindex = new DataView(req.buffer).getInt32(16, true);
      check(sys.ioctl(fd, C.SIOCGIFHWADDR, req), 'ioctl', `SIOCGIFHWADDR ${dev}`);
      const mac = req.slice(18, 24); // ifr_hwaddr: sa_family (2) then the address
      check(sys.ioctl(fd, C.SIOCGIFMTU, req), 'ioctl', `SIOCGIFMTU ${dev}`);
      const mtu = new DataView(req.buffer).getInt32(16, true);
      bigFd = two ? packetSocket() : -1;
      sharedFd = shared ? packetSocket() : -1;
      const synFd = syn ? packetSocket() : -1;
      return { fd, bigFd, sharedFd, synFd, ifindex, mac, mtu };
    } catch (err) {
      sys.close(fd);
      if (bigFd >= 0) sys.close(bigFd);
      if (sharedFd >= 0) sys.close(sharedFd);
      throw err;
    }
  });
}

/** A sockaddr_ll for bind(): every protocol, on one interface. */
function sockaddrLL(ifindex: number): Uint8Array {
  const sa = new Uint8Array(20);
  const v = new DataView(sa.buffer);
  v.setUint16(0, C.AF_PACKET, true);
  v.setUint16(2, C.ETH_P_ALL, false); // network byte order
  v.setInt32(4, ifindex, true);
  return sa;
}

const SO_ATTACH_FILTER = 26;
const PACKET_FANOUT = 18;
const PACKET_FANOUT_HASH = 0;
const PACKET_FANOUT_CBPF = 6;
const PACKET_FANOUT_DATA = 22;
const PACKET_FANOUT_FLAG_DEFRAG = 0x8000;
const PACKET_FANOUT_FLAG_IGNORE_OUTGOING = 0x4000;
// Slots of a fanout member's ring for shared frames (ARP, NDP, ICMP errors): few, and handled at once.
const SHARED_RING_FRAMES = 256;
// Slots of the ring for MTU-sized frames by default: a backlog of this many small frames waits while the main thread
// is busy; about 1.6 KB each at MTU 1500, so 13 MB of kernel memory (allocated, zeroed, when the ring is set up).
const SMALL_RING_FRAMES = 8192;
// The ring for bare SYNs: frames up to SYN_SLOT_FRAME bytes (a SYN with every option over IPv6 is 14 + 40 + 60 = 114;
// longer ones, which carry data, go through the ring of small frames), and as many of them as that ring holds, in
// slots of a quarter of the size (3 MB of kernel memory rather than 13).
const SYN_SLOT_FRAME = 256;
const SYN_RING_FRAMES = 8192;

/** Whether the frame at `a`/`aOff` was received before the one at `b`/`bOff` (tp_sec, tp_nsec). */
function earlier(a: DataView, aOff: number, b: DataView, bOff: number): boolean {
  const as = a.getUint32(aOff + 16, true);
  const bs = b.getUint32(bOff + 16, true);
  return as < bs || (as === bs && a.getUint32(aOff + 20, true) < b.getUint32(bOff + 20, true));
}

/** Attaches the classic BPF program `prog` (lib/packet-filter.ts) to packet socket `fd`, replacing any other. */
function attachFilter(fd: number, prog: readonly BpfInsn[]): void {
  setProgram(fd, C.SOL_SOCKET, SO_ATTACH_FILTER, prog, 'SO_ATTACH_FILTER');
}

/** Passes `prog` as a struct sock_fprog to setsockopt(fd, level, name). */
function setProgram(fd: number, level: number, name: number, prog: readonly BpfInsn[], what: string): void {
  const code = encodeFilter(prog);
  const mem = mapMemory(Math.ceil(code.length / PAGE_SIZE) * PAGE_SIZE);
  try {
    mem.bytes.set(code);
    const fprog = new Uint8Array(16);
    const fv = new DataView(fprog.buffer);
    fv.setUint16(0, prog.length, true);
    fv.setBigUint64(8, mem.address, true);
    check(sys.setsockopt(fd, level, name, fprog, 16), 'setsockopt', what);
  } finally {
    mem.free(); // the kernel copied the program
  }
}

/** A filter that takes nothing: a socket between its bind() and its fanout join would otherwise see every frame. */
const DROP_ALL: readonly BpfInsn[] = [{ code: 0x06, jt: 0, jf: 0, k: 0 }];

/**
 * Joins packet socket `fd` (bound) to fanout group `group` of its namespace, as a PACKET_FANOUT_HASH member:
 * the kernel hands each frame to one member by the symmetric flow hash of its addresses and ports (addresses
 * alone for fragments and for protocols without ports), the same member for both directions of a flow. With
 * `steer`, a PACKET_FANOUT_CBPF member instead: the program (steerProgram) names the member.
 * `defrag` (PACKET_FANOUT_FLAG_DEFRAG) has the kernel reassemble IPv4 fragments before hashing them.
 * PACKET_FANOUT_FLAG_IGNORE_OUTGOING keeps the frames the members send out of their rings. In a group the kernel
 * hands frames to the group's hook, which does not consult a member's own PACKET_IGNORE_OUTGOING; it passes over
 * a frame sent through one of its own members, but the members send through the socket of the small frames, so
 * the group of large frames took every super-frame a shard sent: a 64 KB copy in the kernel and a frame for the
 * stack to drop, which held one stream from a shard to 14-15 Gbit/s against 23-25 from `--threads 1`.
 */
function joinFanout(fd: number, group: number, defrag: boolean, steer?: readonly BpfInsn[]): void {
  const type = steer ? PACKET_FANOUT_CBPF : PACKET_FANOUT_HASH;
  const typeFlags = type | PACKET_FANOUT_FLAG_IGNORE_OUTGOING | (defrag ? PACKET_FANOUT_FLAG_DEFRAG : 0);
  setIntOption(fd, C.SOL_PACKET, PACKET_FANOUT, (group & 0xffff) | (typeFlags << 16), `PACKET_FANOUT group ${group}`);
  if (steer) setSteerProgram(fd, steer);
}

/**
 * Gives the PACKET_FANOUT_CBPF group of member `fd` the program `prog` (one per group: every member sets the
 * same, and a later one replaces it for all). Until a group has one the kernel gives every frame to member 0.
 */
function setSteerProgram(fd: number, prog: readonly BpfInsn[]): void {
  setProgram(fd, C.SOL_PACKET, PACKET_FANOUT_DATA, prog, 'PACKET_FANOUT_DATA');
}

/** One PACKET_RX_RING (TPACKET_V2): fixed-size slots shared with the kernel, walked from our head. */
class RxRing {
  readonly mem: NativeBuffer;
  readonly view: DataView;
  readonly bytes: Uint8Array;
  readonly frameSize: number;
  readonly blockSize: number;
  readonly framesPerBlock: number;
  readonly frames: number;
  head = 0;

  /** Sets up the ring on `fd` (after PACKET_VERSION and PACKET_VNET_HDR) for `frames` slots of `slotBytes`. */
  constructor(readonly fd: number, slotBytes: number, frames: number, big: boolean) {
    // Slots are TPACKET_ALIGNMENT (16) multiples, not powers of two: 1632 bytes rather than 2048 for a 1500 MTU.
    this.frameSize = Math.ceil(slotBytes / 16) * 16;
    // One 64 KB slot per page-rounded block; small slots packed into 64 KB blocks (pages are the block unit).
    this.blockSize = big ? Math.ceil(this.frameSize / PAGE_SIZE) * PAGE_SIZE : Math.max(Math.ceil(this.frameSize / PAGE_SIZE) * PAGE_SIZE, 1 << 16);
    this.framesPerBlock = Math.floor(this.blockSize / this.frameSize);
    const blocks = Math.max(1, Math.ceil(frames / this.framesPerBlock));
    this.frames = blocks * this.framesPerBlock;
    const req = new Uint32Array([this.blockSize, blocks, this.frameSize, this.frames]);
    check(sys.setsockopt(fd, C.SOL_PACKET, C.PACKET_RX_RING, req, 16), 'setsockopt', 'PACKET_RX_RING');
    this.mem = mapMemory(this.blockSize * blocks, fd);
    this.view = this.mem.view;
    this.bytes = this.mem.bytes;
  }

  /** Byte offset of slot `i`. */
  slotOffset(i: number): number {
    return Math.floor(i / this.framesPerBlock) * this.blockSize + (i % this.framesPerBlock) * this.frameSize;
  }

  /** Whether the head slot holds a frame for us. */
  ready(): boolean {
    return (this.view.getUint32(this.slotOffset(this.head), true) & TP_STATUS_USER) !== 0;
  }

  /** Hands slot `i` (at byte `off`) back to the kernel and moves the head past it. */
  release(off: number, i: number): void {
    this.view.setUint32(off, 0, true); // TP_STATUS_KERNEL
    this.head = i + 1 === this.frames ? 0 : i + 1;
  }
}

/** A LinkEndpoint on an AF_PACKET socket bound to one interface inside a network namespace. */
export class AfPacketEndpoint implements LinkEndpoint {
  /**
   * Fewest queued frames a flush hands to the send thread (HANDOFF_MIN). Process-wide, for tests: how many frames a
   * real TCP transfer queues in one turn follows its windows and the machine's load, and a test of the thread's path
   * under such a transfer lowers it to 1 so that every batch takes that path.
   */
  static handOffMin = HANDOFF_MIN;
  /** Fewest queued bytes a flush hands to the send thread (HANDOFF_BYTES); process-wide, for tests as handOffMin. */
  static handOffBytes = HANDOFF_BYTES;
  /** Largest IP packet the interface carries (its MTU when opened). */
  readonly mtu: number;
  /** The interface's MAC, used as the stack's own (as runsc does). */
  readonly macAddress: Uint8Array;
  /** The interface's index inside its namespace. */
  readonly ifindex: number;
  /** The namespace and interface this endpoint is bound to. */
  readonly netns: string;
  /** The interface's name. */
  readonly dev: string;
  /** Frames and bytes in and out, and drops; `refreshCounters()` pulls the kernel's ring drops in. */
  readonly counters: HostLinkCounters = newHostLinkCounters();
  /**
   * What the link does beyond MTU-sized frames (see lib/vnet.ts); all false unless opened with offloads. With
   * offloads rxChecksumOffload is still false: only the frames delivered with RX_CSUM_VERIFIED were verified,
   * frames from beyond the host without DATA_VALID need the stack's own check.
   */
  readonly capabilities: LinkCapabilities;
  /** A microtask after the first queued frame sends the queue (scheduleFlush). */
  readonly flushesItself = true;
  /**
   * drain ends every batch it delivered frames of with deliverBatchEnd. Not after a delivery that threw (a defect,
   * which leaves the event loop's callback): the next batch's end then sends what that one deferred.
   */
  readonly endsBatches = true;
  /** Offload activity (all zero without offloads). */
  readonly vnetCounters: VnetCounters = { rxGsoFrames: 0, rxCsumVerified: 0, rxBadVnetHeader: 0, txGsoFrames: 0, txGsoRefused: 0 };

  /**
   * How receiving went: event-loop wake-ups, how many of them busy-polled (they found a stream), and how many
   * frames a busy poll caught that would otherwise each have cost a wake-up or waited for one.
   */
  readonly rxPoll = { wakeups: 0, busyPolls: 0, caught: 0 };
  /**
   * The send thread's share (see AfPacketOptions.sendThread): batches and frames handed to it, and the times a
   * full ring waited for its batch in flight.
   */
  readonly txThread = { handOffs: 0, frames: 0, waits: 0 };
  /**
   * Frames queued by writeGsoGather with their payload pointed at rather than copied into the send slot, and those
   * payload bytes; `joined` counts the gather frames copied after all (more pieces than a message takes, or memory
   * without an address to give, a SharedArrayBuffer's).
   */
  readonly txGather = { frames: 0, bytes: 0, joined: 0 };
  /** The packet socket (for diagnostics; owned by the endpoint). */
  readonly fd: number;
  // MTU-sized frames, many slots (bursts of small frames); and, when super-frames can arrive, a second socket
  // whose ring of 64 KB slots takes only the frames larger than the MTU (filters split the traffic by size).
  private ring!: RxRing;
  private bigRing: RxRing | null = null;
  // tp_sec / tp_nsec of the slot being delivered (see rxTimeMs).
  private rxSec = 0;
  private rxNsec = 0;
  private readonly tx: MmsgBatch;
  private readonly maxFrame: number;
  private readonly offloads: boolean;
  // Bytes in front of each outgoing frame in its send slot: the virtio_net_hdr with offloads, else none.
  private readonly txHdr: number;
  // The send slots are a ring (see lib/send-thread.ts): the next index to fill, and without a send thread the
  // index up to which frames went out; indices run over [0, 2 × slots).
  private txTail = 0;
  private txSent = 0;
  private sender: SendThread | null = null;
  // Whether the send thread is started at the first bulk batch (AfPacketOptions.sendThread 'on-bulk').
  private readonly senderOnBulk: boolean;
  // Per send slot while it gathers (writeGsoGather): who keeps the pieces' bytes unchanged until the slot is sent
  // (then released), and the pieces themselves, MAX_GATHER per slot, so the collector keeps them alive until then.
  private readonly txOwners: (GatherPayload['owner'] | null)[];
  private readonly txPieces: (Uint8Array | null)[];
  /**
   * The view frameBuffer last made of each send slot: asked for the same length again (a kept-alive connection's
   * every response, every ACK), a slot hands it back instead of a typed array made per frame sent.
   */
  private readonly frameViews: (Uint8Array | null)[];
  // With a send thread: the ring index up to which the slots it sent have had their owners released (reclaim).
  private reclaimed = 0;
  private flushScheduled = false;
  private blocked = false;
  private readonly watch: FdWatch;
  private readonly bigWatch: FdWatch | null = null;
  // A fanout member's ARP, NDP and ICMP error frames, which every member sees (see AfPacketOptions.fanout).
  private sharedRing: RxRing | null = null;
  private readonly sharedWatch: FdWatch | null = null;
  // Whether the fanout groups are steered by a program of ours (AfPacketOptions.fanout.steer).
  private readonly steered: boolean;
  // Bare SYNs (AfPacketOptions.synRing), drained after the other rings.
  private synRing: RxRing | null = null;
  private readonly synWatch: FdWatch | null = null;
  private dispatcher: LinkDispatcher | null = null;
  // Whether super-frames are lent to the dispatcher (RX_LOAN: it has returnLoans), and the offsets of the slots of
  // the ring of super-frames lent and not yet given back.
  private lends = false;
  private readonly heldOffsets: number[] = [];
  // The most slots lent at once: a quarter of the ring of super-frames.
  private maxHeld = 0;
  // Lending batches delivered, and how many of their markers have run (all their readers with them).
  private lentBatches = 0;
  private ranBatches = 0;
  private readonly markRan = (): void => {
    this.ranBatches++;
  };
  private closed = false;
  private readonly busyPollMs: number;
  // Frames one receive() delivers before it returns to the event loop, so that the application's reads (queued
  // as microtasks by the deliveries) drain the receive queues while their bytes are still in cache, and the
  // stack's memory stays a few bursts deep instead of a ring deep.
  private readonly rxBudget: number;
  private lastReceiveEnd = -Infinity;
  // Busy polling: whether a poll turn is scheduled, and when it last found a frame.
  private polling = false;
  private idleSince = 0;
  // When noteLosing last read the kernel's drop counts (performance.now ms).
  private lossReadAt = -Infinity;
  private lossTimer: NodeJS.Timeout | null = null;
  private readonly stat = new Uint32Array(2);
  private readonly statLen = new Uint32Array(1);

  private constructor(opts: AfPacketOptions, s: OpenedSocket) {
    this.netns = opts.netns instanceof NetnsHandle ? opts.netns.label : opts.netns;
    this.dev = opts.dev;
    this.fd = s.fd;
    this.ifindex = s.ifindex;
    this.macAddress = s.mac;
    this.mtu = s.mtu;
    this.maxFrame = s.mtu + ETH_HLEN + VLAN_HLEN;
    this.busyPollMs = (opts.busyPollUs ?? 50) / 1000;
    this.steered = opts.fanout?.steer !== undefined;
    this.offloads = opts.offloads ?? false;
    this.senderOnBulk = opts.sendThread === 'on-bulk';
    const bigSlots = this.offloads || opts.superFrames === true;
    this.rxBudget = this.offloads ? RX_BUDGET_OFFLOADS : RX_BUDGET;
    this.txHdr = this.offloads ? VNET_HDR_LEN : 0;
    this.capabilities = this.offloads
      ? Object.freeze({ gso: true, maxGsoSize: MAX_GSO_FRAME, rxChecksumOffload: false, txChecksumOffload: true })
      : bigSlots ? Object.freeze({ ...NO_OFFLOADS, maxRxFrame: MAX_GSO_FRAME }) : NO_OFFLOADS;
    const vnet = this.offloads ? VNET_HDR_LEN : 0;
    const fds = [this.fd, ...(s.bigFd >= 0 ? [s.bigFd] : []), ...(s.synFd >= 0 ? [s.synFd] : [])];
    try {
      for (const fd of fds) {
        setIntOption(fd, C.SOL_PACKET, C.PACKET_VERSION, C.TPACKET_V2, 'PACKET_VERSION');
        // Must precede the ring: the kernel refuses to change the header layout of a mapped ring.
        if (this.offloads) setIntOption(fd, C.SOL_PACKET, C.PACKET_VNET_HDR, 1, 'PACKET_VNET_HDR');
        setIntOption(fd, C.SOL_PACKET, C.PACKET_IGNORE_OUTGOING, 1, 'PACKET_IGNORE_OUTGOING');
      }
      const fan = opts.fanout;
      const noBareSyns = s.synFd >= 0 ? SYN_SLOT_FRAME : undefined;
      if (fan) {
        // Nothing reaches a member between its bind() and its join (it would see every flow's frames).
        for (const fd of fds) attachFilter(fd, DROP_ALL);
        setIntOption(s.sharedFd, C.SOL_PACKET, C.PACKET_VERSION, C.TPACKET_V2, 'PACKET_VERSION');
        if (this.offloads) setIntOption(s.sharedFd, C.SOL_PACKET, C.PACKET_VNET_HDR, 1, 'PACKET_VNET_HDR');
        setIntOption(s.sharedFd, C.SOL_PACKET, C.PACKET_IGNORE_OUTGOING, 1, 'PACKET_IGNORE_OUTGOING');
        attachFilter(s.sharedFd, sharedFilter());
        this.sharedRing = new RxRing(s.sharedFd, this.maxFrame + RING_HEADROOM + vnet, SHARED_RING_FRAMES, false);
      } else {
        // Before bind: until then the sockets receive nothing, so no frame lands in two rings or in none.
        if (s.bigFd >= 0 || noBareSyns !== undefined) {
          attachFilter(this.fd, frameFilter({ size: s.bigFd >= 0 ? { maxFrame: this.maxFrame, take: 'small' } : undefined, noBareSyns }));
        }
        if (s.bigFd >= 0) attachFilter(s.bigFd, frameFilter({ size: { maxFrame: this.maxFrame, take: 'large' } }));
        if (s.synFd >= 0) attachFilter(s.synFd, synFilter(SYN_SLOT_FRAME));
      }
      if (s.synFd >= 0) this.synRing = new RxRing(s.synFd, SYN_SLOT_FRAME + RING_HEADROOM + vnet, SYN_RING_FRAMES, false);
      this.ring = new RxRing(this.fd, this.maxFrame + RING_HEADROOM + vnet, opts.ringFrames ?? SMALL_RING_FRAMES, false);
      if (s.bigFd >= 0) {
        this.bigRing = new RxRing(s.bigFd, MAX_GSO_FRAME + RING_HEADROOM + vnet, BIG_RING_FRAMES, true);
      }
      this.maxHeld = (this.bigRing?.frames ?? 0) >> 2;
      setIntOption(this.fd, C.SOL_SOCKET, C.SO_SNDBUFFORCE, opts.sendBuffer ?? 4 << 20, 'SO_SNDBUFFORCE');
      const sa = sockaddrLL(this.ifindex);
      for (const fd of fds) check(sys.bind(fd, sa, sa.length), 'bind', `${opts.dev} in ${this.netns}`);
      if (fan) {
        check(sys.bind(s.sharedFd, sa, sa.length), 'bind', `${opts.dev} in ${this.netns}`);
        const steer = fan.steer ? steerProgram(fan.steer) : undefined;
        joinFanout(this.fd, fan.group, false, steer);
        if (s.bigFd >= 0) joinFanout(s.bigFd, fan.group + 1, true, steer);
        // A flow's SYN reaches the member its later segments reach: the same hash (or program), the same position.
        if (s.synFd >= 0) joinFanout(s.synFd, fan.group + 2, false, steer);
        // IPv4 fragments go whole through the group of large frames, reassembled there (not in both groups: the
        // kernel's reassembly queue is shared, so a second group would hold the other's orphan fragments); with one
        // socket, the member reassembles the fragments the hash of their addresses brings it.
        attachFilter(this.fd, frameFilter({
          size: s.bigFd >= 0 ? { maxFrame: this.maxFrame, take: 'small' } : undefined,
          noShared: true,
          noIpv4Fragments: s.bigFd >= 0,
          noBareSyns,
        }));
        if (s.bigFd >= 0) attachFilter(s.bigFd, frameFilter({ size: { maxFrame: this.maxFrame, take: 'large' } }));
        if (s.synFd >= 0) attachFilter(s.synFd, synFilter(SYN_SLOT_FRAME));
      }
      // Send slots hold header and frame; 64 KB ones with offloads, of which untouched pages cost nothing.
      this.tx = new MmsgBatch(Math.min(opts.sendQueue ?? 256, MAX_SEND_SLOTS), this.txHdr + (this.offloads ? MAX_GSO_FRAME : this.maxFrame));
      if (opts.sendThread === true) this.startSender();
      this.txOwners = new Array<GatherPayload['owner'] | null>(this.tx.count).fill(null);
      this.txPieces = new Array<Uint8Array | null>(this.tx.count * MAX_GATHER).fill(null);
      this.frameViews = new Array<Uint8Array | null>(this.tx.count).fill(null);
    } catch (err) {
      (this.ring as RxRing | undefined)?.mem.free();
      this.bigRing?.mem.free();
      this.sharedRing?.mem.free();
      this.synRing?.mem.free();
      for (const fd of fds) sys.close(fd);
      if (s.sharedFd >= 0) sys.close(s.sharedFd);
      throw err;
    }
    this.watch = watchFd(this.fd, (readable, writable, status) => {
      if (status < 0) return this.close();
      if (writable) this.onWritable();
      if (readable) this.receive();
    });
    // The rings of super-frames and of SYNs are walked with the one of small frames, whichever fd wakes us.
    const onRing = (readable: boolean, _writable: boolean, status: number): void => {
      if (status < 0) return this.close();
      if (readable) this.receive();
    };
    if (s.bigFd >= 0) this.bigWatch = watchFd(s.bigFd, onRing);
    if (this.synRing) this.synWatch = watchFd(s.synFd, onRing);
    if (this.sharedRing) {
      this.sharedWatch = watchFd(s.sharedFd, (readable, _writable, status) => {
        if (status < 0) return this.close();
        if (readable) this.drainShared();
      });
    }
  }

  /** Opens a packet socket on `dev` inside namespace `netns`; rejects with an error naming whichever is missing. */
  static async open(opts: AfPacketOptions): Promise<AfPacketEndpoint> {
    const two = opts.offloads === true || opts.superFrames === true;
    return new AfPacketEndpoint(opts, openSocket(opts.netns, opts.dev, two, opts.fanout !== undefined, opts.synRing !== false));
  }

  attach(dispatcher: LinkDispatcher | null): void {
    if (this.heldOffsets.length > 0) this.endLoans();
    this.dispatcher = dispatcher;
    this.lends = dispatcher?.returnLoans !== undefined;
  }

  /**
   * Ends the loans of the last batch's slots (RX_LOAN): the dispatcher copies what its receivers still hold of
   * them (by now their readers have run, so usually nothing), then the slots go back to the kernel. Only the ring of
   * super-frames lends, at most a quarter of it at once (a batch is RX_BUDGET_SUPER super-frames at most), so a
   * ring filling up while its reader is busy loses little room to them.
   */
  private endLoans(): void {
    this.dispatcher?.returnLoans?.();
    const view = this.bigRing!.view;
    const offs = this.heldOffsets;
    for (let k = 0; k < offs.length; k++) view.setUint32(offs[k]!, 0, true); // TP_STATUS_KERNEL
    offs.length = 0;
  }

  /** Lets the process exit while the endpoint is open (by default an open endpoint keeps it alive). */
  unref(): void {
    this.watch.unref();
    this.bigWatch?.unref();
    this.sharedWatch?.unref();
  }

  /**
   * Delivers what waits in a fanout member's ring of shared frames (ARP, NDP, ICMP errors). Apart from the flow
   * rings: their order relative to a flow's segments does not matter, and they are few.
   */
  private drainShared(): void {
    const r = this.sharedRing;
    if (r === null) return;
    const c = this.counters;
    let delivered = 0;
    let losing = false;
    while (!this.closed && r.ready()) {
      const i = r.head;
      const off = r.slotOffset(i);
      const v = r.view;
      const status = v.getUint32(off, true);
      const len = v.getUint32(off + 4, true);
      const snaplen = v.getUint32(off + 8, true);
      const mac = v.getUint16(off + 12, true);
      if (status & TP_STATUS_LOSING) losing = true;
      const d = this.dispatcher;
      if (snaplen < len) c.rxTruncated++;
      else if (d === null) c.rxUnattached++;
      else {
        c.rxFrames++;
        c.rxBytes += snaplen;
        delivered++;
        try {
          d.deliverFrame(r.bytes.subarray(off + mac, off + mac + snaplen), 0);
        } finally {
          if (!this.closed) r.release(off, i);
        }
        continue;
      }
      r.release(off, i);
    }
    if (losing && !this.closed) this.noteLosing();
    if (delivered > 0 && !this.closed) {
      this.dispatcher?.deliverBatchEnd?.();
      if (!this.closed) this.flush();
    }
  }

  /** Whether a frame waits in either ring. */
  private rxReady(): boolean {
    return this.ring.ready() || (this.bigRing !== null && this.bigRing.ready()) || (this.synRing !== null && this.synRing.ready());
  }

  /**
   * Drains the ring, then starts busy polling when a stream is running: when this wake-up found more than one
   * frame, or came within `busyPollUs` of the end of the previous one (so polling would have caught its frame).
   */
  private receive(): void {
    this.rxPoll.wakeups++;
    const n = this.drain(this.rxBudget);
    if (n === 0 || this.busyPollMs <= 0 || this.closed) return;
    const now = performance.now();
    const streaming = n > 1 || now - this.lastReceiveEnd <= this.busyPollMs;
    this.lastReceiveEnd = now;
    if (!streaming || this.polling) return;
    this.rxPoll.busyPolls++;
    this.polling = true;
    this.idleSince = now;
    setImmediate(this.pollTurn);
  }

  /**
   * One busy-poll turn, once per event-loop turn: drains what arrived since the last one, and stops once
   * nothing has for `busyPollUs` (the next frame then wakes us through the fd again).
   */
  private readonly pollTurn = (): void => {
    if (this.closed) {
      this.polling = false;
      return;
    }
    // What the last turn's frames caused goes before this turn's are taken in (its flush may be queued after us).
    this.flush();
    const now = performance.now();
    if (this.rxReady()) {
      this.rxPoll.caught += this.drain(this.rxBudget);
      this.idleSince = now;
    } else if (now - this.idleSince > this.busyPollMs) {
      this.polling = false;
      this.lastReceiveEnd = now;
      return;
    }
    setImmediate(this.pollTurn);
  };

  /**
   * Walks the rings from their heads, delivering each filled slot (at most `max`) and returning it to the kernel;
   * returns frames seen. With two rings, frames go up in the order the kernel received them (their timestamps),
   * so that a flow's small segments and super-frames are not reordered between the rings.
   */
  private drain(max: number): number {
    // The loans end once the readers of every lending batch have run: their reads are microtasks queued during
    // the deliveries, before the batch's own marker (markRan). A wake-up of the other ring's fd can come first
    // (a native callback with no microtask checkpoint after it), and then the slots stay lent a batch longer.
    if (this.heldOffsets.length > 0 && this.ranBatches === this.lentBatches) this.endLoans();
    const small = this.ring;
    const big = this.bigRing;
    const c = this.counters;
    // Only super-frames are lent: a copy of a small frame (a request, an ACK) costs less than lending it.
    const lend = this.lends && big !== null;
    let lent = 0;
    let delivered = 0;
    let losing = false;
    let seen = 0;
    let bytes = 0;
    let supers = 0;
    // The ring for SYNs comes after the others, with a budget of its own: under a flood it holds a backlog, which
    // must not delay the segments of the connections already made, nor be starved by them.
    const syn = this.synRing;
    let synLeft = syn === null ? 0 : max;
    let budget = max;
    while (!this.closed) {
      // Lending more than maxHeld slots (readers that have not run for several batches) ends the loans early:
      // the ring keeps most of its room, and the walk never comes round to a slot still lent.
      if (lend && this.heldOffsets.length >= this.maxHeld) this.endLoans();
      let r = small;
      let off = small.slotOffset(small.head);
      let status = small.view.getUint32(off, true);
      if (big !== null) {
        const bOff = big.slotOffset(big.head);
        const bStatus = big.view.getUint32(bOff, true);
        if ((bStatus & TP_STATUS_USER) !== 0 && ((status & TP_STATUS_USER) === 0 || earlier(big.view, bOff, small.view, off))) {
          r = big;
          off = bOff;
          status = bStatus;
        }
      }
      if (budget > 0 && bytes < RX_BUDGET_BYTES && (status & TP_STATUS_USER) !== 0 && !(r === big && supers === RX_BUDGET_SUPER)) {
        budget--;
        if (r === big) supers++;
      } else {
        if (synLeft === 0) break;
        r = syn!;
        off = r.slotOffset(r.head);
        status = r.view.getUint32(off, true);
        if ((status & TP_STATUS_USER) === 0) break;
        synLeft--;
      }
      const i = r.head;
      const v = r.view;
      seen++;
      const len = v.getUint32(off + 4, true);
      const snaplen = v.getUint32(off + 8, true);
      const mac = v.getUint16(off + 12, true);
      if (status & TP_STATUS_LOSING) losing = true;
      const d = this.dispatcher;
      let flags = this.offloads && snaplen >= len ? this.vnetFlags(v, off + mac, snaplen) : 0;
      // Without the vnet header the kernel still says when it left a checksum partial (a stack on this host that
      // counts on offload sent the frame: the peer of a veth with tx checksumming on, its default). Linux accepts
      // such frames unchecked, as the offloads path does for NEEDS_CSUM; summing them would fail on the partial
      // field (issue 15: TCP dead behind --no-offloads).
      if (status & TP_STATUS_CSUMNOTREADY && !this.offloads) {
        c.rxCsumNotReady++;
        flags |= RX_CSUM_VERIFIED;
      }
      if (snaplen < len) {
        c.rxTruncated++;
      } else if (flags < 0) {
        // dropped, counted in vnetCounters
      } else if (d === null) {
        c.rxUnattached++;
      } else {
        c.rxFrames++;
        c.rxBytes += snaplen;
        bytes += snaplen;
        delivered++;
        // The kernel already filled the next slot: this batch goes on, so the receiver may defer its replies.
        const next = i + 1 === r.frames ? 0 : i + 1;
        const nextReady = (v.getUint32(r.slotOffset(next), true) & TP_STATUS_USER) !== 0;
        const more = r === syn
          ? synLeft > 0 && nextReady
          : (budget > 0 && (nextReady || (r === small ? big : small)?.ready() === true)) || (synLeft > 0 && syn!.ready());
        if (more) flags |= RX_MORE;
        this.rxSec = v.getUint32(off + 16, true);
        this.rxNsec = v.getUint32(off + 20, true);
        try {
          d.deliverFrame(r.bytes.subarray(off + mac, off + mac + snaplen), lend && r === big ? flags | RX_LOAN : flags);
        } finally {
          // Given back only after the dispatcher is done with it: with a full ring the kernel writes this very
          // slot next. Given back even if the dispatcher throws, so one bad frame is not redelivered forever. A
          // lent slot is passed over now and given back when the loans end, at the next batch (endLoans).
          if (!this.closed) {
            if (lend && r === big) {
              r.head = i + 1 === r.frames ? 0 : i + 1;
              this.heldOffsets.push(off);
              lent++;
            } else r.release(off, i);
          }
        }
        if (this.closed) return seen; // the dispatcher closed us: the ring is gone
        continue;
      }
      r.release(off, i);
    }
    // The kernel marks slots LOSING while drops are unread. A read per marked frame was two or three getsockopt
    // calls per frame once the ring overflowed, and one per batch still took 7% of serve's thread under a SYN flood
    // (each read takes the socket's receive-queue lock from the CPU filling the ring): at most one per LOSS_READ_MS.
    if (losing) this.noteLosing();
    // The batch's own replies (ACKs, SYN-ACKs) go with what the applications write after it (scheduleFlush).
    if (delivered > 0 && !this.closed) this.dispatcher?.deliverBatchEnd?.();
    if (lent > 0) {
      this.lentBatches++;
      queueMicrotask(this.markRan);
    }
    return seen;
  }

  /**
   * Reads the virtio_net_hdr in front of the frame at `start`: RX_CSUM_VERIFIED for NEEDS_CSUM or DATA_VALID
   * (Linux's CHECKSUM_PARTIAL and CHECKSUM_UNNECESSARY, both of which its own stack accepts unchecked), else 0;
   * -1 (counted) when a partial checksum's field lies outside the frame.
   */
  private vnetFlags(v: DataView, start: number, len: number): number {
    // Field by field rather than readVnetHeader: no object per received frame.
    const h = start - VNET_HDR_LEN;
    const vc = this.vnetCounters;
    if (v.getUint8(h + 1) !== GsoType.NONE) vc.rxGsoFrames++;
    const f = v.getUint8(h);
    if ((f & VNET_F_NEEDS_CSUM) !== 0) {
      const csumStart = v.getUint16(h + 6, true);
      if (csumStart >= len || csumStart + v.getUint16(h + 8, true) + 2 > len) {
        vc.rxBadVnetHeader++;
        return -1;
      }
    } else if ((f & VNET_F_DATA_VALID) === 0) {
      return 0;
    }
    vc.rxCsumVerified++;
    return RX_CSUM_VERIFIED;
  }

  /** A ring said it dropped frames: reads the kernel's count unless it was read in the last LOSS_READ_MS. */
  private noteLosing(): void {
    const now = performance.now();
    const wait = this.lossReadAt + LOSS_READ_MS - now;
    if (wait <= 0) {
      this.lossReadAt = now;
      this.refreshCounters();
    } else if (this.lossTimer === null) {
      // Drops after the last read must not go uncounted if no frame marked LOSING comes after the window.
      this.lossTimer = setTimeout(this.lateLossRead, wait);
      this.lossTimer.unref();
    }
  }

  private readonly lateLossRead = (): void => {
    this.lossTimer = null;
    this.lossReadAt = performance.now();
    this.refreshCounters();
  };

  /** Every receive ring of the endpoint (the one of MTU-sized frames, on `fd`, first): one socket each. */
  private rings(): RxRing[] {
    const rings = [this.ring];
    for (const r of [this.bigRing, this.sharedRing, this.synRing]) if (r !== null) rings.push(r);
    return rings;
  }

  /** Adds the kernel's ring-full drops (PACKET_STATISTICS, which resets on read) to `counters.rxDropped`. */
  refreshCounters(): HostLinkCounters {
    if (!this.closed) {
      for (const ring of this.rings()) {
        const fd = ring.fd;
        this.statLen[0] = 8;
        if (sys.getsockopt(fd, C.SOL_PACKET, C.PACKET_STATISTICS, this.stat, this.statLen) === 0) {
          this.counters.rxDropped += this.stat[1]!;
        }
      }
    }
    this.sender?.addCounts(this.counters);
    return this.counters;
  }

  writeFrame(frame: Uint8Array): boolean {
    if (this.closed) return false;
    if (frame.length > this.maxFrame) {
      this.counters.txOversize++;
      return false;
    }
    if (!this.reserveSlot()) return false;
    const i = this.slotOf(this.txTail);
    this.txTail = this.after(this.txTail, 1);
    const slot = this.tx.slot(i);
    if (this.txHdr > 0) writeEmptyVnetHeader(this.tx.view, this.tx.offsetOf(i));
    if (!this.inPlace(frame, slot)) slot.set(frame, this.txHdr);
    this.tx.setLength(i, this.txHdr + frame.length);
    this.scheduleFlush();
    return true;
  }

  /**
   * When the kernel took in the frame being delivered (tpacket2_hdr tp_sec/tp_nsec, CLOCK_REALTIME, in ms), valid
   * during deliverFrame: a receiver that timestamps frames (the conformance runner) gets the kernel's time, not
   * the time its busy thread came round to them.
   */
  get rxTimeMs(): number {
    return this.rxSec * 1000 + this.rxNsec / 1e6;
  }

  /**
   * Queues one super-frame (up to `capabilities.maxGsoSize`) for the kernel to cut into segments of
   * `o.gsoSize` payload bytes, and to complete its L4 checksum when `o.csumStart`/`o.csumOffset` are given
   * (the checksum field then holds the pseudo-header sum over the whole super-frame's L4 length, not
   * complemented, as Linux's own TSO frames do). Same ownership and flush rules as writeFrame; returns false
   * when refused (counted in vnetCounters.txGsoRefused). Throws unless the endpoint was opened with offloads.
   */
  writeGso(frame: Uint8Array, o: GsoOptions): boolean {
    if (!this.offloads) throw new Error('writeGso needs an endpoint opened with offloads: true');
    if (this.closed || this.refuseGso(o, frame.length, frame.length)) return false;
    if (!this.reserveSlot()) return false;
    const i = this.slotOf(this.txTail);
    this.txTail = this.after(this.txTail, 1);
    this.fillGsoSlot(i, frame, o);
    this.tx.setLength(i, VNET_HDR_LEN + frame.length);
    this.scheduleFlush();
    return true;
  }

  /**
   * writeGso of `frame` followed by `payload`, whose pieces the send points at instead of copying them into the
   * slot (the kernel copies them once, as it copies the slot): `frame` holds the headers alone, in the slot when
   * built in frameBuffer's view. The payload's owner is held until the slot is sent (by the send thread: until
   * the endpoint next fills a slot or finds the ring drained, see reclaim), dropped or the endpoint closed. More
   * pieces than a message takes are copied behind the frame, as by writeGso.
   */
  writeGsoGather(frame: Uint8Array, o: GsoOptions, payload: GatherPayload): boolean {
    if (payload.count > MAX_GATHER) {
      this.txGather.joined++;
      return this.writeGso(joinGather(frame, payload), o);
    }
    if (!this.offloads) throw new Error('writeGsoGather needs an endpoint opened with offloads: true');
    if (this.closed || this.refuseGso(o, frame.length + payload.length, frame.length)) return false;
    if (!this.reserveSlot()) return false;
    const i = this.slotOf(this.txTail);
    const n = payload.count;
    if (this.tx.setGather(i, VNET_HDR_LEN + frame.length, payload.pieces, n) < 0) {
      // Memory the kernel cannot be pointed at: copied after all (the slot is still free, the frame still whole).
      this.txGather.joined++;
      return this.writeGso(joinGather(frame, payload), o);
    }
    this.txTail = this.after(this.txTail, 1);
    this.fillGsoSlot(i, frame, o);
    const owner = payload.owner;
    owner.hold();
    this.txOwners[i] = owner;
    const refs = this.txPieces;
    for (let k = 0; k < n; k++) refs[i * MAX_GATHER + k] = payload.pieces[k]!;
    this.txGather.frames++;
    this.txGather.bytes += payload.length;
    this.scheduleFlush();
    return true;
  }

  /** Puts `o`'s virtio_net_hdr and `frame` (unless built there) in send slot `i`, counting a super-frame. */
  private fillGsoSlot(i: number, frame: Uint8Array, o: GsoOptions): void {
    writeVnetHeader(this.tx.view, this.tx.offsetOf(i), o);
    const slot = this.tx.slot(i);
    if (!this.inPlace(frame, slot)) slot.set(frame, VNET_HDR_LEN);
    if ((o.gsoType & ~GsoType.ECN) !== GsoType.NONE) this.vnetCounters.txGsoFrames++;
  }

  /**
   * Whether writeGso refuses a frame of `length` bytes whose first `contiguous` lie together (the headers must):
   * offload fields the kernel would reject, or a size it would (counted in vnetCounters.txGsoRefused).
   */
  private refuseGso(o: GsoOptions, length: number, contiguous: number): boolean {
    const type = o.gsoType & ~GsoType.ECN;
    const segmented = type !== GsoType.NONE;
    const knownType = type === GsoType.NONE || type === GsoType.TCPV4 || type === GsoType.TCPV6 || type === GsoType.UDP_L4;
    const csum = o.csumStart !== undefined || o.csumOffset !== undefined;
    const csumOk = !csum || (o.csumStart! >= ETH_HLEN && o.csumStart! + o.csumOffset! + 2 <= Math.min(contiguous, o.hdrLen));
    if (
      !knownType ||
      !csumOk ||
      length > MAX_GSO_FRAME ||
      o.hdrLen > contiguous ||
      (segmented && (o.gsoSize <= 0 || o.gsoSize > 0xffff)) ||
      (!segmented && length > this.maxFrame)
    ) {
      this.vnetCounters.txGsoRefused++;
      return true;
    }
    return false;
  }

  /**
   * Releases the owners of the gathering slots the send thread has sent since the last call: it reports only its
   * SENT index, read here before a slot is filled and when the ring is found drained (the kernel copied their bytes
   * in the sendmmsg that moved SENT past them).
   */
  private reclaim(): void {
    const s = this.sender;
    if (s === null) return;
    const sent = s.sent;
    while (this.reclaimed !== sent) {
      const i = this.slotOf(this.reclaimed);
      if (this.txOwners[i] !== null) this.releaseSlot(i);
      this.reclaimed = this.after(this.reclaimed, 1);
    }
  }

  /** Slot `i` was sent or dropped: the owner of the pieces it pointed at gets them back. */
  private releaseSlot(i: number): void {
    const owner = this.txOwners[i]!;
    this.txOwners[i] = null;
    this.txPieces.fill(null, i * MAX_GATHER, (i + 1) * MAX_GATHER);
    owner.release();
  }

  /**
   * A view of `length` bytes in the next free send slot, behind the room for its virtio_net_hdr (see
   * LinkEndpoint.frameBuffer): a frame built there and passed to the next writeFrame/writeGso is queued without a
   * copy. A full queue is flushed first; null when it stays full (socket blocked), when closed, or when `length`
   * exceeds a slot (the MTU frame, or with offloads the largest super-frame). Bytes are left from earlier frames.
   */
  frameBuffer(length: number): Uint8Array | null {
    if (this.closed || length < 0 || length > this.tx.slotSize - this.txHdr) return null;
    if (!this.makeRoom()) return null;
    const i = this.slotOf(this.txTail);
    let view = this.frameViews[i]!;
    if (view === null || view.length !== length) this.frameViews[i] = view = this.tx.slot(i).subarray(this.txHdr, this.txHdr + length);
    this.lentView = view;
    return view;
  }

  /** The view frameBuffer last handed out: a frame that is that very view needs no look at its memory. */
  private lentView: Uint8Array | null = null;

  /** Whether `frame` is the view frameBuffer handed out for `slot` (the slot about to be filled): no copy needed. */
  private inPlace(frame: Uint8Array, slot: Uint8Array): boolean {
    if (frame === this.lentView) {
      this.lentView = null;
      // Handed out for this slot unless frames were queued since (then it lies in an earlier one).
      return frame.byteOffset === slot.byteOffset + this.txHdr;
    }
    // `.buffer` is a call into V8's runtime: read only for a view made from the handed-out one.
    return frame.buffer === slot.buffer && frame.byteOffset === slot.byteOffset + this.txHdr;
  }

  /** Makes room for one more queued frame, flushing a full queue; false (counted) when it stays full. */
  private reserveSlot(): boolean {
    this.reclaim();
    if (this.makeRoom()) return true;
    this.counters.txDropped++;
    return false;
  }

  /**
   * Whether a slot is free, flushing a full ring; a batch the send thread is sending frees its slots within one
   * sendmmsg, and is waited for (back-pressure) rather than the frame dropped. A full socket buffer is not waited
   * for, with the thread or without.
   */
  private makeRoom(): boolean {
    if (this.txQueued() < this.tx.count) return true;
    this.flush();
    for (;;) {
      if (this.txQueued() < this.tx.count) return true;
      const s = this.sender;
      if (s === null || !s.busy || s.blocked) return false;
      this.txThread.waits++;
      if (!s.waitSent(s.sent, ROOM_WAIT_MS)) return false;
    }
  }

  /** Frames queued from ring index `from` up to the tail. */
  private queuedFrom(from: number): number {
    return this.txTail >= from ? this.txTail - from : this.txTail - from + 2 * this.tx.count;
  }

  /** Whether the frames queued from ring index `from` up to the tail add up to `bytes` or more. */
  private queuedBytesReach(from: number, bytes: number): boolean {
    let total = 0;
    for (let i = from; i !== this.txTail && total < bytes; i = this.after(i, 1)) total += this.tx.length(this.slotOf(i));
    return total >= bytes;
  }

  /** Slots filled and not yet sent. */
  private txQueued(): number {
    return this.queuedFrom(this.sender !== null ? this.sender.sent : this.txSent);
  }

  /** The slot of ring index `at`. */
  private slotOf(at: number): number {
    return at < this.tx.count ? at : at - this.tx.count;
  }

  /** Ring index `k` slots after `at`. */
  private after(at: number, k: number): number {
    const j = at + k;
    return j < 2 * this.tx.count ? j : j - 2 * this.tx.count;
  }

  private scheduleFlush(): void {
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.autoFlush);
    }
  }

  private readonly autoFlush = (): void => {
    this.flushScheduled = false;
    this.flush();
  };

  /**
   * Sends what is queued, or hands it to the send thread: always while the thread still has frames (they go out
   * in order behind them), else when at least `handOffMin` (HANDOFF_MIN) frames of together `handOffBytes`
   * (HANDOFF_BYTES) are queued, whose transmit then runs on another CPU while this thread goes on. A smaller batch
   * (a lone handshake's SYN-ACK, responses to requests, ACKs) is sent here: the thread's wake-up would cost more
   * than it takes off this one.
   */
  flush(): void {
    if (this.closed) return;
    const s = this.sender;
    if (s !== null && s.up) {
      if (this.txTail === s.published) {
        if (this.txTail !== 0 && !s.busy) this.rewind();
        return;
      }
      if (s.busy || this.isBulk(s.published)) {
        this.txThread.handOffs++;
        this.txThread.frames += s.distance(s.published, this.txTail);
        s.publish(this.txTail);
        return;
      }
    } else if (this.blocked || this.txTail === this.txSent) {
      return;
    }
    const start = s === null && this.senderOnBulk && this.isBulk(this.txSent);
    this.sendHere();
    // Started with nothing queued (sendHere sent all and rewound), so that its indices and ours both begin at 0.
    if (start && this.txTail === 0 && this.txSent === 0 && !this.closed) this.startSender();
  }

  /** Whether the frames queued from ring index `from` make a batch for the send thread (handOffMin, handOffBytes). */
  private isBulk(from: number): boolean {
    return this.queuedFrom(from) >= AfPacketEndpoint.handOffMin && this.queuedBytesReach(from, AfPacketEndpoint.handOffBytes);
  }

  private startSender(): void {
    this.sender = SendThread.start({ fd: this.fd, count: this.tx.count, frameHeader: this.txHdr, ...this.tx.layout });
  }

  /** Sends the queued frames on this thread, at most two sendmmsg runs (the ring wraps once). */
  private sendHere(): void {
    const c = this.counters;
    const s = this.sender;
    const n = this.tx.count;
    const tail = this.txTail;
    let at = s !== null ? s.sent : this.txSent;
    while (at !== tail) {
      const i = this.slotOf(at);
      const end = this.slotOf(tail);
      const r = this.tx.send(this.fd, i, end > i ? end - i : n - i);
      c.txCalls++;
      if (r > 0) {
        for (let k = i; k < i + r; k++) {
          c.txBytes += this.tx.length(k) - this.txHdr;
          if (this.txOwners[k] !== null) this.releaseSlot(k);
        }
        c.txFrames += r;
        at = this.after(at, r);
        continue;
      }
      const e = errno();
      if (e === C.EINTR) continue;
      if (e === C.EAGAIN) {
        c.txBlocked++;
        if (s !== null && s.up) {
          // The send thread waits for the socket in our place, the rest in order.
          s.sentHere(at);
          s.publish(tail);
          this.txSent = at;
          return;
        }
        // The socket buffer is full: keep the rest, in order, and resume when the kernel has drained some.
        this.blocked = true;
        this.watch.wantWritable(true);
        break;
      }
      // The kernel refused this one frame (e.g. ENOBUFS, ENETDOWN): drop it and go on with the next.
      c.txDropped++;
      if (this.txOwners[i] !== null) this.releaseSlot(i);
      at = this.after(at, 1);
    }
    this.txSent = at;
    s?.sentHere(at);
    if (at === tail) this.rewind();
  }

  /**
   * Back to the first slot once everything queued is sent (and the send thread has nothing): the next frames go
   * into the few slots still in cache, rather than round a ring of 256 slots 64 KB apart.
   */
  private rewind(): void {
    this.reclaim();
    this.reclaimed = 0;
    this.txTail = 0;
    this.txSent = 0;
    this.sender?.sentHere(0);
  }

  private onWritable(): void {
    this.watch.wantWritable(false);
    this.blocked = false;
    this.flush();
  }

  close(): void {
    if (this.closed) return;
    if (this.lossTimer !== null) clearTimeout(this.lossTimer);
    this.refreshCounters();
    this.closed = true;
    // A thread that does not leave its send in time keeps the batch's memory (never freed, rather than freed under it).
    const stopped = this.sender === null || this.sender.stop();
    this.sender?.addCounts(this.counters);
    this.counters.txDropped += this.txQueued();
    // A thread that did not stop may still send the slots: their owners keep their bytes (parked) for good.
    if (stopped) for (let i = 0; i < this.tx.count; i++) if (this.txOwners[i] !== null) this.releaseSlot(i);
    const d = this.dispatcher;
    this.dispatcher = null;
    // libuv must stop polling before the fd goes away.
    this.watch.close();
    this.bigWatch?.close();
    this.sharedWatch?.close();
    this.synWatch?.close();
    if (stopped) this.tx.free();
    const rings = this.rings();
    for (const r of rings) sys.close(r.fd);
    const unmap = () => {
      for (const r of rings) r.mem.free();
    };
    if (this.lends && d !== null) {
      // Receivers copy what they hold of lent slots before the rings go; a close from inside a delivery may see
      // that very frame queued after this call, so the rings are unmapped once the delivery is over.
      d.returnLoans!();
      setImmediate(() => {
        d.returnLoans!();
        unmap();
      });
    } else unmap();
    this.heldOffsets.length = 0;
  }

  /**
   * close(), with the kernel's release of the sockets left to a short-lived child that holds them a moment longer:
   * releasing a packet socket with rings waits for RCU grace periods (synchronize_net, several per socket), about
   * 55 ms at load 7 here, which a process about to exit (an OCI container's Sentry, whose exit the engine waits
   * for) need not spend. Where the child cannot be started, a plain close().
   */
  closeInBackground(): void {
    if (this.closed) return;
    const fds = this.rings().map((r) => r.fd);
    try {
      // The child's stdio gets fds 3 and on; its exit, a second from now, does the slow release.
      spawn('/bin/sleep', ['1'], { stdio: ['ignore', 'ignore', 'ignore', ...fds], detached: true }).unref();
    } catch {
      // released here, then
    }
    this.close();
  }

  /** writeGsoGather points at payloads (with offloads). */
  get gathers(): boolean {
    return this.offloads;
  }

  /**
   * Steers the fanout groups of this member (opened with `fanout.steer`) by `spec` from now on: for every member,
   * since the program is the group's. A frame already in a ring stays where it is.
   */
  setSteering(spec: SteerSpec): void {
    if (!this.steered) throw new Error('setSteering: the endpoint is not a member of a steered fanout group');
    if (this.closed) return;
    const prog = steerProgram(spec);
    // Every ring's socket but the one for shared frames, which is outside the groups.
    for (const r of this.rings()) if (r !== this.sharedRing) setSteerProgram(r.fd, prog);
  }

  /** Whether sends are handed to a thread of their own now (opened with `sendThread`, and the thread is up). */
  get sendThreadUp(): boolean {
    return this.sender !== null && this.sender.up;
  }

  /** Whether `close()` has run. */
  get isClosed(): boolean {
    return this.closed;
  }
}
