/**
 * A file sink for capture bytes from netstack/link/pcap.ts or pcapng.ts: `sink` is the callback they take.
 * The file is opened once; chunks are gathered and appended with one fs.writeSync per batch (at 64 KiB or on the
 * next turn of the event loop), so capturing a flood does not cost a system call per frame.
 */
import { closeSync, openSync, writeSync } from 'node:fs';

const FLUSH_AT = 64 * 1024;

/** Appends capture bytes to a file. */
export class PcapFileSink {
  /** The file's path. */
  readonly path: string;
  /** Bytes handed to the file so far. */
  bytesWritten = 0;
  private fd: number | null;
  private chunks: Uint8Array[] = [];
  private pendingBytes = 0;
  private immediate: ReturnType<typeof setImmediate> | null = null;

  /** Opens `path`, truncating it unless `append` is set. */
  constructor(path: string, opts: { append?: boolean } = {}) {
    this.path = path;
    this.fd = openSync(path, opts.append ? 'a' : 'w');
  }

  /** Takes one chunk (the writer's header or a record); the chunk must not change afterwards. Ignored after close. */
  readonly sink = (bytes: Uint8Array): void => {
    if (this.fd === null) return;
    this.chunks.push(bytes);
    this.pendingBytes += bytes.length;
    if (this.pendingBytes >= FLUSH_AT) this.flush();
    else if (this.immediate === null) {
      this.immediate = setImmediate(() => {
        this.immediate = null;
        this.flush();
      });
      this.immediate.unref();
    }
  };

  /** Writes everything gathered so far to the file. */
  flush(): void {
    if (this.fd === null || this.chunks.length === 0) return;
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.pendingBytes);
    this.chunks = [];
    this.pendingBytes = 0;
    let off = 0;
    while (off < all.length) off += writeSync(this.fd, all, off, all.length - off);
    this.bytesWritten += all.length;
  }

  /** Flushes and closes the file; idempotent. */
  close(): void {
    if (this.fd === null) return;
    this.flush();
    if (this.immediate !== null) clearImmediate(this.immediate);
    this.immediate = null;
    closeSync(this.fd);
    this.fd = null;
  }
}
