/**
 * Rreaddir's payload: a run of `qid[13] offset[8] type[1] name[s]` entries, where `offset` is the cookie to pass
 * in the next Treaddir to continue after this entry and `type` is the dirent d_type (DT_DIR, DT_REG ...).
 */
import type { Qid } from './messages.ts';

/** One directory entry. */
export interface Dirent {
  qid: Qid;
  /** The cookie that continues the listing after this entry. */
  offset: bigint;
  /** The d_type (DT_UNKNOWN 0, DT_FIFO 1, DT_CHR 2, DT_DIR 4, DT_BLK 6, DT_REG 8, DT_LNK 10, DT_SOCK 12). */
  type: number;
  /** The name's bytes. */
  name: Uint8Array;
}

/** The encoded size of an entry with a name of `nameLength` bytes. */
export function direntSize(nameLength: number): number {
  return 13 + 8 + 1 + 2 + nameLength;
}

/** Writes one entry at `o` of `out` and returns the offset after it; the caller has checked that it fits. */
export function writeDirent(out: Uint8Array, o: number, d: Dirent): number {
  const v = new DataView(out.buffer, out.byteOffset, out.byteLength);
  v.setUint8(o, d.qid.type);
  v.setUint32(o + 1, d.qid.version, true);
  v.setBigUint64(o + 5, d.qid.path, true);
  v.setBigUint64(o + 13, d.offset, true);
  v.setUint8(o + 21, d.type);
  v.setUint16(o + 22, d.name.length, true);
  out.set(d.name, o + 24);
  return o + 24 + d.name.length;
}

/** Encodes entries into one payload. */
export function encodeDirents(entries: readonly Dirent[]): Uint8Array {
  let n = 0;
  for (const d of entries) n += direntSize(d.name.length);
  const out = new Uint8Array(n);
  let o = 0;
  for (const d of entries) o = writeDirent(out, o, d);
  return out;
}

/** Decodes a payload into entries; undefined when an entry runs past the end. Names are views, not copies. */
export function decodeDirents(data: Uint8Array): Dirent[] | undefined {
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const out: Dirent[] = [];
  let o = 0;
  while (o < data.length) {
    if (o + 24 > data.length) return undefined;
    const len = v.getUint16(o + 22, true);
    if (o + 24 + len > data.length) return undefined;
    out.push({
      qid: { type: v.getUint8(o), version: v.getUint32(o + 1, true), path: v.getBigUint64(o + 5, true) },
      offset: v.getBigUint64(o + 13, true),
      type: v.getUint8(o + 21),
      name: data.subarray(o + 24, o + 24 + len),
    });
    o += 24 + len;
  }
  return out;
}
