/**
 * A batch of datagrams in native memory for sendmmsg(2)/recvmmsg(2): one call moves the whole batch.
 * Each message has one slot of `slotSize` bytes and one iovec pointing at it; callers copy frames into slots
 * (or build them there), so that nothing outside the batch need stay put until the send.
 * A header in front of each frame (PACKET_VNET_HDR's virtio_net_hdr) is written into the same slot, before it.
 * A message may instead gather: the start of its slot (headers) and then up to MAX_GATHER pieces of memory that
 * lie elsewhere (`setGather`), which the kernel copies straight from there.
 */
import { type NativeBuffer, mapMemory, memoryAddress, sys } from './libc.ts';

const MMSGHDR = 64; // struct mmsghdr on 64-bit Linux: msghdr (56) + msg_len (4) + padding
/** Bytes of one `struct iovec` on 64-bit Linux. */
export const IOVEC = 16;
/** Most pieces a gathering message points at besides its own slot. */
export const MAX_GATHER = 8;
// A gathering message's iovecs: its slot's, then the pieces'.
const GATHER_IOVECS = 1 + MAX_GATHER;

/**
 * Writes one `struct iovec` at byte `at` of `v`: base `addr` (a number: user-space addresses fit 53 bits), `len` bytes.
 */
export function setIovec(v: DataView, at: number, addr: number, len: number): void {
  v.setUint32(at, addr % 0x100000000, true);
  v.setUint32(at + 4, Math.floor(addr / 0x100000000), true);
  v.setUint32(at + 8, len, true);
  v.setUint32(at + 12, 0, true);
}

/** `count` messages of up to `slotSize` bytes each, ready for sendmmsg/recvmmsg. */
export class MmsgBatch {
  /** Number of messages. */
  readonly count: number;
  /** Bytes per slot. */
  readonly slotSize: number;
  private readonly mem: NativeBuffer;
  private readonly hdrOffset: number;
  private readonly iovOffset: number;
  // Each message's own run of GATHER_IOVECS iovecs, used while it gathers.
  private readonly gatherOffset: number;
  private readonly slots: Uint8Array[] = [];
  // 1 while a message gathers (its msg_iov points at its run of GATHER_IOVECS), 0 while it sends its slot alone.
  private readonly gathered: Uint8Array;
  // The pieces' addresses while setGather checks that each has one.
  private readonly addrs = new Float64Array(MAX_GATHER);
  // Each message's mmsghdr address, made once: a BigInt built and added per send call was two calls into V8's
  // runtime per event-loop turn that sends.
  private readonly hdrAddrs: bigint[] = [];

  constructor(count: number, slotSize: number) {
    this.count = count;
    this.slotSize = slotSize;
    this.hdrOffset = count * slotSize;
    this.iovOffset = this.hdrOffset + count * MMSGHDR;
    this.gatherOffset = this.iovOffset + count * IOVEC;
    this.gathered = new Uint8Array(count);
    this.mem = mapMemory(this.gatherOffset + count * GATHER_IOVECS * IOVEC);
    const v = this.mem.view;
    for (let i = 0; i < count; i++) {
      const slot = this.mem.address + BigInt(i * slotSize);
      const iov = this.iovOffset + i * IOVEC;
      v.setBigUint64(iov, slot, true);
      v.setBigUint64(iov + 8, BigInt(slotSize), true);
      const h = this.hdrOffset + i * MMSGHDR;
      v.setBigUint64(h + 16, this.mem.address + BigInt(iov), true); // msg_iov
      v.setBigUint64(h + 24, 1n, true); // msg_iovlen
      this.slots.push(this.mem.bytes.subarray(i * slotSize, (i + 1) * slotSize));
      v.setBigUint64(this.gatherOffset + i * GATHER_IOVECS * IOVEC, slot, true);
      this.hdrAddrs.push(this.mem.address + BigInt(h));
    }
  }

  /** The full slot of message `i` (write outgoing bytes here; read received bytes from here). */
  slot(i: number): Uint8Array {
    return this.slots[i]!;
  }

  /** The whole batch's memory for field access; slot `i` starts at `offsetOf(i)`. */
  get view(): DataView {
    return this.mem.view;
  }

  /**
   * Where the batch lies: its memory's address and size, and the offsets of the mmsghdr and iovec arrays in it,
   * for a thread that sends the slots by address (lib/send-thread.ts).
   */
  get layout(): { address: bigint; size: number; hdrOffset: number; iovOffset: number } {
    return { address: this.mem.address, size: this.iovOffset + this.count * IOVEC, hdrOffset: this.hdrOffset, iovOffset: this.iovOffset };
  }

  /** Byte offset of slot `i` in `view`. */
  offsetOf(i: number): number {
    return i * this.slotSize;
  }

  /** Sets how many bytes of slot `i` the next send carries (from the slot alone: it no longer gathers). */
  setLength(i: number, len: number): void {
    const v = this.mem.view;
    if (this.gathered[i] !== 0) {
      const h = this.hdrOffset + i * MMSGHDR;
      v.setBigUint64(h + 16, this.mem.address + BigInt(this.iovOffset + i * IOVEC), true);
      v.setUint32(h + 24, 1, true);
      this.gathered[i] = 0;
    }
    v.setUint32(this.iovOffset + i * IOVEC + 8, len, true);
  }

  /**
   * Has message `i` send the first `head` bytes of its slot followed by `pieces[0..n)` (n ≤ MAX_GATHER), read from
   * where they lie when the message is sent: they must stay alive and unchanged until then. Returns the bytes, or
   * -1 with nothing changed when a piece's memory has no address to give (a SharedArrayBuffer's). The slot's own
   * iovec, unused meanwhile, holds that total as its length, so that `length` and a send thread reading lengths
   * from the iovec array (lib/send-thread.ts) count the whole message.
   */
  setGather(i: number, head: number, pieces: readonly Uint8Array[], n: number): number {
    const addrs = this.addrs;
    for (let k = 0; k < n; k++) {
      const a = memoryAddress(pieces[k]!);
      if (a < 0) return -1;
      addrs[k] = a;
    }
    const v = this.mem.view;
    let at = this.gatherOffset + i * GATHER_IOVECS * IOVEC;
    v.setUint32(at + 8, head, true);
    let total = head;
    for (let k = 0; k < n; k++) {
      const p = pieces[k]!;
      const a = addrs[k]!;
      at += IOVEC;
      setIovec(v, at, a, p.length);
      total += p.length;
    }
    if (this.gathered[i] === 0) {
      const h = this.hdrOffset + i * MMSGHDR;
      v.setBigUint64(h + 16, this.mem.address + BigInt(this.gatherOffset + i * GATHER_IOVECS * IOVEC), true);
    }
    v.setUint32(this.hdrOffset + i * MMSGHDR + 24, 1 + n, true);
    v.setUint32(this.iovOffset + i * IOVEC + 8, total, true);
    this.gathered[i] = 1;
    return total;
  }

  /** The outgoing length set for slot `i` (all its bytes when it gathers). */
  length(i: number): number {
    return this.mem.view.getUint32(this.iovOffset + i * IOVEC + 8, true);
  }

  /** Bytes the kernel wrote into slot `i` on the last recv (msg_len). */
  receivedLength(i: number): number {
    return this.mem.view.getUint32(this.hdrOffset + i * MMSGHDR + 56, true);
  }

  /** Moves the outgoing contents and length of slot `from` to slot `to` (used to compact a partly sent queue). */
  move(from: number, to: number): void {
    const len = this.length(from);
    this.mem.bytes.copyWithin(to * this.slotSize, from * this.slotSize, from * this.slotSize + len);
    this.setLength(to, len);
  }

  /** sendmmsg of messages [start, start+n): returns how many were sent, or -1 with errno set. */
  send(fd: number, start: number, n: number, flags = 0): number {
    return sys.sendmmsg(fd, this.hdrAddrs[start]!, n, flags);
  }

  /** recvmmsg into every slot: returns how many messages arrived, or -1 with errno set. */
  recv(fd: number, flags = 0): number {
    const v = this.mem.view;
    for (let i = 0; i < this.count; i++) v.setUint32(this.iovOffset + i * IOVEC + 8, this.slotSize, true);
    return sys.recvmmsg(fd, this.mem.address + BigInt(this.hdrOffset), this.count, flags, null);
  }

  /** Releases the native memory; idempotent. */
  free(): void {
    this.mem.free();
  }
}
