// A python3 under the seccomp filter (sandbox mode) whose socket calls a Sentry on netstack A serves.
import { once } from 'node:events';
import type { Test } from 'tap';
import { bindNet, type Socket as NsSocket } from '../../../netstack/adapter/net.ts';
import type { Netstack } from '../../../netstack/netstack.ts';
import { NotifyListener } from '../../../sentry/platform/unotify/listener.ts';
import { Targets } from '../../../sentry/platform/unotify/target.ts';
import { type Sandbox, exitStatus, launch } from '../../../sentry/sandbox/launch.ts';
import { buildPolicy } from '../../../sentry/seccomp/policy.ts';
import { Sentry } from '../../../sentry/syscalls/dispatch.ts';
import { onLines } from '../../../lib/lines.ts';
import { HANG_MS, waitFor } from '../../lib/wait.ts';

const PY = '/usr/bin/python3';
const ENV = { PATH: '/usr/local/bin:/usr/bin:/bin', LANG: 'C.UTF-8' };

/**
 * Runs `script` under the filter with a Sentry on netstack A; `onLine` sees each stdout line as it comes. With
 * `appNetns` the program runs in that netns file, and the Sentry makes its pairs there.
 */
export async function run(
  env: { a: Netstack },
  script: string,
  onLine: (l: string, sb: Sandbox, sentry: Sentry) => void = () => {},
  o: { appNetns?: string; sentryNetns?: string | null; bwrap?: string[] } = {},
) {
  const sb = await launch({ argv: [PY, '-S', '-u', '-c', script], filter: buildPolicy({ mode: 'sandbox' }), bwrap: o.bwrap ?? [], env: ENV, stdio: 'pipe', appNetns: o.appNetns });
  const straced: string[] = [];
  const logs: string[] = [];
  const sentry = new Sentry({
    listener: new NotifyListener(sb.listenerFd),
    targets: new Targets(sb.pid),
    stack: env.a,
    mode: 'sandbox',
    // The pairs are made where the program runs unless the test says otherwise (null: the Sentry's own netns).
    appNetns: o.sentryNetns === null ? undefined : (o.sentryNetns ?? o.appNetns),
    strace: (l) => straced.push(l),
    log: (l) => logs.push(l),
  });
  sentry.start();
  let stdout = '';
  let stderr = '';
  sb.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  onLines(sb.stdout!, (l) => onLine(l, sb, sentry));
  sb.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  // A hang ends as a failure that shows the calls (a bound only a hang reaches).
  let hung = false;
  const guard = setTimeout(() => {
    hung = true;
    sb.kill('SIGKILL');
  }, 90_000);
  const r = await sb.wait();
  clearTimeout(guard);
  if (hung) stderr += `\nkilled after 90 s; calls:\n${straced.join('\n')}\n`;
  // The program's sockets are released as the Sentry sees their fds close: wait for it, up to a hang bound.
  await waitFor(() => sentry.socketCount === 0, HANG_MS, 'the sockets released').catch(() => {});
  const left = sentry.socketCount;
  sentry.close();
  return { status: exitStatus(r), stdout, stderr, straced, logs, left, stats: sentry.stats() };
}


/**
 * An echo server on netstack B at `port`: each connection gets back what it sends, and a half-close is kept
 * (allowHalfOpen), so the echo of bytes sent before a FIN still goes back. Its sockets end with `t`.
 */
export async function echoPeer(t: Test, env: { b: Netstack }, port: number): Promise<void> {
  const conns: NsSocket[] = [];
  const server = bindNet(env.b).createServer({ allowHalfOpen: true }, (s) => {
    conns.push(s);
    s.pipe(s);
  });
  server.listen(port);
  await once(server, 'listening');
  t.teardown(() => {
    for (const s of conns) s.destroy();
    server.close();
  });
}
