#!/usr/bin/env bash
# Profiles `tsvisor serve` under a stock client over a veth with offloads on (as `tsvisor bench` runs it):
#   bash bench/profile-serve.sh iperf3 [STREAMS] [-R] [SECONDS]   bulk TCP to (or, with -R, from) the service
#   bash bench/profile-serve.sh http [SECONDS] [CONNS]              wrk, a new connection per request (32 at a time)
#   bash bench/profile-serve.sh http-keepalive [SECONDS] [CONNS]    wrk with keep-alive (CONNS, default 32), and the
#                                                                   serve counters per request (frames, send calls)
# Writes the serve process's CPU profile to out/prof/ and prints its top self-time functions
# (bench/profile-top.ts) and the client's result. Namespaces tsv-prof-a/-b, addresses 198.18.202.0/24 (or
# $TSVISOR_PROF_NS-a/-b and $TSVISOR_PROF_NET.0/24, so that two people can profile side by side); both are removed
# on exit, also on failure. With --pcap in $TSVISOR_PROF_PCAP, serve also writes its frames there.
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-iperf3}
A=${TSVISOR_PROF_NS:-tsv-prof}-a
B=${TSVISOR_PROF_NS:-tsv-prof}-b
NET=${TSVISOR_PROF_NET:-198.18.202}
case "$NET" in 198.1[89].*) ;; *) echo "profile-serve: TSVISOR_PROF_NET must lie in 198.18.0.0/15" >&2; exit 2 ;; esac
serve_pid=
cleanup() {
  if [ -n "$serve_pid" ] && kill -0 "$serve_pid" 2>/dev/null; then kill -INT "$serve_pid"; wait "$serve_pid" || true; fi
  ip netns del "$A" 2>/dev/null || true
  ip netns del "$B" 2>/dev/null || true
}
trap cleanup EXIT
# "tid:ticks" (user + system, 1/100 s) for every thread of process $1.
thread_ticks() { for t in /proc/"$1"/task/*; do awk -v tid="${t##*/}" '{ printf "%s:%d ", tid, $14 + $15 }' "$t/stat"; done; }
cleanup
ip netns add "$A"
ip netns add "$B"
ip link add prof-a netns "$A" type veth peer name prof-b netns "$B"
ip -n "$A" addr add $NET.1/24 dev prof-a
ip -n "$A" link set prof-a up
ip -n "$A" link set lo up
ip -n "$B" link set prof-b up
rm -rf out/prof && mkdir -p out/prof
case "$kind" in
  iperf3) service=iperf3 ;;
  http | http-keepalive) service=http ;;
  *) echo "profile-serve: unknown client '$kind' (iperf3, http or http-keepalive)" >&2; exit 2 ;;
esac
stats=--no-stats-socket
[ "$kind" = http-keepalive ] && stats=
node --cpu-prof --cpu-prof-dir=out/prof cli/tsvisor.js serve --netns "$B" --dev prof-b \
  --addr $NET.2/24 --service "$service" $stats ${TSVISOR_PROF_PCAP:+--pcap "$TSVISOR_PROF_PCAP"} > out/prof/serve.log 2>&1 &
serve_pid=$!
for _ in $(seq 100); do grep -q ready out/prof/serve.log && break; sleep 0.1; done
grep -q ready out/prof/serve.log || { echo "profile-serve: serve did not start: $(cat out/prof/serve.log)" >&2; exit 1; }
if [ "$kind" = iperf3 ]; then
  streams=${2:-4}
  reverse=${3:-}
  [ "$reverse" = "-R" ] || { [ -z "$reverse" ] || { echo "profile-serve: third argument must be -R or nothing" >&2; exit 2; }; }
  # Who pays for the transfer: serve's own CPU (main thread, other threads), the client's (iperf3 -V), and the
  # client's retransmissions with how many of them the receiver reported as duplicates (DSACK, i.e. spurious).
  ip netns exec "$A" nstat -n
  before=$(thread_ticks "$serve_pid")
  ip netns exec "$A" iperf3 -c $NET.2 -P "$streams" $reverse ${TSVISOR_PROF_CC:+-C "$TSVISOR_PROF_CC"} -t "${4:-6}" -f g -V \
    | grep -E 'SUM.*(sender|receiver)|^\[ *[0-9]+\].*(sender|receiver)|CPU Utilization' | tail -3
  after=$(thread_ticks "$serve_pid")
  echo "$before | $after" | awk -v pid="$serve_pid" '{
      for (i = 1; i <= NF; i++) { if ($i == "|") { late = 1; continue }; split($i, t, ":"); if (late) a[t[1]] = t[2]; else b[t[1]] = t[2] }
      for (k in a) { d = a[k] - b[k]; if (k == pid) main += d; else rest += d }
      printf "serve CPU: main thread %.2f s, other threads %.2f s\n", main / 100, rest / 100 }'
  ip netns exec "$A" nstat -z TcpRetransSegs TcpExtTCPDSACKRecvSegs TcpExtTCPSACKReorder | awk 'NR > 1 { c = c " " $1 " " $2 } END { print "client:" c }'
elif [ "$kind" = http ]; then
  ip netns exec "$A" wrk -t 2 -c "${3:-32}" -d "${2:-6}s" --timeout 2s -H 'Connection: close' http://$NET.2/ | grep -E 'Requests/sec|errors'
else
  node cli/tsvisor.js stats --netns "$B" --dev prof-b --json > out/prof/before.json
  ip netns exec "$A" wrk -t 2 -c "${3:-32}" -d "${2:-6}s" --timeout 2s --latency http://$NET.2/ | grep -E 'Requests/sec|errors|50%|99%'
  node cli/tsvisor.js stats --netns "$B" --dev prof-b --json > out/prof/after.json
  # Per request: what a keep-alive exchange costs the serve (load does not change these counts).
  node -e '
    const b = require("./out/prof/before.json"), a = require("./out/prof/after.json");
    const n = a["service.http.tcp.requests"] - b["service.http.tcp.requests"];
    const per = (k) => ((a[k] - b[k]) / n).toFixed(3);
    console.log(`per request (${n}): frames in ${per("hostlink.rxFrames")}, out ${per("hostlink.txFrames")}, send calls ${per("hostlink.txCalls")}, ring wake-ups ${per("hostlink.rxPoll.wakeups")}, TCP segments in ${per("tcp.segmentsReceived")}, out ${per("tcp.segmentsSent")}`);
  '
fi
kill -INT "$serve_pid"
wait "$serve_pid" || true
serve_pid=
# The serve process's main thread writes the largest profile (the others are the TypeScript loader's thread).
main=$(ls -S out/prof/*.cpuprofile | head -1)
node --import tsx bench/profile-top.ts "$main" 25
