/**
 * The 8-byte header ICMP (RFC 792) and ICMPv6 (RFC 4443 §2.1) share: type, code, checksum, and a 4-byte rest of
 * header that echo messages split into identifier and sequence number. The per-family views extend this one.
 */
import { get16, set16 } from './bytes.ts';

const F = {
  TYPE: 0,
  CODE: 1,
  CHECKSUM: 2,
  IDENT: 4,
  SEQ: 6,
  DATA: 8,
} as const;

/** A zero-copy view of the header fields common to ICMP and ICMPv6; the buffer ends where the IP payload ends. */
export class IcmpHeaderView {
  /** Wraps a message starting at its type octet; no checks (the subclasses' `check` validate). */
  constructor(readonly buffer: Uint8Array) {}

  /** Type. */
  get type(): number {
    return this.buffer[F.TYPE]!;
  }
  set type(v: number) {
    this.buffer[F.TYPE] = v;
  }

  /** Code. */
  get code(): number {
    return this.buffer[F.CODE]!;
  }
  set code(v: number) {
    this.buffer[F.CODE] = v;
  }

  /** Checksum as stored. */
  get checksum(): number {
    return get16(this.buffer, F.CHECKSUM);
  }
  set checksum(v: number) {
    set16(this.buffer, F.CHECKSUM, v);
  }

  /** Echo identifier. */
  get identifier(): number {
    return get16(this.buffer, F.IDENT);
  }
  set identifier(v: number) {
    set16(this.buffer, F.IDENT, v);
  }

  /** Echo sequence number. */
  get sequence(): number {
    return get16(this.buffer, F.SEQ);
  }
  set sequence(v: number) {
    set16(this.buffer, F.SEQ, v);
  }

  /** Header length: 8. */
  get headerLength(): number {
    return F.DATA;
  }

  /** Echo data, or for errors the invoking packet (view). */
  get payload(): Uint8Array {
    return this.buffer.subarray(F.DATA);
  }
}
