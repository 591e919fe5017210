// The Sentry makes its socketpairs inside the app netns: SIOCGIFCONF on a unix socket lists the interfaces of
// the netns the socket was made in, so a pair made in the Sentry's own netns would show the program the host's.
// A thread of its own that stays in the app netns makes them (lib/netns-thread.ts), not the main thread.
import t from 'tap';
import { run as sh } from '../../lib/exec.ts';
import { B4, twoNetstacks } from '../netstack/adapter/helpers.ts';
import { echoPeer, run } from '../sentry/syscalls/helpers.ts';

const NS = `tsc-app-${process.pid}`;
const NS_FILE = `/var/run/netns/${NS}`;

const script = `
import socket, fcntl, struct, array
def ifnames(s):
    buf = array.array('B', bytes(40 * 64))
    addr, _ = buf.buffer_info()
    n, _ = struct.unpack('iL', fcntl.ioctl(s.fileno(), 0x8912, struct.pack('iL', len(buf), addr)))
    b = buf.tobytes()
    return sorted(b[i:i + 16].split(b'\\0', 1)[0].decode() for i in range(0, n, 40))
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
print('ifconf', ' '.join(ifnames(s)))
s.connect(('${B4}', 7300))
s.sendall(b'through the app netns')
s.shutdown(socket.SHUT_WR)
print('echo', s.recv(100).decode())
`;

t.test('pairs made in the app netns: SIOCGIFCONF shows its interfaces, not the host\'s; TCP works', async (t) => {
  sh(['ip', 'netns', 'add', NS]);
  t.teardown(() => sh(['ip', 'netns', 'del', NS]));
  sh(['ip', '-n', NS, 'link', 'add', 'tsc0', 'type', 'veth', 'peer', 'name', 'tsc1']);
  sh(['ip', '-n', NS, 'addr', 'add', '198.18.203.2/24', 'dev', 'tsc0']);
  sh(['ip', '-n', NS, 'link', 'set', 'tsc0', 'up']);
  sh(['ip', '-n', NS, 'link', 'set', 'lo', 'up']);
  const env = twoNetstacks();
  t.teardown(() => env.close());
  await echoPeer(t, env, 7300);

  const inside = await run(env, script, undefined, { appNetns: NS_FILE });
  t.equal(inside.status, 0, inside.stderr);
  t.match(inside.stdout, /^ifconf lo tsc0$/m, 'the app netns\'s interfaces only');
  t.match(inside.stdout, /^echo through the app netns$/m);
  t.equal(inside.left, 0);
  t.notMatch(inside.logs.join('\n'), /app netns thread/, 'made by the thread that stays there (the main thread never entered)');

  // The control: the same program with the pairs made in the Sentry's netns sees other interfaces (the leak).
  const leak = await run(env, script, undefined, { appNetns: NS_FILE, sentryNetns: null });
  t.equal(leak.status, 0, leak.stderr);
  const names = /^ifconf (.*)$/m.exec(leak.stdout)?.[1] ?? '';
  t.notOk(names.includes('tsc0'), `a pair from the Sentry's netns lists its interfaces (${names}), not the app's`);
});
