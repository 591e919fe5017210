/**
 * FUSE over io_uring (Linux 6.14+, with `/sys/module/fuse/parameters/enable_uring` set): instead of read(2) and
 * write(2) on `/dev/fuse`, the server registers ring entries (a header buffer and a payload buffer each) for every
 * CPU's queue; the kernel fills an entry of the caller's CPU with each request and completes its io_uring command,
 * and the reply goes back in the entry with the command that also fetches the next request
 * (FUSE_IO_URING_CMD_COMMIT_AND_FETCH), one io_uring_enter(2).
 *
 * Used only when asked for (FuseServerOptions.uring, default false): served this way from Node's loop it measures
 * slower than `/dev/fuse` with the server's polls (sentry/fs/fuse/README.md, session 27).
 *
 * Why it was built: a round trip through `/dev/fuse` cost a program 37–44 µs on this 2-vCPU VM when quiet, one over io_uring
 * 9–11 µs (a one-file prototype answering getxattr/stat, 20,000 calls; sentry/fs/fuse/README.md), whether one
 * thread served every queue or one pinned thread each, and whether that thread slept in io_uring_enter or in
 * epoll_wait on the ring's descriptor. So the ring lives on Node's main loop like `/dev/fuse` does: its descriptor
 * is watched with uv_poll; the kernel completes a fetch as task work of the thread that submitted it (this one),
 * which interrupts the loop's epoll_wait, posts the completion and makes the descriptor readable. The completions
 * are therefore written by this thread itself, which is why plain DataView reads of the queue suffice.
 *
 * Layouts are include/uapi/linux/io_uring.h's and fuse.h's (struct fuse_uring_req_header, fuse_uring_cmd_req),
 * 64-bit. FORGET, INTERRUPT and notifications stay on `/dev/fuse`, as the kernel sends and takes them there.
 */
import { readFileSync } from 'node:fs';
import koffi from 'koffi';
import { SysError, errno, mapMemory, sys, watchFd, type FdWatch, type NativeBuffer } from '../../../lib/libc.ts';
import { IN_HEADER_SIZE, OUT_HEADER_SIZE, decodeHeader, type InHeader } from './proto.ts';

const libc = koffi.load('libc.so.6');
// Linux's system call numbers for io_uring are the same on every architecture (the unified table from 5.1 on).
const SYS_IO_URING_SETUP = 425;
const SYS_IO_URING_ENTER = 426;
// glibc's syscall() moves its integer arguments into registers and reads no floating-point ones, so fixed
// prototypes of it are sound (as in lib/pidfd.ts).
const uringSetup = libc.func('long syscall(long nr, unsigned int entries, void *params)') as (nr: number, entries: number, params: Uint8Array) => number;
const uringEnter = libc.func('long syscall(long nr, int fd, unsigned int toSubmit, unsigned int minComplete, unsigned int flags, void *sig, size_t sigsz)') as (
  nr: number,
  fd: number,
  toSubmit: number,
  minComplete: number,
  flags: number,
  sig: null,
  sigsz: number,
) => number;

/** IORING_SETUP_SQE128: the 80 bytes after a submission's 48 carry fuse_uring_cmd_req (the kernel requires it). */
const SETUP_SQE128 = 1 << 10;
const FEAT_SINGLE_MMAP = 1 << 0;
const OFF_SQES = 0x10000000;
const OFF_CQ_RING = 0x8000000;
const OP_URING_CMD = 46;
const SQE_SIZE = 128;
const CQE_SIZE = 16;

/** enum fuse_uring_cmd. */
const CMD_REGISTER = 1;
const CMD_COMMIT_AND_FETCH = 2;

/**
 * struct fuse_uring_req_header: fuse_in_header (request) or fuse_out_header (reply) in the first 128 bytes, the
 * opcode's own struct (the request's first argument) in the next 128, then fuse_uring_ent_in_out, whose
 * payload_sz counts the bytes in the payload buffer (the request's other arguments, or the whole reply body).
 */
const HDR_OP_IN = 128;
const HDR_PAYLOAD_SZ = 256 + 16;
const HEADER_SIZE = 288;
/** Each entry's slot in the header mapping: the header, then the two iovecs REGISTER points at. */
const SLOT = 512;
const SLOT_IOV = 320;

const ENOTCONN = 107;
const ECANCELED = 125;
const EINTR = 4;

/** The number of possible CPUs (the kernel makes one queue for each, and waits for an entry in every one). */
export function possibleCpus(): number {
  let n = 0;
  for (const range of readFileSync('/sys/devices/system/cpu/possible', 'latin1').trim().split(',')) {
    const [a, b] = range.split('-').map(Number);
    n += (b ?? a!) - a! + 1;
  }
  return n;
}

/** Sizes of a ring. */
export interface FuseRingOptions {
  /** Queues: the kernel's num_possible_cpus() (see possibleCpus). */
  queues: number;
  /** Entries per queue: requests of one CPU that can be under way at once (the rest wait in the kernel). */
  perQueue: number;
  /** Bytes of each payload buffer: at least the largest request or reply (max_write, max_pages pages, 8 KiB). */
  payload: number;
}

/**
 * One io_uring instance carrying a FUSE connection's requests. Made before the INIT reply (whether io_uring can be
 * had decides what the reply offers), registered right after it (the kernel refuses entries before it knows the
 * sizes INIT set). Until every queue has an entry, and for ever if registering fails, the kernel keeps using
 * `/dev/fuse`.
 */
export class FuseRing {
  private readonly ringFd: number;
  private readonly rings: NativeBuffer;
  private readonly cqRing: NativeBuffer | undefined;
  private readonly sqes: NativeBuffer;
  private readonly headers: NativeBuffer;
  private readonly payloads: NativeBuffer;
  private readonly sqTail: number;
  private readonly sqMask: number;
  private readonly cqHead: number;
  private readonly cqTail: number;
  private readonly cqMask: number;
  private readonly cqes: number;
  private readonly count: number;
  /** Entry index of each request answered through the ring and not yet answered. */
  private readonly inFlight = new Map<bigint, number>();
  private toSubmit = 0;
  private watch: FdWatch | undefined;
  private closed = false;
  /** Requests that came through the ring. */
  requests = 0;

  /**
   * Sets up the ring for `/dev/fuse` descriptor `fuseFd`; throws SysError when io_uring cannot be had (kernel
   * without it, io_uring_disabled). `onRequest` gets each request as `/dev/fuse` would give it (header and body);
   * `onEnd` is called once when the kernel ends the ring (unmount, abort) or it fails; `served` says whether any
   * request came through it (when none did, the kernel refused the entries and goes on with `/dev/fuse`).
   */
  constructor(
    private readonly fuseFd: number,
    private readonly o: FuseRingOptions,
    private readonly onRequest: (h: InHeader, body: Uint8Array) => void,
    private readonly onEnd: (why: string, served: boolean) => void,
  ) {
    this.count = o.queues * o.perQueue;
    let entries = 1;
    while (entries < this.count) entries *= 2;
    const params = new Uint8Array(120);
    const pv = new DataView(params.buffer);
    pv.setUint32(8, SETUP_SQE128, true);
    const fd = uringSetup(SYS_IO_URING_SETUP, entries, params);
    if (fd < 0) throw new SysError('io_uring_setup', errno());
    this.ringFd = fd;
    const sqEntries = pv.getUint32(0, true);
    const cqEntries = pv.getUint32(4, true);
    const features = pv.getUint32(20, true);
    // struct io_sqring_offsets at 40, io_cqring_offsets at 80.
    const sqArray = pv.getUint32(40 + 24, true);
    const cqesOff = pv.getUint32(80 + 20, true);
    const sqSize = sqArray + sqEntries * 4;
    const cqSize = cqesOff + cqEntries * CQE_SIZE;
    try {
      const single = (features & FEAT_SINGLE_MMAP) !== 0;
      this.rings = mapMemory(single ? Math.max(sqSize, cqSize) : sqSize, fd, 0);
      this.cqRing = single ? undefined : mapMemory(cqSize, fd, OFF_CQ_RING);
      this.sqes = mapMemory(sqEntries * SQE_SIZE, fd, OFF_SQES);
      this.headers = mapMemory(this.count * SLOT);
      this.payloads = mapMemory(this.count * o.payload);
    } catch (e) {
      sys.close(fd);
      throw e;
    }
    const sq = this.rings.view;
    this.sqTail = pv.getUint32(40 + 4, true);
    this.sqMask = sq.getUint32(pv.getUint32(40 + 8, true), true);
    // The indirection array maps ring slots to submission entries; slot i always names entry i.
    for (let i = 0; i < sqEntries; i++) sq.setUint32(sqArray + i * 4, i, true);
    const cq = this.cq;
    this.cqHead = pv.getUint32(80, true);
    this.cqTail = pv.getUint32(80 + 4, true);
    this.cqMask = cq.getUint32(pv.getUint32(80 + 8, true), true);
    this.cqes = cqesOff;
    const hv = this.headers.view;
    for (let i = 0; i < this.count; i++) {
      const slot = i * SLOT;
      hv.setBigUint64(slot + SLOT_IOV, this.headers.address + BigInt(slot), true);
      hv.setBigUint64(slot + SLOT_IOV + 8, BigInt(HEADER_SIZE), true);
      hv.setBigUint64(slot + SLOT_IOV + 16, this.payloads.address + BigInt(i * o.payload), true);
      hv.setBigUint64(slot + SLOT_IOV + 24, BigInt(o.payload), true);
    }
  }

  private get cq(): DataView {
    return (this.cqRing ?? this.rings).view;
  }

  /** Registers every entry (after the INIT reply is written) and starts taking requests from the ring. */
  register(): void {
    this.watch = watchFd(this.ringFd, (readable, _w, status) => {
      if (readable) this.reap();
      if (status < 0) this.end(`poll of the ring failed (${status})`);
    });
    for (let i = 0; i < this.count; i++) this.push(i, CMD_REGISTER, 0n);
    this.submit();
  }

  /**
   * Sends `reply` (fuse_out_header and body, as written to `/dev/fuse`) through the entry its request came in, and
   * fetches that entry's next request; false when the request did not come through the ring.
   */
  reply(reply: Uint8Array): boolean {
    const unique = new DataView(reply.buffer, reply.byteOffset, OUT_HEADER_SIZE).getBigUint64(8, true);
    const i = this.inFlight.get(unique);
    if (i === undefined) return false;
    this.inFlight.delete(unique);
    if (this.closed) return true;
    const slot = i * SLOT;
    const body = reply.length - OUT_HEADER_SIZE;
    this.headers.bytes.set(reply.subarray(0, OUT_HEADER_SIZE), slot);
    this.payloads.bytes.set(reply.subarray(OUT_HEADER_SIZE), i * this.o.payload);
    this.headers.view.setUint32(slot + HDR_PAYLOAD_SZ, body, true);
    this.push(i, CMD_COMMIT_AND_FETCH, unique);
    this.submit();
    return true;
  }

  /** Lets the process exit while the ring is idle. */
  unref(): void {
    this.watch?.unref();
  }

  /** Closes the ring (the kernel cancels the fetches still waiting); idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.watch?.close();
    sys.close(this.ringFd);
    this.sqes.free();
    this.cqRing?.free();
    this.rings.free();
    this.headers.free();
    this.payloads.free();
  }

  private end(why: string): void {
    if (this.closed) return;
    this.close();
    this.onEnd(why, this.requests > 0);
  }

  /** Queues an io_uring command for entry `i` (its queue is i / perQueue). */
  private push(i: number, op: number, commitId: bigint): void {
    const sq = this.rings.view;
    const tail = sq.getUint32(this.sqTail, true);
    const off = (tail & this.sqMask) * SQE_SIZE;
    const e = this.sqes.view;
    this.sqes.bytes.fill(0, off, off + SQE_SIZE);
    e.setUint8(off, OP_URING_CMD);
    e.setInt32(off + 4, this.fuseFd, true);
    e.setUint32(off + 8, op, true); // cmd_op
    e.setBigUint64(off + 16, this.headers.address + BigInt(i * SLOT + SLOT_IOV), true); // the two iovecs
    e.setUint32(off + 24, 2, true);
    e.setBigUint64(off + 32, BigInt(i), true); // user_data
    // fuse_uring_cmd_req at cmd (48): flags, commit_id, qid.
    e.setBigUint64(off + 56, commitId, true);
    e.setUint16(off + 64, Math.floor(i / this.o.perQueue), true);
    // The kernel reads the tail only in io_uring_enter, after these stores.
    sq.setUint32(this.sqTail, tail + 1, true);
    this.toSubmit++;
  }

  private submit(): void {
    while (this.toSubmit > 0 && !this.closed) {
      const n = uringEnter(SYS_IO_URING_ENTER, this.ringFd, this.toSubmit, 0, 0, null, 0);
      if (n < 0) {
        const e = errno();
        if (e === EINTR) continue;
        return this.end(`io_uring_enter: errno ${e}`);
      }
      this.toSubmit -= n;
    }
  }

  /** Takes every completion: a request in its entry, or a command that failed. */
  private reap(): void {
    const cq = this.cq;
    let head = cq.getUint32(this.cqHead, true);
    while (!this.closed && head !== cq.getUint32(this.cqTail, true)) {
      const off = this.cqes + (head & this.cqMask) * CQE_SIZE;
      const i = Number(cq.getBigUint64(off, true));
      const res = cq.getInt32(off + 8, true);
      head = (head + 1) >>> 0;
      cq.setUint32(this.cqHead, head, true);
      if (res < 0) {
        // The kernel ends every fetch with ENOTCONN when the connection goes (unmount, abort).
        if (-res === ENOTCONN || -res === ECANCELED) return this.end('unmounted');
        return this.end(`io_uring command of entry ${i}: errno ${-res}`);
      }
      this.take(i);
    }
  }

  /** Hands on the request in entry `i`: header, then body as `/dev/fuse` gives it (the op's struct, the rest). */
  private take(i: number): void {
    const slot = i * SLOT;
    const hb = this.headers.bytes;
    const h = decodeHeader(hb.subarray(slot, slot + IN_HEADER_SIZE));
    const rest = this.headers.view.getUint32(slot + HDR_PAYLOAD_SZ, true);
    // fuse_in_header.len counts every argument: what is not in the payload is the op's struct, in op_in.
    const first = h.len - IN_HEADER_SIZE - rest;
    if (first < 0 || first > 128 || rest > this.o.payload) return this.end(`malformed ring request (${h.len} bytes, ${rest} in the payload)`);
    const body = new Uint8Array(first + rest);
    body.set(hb.subarray(slot + HDR_OP_IN, slot + HDR_OP_IN + first));
    const p = i * this.o.payload;
    body.set(this.payloads.bytes.subarray(p, p + rest), first);
    this.requests++;
    this.inFlight.set(h.unique, i);
    this.onRequest(h, body);
  }
}
