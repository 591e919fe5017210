/**
 * A sniffing link (after gVisor's link/sniffer and smoltcp's PcapWriter middleware): wraps any link and records
 * every frame sent and received, stamped with the clock's time, while passing it through unchanged.
 */

import type { Clock } from '../clock.ts';
import type { GsoOptions, LinkCapabilities, LinkDispatcher, LinkEndpoint } from './endpoint.ts';
import { PcapWriter, type PacketRecorder } from './pcap.ts';

/** Which frames a sniffer records. */
export type SniffDirection = 'both' | 'in' | 'out';

/** Options of a SnifferEndpoint. */
export interface SnifferOptions {
  /** Stamps each record. */
  clock: Clock;
  /** Records frames; give a sink callback to get a classic pcap stream, or any recorder (e.g. PcapngWriter). */
  out: PacketRecorder | ((bytes: Uint8Array) => void);
  /** Which frames to record; both by default. */
  direction?: SniffDirection;
}

/** A link wrapper that records traffic in pcap form and otherwise changes nothing. */
export class SnifferEndpoint implements LinkEndpoint {
  /** Frames received and recorded. */
  framesIn = 0;
  /** Frames sent and recorded. */
  framesOut = 0;

  /** The wrapped link's capabilities. */
  readonly capabilities: LinkCapabilities | undefined;
  /** The wrapped link's writeGso, recording the super-frame first; absent when the wrapped link has none. */
  readonly writeGso?: (frame: Uint8Array, o: GsoOptions) => boolean;

  private readonly clock: Clock;
  private readonly recorder: PacketRecorder;
  private readonly recIn: boolean;
  private readonly recOut: boolean;
  private dispatcher: LinkDispatcher | null = null;

  // One object for the inner link to call, so attach/detach need no allocation per frame.
  private readonly tap: LinkDispatcher = {
    deliverFrame: (frame, flags) => {
      if (this.recIn) {
        this.framesIn++;
        this.recorder.write(this.clock.now(), frame);
      }
      this.dispatcher?.deliverFrame(frame, flags);
    },
    deliverBatchEnd: () => {
      this.dispatcher?.deliverBatchEnd?.();
    },
  };

  constructor(
    private readonly inner: LinkEndpoint,
    opts: SnifferOptions,
  ) {
    this.clock = opts.clock;
    // Offloads pass through: the pcap then holds super-frames with partial checksums, as tcpdump on a veth shows.
    this.capabilities = inner.capabilities;
    if (inner.writeGso) {
      const write = inner.writeGso.bind(inner);
      this.writeGso = (frame: Uint8Array, o: GsoOptions): boolean => {
        if (this.recOut) {
          this.framesOut++;
          this.recorder.write(this.clock.now(), frame);
        }
        return write(frame, o);
      };
    }
    this.recorder = typeof opts.out === 'function' ? new PcapWriter(opts.out) : opts.out;
    const dir = opts.direction ?? 'both';
    this.recIn = dir !== 'out';
    this.recOut = dir !== 'in';
  }

  get mtu(): number {
    return this.inner.mtu;
  }

  get macAddress(): Uint8Array {
    return this.inner.macAddress;
  }

  attach(dispatcher: LinkDispatcher | null): void {
    this.dispatcher = dispatcher;
    this.inner.attach(dispatcher ? this.tap : null);
  }

  /** Records the frame before handing it on, since the inner link owns it afterwards (even when it drops it). */
  writeFrame(frame: Uint8Array): boolean {
    if (this.recOut) {
      this.framesOut++;
      this.recorder.write(this.clock.now(), frame);
    }
    return this.inner.writeFrame(frame);
  }

  flush(): void {
    this.inner.flush();
  }

  close(): void {
    this.inner.close();
  }
}
