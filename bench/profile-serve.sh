#!/usr/bin/env bash
# Profiles `tsvisor serve` under a stock client over a veth with offloads on (as `tsvisor bench` runs it):
#   bash bench/profile-serve.sh iperf3 [STREAMS] [-R] [SECONDS]   bulk TCP to (or, with -R, from) the service
#   bash bench/profile-serve.sh http [SECONDS]                      wrk, a new connection per request
# Writes the serve process's CPU profile to out/prof/ and prints its top self-time functions
# (bench/profile-top.ts) and the client's result. Namespaces tsv-prof-a/-b, addresses 198.18.202.0/24; both are
# removed on exit, also on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-iperf3}
A=tsv-prof-a
B=tsv-prof-b
serve_pid=
cleanup() {
  if [ -n "$serve_pid" ] && kill -0 "$serve_pid" 2>/dev/null; then kill -INT "$serve_pid"; wait "$serve_pid" || true; fi
  ip netns del "$A" 2>/dev/null || true
  ip netns del "$B" 2>/dev/null || true
}
trap cleanup EXIT
cleanup
ip netns add "$A"
ip netns add "$B"
ip link add prof-a netns "$A" type veth peer name prof-b netns "$B"
ip -n "$A" addr add 198.18.202.1/24 dev prof-a
ip -n "$A" link set prof-a up
ip -n "$A" link set lo up
ip -n "$B" link set prof-b up
rm -rf out/prof && mkdir -p out/prof
case "$kind" in
  iperf3) service=iperf3 ;;
  http) service=http ;;
  *) echo "profile-serve: unknown client '$kind' (iperf3 or http)" >&2; exit 2 ;;
esac
node --cpu-prof --cpu-prof-dir=out/prof cli/tsvisor.js serve --netns "$B" --dev prof-b \
  --addr 198.18.202.2/24 --service "$service" --no-stats-socket > out/prof/serve.log 2>&1 &
serve_pid=$!
for _ in $(seq 100); do grep -q ready out/prof/serve.log && break; sleep 0.1; done
grep -q ready out/prof/serve.log || { echo "profile-serve: serve did not start: $(cat out/prof/serve.log)" >&2; exit 1; }
if [ "$kind" = iperf3 ]; then
  streams=${2:-4}
  reverse=${3:-}
  [ "$reverse" = "-R" ] || { [ -z "$reverse" ] || { echo "profile-serve: third argument must be -R or nothing" >&2; exit 2; }; }
  ip netns exec "$A" iperf3 -c 198.18.202.2 -P "$streams" $reverse -t "${4:-6}" -f g | grep -E 'SUM|sender|receiver' | tail -2
else
  ip netns exec "$A" wrk -t 2 -c 32 -d "${2:-6}s" --timeout 2s -H 'Connection: close' http://198.18.202.2/ | grep -E 'Requests/sec|errors'
fi
kill -INT "$serve_pid"
wait "$serve_pid" || true
serve_pid=
# The serve process's main thread writes the largest profile (the others are the TypeScript loader's thread).
main=$(ls -S out/prof/*.cpuprofile | head -1)
node --import tsx bench/profile-top.ts "$main" 25
