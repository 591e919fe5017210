import type { LinkDispatcher } from '../../../netstack/link/endpoint.ts';

/** A dispatcher that logs deliveries (copied) and batch ends, for link tests. */
export class Recorder implements LinkDispatcher {
  frames: Uint8Array[] = [];
  /** "f<first byte>" per frame and "|" per batch end, in order. */
  log: string[] = [];
  /** Set to act on a frame during delivery (e.g. write back into the link). */
  onFrame: ((frame: Uint8Array) => void) | undefined;

  deliverFrame(frame: Uint8Array): void {
    this.frames.push(frame.slice());
    this.log.push(`f${frame[14] ?? -1}`);
    this.onFrame?.(frame);
  }

  deliverBatchEnd(): void {
    this.log.push('|');
  }
}

/** A 60-byte Ethernet frame (or `len` bytes) whose first payload byte (offset 14) is `tag`. */
export function frame(tag: number, len = 60): Uint8Array {
  const f = new Uint8Array(len);
  f.set([0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00].slice(0, len));
  if (len > 14) f[14] = tag & 0xff;
  for (let i = 15; i < len; i++) f[i] = i & 0xff;
  return f;
}
