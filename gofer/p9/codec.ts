/**
 * Encoding and decoding of 9P2000.L messages, driven by the one layout table in `messages.ts`. Decoding never
 * throws: a frame that does not match its layout comes back as a `DecodeError` naming why, so a server can answer
 * it with Rlerror and carry on. Byte fields (`str`, `data`) are views into the frame, not copies.
 */
import { HEADER_SIZE, MESSAGES, NAME_OF, type Attrs, type FieldKind, type Message, type MessageName, type Qid } from './messages.ts';

/** Why a frame could not be decoded; `tag` and `type` are those of the header when it was readable. */
export interface DecodeError {
  readonly error: 'short-header' | 'size-mismatch' | 'unknown-type' | 'truncated' | 'trailing-bytes';
  readonly type: number;
  readonly tag: number;
}

/** Whether a decode result is an error. */
export function isDecodeError(m: Message | DecodeError): m is DecodeError {
  return 'error' in m;
}

type Layout = readonly (readonly [string, FieldKind])[];

const LAYOUT = new Map<number, Layout>(Object.values(MESSAGES).map(([id, layout]) => [id, layout as Layout]));

/** The fields of an `attr` (Rgetattr's body): u64s, u32s and one qid. */
const ATTR_LAYOUT = MESSAGES.Rgetattr[1] as Layout;
/** The wire size of an `attr` field: its fields are all of fixed size. */
const ATTR_SIZE = ATTR_LAYOUT.reduce((n, [, kind]) => n + fieldSize(kind, undefined), 0);

/** The wire size of one field value. */
function fieldSize(kind: FieldKind, v: unknown): number {
  switch (kind) {
    case 'u8':
      return 1;
    case 'u16':
      return 2;
    case 'u32':
      return 4;
    case 'u64':
      return 8;
    case 'str':
      return 2 + (v as Uint8Array).length;
    case 'qid':
      return 13;
    case 'qids':
      return 2 + 13 * (v as Qid[]).length;
    case 'strs': {
      let n = 2;
      for (const s of v as Uint8Array[]) n += 2 + s.length;
      return n;
    }
    case 'data':
      return 4 + (v as Uint8Array).length;
    case 'attr':
      return ATTR_SIZE;
  }
}

/** The encoded size of a message, header included. */
export function encodedSize(m: Message): number {
  const layout = (MESSAGES[m.type] as readonly [number, Layout])[1];
  const rec = m as unknown as Record<string, unknown>;
  let n = HEADER_SIZE;
  for (const [name, kind] of layout) n += fieldSize(kind, rec[name]);
  return n;
}

function writeQid(v: DataView, o: number, q: Qid): number {
  v.setUint8(o, q.type);
  v.setUint32(o + 1, q.version, true);
  v.setBigUint64(o + 5, q.path, true);
  return o + 13;
}

function writeAttr(v: DataView, o: number, a: Attrs): number {
  const rec = a as unknown as Record<string, unknown>;
  for (const [name, kind] of ATTR_LAYOUT) {
    if (kind === 'qid') o = writeQid(v, o, rec[name] as Qid);
    else if (kind === 'u32') {
      v.setUint32(o, rec[name] as number, true);
      o += 4;
    } else {
      v.setBigUint64(o, rec[name] as bigint, true);
      o += 8;
    }
  }
  return o;
}

function writeStr(out: Uint8Array, v: DataView, o: number, s: Uint8Array): number {
  if (s.length > 0xffff) throw new RangeError(`9P string of ${s.length} bytes exceeds 65535`);
  v.setUint16(o, s.length, true);
  out.set(s, o + 2);
  return o + 2 + s.length;
}

/** Encodes a message into a fresh buffer; throws only for programmer errors (a value out of its field's range). */
export function encode(m: Message): Uint8Array {
  return encodeTagged(m, m.tag);
}

/**
 * Encodes a message body (type and fields; a `tag` in it is ignored) with `tag`: what a client or server sending
 * a body it was handed does, without copying the body into a new object per message.
 */
export function encodeTagged(body: { readonly type: MessageName }, tag: number): Uint8Array {
  const m = body as Message;
  const [id, layout] = MESSAGES[m.type] as readonly [number, Layout];
  const size = encodedSize(m);
  const out = new Uint8Array(size);
  const v = new DataView(out.buffer);
  v.setUint32(0, size, true);
  v.setUint8(4, id);
  v.setUint16(5, tag, true);
  const rec = m as unknown as Record<string, unknown>;
  let o = HEADER_SIZE;
  for (const [name, kind] of layout) {
    const f = rec[name];
    switch (kind) {
      case 'u8':
        v.setUint8(o, f as number);
        o += 1;
        break;
      case 'u16':
        v.setUint16(o, f as number, true);
        o += 2;
        break;
      case 'u32':
        v.setUint32(o, f as number, true);
        o += 4;
        break;
      case 'u64':
        v.setBigUint64(o, f as bigint, true);
        o += 8;
        break;
      case 'str':
        o = writeStr(out, v, o, f as Uint8Array);
        break;
      case 'qid':
        o = writeQid(v, o, f as Qid);
        break;
      case 'qids':
        v.setUint16(o, (f as Qid[]).length, true);
        o += 2;
        for (const q of f as Qid[]) o = writeQid(v, o, q);
        break;
      case 'strs':
        v.setUint16(o, (f as Uint8Array[]).length, true);
        o += 2;
        for (const s of f as Uint8Array[]) o = writeStr(out, v, o, s);
        break;
      case 'data':
        v.setUint32(o, (f as Uint8Array).length, true);
        out.set(f as Uint8Array, o + 4);
        o += 4 + (f as Uint8Array).length;
        break;
      case 'attr':
        o = writeAttr(v, o, f as Attrs);
        break;
    }
  }
  return out;
}

/** The `size[4]` field of a frame's header (the caller checks it against msize before buffering the frame). */
export function frameSize(bytes: Uint8Array, offset = 0): number {
  return (bytes[offset]! | (bytes[offset + 1]! << 8) | (bytes[offset + 2]! << 16)) + bytes[offset + 3]! * 0x1000000;
}

function readQid(v: DataView, o: number): Qid {
  return { type: v.getUint8(o), version: v.getUint32(o + 1, true), path: v.getBigUint64(o + 5, true) };
}

/** An `attr` field at `o`, which the caller has checked holds ATTR_SIZE bytes. */
function readAttr(v: DataView, o: number): Attrs {
  const rec: Record<string, unknown> = {};
  for (const [name, kind] of ATTR_LAYOUT) {
    if (kind === 'qid') {
      rec[name] = readQid(v, o);
      o += 13;
    } else if (kind === 'u32') {
      rec[name] = v.getUint32(o, true);
      o += 4;
    } else {
      rec[name] = v.getBigUint64(o, true);
      o += 8;
    }
  }
  return rec as unknown as Attrs;
}

/** Decodes one whole frame (exactly `size` bytes); never throws. */
export function decode(frame: Uint8Array): Message | DecodeError {
  if (frame.length < HEADER_SIZE) return { error: 'short-header', type: -1, tag: -1 };
  const v = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const size = v.getUint32(0, true);
  const id = v.getUint8(4);
  const tag = v.getUint16(5, true);
  if (size !== frame.length) return { error: 'size-mismatch', type: id, tag };
  const name = NAME_OF.get(id);
  const layout = LAYOUT.get(id);
  if (name === undefined || layout === undefined) return { error: 'unknown-type', type: id, tag };
  const rec: Record<string, unknown> = { type: name, tag };
  const end = frame.length;
  let o = HEADER_SIZE;
  for (const [field, kind] of layout) {
    switch (kind) {
      case 'u8':
        if (o + 1 > end) return { error: 'truncated', type: id, tag };
        rec[field] = v.getUint8(o);
        o += 1;
        break;
      case 'u16':
        if (o + 2 > end) return { error: 'truncated', type: id, tag };
        rec[field] = v.getUint16(o, true);
        o += 2;
        break;
      case 'u32':
        if (o + 4 > end) return { error: 'truncated', type: id, tag };
        rec[field] = v.getUint32(o, true);
        o += 4;
        break;
      case 'u64':
        if (o + 8 > end) return { error: 'truncated', type: id, tag };
        rec[field] = v.getBigUint64(o, true);
        o += 8;
        break;
      case 'str': {
        if (o + 2 > end) return { error: 'truncated', type: id, tag };
        const n = v.getUint16(o, true);
        if (o + 2 + n > end) return { error: 'truncated', type: id, tag };
        rec[field] = frame.subarray(o + 2, o + 2 + n);
        o += 2 + n;
        break;
      }
      case 'qid':
        if (o + 13 > end) return { error: 'truncated', type: id, tag };
        rec[field] = readQid(v, o);
        o += 13;
        break;
      case 'qids': {
        if (o + 2 > end) return { error: 'truncated', type: id, tag };
        const n = v.getUint16(o, true);
        o += 2;
        if (o + 13 * n > end) return { error: 'truncated', type: id, tag };
        const qids: Qid[] = [];
        for (let i = 0; i < n; i++, o += 13) qids.push(readQid(v, o));
        rec[field] = qids;
        break;
      }
      case 'strs': {
        if (o + 2 > end) return { error: 'truncated', type: id, tag };
        const n = v.getUint16(o, true);
        o += 2;
        const strs: Uint8Array[] = [];
        for (let i = 0; i < n; i++) {
          if (o + 2 > end) return { error: 'truncated', type: id, tag };
          const len = v.getUint16(o, true);
          if (o + 2 + len > end) return { error: 'truncated', type: id, tag };
          strs.push(frame.subarray(o + 2, o + 2 + len));
          o += 2 + len;
        }
        rec[field] = strs;
        break;
      }
      case 'data': {
        if (o + 4 > end) return { error: 'truncated', type: id, tag };
        const n = v.getUint32(o, true);
        if (o + 4 + n > end) return { error: 'truncated', type: id, tag };
        rec[field] = frame.subarray(o + 4, o + 4 + n);
        o += 4 + n;
        break;
      }
      case 'attr':
        if (o + ATTR_SIZE > end) return { error: 'truncated', type: id, tag };
        rec[field] = readAttr(v, o);
        o += ATTR_SIZE;
        break;
    }
  }
  if (o !== end) return { error: 'trailing-bytes', type: id, tag };
  return rec as unknown as Message;
}

/** The name of a message id, or undefined. */
export function messageName(id: number): MessageName | undefined {
  return NAME_OF.get(id);
}

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder();

/** A string field's bytes from text (UTF-8); bytes pass through unchanged. */
export function bytes(s: string | Uint8Array): Uint8Array {
  return typeof s === 'string' ? utf8.encode(s) : s;
}

/** A string field as text (UTF-8, invalid sequences replaced): for messages and logs, not for file names. */
export function text(b: Uint8Array): string {
  return utf8Decoder.decode(b);
}

/** Where Rread's data starts in its frame: `size[4] type[1] tag[2] count[4]`. */
export const RREAD_HEADER = 11;

/**
 * A frame with room for an Rread of up to `capacity` bytes, so a read can land in place without a copy. Not zeroed:
 * `finishRread` sends only the header and the bytes read, and zeroing a 1 MiB frame for every Tread cost more than
 * the page-cache copy that fills it.
 */
export function rreadFrame(capacity: number): Uint8Array {
  return Buffer.allocUnsafe(RREAD_HEADER + capacity);
}

/** Completes an Rread frame from `rreadFrame` after `n` bytes landed at RREAD_HEADER; returns the frame to send. */
export function finishRread(frame: Uint8Array, tag: number, n: number): Uint8Array {
  const v = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  v.setUint32(0, RREAD_HEADER + n, true);
  v.setUint8(4, MESSAGES.Rread[0]);
  v.setUint16(5, tag, true);
  v.setUint32(7, n, true);
  return frame.subarray(0, RREAD_HEADER + n);
}

/** Rewrites the tag of an encoded frame. */
export function setTag(frame: Uint8Array, tag: number): void {
  frame[5] = tag & 0xff;
  frame[6] = tag >> 8;
}
