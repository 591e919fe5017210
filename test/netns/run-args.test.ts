// `tsvisor run` given bad input: one line on stderr, the right exit status, and nothing left behind (no
// namespaces, veths or mounts of the run).
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { run } from '../../lib/testnet.ts';
import { callerNs, leftovers, logId, tsvisorRun } from './run-helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'tsb-args-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const usage: [string, string[], RegExp][] = [
  ['unknown --network', ['--network=bridge', '--', '/bin/true'], /^tsvisor: --network: unknown mode 'bridge' \(known: sandbox, host, none\)\n$/],
  ['--netns without --dev', ['--netns', 'tsb-x', '--', '/bin/true'], /^tsvisor: --netns needs --dev/],
  ['--dev without --netns', ['--dev', 'eth0', '--', '/bin/true'], /^tsvisor: --dev needs --netns/],
  ['--publish without the sandbox port', ['--publish', '8080', '--', '/bin/true'], /^tsvisor: --publish: '8080' is not \[HOSTIP:\]HOSTPORT:PORT\[\/udp\]\n$/],
  ['--publish with a bad protocol', ['--publish', '8080:80/sctp', '--', '/bin/true'], /^tsvisor: --publish: '8080:80\/sctp' is not/],
  ['--publish with a port out of range', ['--publish', '70000:80', '--', '/bin/true'], /^tsvisor: --publish: port 70000 .* outside 1\.\.65535\n$/],
  ['--publish with a bad host IP', ['--publish', '[fd74::zz]:80:80', '--', '/bin/true'], /^tsvisor: --publish: /],
  ['--publish in host mode', ['--network=host', '--publish', '8080:80', '--', '/bin/true'], /^tsvisor: --publish needs --network=sandbox\n$/],
  ['--platform=ptrace', ['--platform=ptrace', '--', '/bin/true'], /^tsvisor: --platform=ptrace is not available: ptrace is not implemented; use --platform=unotify\n$/],
  ['--platform=kvm', ['--platform=kvm', '--', '/bin/true'], /^tsvisor: --platform=kvm is not available: there is no \/dev\/kvm here/],
  ['no program', ['--network=none'], /^tsvisor: run: no PROGRAM given/],
  ['unknown option', ['--netwrok=none', '--', '/bin/true'], /^tsvisor: unknown option --netwrok\n$/],
  ['--env without =', ['--env', 'FOO', '--', '/bin/true'], /^tsvisor: --env: 'FOO' is not K=V\n$/],
  ['--addr without --netns', ['--addr', '198.18.0.2/24', '--', '/bin/true'], /^tsvisor: --addr needs --netns/],
  ['--drain-timeout not a number', ['--drain-timeout', 'soon', '--', '/bin/true'], /^tsvisor: --drain-timeout: 'soon' is not a number of seconds\n$/],
];

for (const [name, args, message] of usage) {
  t.test(`${name} → exit 2, one line, nothing made`, async (t) => {
    const log = join(dir, `${name.replace(/\W+/g, '-')}.log`);
    const r = await tsvisorRun(undefined, ['--debug-log', log, ...args]);
    t.equal(r.code, 2);
    t.match(r.stderr, message);
    t.equal(r.stderr.split('\n').length, 2, 'one line');
    // Namespaces, veth and janitor all hang on the run id, logged before anything is made: no id, nothing made.
    // (Comparing `ip netns list` before and after would see other tests' namespaces come and go.)
    t.equal(logId(log), undefined, 'failed before a run id was taken');
    t.end();
  });
}

t.test('not root → exit 1, one line naming the cause and the fix', async (t) => {
  // `env -i`: tap puts its process-info hook into every child's environment, and the hook would write into the
  // checkout, which uid 65534 cannot.
  const prefix = ['env', '-i', `PATH=${process.env.PATH}`, 'setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'];
  const r = await tsvisorRun(undefined, ['--', '/bin/true'], { prefix });
  t.equal(r.code, 1);
  t.equal(r.stderr, 'tsvisor: tsvisor run must run as root (it makes network namespaces and a seccomp listener): run it with sudo\n');
  t.end();
});

t.test('no bwrap on PATH → exit 1, one line naming the package', async (t) => {
  const empty = mkdtempSync(join(dir, 'path-'));
  const r = await tsvisorRun(undefined, ['--network=none', '--', '/bin/true'], { env: { ...process.env, PATH: `${empty}:/usr/sbin:/sbin` } });
  t.equal(r.code, 1);
  t.equal(r.stderr, 'tsvisor: bwrap not found on PATH: install bubblewrap (apt-get install bubblewrap)\n');
  t.end();
});

t.test('no nft on PATH in sandbox mode → exit 1, one line naming the package; nothing left in the caller\'s netns', async (t) => {
  const ns = callerNs(t, 'ra-nft');
  // Every tool of /usr/sbin that set-up uses but nft (merged /usr: /sbin is /usr/sbin, /bin is /usr/bin).
  const tools = mkdtempSync(join(dir, 'sbin-'));
  symlinkSync('/usr/sbin/ip', join(tools, 'ip'));
  const log = join(dir, 'no-nft.log');
  const r = await tsvisorRun(ns, ['--debug-log', log, '--', '/bin/true'], { env: { ...process.env, PATH: `${tools}:/usr/bin` } });
  t.equal(r.code, 1);
  t.equal(r.stderr, 'tsvisor: nft not found on PATH: install nftables (apt-get install nftables); --network=sandbox needs it to keep the program off the caller\'s own addresses\n');
  const id = logId(log);
  t.ok(id, 'the run had an id: the veth was made, then undone');
  t.same(leftovers(id!, ns), [], 'nothing left');
  t.end();
});

t.test('--netns naming a missing namespace or file → exit 1, one line', async (t) => {
  let r = await tsvisorRun(undefined, ['--netns', 'tsb-missing', '--dev', 'eth0', '--', '/bin/true']);
  t.equal(r.code, 1);
  t.equal(r.stderr, "tsvisor: network namespace 'tsb-missing' does not exist (/var/run/netns/tsb-missing): create it (ip netns add tsb-missing) or fix --netns\n");
  r = await tsvisorRun(undefined, ['--netns', '/proc/999999999/ns/net', '--dev', 'eth0', '--', '/bin/true']);
  t.equal(r.code, 1);
  t.equal(r.stderr, "tsvisor: network namespace file '/proc/999999999/ns/net' does not exist: check --netns\n");
  t.end();
});

t.test('--dev naming a missing interface → exit 1, one line; the alias of a PATH and the app netns removed', async (t) => {
  const ns = callerNs(t, 'ra-dev');
  for (const ref of [ns, `/var/run/netns/${ns}`]) {
    const log = join(dir, `dev-${ref.length}.log`);
    const r = await tsvisorRun(ns, ['--debug-log', log, '--netns', ref, '--dev', 'nope0', '--', '/bin/true']);
    t.equal(r.code, 1);
    t.equal(r.stderr, `tsvisor: no interface 'nope0' in network namespace '${ref}': check --dev\n`);
    const id = logId(log);
    t.ok(id, 'the run had an id');
    t.same(leftovers(id!, ns), [], 'nothing left');
  }
  t.match(run(['ip', 'netns', 'list']), new RegExp(`^${ns}\\b`, 'm'), 'the user\'s namespace is kept');
  t.end();
});

t.test('no C compiler for the helper → exit 1, one line naming the fix; nothing left', async (t) => {
  // A fresh cache directory holds no helper, so it must be built, with a compiler that does not exist.
  const cache = mkdtempSync(join(dir, 'cache-'));
  const ns = callerNs(t, 'ra-cc');
  const log = join(dir, 'cc.log');
  const r = await tsvisorRun(ns, ['--debug-log', log, '--', '/bin/true'], { env: { ...process.env, TSVISOR_CACHE_DIR: cache, CC: 'tsb-no-such-cc' } });
  t.equal(r.code, 1);
  t.equal(r.stderr, 'tsvisor: no C compiler ("tsb-no-such-cc") to build the sandbox helper: install gcc and libc6-dev (or set CC)\n');
  t.equal(logId(log), undefined, 'failed before a run id was taken: nothing made');
  t.end();
});
