/**
 * Test fixtures for the wire tests: real frames captured from Linux (test/data/wire/linux.json, made by
 * capture.sh from its git-ignored linux.pcap) and frames crafted with scapy (test/data/wire/crafted.json,
 * made by crafted.py).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('../../data/wire/', import.meta.url));

/** The captured Linux frames; index = tshark frame number of linux.pcap (index 0 is empty). */
export const linux: Uint8Array[] = (JSON.parse(readFileSync(dir + 'linux.json', 'utf8')) as string[]).map(hex);

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
