/**
 * `--publish [HOSTIP:]HOSTPORT:PORT[/udp]`: a forwarder in the Sentry, as docker-proxy is for Docker. It listens
 * with node:net / node:dgram in the caller's netns and joins each connection (each UDP client) to a netstack socket
 * connected to the sandbox's own address, so it works whether or not the caller can route to the sandbox, and
 * the program sees the sandbox's address as its peer.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { type Address, formatAddress, isV4 } from '../../netstack/addr.ts';
import type { SocketProvider } from '../../netstack/adapter/common.ts';
import type { bindDgram } from '../../netstack/adapter/dgram.ts';
import type { BoundNet } from '../../netstack/adapter/net.ts';

/** One `--publish`. */
export interface PublishSpec {
  /** Where to listen in the caller's netns; absent: every address (IPv4 and IPv6). */
  readonly hostIp?: string;
  readonly hostPort: number;
  /** The sandbox's port. */
  readonly port: number;
  readonly proto: 'tcp' | 'udp';
}

/** Parses `[HOSTIP:]HOSTPORT:PORT[/udp|/tcp]` (an IPv6 HOSTIP in brackets); a string is what is wrong. */
export function parsePublish(text: string): PublishSpec | string {
  const m = /^(?:(\[[0-9A-Fa-f:.]+\]|[0-9.]+):)?(\d+):(\d+)(?:\/(tcp|udp))?$/.exec(text);
  if (!m) return `'${text}' is not [HOSTIP:]HOSTPORT:PORT[/udp]`;
  const hostIp = m[1]?.replace(/^\[|\]$/g, '');
  if (hostIp !== undefined && net.isIP(hostIp) === 0) return `'${hostIp}' in '${text}' is not an IP address`;
  const hostPort = Number(m[2]);
  const port = Number(m[3]);
  for (const p of [hostPort, port]) if (p < 1 || p > 65535) return `port ${p} in '${text}' is outside 1..65535`;
  return { hostIp, hostPort, port, proto: (m[4] as 'tcp' | 'udp' | undefined) ?? 'tcp' };
}

/** How long a UDP client's flow lives without traffic (Linux conntrack's unreplied UDP timeout is 30 s). */
const UDP_IDLE_MS = 60_000;

/** The running forwarders of one sandbox. */
export class Publisher {
  private readonly servers: (net.Server | dgram.Socket)[] = [];
  private readonly open = new Set<{ destroy(): void }>();
  /** Connections and UDP flows forwarded so far. */
  readonly stats = { tcpConnections: 0, tcpErrors: 0, udpFlows: 0, udpDatagrams: 0 };

  private constructor(
    private readonly net: BoundNet,
    private readonly dgram: ReturnType<typeof bindDgram>,
    private readonly sandbox: Address[],
  ) {}

  /**
   * Listens for every spec; resolves once all listen, or rejects naming the first that cannot (the others are
   * closed). `sandbox` holds the sandbox's addresses: the first IPv4 one is the target, else the first.
   */
  static async start(stack: SocketProvider, specs: readonly PublishSpec[], sandbox: Address[]): Promise<Publisher> {
    // The adapters load here, not with the module: `run` parses --publish without needing them.
    const [{ bindNet }, { bindDgram }] = await Promise.all([import('../../netstack/adapter/net.ts'), import('../../netstack/adapter/dgram.ts')]);
    const p = new Publisher(bindNet(stack), bindDgram(stack), sandbox);
    try {
      for (const s of specs) await p.listen(s);
    } catch (e) {
      p.close();
      throw e;
    }
    return p;
  }

  private target(): string {
    const a = this.sandbox.find(isV4) ?? this.sandbox[0];
    if (!a) throw new Error('the sandbox has no address to publish to');
    return formatAddress(a);
  }

  private listen(s: PublishSpec): Promise<void> {
    const label = `${s.hostIp ?? '*'}:${s.hostPort}/${s.proto}`;
    return new Promise((resolve, reject) => {
      const failed = (e: Error) => reject(new Error(`--publish ${label}: cannot listen: ${(e as NodeJS.ErrnoException).code ?? e.message}`));
      if (s.proto === 'tcp') {
        const server = net.createServer({ allowHalfOpen: true }, (c) => this.forwardTcp(c, s.port));
        server.once('error', failed);
        server.listen({ host: s.hostIp ?? '::', port: s.hostPort, ipv6Only: false }, () => {
          server.off('error', failed);
          server.on('error', () => {});
          this.servers.push(server);
          resolve();
        });
      } else {
        const family = s.hostIp === undefined || net.isIPv6(s.hostIp) ? 'udp6' : 'udp4';
        const sock = dgram.createSocket({ type: family, ipv6Only: false });
        sock.once('error', failed);
        sock.bind({ address: s.hostIp ?? '::', port: s.hostPort }, () => {
          sock.off('error', failed);
          sock.on('error', () => {});
          this.servers.push(sock);
          this.forwardUdp(sock, s.port);
          resolve();
        });
      }
    });
  }

  private forwardTcp(client: net.Socket, port: number): void {
    this.stats.tcpConnections++;
    const inner = this.net.connect({ port, host: this.target(), allowHalfOpen: true });
    const pair = {
      destroy: () => {
        client.destroy();
        inner.destroy();
      },
    };
    this.open.add(pair);
    let closed = 0;
    const onClose = () => {
      if (++closed === 2) this.open.delete(pair);
    };
    client.on('close', onClose);
    inner.on('close', onClose);
    // An error on one side resets the other, as a proxy that cannot finish the stream must.
    client.on('error', () => {
      this.stats.tcpErrors++;
      inner.destroy();
    });
    inner.on('error', () => {
      this.stats.tcpErrors++;
      client.resetAndDestroy();
    });
    client.pipe(inner);
    inner.pipe(client);
  }

  private forwardUdp(outer: dgram.Socket, port: number): void {
    const flows = new Map<string, { sock: ReturnType<Publisher['dgram']['createSocket']>; timer: NodeJS.Timeout }>();
    const host = this.target();
    outer.on('message', (msg, rinfo) => {
      const key = `${rinfo.address}|${rinfo.port}`;
      let flow = flows.get(key);
      if (!flow) {
        this.stats.udpFlows++;
        const sock = this.dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
        sock.on('error', () => {});
        sock.on('message', (reply) => {
          outer.send(reply, rinfo.port, rinfo.address);
          touch();
        });
        const end = () => {
          flows.delete(key);
          this.open.delete(handle);
          sock.close();
        };
        const handle = { destroy: () => end() };
        const touch = () => {
          flow!.timer.refresh();
        };
        flow = { sock, timer: setTimeout(end, UDP_IDLE_MS).unref() };
        flows.set(key, flow);
        this.open.add(handle);
        sock.connect(port, host);
      }
      this.stats.udpDatagrams++;
      flow.timer.refresh();
      flow.sock.send(msg);
    });
  }

  /** Stops listening and drops every forwarded connection and flow. */
  close(): void {
    for (const s of this.servers) s.close();
    this.servers.length = 0;
    for (const c of [...this.open]) c.destroy();
    this.open.clear();
  }
}
