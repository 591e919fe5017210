import { statSync } from 'node:fs';
import t from 'tap';
import { run } from '../../lib/exec.ts';
import { NotifyListener } from '../../sentry/platform/unotify/listener.ts';
import { bwrapArgs } from '../../sentry/sandbox/bwrap.ts';
import { LaunchError, exitStatus, launch } from '../../sentry/sandbox/launch.ts';
import { buildPolicy } from '../../sentry/seccomp/policy.ts';
import { SYS } from '../../sentry/seccomp/sysno.ts';

const NS = `tsa-app-${process.pid}`;
const PY = '/usr/bin/python3';

t.test('the helper joins the app netns before bwrap: the program sees that namespace\'s interfaces only', async (t) => {
  run(['ip', 'netns', 'add', NS]);
  t.teardown(() => run(['ip', 'netns', 'del', NS]));
  // No dummy module on this kernel: a veth pair inside the namespace gives it interfaces of its own.
  run(['ip', '-n', NS, 'link', 'add', 'tsa0', 'type', 'veth', 'peer', 'name', 'tsa1']);
  run(['ip', '-n', NS, 'addr', 'add', '198.18.201.2/24', 'dev', 'tsa0']);
  run(['ip', '-n', NS, 'link', 'set', 'tsa0', 'up']);
  const nsFile = `/var/run/netns/${NS}`;
  for (const bwrap of [false, true]) {
    const sb = await launch({
      argv: [PY, '-S', '-c', 'import os, socket\nprint("ns", os.readlink("/proc/self/ns/net"))\nprint("ifs", sorted(n for _, n in socket.if_nameindex()))'],
      filter: buildPolicy({ mode: 'sandbox' }),
      appNetns: nsFile,
      bwrap: bwrap ? bwrapArgs({ binds: [] }) : [],
      env: { PATH: '/usr/bin' },
      stdio: 'pipe',
    });
    const l = new NotifyListener(sb.listenerFd);
    l.on('notification', (n) => (n.nr === SYS.socket ? l.respond(n.id, 0, 97) : l.continue(n.id)));
    l.start();
    let out = '';
    sb.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
    const r = await sb.wait();
    l.close();
    t.equal(exitStatus(r), 0);
    t.match(out, `ns net:[${statSync(nsFile).ino}]`, `in ${NS} (bwrap ${bwrap})`);
    t.match(out, "ifs ['lo', 'tsa0', 'tsa1']", 'the namespace\'s interfaces only');
  }
});

t.test('a missing app netns → LaunchError naming it, nothing left running', async (t) => {
  const e = await launch({
    argv: ['/bin/true'],
    filter: buildPolicy({ mode: 'sandbox' }),
    appNetns: '/var/run/netns/tsa-missing',
    bwrap: [],
    env: {},
  }).then(
    () => undefined,
    (err: unknown) => err,
  );
  t.ok(e instanceof LaunchError);
  t.match((e as Error).message, /^cannot join the network namespace \/var\/run\/netns\/tsa-missing: ENOENT/);
});
