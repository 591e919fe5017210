/**
 * The tsvisor command line: `run`, `serve`, `demo`, `stats`. Every mistake in the arguments is one line on stderr and
 * exit status 2; a failure at run time (missing namespace, interface) is one line and exit status 1.
 */
import { HelpRequested, UsageError } from './args.ts';
import { CliError } from './errors.ts';
import { COMMAND_USAGE } from './usage.ts';

/** A failure at run time, reported as one line (defined in cli/errors.ts, where the OCI runtime's lean entry takes it from). */
export { CliError };

const USAGE = `usage: tsvisor <command> [options]

commands:
  run      [--network=sandbox|host|none] [--netns NAME|PATH --dev IFACE] [--addr CIDR]... [--gateway IP]...
           [--dns IP]... [--publish [HOSTIP:]HOSTPORT:PORT[/udp]]... [--ro-bind SRC[:DST]]... [--bind SRC[:DST]]...
           [--env K=V]... [--cwd DIR] [--allow-raw|--net-raw] [--strace] [--debug] [--debug-log FILE|DIR/]
           [--pcap-log FILE] [--impair SPEC] [--drain-timeout SECONDS] [--platform=unotify] -- PROGRAM [ARGS...]
           run PROGRAM in a sandbox whose socket calls the netstack serves (sandbox), or on the host's network
           (host: reduced isolation), or with loopback only (none); exits with the program's status
  demo     build two namespaces joined by a veth, serve on one end, drive it with ping, socat and curl from the
           other, report, clean up
  serve    --netns NAME --dev IFACE [--addr CIDR]... [--gateway IP]... [--mtu N] [--pcap FILE]
           [--impair SPEC] [--service NAME[:PORT]]... [--tap] [--no-offloads] [--no-send-thread] [--sysctl KEY=VALUE]...
           attach the netstack to IFACE in namespace NAME and serve until SIGINT, SIGTERM, SIGHUP or SIGQUIT;
           --sysctl sets the stack's settings by Linux's names (net.ipv4.tcp_sack=0, as docker run --sysctl)
  stats    --netns NAME --dev IFACE [--json]   print the counters of a running 'serve'
  restore  --netns NAME --dev IFACE   give back an interface a killed 'serve' or 'run' left taken
  conformance [--dut tsvisor|linux|sandbox|both] [--json FILE] [--tolerance-ms N] [--filter GLOB] [--profile P] PATH...
           run packetdrill scripts against the netstack and/or the Linux kernel and compare
  bench    [--quick] [--json FILE] [--html FILE] [--only NAME,...]   throughput, latency, HTTP rate and memory of
           kernel, tsvisor, pasta and slirp4netns in namespaces of its own, with ratios to kernel
  gofer    --root DIR --listen unix:PATH [--ro] [--uid-map IN:OUT:COUNT]... [--no-confine]
           serve DIR over 9P2000.L, confined (own mount namespace, no network, seccomp allowlist)
  install-runtime PATH   put the OCI runtime's executable at PATH, for docker run --runtime=tsvisor (and podman,
           containerd): a front that answers create/start/delete itself and runs this tsvisor for the rest
  help     this text; 'tsvisor help COMMAND' or 'tsvisor COMMAND --help': the command's options
  version  the package's version

services: echo (7, TCP+UDP), discard (9, TCP+UDP), chargen (19, TCP+UDP), http (80), iperf3 (5201), sockperf (11111)
impair SPEC: loss=0.02,dup=0.01,reorder=0.02,delay=1ms,jitter=0.5ms,corrupt=0.001,seed=7,dir=both
`;

/** Runs the CLI with `argv` (without node and the script); resolves to the exit status. */
export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  // The OCI runtime's calls (runc's commands, with or without global flags before them; cli/oci/main.ts). The
  // installed entry (cli/bin.ts) sends them there without loading this file.
  const oci = await import('./oci/main.ts');
  if (oci.isOciCall(argv)) return await oci.ociEntry(argv);
  // Each command's module is imported only when it runs, so `--help` loads this file and args.ts alone
  // (bench/startup.ts measures it).
  try {
    switch (command) {
      case 'run':
        return await (await import('./run.ts')).runCommand(rest);
      case 'serve':
        return await (await import('./serve.ts')).serveCommand(rest);
      case 'demo':
        return await (await import('./demo.ts')).demoCommand(rest);
      case 'stats':
        return await (await import('./stats.ts')).statsCommand(rest);
      case 'restore':
        return await (await import('./restore.ts')).restoreCommand(rest);
      case 'conformance':
        return await (await import('./conformance.ts')).conformanceCommand(rest);
      case 'bench':
        return await (await import('./bench.ts')).benchCommand(rest);
      case 'gofer':
        return await (await import('./gofer.ts')).goferCommand(rest);
      case 'install-runtime': {
        if (rest[0] === '--help' || rest[0] === '-h') throw new HelpRequested();
        if (rest.length !== 1 || rest[0]!.startsWith('-')) throw new UsageError('usage: tsvisor install-runtime PATH');
        const { installRuntime } = await import('./oci/front.ts');
        let at: string;
        try {
          at = installRuntime(rest[0]!);
        } catch (e) {
          if ((e as Error).name === 'HelperBuildError' || (e as NodeJS.ErrnoException).code) throw new CliError((e as Error).message);
          throw e;
        }
        process.stdout.write(`${at}\n`);
        return 0;
      }
      case 'help':
      case '--help':
      case '-h':
        if (rest[0] !== undefined) {
          const text = COMMAND_USAGE[rest[0] === '--help' || rest[0] === '-h' ? 'help' : rest[0]];
          if (!text) throw new UsageError(`unknown command '${rest[0]}' (try 'tsvisor help')`);
          process.stdout.write(text);
          return 0;
        }
        process.stdout.write(USAGE);
        return 0;
      case 'version':
      case '--version':
        if (rest[0] === '--help' || rest[0] === '-h') throw new HelpRequested();
        process.stdout.write(`tsvisor ${(await import('./version.ts')).packageVersion()}\n`);
        return 0;
      case undefined:
        process.stderr.write(USAGE);
        return 2;
      default:
        throw new UsageError(`unknown command '${command}' (try 'tsvisor help')`);
    }
  } catch (e) {
    if (e instanceof HelpRequested && command !== undefined && COMMAND_USAGE[command]) {
      process.stdout.write(COMMAND_USAGE[command]!);
      return 0;
    }
    if (e instanceof UsageError) {
      process.stderr.write(`tsvisor: ${e.message}\n`);
      return 2;
    }
    if (e instanceof CliError) {
      process.stderr.write(`tsvisor: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}
