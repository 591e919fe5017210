/**
 * Every command's `--help` text, kept apart from the commands so that `tsvisor CMD --help` and `tsvisor help CMD`
 * load no command module (and so none of the netstack). A new command adds its entry here and parses its options
 * with args.ts's parseArgs, which turns `--help`/`-h` among them into a HelpRequested for main.ts to answer.
 */

const SERVICES = 'echo (7, TCP+UDP), discard (9, TCP+UDP), chargen (19, TCP+UDP), http (80), iperf3 (5201), sockperf (11111)';
const IMPAIR = 'loss=0.02,dup=0.01,reorder=0.02,delay=1ms,jitter=0.5ms,corrupt=0.001,seed=7,dir=both';

/** `tsvisor CMD --help` texts by command name. */
export const COMMAND_USAGE: Record<string, string> = {
  run: `usage: tsvisor run [options] -- PROGRAM [ARGS...]

Runs PROGRAM in a sandbox whose socket calls the netstack serves (--network=sandbox, the default), on the host's
network (host: reduced isolation), or with loopback only (none); exits with the program's status.

options:
  --network=sandbox|host|none       how the program reaches the network
  --netns NAME|PATH --dev IFACE     take over IFACE of an existing namespace instead of a veth of our own
  --addr CIDR, --gateway IP, --dns IP   the sandbox's addresses, default routes and resolvers (repeatable)
  --publish [HOSTIP:]HOSTPORT:PORT[/udp]   forward a host port into the sandbox (repeatable)
  --ro-bind SRC[:DST], --bind SRC[:DST]    files the program sees (repeatable)
  --rootfs DIR [--ro | --overlay]   the program's root is DIR, served by a Gofer through FUSE (DIR needs proc/, dev/, tmp/);
                                    --overlay: its writes go to memory and vanish at exit, DIR is never written
  --env K=V, --cwd DIR              the program's environment and working directory
  --allow-raw, --net-raw            let the program open raw ICMP/ICMPv6 sockets (ping), served by the netstack
  --strace, --debug, --debug-log FILE|DIR/, --pcap-log FILE   what the Sentry reports
  --impair SPEC                     impair the sandbox's link (${IMPAIR})
  --drain-timeout SECONDS           how long sockets may drain after the program exits
  --platform=unotify                how syscalls are trapped
`,
  serve: `usage: tsvisor serve --netns NAME --dev IFACE [options]

Takes IFACE of the namespace over from the kernel (its MAC, addresses, routes), serves on it with the netstack
until SIGINT, SIGTERM, SIGHUP or SIGQUIT, then gives the kernel its configuration back. What was taken is recorded
under /run/tsvisor/takeover first: after a SIGKILL or a crash the next serve (or 'tsvisor restore') restores it.
One serve per interface: a second one is refused with the first one's pid.

options:
  --addr CIDR          serve this address instead of the interface's own (repeatable; a prefix length is required)
  --gateway IP         default route via IP (repeatable, one per family)
  --mtu N              set the interface's MTU while serving (below 1280, IPv4 only; restored on exit)
  --service NAME[:PORT]   run a service on the stack (repeatable): ${SERVICES}
  --pcap FILE          record every frame in and out
  --impair SPEC        impair the link: ${IMPAIR}
  --tap                create a TAP device named IFACE instead (needs --addr)
  --no-offloads        no PACKET_VNET_HDR (a TAP without IFF_VNET_HDR): send MTU-sized frames (received super-frames are still taken)
  --no-stats-socket    do not serve counters to 'tsvisor stats'
  --no-send-thread     send every frame from the serving thread (by default bulk batches, 16 frames and
                       256 KB or more, go to a thread of their own; --send-thread says so explicitly)
  --threads N          N netstack shards on worker threads (default 1: no worker); the kernel's flow hash
                       (PACKET_FANOUT_HASH) gives each connection to one shard, every shard runs every service
                       (not with --tap; --pcap writes one file per shard, FILE.shard<i>.pcap)
`,
  stats: `usage: tsvisor stats --netns NAME --dev IFACE [--json] [--all]

Prints the counters of the serve running on IFACE: non-zero ones (--all: every one), or all of them as JSON.
`,
  restore: `usage: tsvisor restore --netns NAME|PATH --dev IFACE

Gives the kernel back the addresses, routes, MTU and IPv6 setting of IFACE as they were before a tsvisor serve or
run that died without restoring them (killed with SIGKILL, or crashed) took it over. Does nothing when there is no
such record, and refuses while a live tsvisor has the interface (stop it instead: it restores on SIGTERM).
`,
  demo: `usage: tsvisor demo

Builds two namespaces joined by a veth, serves on one end, drives it with ping, socat and curl from the other,
reports, and cleans up. Needs root.
`,
  conformance: `usage: tsvisor conformance [--dut tsvisor|linux|both] [--json FILE] [--tolerance-ms N] [--filter GLOB]
                           [--profile strict|gvisor|freebsd] [--netns-prefix NAME] [--quiet] PATH...

Runs packetdrill scripts (files, or folders of them) against the netstack and/or the Linux kernel and compares.
The Linux DUT's namespaces are NAME-PID-N-a/-b (NAME tsv-pd by default).
`,
  bench: `usage: tsvisor bench [--quick] [--json FILE] [--html FILE] [--only NAME,...] [--threads N] [--streams N,...] [--rounds N]
                    [--connections N,...] [--congestion NAME]

Measures throughput, latency, HTTP request rates (new connections, and keep-alive) and memory of kernel, tsvisor,
pasta and slirp4netns in namespaces of its own, with ratios to kernel. --only takes systems and test names.
--threads N runs tsvisor's serve with N shards; --streams 1,4 sets the throughput rows' stream counts (--quick: 1).
--connections 10,32 sets http-keepalive's kept-alive connection counts, one row each (default 8 with --quick, else
10, wrk's own default, and 32).
--rounds N runs every system N times, in turn, and reports each figure's median run (default 1).
--congestion NAME gives iperf3's sockets that TCP congestion control (iperf3 -C) in the rows where the client
sends (to-service); by default they have the machine's (net.ipv4.tcp_congestion_control), which the report names.
`,
  gofer: `usage: tsvisor gofer --root DIR --listen unix:PATH [--ro] [--uid-map IN:OUT:COUNT]... [--no-confine]
                    [--exit-with-stdin] [--poll-us N] [--stats]

Serves DIR over 9P2000.L, confined (own mount namespace, no network, seccomp allowlist). --exit-with-stdin stops
it when its standard input ends (a parent holding a pipe there ended, however it ended). --poll-us: how long it
polls for a client's next request after replying, while requests come closer together than that (default 400; 0
never; never with one CPU). --stats prints the server's counts (requests, polls) to standard error at the end
of each connection.
`,
  'install-runtime': `usage: tsvisor install-runtime PATH

Builds the OCI runtime's front (a small C program, with the system C compiler) and puts it at PATH: the executable
to register with Docker, podman or containerd. It answers create, start and delete itself, so that a container costs
one Node start-up (its Sentry) instead of one per runtime call, and runs this tsvisor for everything else: PATH also
works as the tsvisor command.
`,
  help: `usage: tsvisor help [COMMAND]

Lists the commands, or prints COMMAND's options (as 'tsvisor COMMAND --help' does).
`,
  version: `usage: tsvisor version

Prints the package's version.
`,
};
