#!/usr/bin/env bash
# packaging/systemd/csumfix.service: `systemd-analyze verify` accepts it, its offline security
# exposure stays low, its capability bounding set is exactly the three csumfix needs, and with
# exactly those (setpriv, as the unit runs) the unit's ExecStartPre check of the example config
# succeeds in a throwaway network namespace holding the example's interfaces.
# usage: systemd_unit_test.sh CSUMFIX_BINARY PACKAGING_DIR      (root; takes the netns lock)
set -euo pipefail
bin=$1; pkg=$2
unit=$pkg/systemd/csumfix.service
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v systemd-analyze >/dev/null || fail "systemd-analyze missing: run scripts/deps.sh"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# verify checks that ExecStart binaries exist: point them at the built binary, nothing else.
sed "s|/usr/sbin/csumfix|$bin|g" "$unit" > "$tmp/csumfix.service"
grep -q "^ExecStart=$bin serve --config /etc/csumfix/csumfix.toml \$CSUMFIX_ARGS$" "$tmp/csumfix.service" \
  || fail "ExecStart is not 'csumfix serve --config /etc/csumfix/csumfix.toml \$CSUMFIX_ARGS'"
for k in Type=notify EnvironmentFile=-/etc/default/csumfix; do
  grep -qxF "$k" "$unit" || fail "unit lacks $k"
done
out=$(systemd-analyze verify "$tmp/csumfix.service" 2>&1) || fail "systemd-analyze verify: $out"
[[ -z $out ]] || fail "systemd-analyze verify printed warnings: $out"
echo "ok: systemd-analyze verify"

sec=$(systemd-analyze security --offline=yes "$tmp/csumfix.service" 2>&1) \
  || fail "systemd-analyze security: $sec"
score=$(sed -n 's/.*Overall exposure level for csumfix.service: \([0-9.]*\).*/\1/p' <<<"$sec")
[[ -n $score ]] || fail "no exposure score in: $sec"
awk -v s="$score" 'BEGIN { exit !(s <= 4.0) }' \
  || fail "exposure $score > 4.0 (systemd-analyze security --offline=yes)"
echo "ok: offline exposure $score"

want="CAP_BPF CAP_NET_ADMIN CAP_PERFMON"
got=$(sed -n 's/^CapabilityBoundingSet=//p' "$unit")
[[ $got == "$want" ]] || fail "CapabilityBoundingSet=$got, want $want"
for k in NoNewPrivileges=yes ProtectSystem=strict "ReadWritePaths=/sys/fs/bpf /run/csumfix" \
         ProtectHome=yes PrivateTmp=yes \
         "RestrictAddressFamilies=AF_UNIX AF_NETLINK AF_INET AF_INET6" \
         "ExecStartPre=+/usr/sbin/csumfix probe"; do
  grep -qxF "$k" "$unit" || fail "unit lacks $k"
done
echo "ok: capabilities and sandbox settings"

# The unit's capability set is enough for the unit's commands (SECURITY.md measured attach).
[[ $(id -u) -eq 0 ]] || fail "the capability part needs root (scripts/test.sh runs as root)"
ns=csfpkg$$
cp "$pkg/csumfix.toml" "$tmp/example.toml"
flock /tmp/csumfix-netns.lock bash -euo pipefail -c '
  ns=$1; bin=$2; cfg=$3
  ip netns add "$ns"
  trap "ip netns del $ns" EXIT
  # A fresh namespace has none of the interfaces the example names: waited for, not an error.
  nsenter --net=/run/netns/$ns setpriv --bounding-set -all,+bpf,+net_admin,+perfmon \
    --inh-caps -all "$bin" serve --config "$cfg" --check-config
  # and the check is real: a rule naming an interface no device can have fails (a missing one
  # only waits for it)
  { cat "$cfg"; printf "\n[[rule]]\niface = \"csf/pk\"\naction = \"fill\"\n"; } > "$cfg.bad"
  if nsenter --net=/run/netns/$ns "$bin" serve --config "$cfg.bad" --check-config 2>/dev/null; then
    echo "FAIL: --check-config accepted a rule on an impossible interface name" >&2; exit 1
  fi
'  _ "$ns" "$bin" "$tmp/example.toml" < /dev/null \
  || fail "serve --check-config of the example with the unit's capabilities"
echo "ok: example config checks with only CAP_BPF CAP_NET_ADMIN CAP_PERFMON"

# Type=notify: serve tells systemd READY=1 only once the config is applied. A stand-in for
# systemd's notify socket receives it; at that moment the interface the config names must
# already be attached.
cat > "$tmp/notify.toml" <<'TOML'
[[interface]]
name = "csfnt0"
action = "observe"
TOML
flock /tmp/csumfix-netns.lock bash -euo pipefail -c '
  ns=$1; bin=$2; cfg=$3; tmp=$4
  ip netns add "$ns"
  serve=
  cleanup() {
    [[ -n $serve ]] && kill "$serve" 2>/dev/null && wait "$serve" 2>/dev/null || true
    "$bin" -n "$ns" detach --all >/dev/null 2>&1 || true
    ip netns del "$ns"
  }
  trap cleanup EXIT
  ip -n "$ns" link add csfnt0 type veth peer name csfnt1
  ip -n "$ns" link set csfnt0 up
  ip -n "$ns" link set csfnt1 up
  python3 - "$tmp/notify.sock" "$ns" "$bin" > "$tmp/notify.out" 2>&1 <<PY &
import json, socket, subprocess, sys
sock, ns, binary = sys.argv[1:4]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sock)
s.settimeout(60)
while True:
    msg = s.recv(4096).decode()
    print("notify:", msg.replace("\n", " | "))
    if "READY=1" in msg.split("\n"):
        break
st = json.loads(subprocess.run([binary, "-n", ns, "status", "-j"], capture_output=True,
                               text=True, check=True).stdout)
names = [i["ifname"] for i in st]
print("attached at READY=1:", names)
sys.exit(0 if "csfnt0" in names else 1)
PY
  listener=$!
  for _ in $(seq 50); do [[ -S $tmp/notify.sock ]] && break; sleep 0.1; done
  NOTIFY_SOCKET=$tmp/notify.sock "$bin" -n "$ns" serve --config "$cfg" --state "$tmp/serve.json" \
    2> "$tmp/serve.log" &
  serve=$!
  wait "$listener" || { cat "$tmp/notify.out" "$tmp/serve.log" >&2; exit 1; }
  cat "$tmp/notify.out"
'  _ "csfnt$$" "$bin" "$tmp/notify.toml" "$tmp" < /dev/null \
  || fail "serve did not notify READY=1 with the config applied"
echo "ok: Type=notify: READY=1 once the config is applied"
