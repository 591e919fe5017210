// The OCI runtime's console socket (docker run -t, podman -t): create sends a pty's master over the socket the
// engine listens on (SCM_RIGHTS); the program has the slave as stdio and controlling terminal. A python3 receiver
// stands in for the shim's console; exec --console-socket gets a pty of its own.
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import t from 'tap';
import { cleanUp, create, makeBundle, oci, waitStatus } from './oci-helpers.ts';

const RECEIVER = `
import os, socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(1)
print("ready", flush=True)
c, _ = s.accept()
msg, fds, _, _ = socket.recv_fds(c, 1024, 1)
out = b""
while True:
    try:
        d = os.read(fds[0], 4096)
    except OSError:
        break
    if not d:
        break
    out += d
sys.stdout.write("name=" + msg.decode() + "\\n" + out.decode().replace("\\r\\n", "\\n"))
`;

/** A console socket at `path`: resolves when it listens; `output` is what the pty carried, with the pty's name. */
async function receiver(t: import('tap').Test, path: string): Promise<{ child: ChildProcess; output: Promise<string> }> {
  const child = spawn('python3', ['-c', RECEIVER, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => child.kill('SIGKILL'));
  let out = '';
  child.stdout!.setEncoding('utf8');
  const ready = new Promise<void>((r) => child.stdout!.on('data', (d: string) => {
    out += d;
    if (out.startsWith('ready\n')) r();
  }));
  const output = new Promise<string>((r) => child.on('close', () => r(out.slice('ready\n'.length))));
  await ready;
  return { child, output };
}

t.test('terminal: the program has the pty from the console socket as stdio and controlling terminal', async (t) => {
  const b = makeBundle(t, (c) => {
    c.process.terminal = true;
    c.process.args = ['sh', '-c', 'test -t 0 && test -t 1 && echo isatty; : < /dev/tty && echo ctty; echo term=$TERM'];
  });
  t.teardown(() => cleanUp(b));
  const sock = join(b.dir, 'console.sock');
  const r = await receiver(t, sock);
  const c = await create(b, 'tty', ['--console-socket', sock]);
  t.equal(c.call.code, 0, c.call.stderr);
  t.equal((await oci(b, ['start', 'tty'])).code, 0);
  const out = await r.output;
  t.match(out, /^name=\/dev\/pts\/\d+\n/);
  t.match(out, /isatty\nctty\nterm=xterm\n/);
  t.ok(await waitStatus(b, 'tty', 'stopped'));

  const missing = await create(b, 'tty2');
  t.equal(missing.call.code, 1, 'terminal without --console-socket is refused');
});

t.test('exec --console-socket: a pty of its own', async (t) => {
  const b = makeBundle(t, (c) => (c.process.args = ['sh', '-c', 'while true; do sleep 0.1; done']));
  t.teardown(() => cleanUp(b));
  t.equal((await create(b, 'et')).call.code, 0);
  t.equal((await oci(b, ['start', 'et'])).code, 0);
  const sock = join(b.dir, 'exec-console.sock');
  const r = await receiver(t, sock);
  const e = await oci(b, ['exec', '--tty', '--console-socket', sock, 'et', 'sh', '-c', 'test -t 0 && echo isatty; : < /dev/tty && echo ctty']);
  t.equal(e.code, 0, e.stderr);
  t.match(await r.output, /isatty\nctty\n/);
});
