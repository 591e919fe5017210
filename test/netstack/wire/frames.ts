/**
 * Test fixtures for the wire tests: real frames captured from Linux (test/data/wire/linux.pcap, made by
 * capture.sh) and frames crafted with scapy (test/data/wire/crafted.json, made by crafted.py).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('../../data/wire/', import.meta.url));

/** Reads the frames of a classic little-endian pcap file, 1-based like tshark's frame numbers. */
export function readPcap(path: string): Uint8Array[] {
  const b = readFileSync(path);
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (v.getUint32(0, true) !== 0xa1b2c3d4) throw new Error(`${path}: not a little-endian microsecond pcap`);
  const frames: Uint8Array[] = [new Uint8Array(0)];
  for (let off = 24; off + 16 <= b.length; ) {
    const incl = v.getUint32(off + 8, true);
    frames.push(new Uint8Array(b.subarray(off + 16, off + 16 + incl)));
    off += 16 + incl;
  }
  return frames;
}

/** The frames of test/data/wire/linux.pcap; index = tshark frame number. */
export const linux: Uint8Array[] = readPcap(dir + 'linux.pcap');

const craftedHex = JSON.parse(readFileSync(dir + 'crafted.json', 'utf8')) as Record<string, string>;

/** One frame of test/data/wire/crafted.json, by name (a fresh copy). */
export function crafted(name: string): Uint8Array {
  const h = craftedHex[name];
  if (h === undefined) throw new Error(`no crafted frame ${name}`);
  return hex(h);
}

/** Bytes from hex text; spaces, newlines and comments after '#' are ignored. */
export function hex(text: string): Uint8Array {
  const clean = text.replace(/#.*$/gm, '').replace(/\s+/g, '');
  if (clean.length % 2 !== 0 || /[^0-9a-fA-F]/.test(clean)) throw new Error(`bad hex: ${text}`);
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** Lower-case hex of bytes, for readable byte-exact assertions. */
export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

/** A deterministic xorshift32 generator for property tests. */
export function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}
