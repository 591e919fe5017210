/**
 * Counters of a running `serve`, over a unix socket: `serve` answers every connection with one JSON object of
 * counters and closes it; `tsvisor stats` connects and prints them.
 */
import { mkdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import { parseArgs } from './args.ts';
import { CliError } from './main.ts';

const RUN_DIR = '/run/tsvisor';

/** The socket path of the `serve` attached to `dev` in `netns`. */
export function statsSocketPath(netns: string, dev: string): string {
  return `${RUN_DIR}/${netns}.${dev}.sock`;
}

/** Answers each connection with the current counters as JSON. */
export class StatsServer {
  private constructor(
    private readonly server: net.Server,
    readonly path: string,
  ) {}

  /** Listens on `path` (replacing a stale socket file). */
  static async listen(path: string, counters: () => Record<string, number> | Promise<Record<string, number>>): Promise<StatsServer> {
    mkdirSync(RUN_DIR, { recursive: true });
    rmSync(path, { force: true });
    const server = net.createServer((c) => {
      c.on('error', () => {}); // a client gone before its answer
      void Promise.resolve(counters()).then((v) => c.end(JSON.stringify(v) + '\n'));
    });
    server.unref();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => resolve());
    });
    return new StatsServer(server, path);
  }

  /** Stops listening and removes the socket file. */
  close(): void {
    this.server.close();
    rmSync(this.path, { force: true });
  }
}

/** Reads the counters of the `serve` on netns/dev. */
export async function fetchStats(netns: string, dev: string): Promise<Record<string, number>> {
  const path = statsSocketPath(netns, dev);
  const text = await new Promise<string>((resolve, reject) => {
    const c = net.connect(path);
    let buf = '';
    c.setEncoding('utf8');
    c.on('data', (d) => (buf += d));
    c.on('end', () => resolve(buf));
    c.on('error', () => reject(new CliError(`no tsvisor serve is running on ${netns}/${dev} (${path})`)));
  });
  return JSON.parse(text) as Record<string, number>;
}

/** The `stats` command: prints the counters, non-zero ones first unless --all. */
export async function statsCommand(argv: string[]): Promise<number> {
  const { options: o } = parseArgs(argv, {
    netns: { value: true, required: true },
    dev: { value: true, required: true },
    json: {},
    all: {},
  });
  const counters = await fetchStats(o.netns as string, o.dev as string);
  if (o.json) {
    process.stdout.write(JSON.stringify(counters, null, 2) + '\n');
    return 0;
  }
  const rows = Object.entries(counters).filter(([, v]) => o.all || v !== 0);
  const width = Math.max(0, ...rows.map(([k]) => k.length));
  for (const [k, v] of rows) process.stdout.write(`${k.padEnd(width)}  ${v}\n`);
  if (!o.all) process.stdout.write(`(${Object.keys(counters).length - rows.length} counters at zero; --all shows them)\n`);
  return 0;
}
