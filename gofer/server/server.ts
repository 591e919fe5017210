/**
 * The Gofer's 9P2000.L server: one exported root directory, any number of client connections on a unix socket.
 * The root is opened once, by the operator's path; after that everything is relative to descriptors.
 */
import { createServer, type Server, type Socket } from 'node:net';
import * as fs from '../../lib/fs.ts';
import { errnoName } from '../../lib/libc.ts';
import { pollBudgetNs } from '../../lib/unixstream.ts';
import { Connection, newStats, type ConnectionLimits, type GoferStats } from './connection.ts';
import { IdMap } from './idmap.ts';
import type { ServerConfig } from './ops.ts';
import { Resolver } from './resolve.ts';

const { F } = fs;

/** How a server is set up. */
export interface GoferOptions {
  /** The directory to export. */
  readonly root: string;
  /** Refuse every change with EROFS. */
  readonly readOnly?: boolean;
  /** Client ids to host ids (identity when absent). */
  readonly uids?: IdMap;
  /** The largest msize agreed to (default 1 MiB). */
  readonly maxMsize?: number;
  /** Outstanding requests per connection before reading stops (default 32). */
  readonly maxTags?: number;
  /** Thread-pool operations at once per connection (default 4, libuv's pool size). */
  readonly asyncLimit?: number;
  /** Fids per connection (default 4096). */
  readonly maxFids?: number;
  /**
   * Microseconds to poll a connection for the next request after replying, while requests come closer together
   * than that (default 0, never; never with one CPU; `tsvisor gofer` sets 400). See `Connection.send`. Off by
   * default for servers in the client's own process: the client cannot send while its loop is held.
   */
  readonly pollUs?: number;
  /** False forces the component-by-component walk instead of openat2 (tests). */
  readonly useOpenat2?: boolean;
  /** Called after each connection's end, its counts added to `stats`. */
  readonly onConnectionEnd?: () => void;
}

/** A failure to set up the server, with a one-line message. */
export class GoferSetupError extends Error {}

/** The server: call `listen`, then `close` when done. */
export class GoferServer {
  /** Counters of all connections. */
  readonly stats: GoferStats = newStats();
  private readonly cfg: ServerConfig;
  private readonly limits: ConnectionLimits;
  private readonly connections = new Set<Connection>();
  private server: Server | undefined;
  private readonly onConnectionEnd: () => void;

  constructor(opts: GoferOptions) {
    this.onConnectionEnd = opts.onConnectionEnd ?? (() => {});
    const rootFd = fs.openat(F.AT_FDCWD, opts.root, F.O_PATH | F.O_DIRECTORY | F.O_CLOEXEC);
    if (rootFd < 0) throw new GoferSetupError(`--root ${opts.root}: ${describe(-rootFd)}`);
    const procFd = fs.openat(F.AT_FDCWD, '/proc/self/fd', F.O_PATH | F.O_DIRECTORY | F.O_CLOEXEC);
    if (procFd < 0) {
      fs.close(rootFd);
      throw new GoferSetupError(`/proc/self/fd: ${describe(-procFd)} (the server reopens files through it)`);
    }
    this.cfg = {
      resolver: new Resolver(rootFd, opts.useOpenat2 ?? true),
      readOnly: opts.readOnly ?? false,
      ids: opts.uids ?? new IdMap(),
      procFd,
      maxFids: opts.maxFids ?? 4096,
    };
    this.limits = {
      maxMsize: opts.maxMsize ?? 1 << 20,
      maxTags: opts.maxTags ?? 32,
      asyncLimit: opts.asyncLimit ?? 4,
      pollNs: pollBudgetNs(opts.pollUs, 0),
    };
  }

  /** Serves one already-connected socket (a socketpair end, or an accepted connection). */
  serveSocket(sock: Socket): void {
    const c: Connection = new Connection(sock, this.cfg, this.limits, this.stats, () => {
      this.connections.delete(c);
      this.onConnectionEnd();
    });
    this.connections.add(c);
  }

  /** Listens on a unix socket path, or on an already-listening descriptor. */
  listen(where: string | { fd: number }): Promise<void> {
    const server = createServer({ allowHalfOpen: false }, (sock) => this.serveSocket(sock));
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', (e: NodeJS.ErrnoException) => {
        const what = typeof where === 'string' ? where : `descriptor ${where.fd}`;
        reject(new GoferSetupError(`--listen ${what}: ${e.code === 'EADDRINUSE' ? 'in use' : e.message}`));
      });
      server.listen(typeof where === 'string' ? { path: where } : { fd: where.fd }, () => resolve());
    });
  }

  /** Stops listening, closes every connection and the root. */
  async close(): Promise<void> {
    for (const c of this.connections) c.destroy();
    if (this.server) await new Promise<void>((r) => this.server!.close(() => r()));
    this.server = undefined;
  }

  /** Closes the root and /proc descriptors (after `close`, once no connection is left). */
  dispose(): void {
    fs.close(this.cfg.resolver.rootFd);
    fs.close(this.cfg.procFd);
  }
}

function describe(errno: number): string {
  if (errno === 2) return 'no such directory';
  if (errno === 20) return 'not a directory';
  return errnoName(errno);
}
