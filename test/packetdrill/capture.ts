/**
 * What every DUT does with the frames it sends: answer the remote's ARP/NDP at once (the runner plays a host that
 * is always there), reassemble IP fragments, drop neighbour noise, and queue the rest with their script time for
 * the runner's `nextFrame`; and, for the DUTs on real time, waiting for a frame or a promise up to a deadline.
 */
import type { CapturedFrame } from './dut.ts';
import { Reassembler } from './fragments.ts';
import { type Endpoints, decodeFrame, isNoise, neighborReply } from './packets.ts';

/** The frames a DUT sent, oldest first. */
export class CaptureQueue {
  private readonly frames: CapturedFrame[] = [];
  private readonly reassembler = new Reassembler();
  private waiter: (() => void) | undefined;

  /** `reply` delivers a neighbour answer to the DUT (never from inside its own send path: the caller's choice). */
  constructor(
    private readonly endpoints: Endpoints,
    private readonly reply: (frame: Uint8Array) => void,
  ) {}

  /** A frame the DUT sent (borrowed: copied here); `time` gives its script time once it is known to count. */
  capture(frame: Uint8Array, time: () => number): void {
    const copy = frame.slice();
    const reply = neighborReply(this.endpoints, copy);
    if (reply) {
      this.reply(reply);
      return;
    }
    const whole = this.reassembler.push(copy);
    if (!whole) return;
    const d = decodeFrame(whole.frame);
    if (!d || isNoise(d)) return;
    this.frames.push({ frame: whole.frame, time: time(), fragments: whole.fragments });
    this.waiter?.();
  }

  /** Frames queued. */
  get length(): number {
    return this.frames.length;
  }

  /** The oldest frame, taken. */
  shift(): CapturedFrame | undefined {
    return this.frames.shift();
  }

  /** The oldest frame, waiting in real time for one until script time `deadline` (`now` reads it). */
  async next(deadline: number, now: () => number): Promise<CapturedFrame | undefined> {
    for (;;) {
      const f = this.frames.shift();
      if (f) return f;
      const left = deadline - now();
      if (left <= 0) return undefined;
      await new Promise<void>((r) => {
        const timer = setTimeout(r, left);
        this.waiter = () => {
          clearTimeout(timer);
          this.waiter = undefined;
          r();
        };
      });
    }
  }
}

/** Whether `p` settled by script time `deadline` (`now` reads it), waiting in real time and waking as it does. */
export async function settledBy(p: Promise<unknown>, deadline: number, now: () => number): Promise<boolean> {
  let settled = false;
  let wake: (() => void) | undefined;
  p.then(
    () => ((settled = true), wake?.()),
    () => ((settled = true), wake?.()),
  );
  await Promise.resolve();
  while (!settled && now() < deadline) {
    await new Promise<void>((r) => {
      const timer = setTimeout(r, Math.max(0, deadline - now()));
      wake = () => {
        clearTimeout(timer);
        r();
      };
    });
  }
  await Promise.resolve();
  return settled;
}
