#!/bin/sh
# Captures real Linux traffic for the wire-format tests into linux.pcap (see README.md).
# Two namespaces joined by a veth, offloads off so every checksum on the wire is complete.
# Run as root from this directory; it removes everything it creates, also on failure.
set -eu
A=tsv-wire-a B=tsv-wire-b
cleanup() {
  [ -n "${TCPDUMP:-}" ] && kill "$TCPDUMP" 2>/dev/null || true
  ip netns del $A 2>/dev/null || true
  ip netns del $B 2>/dev/null || true
}
trap cleanup EXIT INT TERM
ip netns add $A
ip netns add $B
ip link add tsv-wire-va netns $A type veth peer name tsv-wire-vb netns $B
for ns in $A $B; do
  ip -n $ns link set lo up
done
ip netns exec $A ethtool -K tsv-wire-va tx off rx off tso off gso off gro off >/dev/null 2>&1 || true
ip netns exec $B ethtool -K tsv-wire-vb tx off rx off tso off gso off gro off >/dev/null 2>&1 || true
ip -n $A link set tsv-wire-va address 02:00:5e:00:00:0a
ip -n $B link set tsv-wire-vb address 02:00:5e:00:00:0b
ip -n $A addr add 198.18.0.1/24 dev tsv-wire-va
ip -n $B addr add 198.18.0.2/24 dev tsv-wire-vb
ip -n $A addr add fd74:7376::1/64 dev tsv-wire-va nodad
ip -n $B addr add fd74:7376::2/64 dev tsv-wire-vb nodad
ip -n $B link set tsv-wire-vb up
ip netns exec $B tcpdump -Z root -i tsv-wire-vb -U -s 0 -w linux.pcap 2>/dev/null &
TCPDUMP=$!
sleep 1
# A comes up while B listens, so A's MLD reports and router solicitation are captured too.
ip -n $A link set tsv-wire-va up
sleep 2
ip netns exec $A ping -c 1 -W 1 198.18.0.2 >/dev/null
ip netns exec $A ping -6 -c 1 -W 1 fd74:7376::2 >/dev/null
ip netns exec $A ping -c 1 -W 1 -s 3000 198.18.0.2 >/dev/null
ip netns exec $A ping -6 -c 1 -W 1 -s 3000 fd74:7376::2 >/dev/null
ip netns exec $A ping -c 1 -W 1 -R 198.18.0.2 >/dev/null
ip netns exec $A ping -c 1 -W 1 -T tsonly 198.18.0.2 >/dev/null
# Nobody listens on port 9: B answers with ICMP port unreachable.
echo hello-wire | ip netns exec $A socat - UDP4-SENDTO:198.18.0.2:9,sourceport=40000
echo hello-wire6 | ip netns exec $A socat - UDP6-SENDTO:[fd74:7376::2]:9,sourceport=40000
sleep 1
kill "$TCPDUMP"
wait "$TCPDUMP" || true
TCPDUMP=
# *.pcap is git-ignored: keep the frames as hex, index = tshark frame number (entry 0 unused).
python3 - <<'PY'
import json, struct
b = open('linux.pcap', 'rb').read()
frames, off = [''], 24
while off + 16 <= len(b):
    incl = struct.unpack_from('<I', b, off + 8)[0]
    frames.append(b[off + 16:off + 16 + incl].hex())
    off += 16 + incl
with open('linux.json', 'w') as f:
    json.dump(frames, f, indent=0)
    f.write('\n')
PY
