/**
 * The character generator pattern of RFC 864: lines of 72 printable ASCII characters (0x20–0x7E), each line
 * starting one character further along the 95-character ring, ended by CR LF; it repeats every 95 lines.
 */

/** Characters on a line before CR LF (RFC 864, "TCP Based Character Generator Service"). */
export const LINE_CHARS = 72;
/** Printable ASCII characters in the ring. */
const RING = 95;
/** Bytes in one full period of the pattern: 95 lines of 74 bytes. */
export const PERIOD = RING * (LINE_CHARS + 2);

/** `periods` whole periods of the pattern, so that any 64 KiB window starting inside the first period fits. */
export function chargenPattern(periods = 1): Uint8Array {
  const out = new Uint8Array(PERIOD * periods);
  let at = 0;
  for (let p = 0; p < periods; p++) {
    for (let line = 0; line < RING; line++) {
      for (let j = 0; j < LINE_CHARS; j++) out[at++] = 0x20 + ((line + j) % RING);
      out[at++] = 0x0d;
      out[at++] = 0x0a;
    }
  }
  return out;
}
