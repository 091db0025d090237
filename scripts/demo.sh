#!/usr/bin/env bash
# csumfix demo on a throwaway lab, as root:  scripts/demo.sh
# Sets up (packages, build), then shows the field problem and the fix: two network namespaces
# joined by a veth pair; UDP sent from one is CHECKSUM_PARTIAL, so a dhclient-like AF_PACKET reader
# in the other sees seeds (TP_STATUS_CSUMNOTREADY, checksum that does not verify). csumfix is
# attached (the probe picks the fill mechanism), the reader accepts every datagram, the counters
# say what happened, iperf3 runs through it, and everything is removed at the end.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
source "$top/scripts/lib.sh"
csf_need_root
"$top/scripts/deps.sh" >/dev/null
csf_ensure_bpffs
"$top/scripts/build.sh" >/dev/null
C=$top/build/userspace/csumfix

a=csfdemo-a-$$ b=csfdemo-b-$$ tmp=$(mktemp -d)
cleanup() {
  "$C" -n "$a" detach --all >/dev/null 2>&1 || true
  for n in "$a" "$b"; do
    ip netns pids "$n" 2>/dev/null | xargs -r kill 2>/dev/null || true
    ip netns del "$n" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
ip netns add "$a"; ip netns add "$b"
ip -n "$a" link add csfd0 type veth peer name csfd1 netns "$b"
ip -n "$a" addr add 10.203.0.1/24 dev csfd0; ip -n "$b" addr add 10.203.0.2/24 dev csfd1
for n in "$a" "$b"; do ip -n "$n" link set lo up; done
ip -n "$a" link set csfd0 up; ip -n "$b" link set csfd1 up

# Send 20 UDP datagrams a -> b while the raw reader listens in b; print what it saw.
round() {
  local port=$1
  rm -f "$tmp/ready"
  ip netns exec "$b" python3 "$top/scripts/raw_reader.py" csfd1 "$port" 20 "$tmp/ready" > "$tmp/out" &
  local reader=$!
  for _ in $(seq 50); do [[ -e $tmp/ready ]] && break; sleep 0.1; done
  ip netns exec "$a" python3 -c "import socket,time
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)
for _ in range(20): s.sendto(b'lease please'*20,('10.203.0.2',$port)); time.sleep(0.005)"
  wait "$reader"
  read -r got notready valid < "$tmp/out"
  echo "   raw reader on csfd1: $got datagrams, $notready with TP_STATUS_CSUMNOTREADY, $valid with a checksum that verifies"
}

echo "== lab: namespaces $a (csfd0) <-veth-> $b (csfd1)"
echo "== 1. without csumfix: locally sent UDP over veth is CHECKSUM_PARTIAL"
round 6701
echo "   (a dhclient or IDS reading raw frames rejects these; the UDP socket would still get them)"
echo
echo "== 2. csumfix probe: which fill mechanism this kernel gets"
"$C" probe
echo
echo "== 3. csumfix attach csfd0 --both --action fill"
"$C" -n "$a" attach csfd0 --both --action fill
"$C" -n "$a" status
round 6702
echo
echo "== 4. TCP through it: iperf3, 2 s"
ip netns exec "$b" iperf3 -s -1 -D -p 5201 >/dev/null
sleep 0.5
ip netns exec "$a" iperf3 -c 10.203.0.2 -p 5201 -t 2 | grep -E 'receiver' || true
echo
echo "== 5. counters (TCP super-frames are GSO: counted and left to segmentation)"
"$C" -n "$a" stats csfd0
"$C" -n "$a" detach csfd0
echo "== detached; the lab is removed on exit"
