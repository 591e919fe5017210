// Interop with the Linux kernel's TCP: our stack owns one end of a veth (AF_PACKET), Linux's socat the other.
// Linux connects to us and gets its bytes echoed; we upload to a Linux server; Linux refuses a closed port.
// Skipped when not root. Namespaces tsv-tcp-a / tsv-tcp-b, addresses 198.18.30.0/24 and fd74:7376:30::/64.
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parseAddress, parseSubnet } from '../../netstack/addr.ts';
import { Err } from '../../netstack/errors.ts';
import { ShutdownWrite } from '../../netstack/socket.ts';
import { Stack } from '../../netstack/stack.ts';
import { PortManager } from '../../netstack/transport/ports.ts';
import type { TcpEndpoint } from '../../netstack/transport/tcp/endpoint.ts';
import { TcpProtocol } from '../../netstack/transport/tcp/protocol.ts';
import { State } from '../../netstack/transport/tcp/state.ts';
import { NodeClock } from '../../lib/clock.ts';
import { AfPacketEndpoint } from '../../lib/packet.ts';
import { ImpairEndpoint, NO_IMPAIRMENT } from '../../netstack/link/impair.ts';
import { createVethPair } from '../../lib/testnet.ts';
import { HANG_MS, waitListening } from '../lib/wait.ts';

if (process.getuid?.() !== 0) {
  t.plan(0, 'needs root for network namespaces');
  process.exit(0);
}

const US4 = '198.18.30.1';
const LINUX4 = '198.18.30.2';
const US6 = 'fd74:7376:30::1';
const LINUX6 = 'fd74:7376:30::2';

const net = createVethPair({ prefix: 'tsv-tcp', addrB: `${LINUX4}/24`, addr6B: `${LINUX6}/64` });
const dir = mkdtempSync(join(tmpdir(), 'tsv-tcp-'));
const children = new Set<ChildProcess>();
t.teardown(() => {
  for (const c of children) if (c.exitCode === null && c.pid) process.kill(c.pid);
  net.destroy();
  rmSync(dir, { recursive: true, force: true });
});

/** Runs a command in namespace B; resolves with its exit code and output. */
function inB(argv: string[]): { done: Promise<{ code: number; out: string }>; proc: ChildProcess } {
  const proc = spawn('ip', ['netns', 'exec', net.nsB, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(proc);
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const done = new Promise<{ code: number; out: string }>((resolve) =>
    proc.on('close', (code) => {
      children.delete(proc);
      resolve({ code: code ?? -1, out });
    }),
  );
  return { done, proc };
}

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 5));
  }
  return cond();
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

t.test('TCP with the Linux kernel over a veth', async (t) => {
  const link = await AfPacketEndpoint.open({ netns: net.nsA, dev: net.devA });
  const clock = new NodeClock({ unref: true });
  const s = new Stack({ clock, seed: 9 });
  const tcp = new TcpProtocol(s, new PortManager(s));
  s.registerTransport(tcp);
  t.teardown(() => {
    s.close();
    link.close();
  });
  // Our side may impair the link (the kernel here has no netem): off until the lossy subtest.
  const impair = new ImpairEndpoint(link, clock, {});
  const nic = s.addNic(impair);
  s.addAddress(nic, parseSubnet(`${US4}/24`)!);
  s.addAddress(nic, parseSubnet(`${US6}/64`)!);
  t.equal(await s.whenAddressReady(parseAddress(US6)!), true);

  for (const [fam, us] of [[4, US4], [6, US6]] as const) {
    t.test(`IPv${fam}: Linux socat connects to us; 600 kB echoed byte-exact, half-close honoured`, async (t) => {
      const port = 7000 + fam;
      const l = tcp.newEndpoint(fam);
      t.equal(l.bind({ address: new Uint8Array(fam === 4 ? 4 : 16), port }), undefined);
      t.equal(l.listen(8), undefined);
      const input = randomBytes(600 * 1024);
      const inPath = join(dir, `in${fam}`);
      const outPath = join(dir, `out${fam}`);
      writeFileSync(inPath, input);
      const host = fam === 4 ? us : `[${us}]`;
      const client = inB(['socat', '-t', '10', `TCP:${host}:${port}`, `OPEN:${inPath},rdonly!!OPEN:${outPath},creat,trunc`]);
      let child: TcpEndpoint | null = null;
      const pending: Uint8Array[] = [];
      let eof = false;
      let shut = false;
      const pump = setInterval(() => {
        if (!child) {
          const a = l.accept();
          if ('errno' in a) return;
          child = a.endpoint as TcpEndpoint;
        }
        for (;;) {
          const r = child.read();
          if ('errno' in r) break;
          if (r.data.length === 0) {
            eof = true;
            break;
          }
          pending.push(r.data);
        }
        while (pending.length) {
          const head = pending[0]!;
          const n = child.write(head);
          if (typeof n !== 'number') break;
          if (n === head.length) pending.shift();
          else pending[0] = head.subarray(n);
        }
        if (eof && pending.length === 0 && !shut) {
          child.shutdown(ShutdownWrite);
          shut = true;
        }
      }, 2);
      const res = await client.done;
      clearInterval(pump);
      t.equal(res.code, 0, `socat exit ${res.out}`);
      t.equal(sha(readFileSync(outPath)), sha(input), 'echo arrived byte-exact at Linux');
      t.ok(child, 'accepted');
      t.ok(await until(() => (child as TcpEndpoint | null)?.state === State.Closed || (child as TcpEndpoint | null)?.state === State.TimeWait, HANG_MS), 'connection finished');
      l.close();
    });
  }

  t.test('IPv4: we upload 2 MB to a Linux socat server byte-exact', async (t) => {
    const outPath = join(dir, 'upload');
    const server = inB(['socat', '-u', `TCP-LISTEN:7100,reuseaddr`, `OPEN:${outPath},creat,trunc`]);
    const data = randomBytes(2 * 1024 * 1024);
    await waitListening(net.nsB, 7100);
    const ep = tcp.newEndpoint(4);
    t.equal(ep.connect({ address: parseAddress(LINUX4)!, port: 7100 }), Err.ConnectStarted);
    t.ok(await until(() => ep.state === State.Established, HANG_MS), 'connected');
    let off = 0;
    await until(() => {
      while (off < data.length) {
        const n = ep.write(data.subarray(off, off + 65536));
        if (typeof n !== 'number') break;
        off += n;
      }
      return off === data.length;
    }, HANG_MS);
    ep.shutdown(ShutdownWrite);
    t.ok(await until(() => ep.state === State.FinWait2 || ep.state === State.TimeWait, HANG_MS), 'Linux acknowledged all and our FIN');
    const info = ep.getOption('TCP_INFO') as Record<string, number>;
    t.equal(info['tcpi_options'], 7, 'Linux negotiated timestamps, SACK and window scaling with us');
    ep.close();
    const r = await server.done;
    t.equal(r.code, 0, r.out);
    t.equal(sha(readFileSync(outPath)), sha(data), 'Linux received every byte');
  });

  t.test('IPv4 with 3% loss, 3% reordering, 1% duplication both ways: 2 MB up and 2 MB down byte-exact', async (t) => {
    impair.spec = { ...NO_IMPAIRMENT, loss: 0.03, reorder: 0.03, dup: 0.01, seed: 5 };
    t.teardown(() => {
      impair.spec = { ...NO_IMPAIRMENT };
    });
    const up = randomBytes(2 * 1024 * 1024);
    const down = randomBytes(2 * 1024 * 1024);
    const upPath = join(dir, 'lossy-up');
    const downPath = join(dir, 'lossy-down');
    writeFileSync(downPath, down);
    const server = inB(['socat', '-t', '20', 'TCP-LISTEN:7200,reuseaddr', `OPEN:${downPath},rdonly!!OPEN:${upPath},creat,trunc`]);
    await waitListening(net.nsB, 7200);
    const ep = tcp.newEndpoint(4);
    ep.connect({ address: parseAddress(LINUX4)!, port: 7200 });
    const got: Uint8Array[] = [];
    let off = 0;
    let shut = false;
    let eof = false;
    const ok = await until(() => {
      while (off < up.length) {
        const n = ep.write(up.subarray(off, off + 65536));
        if (typeof n !== 'number') break;
        off += n;
      }
      if (off === up.length && !shut && (ep.state === State.Established || ep.state === State.CloseWait)) {
        // Linux may finish sending (and FIN) first: CLOSE-WAIT still owes our side's FIN.
        shut = !ep.shutdown(ShutdownWrite);
      }
      for (;;) {
        const r = ep.read();
        if ('errno' in r) break;
        if (r.data.length === 0) {
          eof = true;
          break;
        }
        got.push(r.data);
      }
      return eof && shut;
    }, 3 * HANG_MS); // 4 MB through loss: slow on a loaded machine, still far from a hang
    t.ok(ok, 'both directions finished');
    const res = await server.done;
    t.equal(res.code, 0, res.out);
    t.equal(sha(Buffer.concat(got)), sha(down), 'Linux → us byte-exact through loss');
    t.equal(sha(readFileSync(upPath)), sha(up), 'us → Linux byte-exact through loss');
    const st = tcp.stats;
    t.ok(st.retransmits > 0, `we repaired losses (${st.retransmits} retransmits, ${st.fastRetransmits} recoveries, ${st.timeouts} RTOs)`);
    ep.close();
  });

  t.test('IPv6: connect to a closed Linux port → RST → ECONNREFUSED', async (t) => {
    const c = tcp.newEndpoint(6);
    t.equal(c.connect({ address: parseAddress(LINUX6)!, port: 7999 }), Err.ConnectStarted);
    t.ok(await until(() => c.state === State.Closed, HANG_MS));
    t.equal(c.takeError(), Err.ConnectionRefused);
  });

  t.equal(s.stats.snapshot()['tcp.badChecksum'] ?? 0, 0, 'Linux never sent us a bad checksum');
});
