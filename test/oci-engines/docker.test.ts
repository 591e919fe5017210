// Docker driving tsvisor as its OCI runtime (`docker run --runtime=tsvisor`, issue 14): a private dockerd with
// tsvisor registered in daemon.json (and once more with --add-runtime), images from docker import of a
// busybox-static root and of a python3 + curl root, and the things users do: run, exit codes, a missing program,
// logs, -p from the host, the bridge's gateway, container to container, --network none/host, exec, -t, stop,
// kill, top, pause, restart policies. TSVISOR_OCI_TEST_RUNTIME=runc registers runc under the same names, which
// proves the harness itself.
import { once } from 'node:events';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import {
  DOCKER_GATEWAY, RUNTIME, busyboxRootfs, exec, callsFor, dockerImport, pythonRootfs, sleep, startDockerd, verbsFor, waitFor,
} from '../../bench/oci-engines.ts';

// What dockerd leaves of the machine's forwarding and firewall: nothing it may change (--iptables=false,
// --ip-forward=false), checked in the sanity test.
const forwarding = () => `ip_forward=${readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim()} ${execFileSync('iptables', ['-S', 'FORWARD'], { encoding: 'utf8' }).split('\n')[0]}`;
const before = forwarding();
const debugDir = '/var/tmp/tob-docker-debug/';
rmSync(debugDir, { recursive: true, force: true });
t.teardown(() => rmSync(debugDir, { recursive: true, force: true }));
const d = await startDockerd(t, {
  json: { tsvisor: RUNTIME, 'tsvisor-debug': { runtime: RUNTIME, args: ['--debug-log', debugDir, '--strace'] } },
  flag: { 'tsvisor-flag': RUNTIME },
});
const images = join(d.scratch.dir, 'images');
mkdirSync(images);
await dockerImport(d, busyboxRootfs(join(images, 'busybox')), 'tob-busybox', ['CMD ["/bin/sh"]']);
const TSV = ['--runtime=tsvisor'];

/** `docker run ARGS` under tsvisor; `--cidfile` tells the container id even with --rm. */
async function run(args: string[], timeoutMs = 120000) {
  const cidfile = join(d.scratch.dir, `cid-${Math.random().toString(16).slice(2)}`);
  const r = await d.docker(['run', ...TSV, '--cidfile', cidfile, ...args], { timeoutMs });
  let id = '';
  try {
    id = readFileSync(cidfile, 'utf8').trim();
  } catch {
    // never created
  }
  return { ...r, id };
}

async function inspect(id: string, format: string): Promise<string> {
  return (await d.docker(['inspect', '-f', format, id])).stdout.trim();
}

/** A web server in the test process on the bridge's gateway address: what "the host" is to a container. */
const host = createServer((req, res) => res.end(`host saw ${req.method} ${req.url}\n`));
host.listen(0, DOCKER_GATEWAY);
await once(host, 'listening');
t.teardown(() => {
  host.closeAllConnections();
  host.close();
});
const hostPort = (host.address() as AddressInfo).port;

t.test('sanity: the same engine, image and bridge under runc (the default runtime)', async (t) => {
  const r = await d.docker(['run', '--rm', 'tob-busybox', 'wget', '-q', '-O', '-', `http://${DOCKER_GATEWAY}:${hostPort}/runc`]);
  t.equal(r.stdout, 'host saw GET /runc\n', r.stderr);
  t.equal(r.code, 0);
  t.equal(forwarding(), before, 'IPv4 forwarding and the FORWARD policy are as they were');
});

t.test('run --rm true: exit 0, and docker called the runtime registered as tsvisor', async (t) => {
  const r = await run(['--rm', 'tob-busybox', 'true']);
  t.equal(r.code, 0, r.stderr);
  t.ok(r.id, 'docker named the container');
  const verbs = verbsFor(d.calls, r.id);
  t.ok(verbs.includes('create') && verbs.includes('start') && verbs.includes('delete'), `runtime calls: ${verbs.join(', ')}`);
  t.match(callsFor(d.calls, r.id).find((c) => c.includes('create')) ?? '', /--bundle \S+/);
});

t.test('--add-runtime registers it too', async (t) => {
  const r = await d.docker(['run', '--rm', '--runtime=tsvisor-flag', 'tob-busybox', 'sh', '-c', 'echo via flag']);
  t.equal(r.stdout, 'via flag\n', r.stderr);
  t.equal(r.code, 0);
});

t.test('runtimeArgs in daemon.json reach the runtime: --debug-log DIR/ --strace', { skip: RUNTIME === 'runc' && 'runsc\'s flags are tsvisor\'s own' }, async (t) => {
  const r = await d.docker(['run', '--rm', '--runtime=tsvisor-debug', '--cidfile', join(d.scratch.dir, 'cid-debug'), 'tob-busybox',
    'wget', '-q', '-O', '-', `http://${DOCKER_GATEWAY}:${hostPort}/debug`]);
  t.equal(r.stdout, 'host saw GET /debug\n', r.stderr);
  const id = readFileSync(join(d.scratch.dir, 'cid-debug'), 'utf8').trim();
  const log = join(debugDir, `tsvisor-${id}.log`);
  t.ok(existsSync(log), `the container's debug log ${log}`);
  t.match(existsSync(log) ? readFileSync(log, 'utf8') : '', /connect/, 'with the traced connect() of wget');
});

t.test('the program is pid 1 of a pid namespace of its own', async (t) => {
  const r = await run(['--rm', 'tob-busybox', 'sh', '-c', 'echo $$; ps -o pid,args']);
  t.match(r.stdout, /^1\n/, r.stderr);
  t.notMatch(r.stdout, /bwrap|tsvisor/, 'nothing of the runtime shows inside');
});

t.test('exit codes: a program exiting 3, a program not in PATH (127)', async (t) => {
  const three = await run(['--rm', 'tob-busybox', 'sh', '-c', 'echo before; exit 3']);
  t.equal(three.code, 3, three.stderr);
  t.equal(three.stdout, 'before\n');
  const missing = await run(['--rm', 'tob-busybox', 'nosuchprogram']);
  t.equal(missing.code, 127, 'docker maps "not found" to 127');
  t.match(missing.stderr, /nosuchprogram/, 'the error names the program');
});

t.test('a program missing by absolute path: 127 and its name', async (t) => {
  const missing = await run(['--rm', 'tob-busybox', '/no/such/program']);
  t.equal(missing.code, 127, missing.stderr);
  t.match(missing.stderr, /no\/such\/program/, 'the error names the program');
});

t.test('stdout and stderr reach docker logs', async (t) => {
  const r = await run(['-d', 'tob-busybox', 'sh', '-c', 'echo to-out; echo to-err >&2']);
  if (!t.equal(r.code, 0, r.stderr)) return;
  t.ok(await waitFor(async () => (await inspect(r.id, '{{.State.Status}}')) === 'exited', 60000), 'it exits');
  const logs = await d.docker(['logs', r.id]);
  t.equal(logs.stdout, 'to-out\n');
  t.equal(logs.stderr, 'to-err\n');
  await d.docker(['rm', r.id]);
});

t.test('bridge: the container reaches a server on the host bridge address', async (t) => {
  const r = await run(['--rm', 'tob-busybox', 'wget', '-q', '-O', '-', `http://${DOCKER_GATEWAY}:${hostPort}/from-container`]);
  t.equal(r.stdout, 'host saw GET /from-container\n', r.stderr);
  t.equal(r.code, 0);
});

t.test('-p: busybox httpd in the container, fetched from the host through the published port', async (t) => {
  const r = await run(['-d', '-p', `${DOCKER_GATEWAY}:18080:80`, 'tob-busybox', 'httpd', '-f', '-p', '80', '-h', '/www']);
  if (!t.equal(r.code, 0, r.stderr)) return;
  t.teardown(() => d.docker(['rm', '-f', r.id]));
  let body = '';
  await waitFor(async () => {
    body = await fetch(`http://${DOCKER_GATEWAY}:18080/`).then((res) => res.text(), () => '');
    return body !== '';
  }, 30000);
  t.equal(body, 'hello from a tob container\n');
});

t.test('container to container on the bridge, both under the runtime', async (t) => {
  const server = await run(['-d', 'tob-busybox', 'httpd', '-f', '-p', '8080', '-h', '/www']);
  if (!t.equal(server.code, 0, server.stderr)) return;
  t.teardown(() => d.docker(['rm', '-f', server.id]));
  const ip = await inspect(server.id, '{{.NetworkSettings.IPAddress}}');
  t.match(ip, /^198\.18\.210\.\d+$/, 'the server got an address of the private bridge');
  let got = '';
  for (let i = 0; i < 20 && got === ''; i++) {
    const c = await run(['--rm', 'tob-busybox', 'wget', '-q', '-O', '-', `http://${ip}:8080/`]);
    got = c.stdout;
    if (got === '') await sleep(250);
  }
  t.equal(got, 'hello from a tob container\n');
});

t.test('--network container:X: the second container shares the first one\'s stack (its loopback, its address)', async (t) => {
  const server = await run(['-d', 'tob-busybox', 'httpd', '-f', '-p', '8080', '-h', '/www']);
  if (!t.equal(server.code, 0, server.stderr)) return;
  t.teardown(() => d.docker(['rm', '-f', server.id]));
  let got = '';
  for (let i = 0; i < 20 && got === ''; i++) {
    const c = await run(['--rm', '--network', `container:${server.id}`, 'tob-busybox', 'wget', '-q', '-O', '-', 'http://127.0.0.1:8080/']);
    got = c.stdout;
    if (got === '') await sleep(250);
  }
  t.equal(got, 'hello from a tob container\n', 'the server on the first container\'s loopback');
  const out = await run(['--rm', '--network', `container:${server.id}`, 'tob-busybox', 'wget', '-q', '-O', '-', `http://${DOCKER_GATEWAY}:${hostPort}/shared`]);
  t.equal(out.stdout, 'host saw GET /shared\n', `and the host through its eth0: ${out.stderr}`);
  const ip = await inspect(server.id, '{{.NetworkSettings.IPAddress}}');
  let body = '';
  await waitFor(async () => {
    body = await fetch(`http://${ip}:8080/`).then((res) => res.text(), () => '');
    return body !== '';
  }, 30000);
  t.equal(body, 'hello from a tob container\n', 'the first container still serves on its address');
});

t.test('--network none: loopback works, the host is not reachable', async (t) => {
  const r = await run(['--rm', '--network', 'none', 'tob-busybox', 'sh', '-c',
    'httpd -p 127.0.0.1:80 -h /www && wget -q -O - http://127.0.0.1/ && ' +
    `(wget -q -O - http://${DOCKER_GATEWAY}:${hostPort}/none && echo reached || echo unreachable)`]);
  t.equal(r.stdout, 'hello from a tob container\nunreachable\n', r.stderr);
});

t.test('--network host: the host namespace, so the server on the gateway address is reached as local', async (t) => {
  const r = await run(['--rm', '--network', 'host', 'tob-busybox', 'wget', '-q', '-O', '-', `http://${DOCKER_GATEWAY}:${hostPort}/host`]);
  t.equal(r.stdout, 'host saw GET /host\n', r.stderr);
});

t.test('exec into a running container: output and exit code', async (t) => {
  const r = await run(['-d', 'tob-busybox', 'sleep', '1000']);
  if (!t.equal(r.code, 0, r.stderr)) return;
  t.teardown(() => d.docker(['rm', '-f', r.id]));
  const e = await d.docker(['exec', r.id, 'sh', '-c', 'echo $((6*7)); cat /www/index.html']);
  t.equal(e.stdout, '42\nhello from a tob container\n', e.stderr);
  const four = await d.docker(['exec', r.id, 'sh', '-c', 'exit 4']);
  t.equal(four.code, 4);
  const verbs = verbsFor(d.calls, r.id);
  t.ok(verbs.includes('exec'), `docker exec went through the runtime: ${verbs.join(', ')}`);
  const top = await d.docker(['top', r.id]);
  t.match(top.stdout, /sleep 1000/, top.stderr);
});

t.test('-i: stdin reaches the program', async (t) => {
  const r = await d.docker(['run', ...TSV, '--rm', '-i', 'tob-busybox', 'sh', '-c', 'read a; read b; echo "got $a $b"'], { input: 'one\ntwo\n' });
  t.equal(r.stdout, 'got one two\n', r.stderr);
});

t.test('-it: the program gets a terminal (the console socket), typed input reaches it', async (t) => {
  // `script` gives the docker client the terminal that -it asks for.
  const cmd = `docker -H ${d.host} run --rm -it --runtime=tsvisor tob-busybox sh -c '[ -t 0 ] && [ -t 1 ] && echo on-a-tty; tty; read x; echo "typed $x"'`;
  const r = await exec(['script', '-qec', cmd, '/dev/null'], { input: 'hello\n' });
  // tty(1) names the pty's slave: /dev/pts/N under runc; tsvisor's comes from the host's devpts, which the
  // container's /dev/pts does not show, so it names the /dev/console it is also bound at.
  t.match(r.stdout, /on-a-tty\r?\n\/dev\/(pts\/\d+|console)\r?\n/, r.stderr);
  t.match(r.stdout, /typed hello/);
  t.equal(r.code, 0);
});

t.test('stop: SIGTERM caught and exit 0; a program that ignores it is killed after the timeout (137)', async (t) => {
  const polite = await run(['-d', 'tob-busybox', 'sh', '-c', 'trap "echo got TERM; exit 0" TERM; echo ready; while :; do sleep 0.1; done']);
  if (!t.equal(polite.code, 0, polite.stderr)) return;
  await waitFor(async () => (await d.docker(['logs', polite.id])).stdout.includes('ready'), 30000);
  await d.docker(['stop', '-t', '20', polite.id]);
  t.equal(await inspect(polite.id, '{{.State.ExitCode}}'), '0');
  t.match((await d.docker(['logs', polite.id])).stdout, /got TERM/);
  const stubborn = await run(['-d', 'tob-busybox', 'sh', '-c', 'trap "" TERM; echo ready; while :; do sleep 0.1; done']);
  await waitFor(async () => (await d.docker(['logs', stubborn.id])).stdout.includes('ready'), 30000);
  await d.docker(['stop', '-t', '1', stubborn.id]);
  t.equal(await inspect(stubborn.id, '{{.State.ExitCode}}'), '137');
  t.same(verbsFor(d.calls, stubborn.id).filter((v) => v === 'kill').length >= 2, true, 'kill 15 then kill 9 through the runtime');
  await d.docker(['rm', polite.id, stubborn.id]);
});

t.test('kill -s: the signal reaches the program', async (t) => {
  const r = await run(['-d', 'tob-busybox', 'sh', '-c', 'trap "echo got USR1; exit 5" USR1; echo ready; while :; do sleep 0.1; done']);
  if (!t.equal(r.code, 0, r.stderr)) return;
  await waitFor(async () => (await d.docker(['logs', r.id])).stdout.includes('ready'), 30000);
  await d.docker(['kill', '-s', 'USR1', r.id]);
  t.ok(await waitFor(async () => (await inspect(r.id, '{{.State.Status}}')) === 'exited', 30000), 'it exits');
  t.equal(await inspect(r.id, '{{.State.ExitCode}}'), '5');
  t.match((await d.docker(['logs', r.id])).stdout, /got USR1/);
  const plain = await run(['-d', 'tob-busybox', 'sleep', '1000']);
  await d.docker(['kill', plain.id]);
  t.equal(await inspect(plain.id, '{{.State.ExitCode}}'), '137');
  await d.docker(['rm', r.id, plain.id]);
});

t.test('pause and unpause', async (t) => {
  const r = await run(['-d', 'tob-busybox', 'sh', '-c', 'while :; do date +%s%N > /tmp/tick; sleep 0.05; done']);
  if (!t.equal(r.code, 0, r.stderr)) return;
  t.teardown(() => d.docker(['rm', '-f', r.id]));
  t.equal((await d.docker(['pause', r.id])).code, 0);
  t.equal(await inspect(r.id, '{{.State.Status}}'), 'paused');
  t.equal((await d.docker(['unpause', r.id])).code, 0);
  t.equal(await inspect(r.id, '{{.State.Status}}'), 'running');
  const verbs = verbsFor(d.calls, r.id);
  t.ok(verbs.includes('pause') && verbs.includes('resume'), verbs.join(', '));
});

t.test('restart policy on-failure:2 restarts a failing program twice', async (t) => {
  const r = await run(['-d', '--restart', 'on-failure:2', 'tob-busybox', 'sh', '-c', 'echo run; exit 1']);
  if (!t.equal(r.code, 0, r.stderr)) return;
  t.teardown(() => d.docker(['rm', '-f', r.id]));
  t.ok(await waitFor(async () => (await inspect(r.id, '{{.RestartCount}} {{.State.Status}}')) === '2 exited', 60000), 'two restarts, then it stays down');
  t.equal((await d.docker(['logs', r.id])).stdout, 'run\nrun\nrun\n');
});

t.test('python3 + curl image: http.server published with -p, curl inside fetching from the host', async (t) => {
  await dockerImport(d, pythonRootfs(join(images, 'python')), 'tob-python', ['WORKDIR /www']);
  const server = await run(['-d', '-p', `${DOCKER_GATEWAY}:18081:8000`, 'tob-python', 'python3', '-m', 'http.server', '8000']);
  if (!t.equal(server.code, 0, server.stderr)) return;
  t.teardown(() => d.docker(['rm', '-f', server.id]));
  let body = '';
  await waitFor(async () => {
    body = await fetch(`http://${DOCKER_GATEWAY}:18081/index.html`).then((res) => res.text(), () => '');
    return body !== '';
  }, 60000);
  t.equal(body, 'hello from a tob container\n');
  const curl = await run(['--rm', 'tob-python', 'curl', '-sS', '--retry', '3', `http://${DOCKER_GATEWAY}:${hostPort}/curl`]);
  t.equal(curl.stdout, 'host saw GET /curl\n', curl.stderr);
});
