/**
 * A listening TCP socket as the program sees it: still its end of the stream pair, with one token byte in its
 * receive queue per connection waiting to be accepted, so poll/epoll readability is native (no fd swap, so no
 * epoll set silently loses the fd). POLLOUT is cleared once by SNDBUF stuffing. The Sentry takes connections
 * from the Endpoint as they complete, up to the backlog, and keeps them here in order; a trapped accept consumes
 * one token through its dup of the program's fd and takes the oldest connection.
 */
import { EventEmitter } from 'eventemitter3';
import { isError } from '../../netstack/errors.ts';
import { EventErr, EventHUp, EventIn } from '../../netstack/waiter.ts';
import * as ux from '../../lib/unix.ts';
import type { Accepted, SocketFile } from '../socket/file.ts';
import { stuff } from './stream.ts';

const TOKEN = new Uint8Array([0x2a]);

/** Events of a ListenQueue. */
export interface ListenQueueEvents {
  /** A token was written: a parked accept may retry. */
  ready: [];
  /** The program closed the listening socket: the queue is released. */
  closed: [];
}

/** The accept queue of one listening socket. */
export class ListenQueue extends EventEmitter<ListenQueueEvents> {
  private readonly queue: Accepted[] = [];
  private readonly poll: ux.FdPoll;
  private readonly unsubscribe: () => void;
  private released = false;

  /**
   * `fd` is our end of the pair (the queue owns it); `progDup` a dup of the program's end, used once here to
   * clear POLLOUT and then closed; `backlog` bounds the connections held (as listen()'s backlog does).
   */
  constructor(
    private readonly fd: number,
    progDup: number,
    private readonly file: SocketFile,
    private backlog: number,
  ) {
    super();
    const s = stuff(progDup);
    ux.close(s.fd);
    // Our end holds the junk: readable for ever. Only the program's close (POLLHUP, which the disconnect interest
    // reports) matters here.
    this.poll = ux.pollFd(fd, (_r, _w, status) => {
      if (status < 0 || ux.pollNow(fd, ux.U.POLLHUP) & ux.U.POLLHUP) this.release();
    });
    this.poll.set(false, false, true);
    this.unsubscribe = file.ep.waiter.subscribe(EventIn | EventErr | EventHUp, () => this.fill());
    this.fill();
  }

  /** listen() again on a listening socket changes only the backlog. */
  setBacklog(n: number): void {
    this.backlog = n;
    this.fill();
  }

  /** Connections held. */
  get length(): number {
    return this.queue.length;
  }

  /** Takes completed connections from the Endpoint while there is room, one token each. */
  private fill(): void {
    while (!this.released && this.queue.length < Math.max(1, this.backlog)) {
      const r = this.file.ep.accept();
      if (isError(r)) return;
      this.queue.push({ file: this.file.sibling(r.endpoint), peer: r.peer });
      ux.send(this.fd, TOKEN);
      this.emit('ready');
    }
  }

  /**
   * accept through `progDup` (the caller's dup of the program's listening fd): consumes one token and returns
   * the oldest connection, or -EAGAIN when none is ready.
   */
  take(progDup: number): Accepted | number {
    if (this.released) return -22;
    const n = ux.recv(progDup, new Uint8Array(1));
    if (n < 0) return n;
    if (n === 0) return -22;
    const a = this.queue.shift();
    this.fill();
    return a ?? -11;
  }

  /** Resets every connection not yet accepted, closes our end and the listening Endpoint. */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.unsubscribe();
    this.poll.close();
    ux.close(this.fd);
    // Linux's inet_csk_listen_stop disconnects children never accepted: each peer gets a RST, not a FIN as from
    // a server that accepted and closed.
    for (const a of this.queue.splice(0)) {
      a.file.ep.setOption('SO_LINGER', { onoff: true, linger: 0 });
      a.file.close();
    }
    this.file.close();
    this.emit('closed');
  }
}

