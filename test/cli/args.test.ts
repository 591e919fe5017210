// The CLI's argument handling: every mistake is one line naming it, with exit status 2.
import t from 'tap';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { parseServeArgs } from '../../cli/serve.ts';
import { UsageError } from '../../cli/args.ts';
import { main } from '../../cli/main.ts';

const CLI = join(import.meta.dirname, '../../cli/tsvisor.js');

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { encoding: 'utf8' }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/**
 * The same call in this process: cli/main.ts's main with standard output and error caught. A new `tsvisor` process
 * costs about a second to start here, so the cases repeated for every command run this way, and `cli` checks that
 * the real command behaves the same on a sample of them.
 */
async function inProcess(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = { stdout: '', stderr: '' };
  const writes = { stdout: process.stdout.write, stderr: process.stderr.write };
  process.stdout.write = ((chunk: string | Uint8Array) => ((out.stdout += String(chunk)), true)) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string | Uint8Array) => ((out.stderr += String(chunk)), true)) as typeof process.stderr.write;
  try {
    return { code: await main(args), ...out };
  } finally {
    process.stdout.write = writes.stdout;
    process.stderr.write = writes.stderr;
  }
}

t.test('serve arguments parse into options', async (t) => {
  const o = parseServeArgs([
    '--netns', 'ns1', '--dev', 'veth0', '--addr', '198.18.0.2/24', '--addr=fd74:7376::2/64',
    '--gateway', '198.18.0.1', '--mtu', '9000', '--pcap', '/tmp/x.pcap', '--impair', 'loss=0.1,seed=4',
    '--service', 'echo', '--service', 'discard:999',
  ]);
  t.equal(o.netns, 'ns1');
  t.equal(o.dev, 'veth0');
  t.same(o.addresses!.map((a) => [Array.from(a.address), a.prefixLength]), [
    [[198, 18, 0, 2], 24],
    [[0xfd, 0x74, 0x73, 0x76, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2], 64],
  ]);
  t.same(Array.from(o.gateways![0]!), [198, 18, 0, 1]);
  t.equal(o.mtu, 9000);
  t.equal(o.pcap, '/tmp/x.pcap');
  t.equal(o.impair!.loss, 0.1);
  t.equal(o.impair!.seed, 4);
  t.same(o.services, [{ name: 'echo', port: undefined }, { name: 'discard', port: 999 }]);
});

const bad: [string[], RegExp][] = [
  [['--dev', 'x'], /missing required option --netns/],
  [['--netns', 'a'], /missing required option --dev/],
  [['--netns', 'a', '--dev'], /option --dev needs a value/],
  [['--netns', 'a', '--dev', 'x', '--addr', '198.18.0.300/24'], /--addr: '198.18.0.300\/24' is not/],
  [['--netns', 'a', '--dev', 'x', '--addr', '198.18.0.3/33'], /--addr/],
  [['--netns', 'a', '--dev', 'x', '--gateway', 'nope'], /--gateway: 'nope' is not an IP address/],
  [['--netns', 'a', '--dev', 'x', '--mtu', '12'], /--mtu: 12 is outside 68..65535/],
  [['--netns', 'a', '--dev', 'x', '--mtu', 'big'], /--mtu: 'big' is not a whole number/],
  [['--netns', 'a', '--dev', 'x', '--impair', 'loss=2'], /--impair: .*loss/],
  [['--netns', 'a', '--dev', 'x', '--impair', 'wobble=1'], /--impair: .*wobble/],
  [['--netns', 'a', '--dev', 'x', '--service', 'gopher'], /unknown service 'gopher'/],
  [['--netns', 'a', '--dev', 'x', '--service', 'echo:70000'], /--service: 70000 is outside/],
  [['--netns', 'a', '--dev', 'x', '--frobnicate'], /unknown option --frobnicate/],
  [['--netns', 'a', '--netns', 'b', '--dev', 'x'], /option --netns given twice/],
  [['--netns', 'a', '--dev', 'x', 'extra'], /unexpected argument 'extra'/],
  [['--netns', 'a', '--dev', 'x', '--tap'], /--tap needs at least one --addr/],
  [['--netns', 'a', '--dev', 'x', '--addr', '198.18.80.2'], /^--addr: '198\.18\.80\.2' has no prefix length: give the network's, e\.g\. 198\.18\.80\.2\/24 \(or \/32 for a single address\)$/],
  [['--netns', 'a', '--dev', 'x', '--addr', 'fd74:7376::2'], /^--addr: 'fd74:7376::2' has no prefix length.*\/64 \(or \/128/],
];
for (const [args, message] of bad) {
  t.test(`serve ${args.join(' ')} → UsageError`, async (t) => {
    t.throws(() => parseServeArgs(args), { constructor: UsageError, message });
  });
}

t.test('the command prints one line and exits 2 on bad arguments', async (t) => {
  for (const args of [['serve', '--mtu', 'x'], ['frob'], ['stats', '--netns']]) {
    const r = await cli(args);
    t.equal(r.code, 2, `${args.join(' ')}: exit 2`);
    t.match(r.stderr, /^tsvisor: [^\n]+\n$/, `${args.join(' ')}: one line`);
  }
  const help = await cli(['help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /tsvisor serve|serve +--netns/);
});

t.test('COMMAND --help, COMMAND -h and help COMMAND → that command\'s usage on stdout, exit 0, for every command', async (t) => {
  const { COMMAND_USAGE } = await import('../../cli/usage.ts');
  const listed = [...(await cli(['help'])).stdout.matchAll(/^  ([a-z-]+) /gm)].map((m) => m[1]!);
  t.same(Object.keys(COMMAND_USAGE).sort(), [...new Set(listed)].sort(), 'every command in the list has a usage, and no other');
  for (const args of [['serve', '--help'], ['run', '-h'], ['help', 'gofer']]) {
    t.same(await cli(args), await inProcess(args), `${args.join(' ')}: the command as a process answers as main() does`);
  }
  for (const command of listed) {
    for (const args of [[command, '--help'], [command, '-h'], ['help', command]]) {
      const r = await inProcess(args);
      t.equal(r.code, 0, `${args.join(' ')}: exit 0 ${r.stderr}`);
      t.equal(r.stdout, COMMAND_USAGE[command], `${args.join(' ')}: the usage of ${command}`);
      t.match(r.stdout, new RegExp(`^usage: tsvisor ${command}\\b`));
    }
  }
  // --help after an option's place still asks for help; after '--' it belongs to the program run.
  t.equal((await inProcess(['serve', '--netns', 'x', '--help'])).stdout, COMMAND_USAGE.serve);
  const prog = await cli(['run', '--network=none', '--', 'prog', '--help']);
  t.not(prog.stdout, COMMAND_USAGE.run, 'run -- PROG --help is not run\'s help');
  const unknown = await inProcess(['help', 'frob']);
  t.equal(unknown.code, 2);
  t.equal(unknown.stderr, "tsvisor: unknown command 'frob' (try 'tsvisor help')\n");
});
