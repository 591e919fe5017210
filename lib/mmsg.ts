/**
 * A batch of datagrams in native memory for sendmmsg(2)/recvmmsg(2): one call moves the whole batch.
 * Each message has one slot of `slotSize` bytes and one iovec pointing at it; callers copy frames into slots
 * (one copy, as the kernel copies anyway) instead of pinning JS buffers, whose addresses koffi cannot keep.
 * A header in front of each frame (PACKET_VNET_HDR's virtio_net_hdr) is written into the same slot, before it.
 */
import { type NativeBuffer, mapMemory, sys } from './libc.ts';

const MMSGHDR = 64; // struct mmsghdr on 64-bit Linux: msghdr (56) + msg_len (4) + padding
const IOVEC = 16;

/** `count` messages of up to `slotSize` bytes each, ready for sendmmsg/recvmmsg. */
export class MmsgBatch {
  /** Number of messages. */
  readonly count: number;
  /** Bytes per slot. */
  readonly slotSize: number;
  private readonly mem: NativeBuffer;
  private readonly hdrOffset: number;
  private readonly iovOffset: number;
  private readonly slots: Uint8Array[] = [];

  constructor(count: number, slotSize: number) {
    this.count = count;
    this.slotSize = slotSize;
    this.hdrOffset = count * slotSize;
    this.iovOffset = this.hdrOffset + count * MMSGHDR;
    this.mem = mapMemory(this.iovOffset + count * IOVEC);
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

  /** Sets how many bytes of slot `i` the next send carries. */
  setLength(i: number, len: number): void {
    this.mem.view.setUint32(this.iovOffset + i * IOVEC + 8, len, true);
  }

  /** The outgoing length set for slot `i`. */
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
    return sys.sendmmsg(fd, this.mem.address + BigInt(this.hdrOffset + start * MMSGHDR), n, flags);
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
