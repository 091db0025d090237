#!/usr/bin/env bash
# csumfix demo on a throwaway lab, as root:  scripts/demo.sh
# Sets up (packages, build), makes two network namespaces joined by a veth pair, attaches csumfix
# in observe mode on both tc hooks of one end, sends TCP and UDP traffic with iperf3, prints the
# per-class counters, and removes everything it made.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
source "$top/scripts/lib.sh"
csf_need_root
"$top/scripts/deps.sh" >/dev/null
csf_ensure_bpffs
"$top/scripts/build.sh" >/dev/null
C=$top/build/userspace/csumfix

a=csfdemo-a-$$ b=csfdemo-b-$$
cleanup() {
  "$C" -n "$a" detach --all >/dev/null 2>&1 || true
  ip netns pids "$b" 2>/dev/null | xargs -r kill 2>/dev/null || true
  ip netns del "$a" 2>/dev/null || true
  ip netns del "$b" 2>/dev/null || true
}
trap cleanup EXIT
ip netns add "$a"; ip netns add "$b"
ip -n "$a" link add csfd0 type veth peer name csfd1 netns "$b"
ip -n "$a" addr add 10.203.0.1/24 dev csfd0; ip -n "$b" addr add 10.203.0.2/24 dev csfd1
ip -n "$a" addr add fd00:203::1/64 dev csfd0 nodad; ip -n "$b" addr add fd00:203::2/64 dev csfd1 nodad
for n in "$a" "$b"; do ip -n "$n" link set lo up; done
ip -n "$a" link set csfd0 up; ip -n "$b" link set csfd1 up

echo "== lab: namespaces $a <-veth-> $b; csumfix observes both directions of csfd0"
"$C" -n "$a" attach csfd0 --both --action observe
"$C" -n "$a" status
ip netns exec "$b" iperf3 -s -D -1 -p 5201 >/dev/null
sleep 0.5
echo "== TCP (IPv4), 2 s"
ip netns exec "$a" iperf3 -c 10.203.0.2 -p 5201 -t 2 | tail -3 | head -1
ip netns exec "$b" iperf3 -s -D -1 -p 5201 >/dev/null
sleep 0.5
echo "== UDP (IPv6), 1 s"
ip netns exec "$a" iperf3 -6 -u -b 50M -c fd00:203::2 -p 5201 -t 1 | grep -E 'receiver' || true
echo
echo "== counters: locally generated TCP/UDP over veth is CHECKSUM_PARTIAL ('partial'),"
echo "   replies and control packets arrive complete"
"$C" -n "$a" stats csfd0
"$C" -n "$a" detach csfd0
echo "== detached; lab removed on exit"
