#!/usr/bin/env bash
# Runs INSIDE a virtme-ng guest started by vmtests/run.sh (root, host rootfs shared read-only with
# tmpfs/overlay on /run, /tmp, /var/...). Not meant to be run by hand.
#   guest.sh OUT EXPECT BUILD SKIPS NONCE
# OUT     host directory shared read-write (--rwdir): every log, the XML reports, dmesg, result
# EXPECT  mechanism `csumfix probe -j` must report
# BUILD   csumfix build directory (userspace/csumfix, tests/csumfix_*_tests)
# SKIPS   comma-separated gtest names allowed to skip here, or -
# NONCE   written into the result so the host cannot read a stale one
# The run passes only if OUT/result is "pass NONCE", written as the very last step after every
# step succeeded; anything else (a killed VM, a crash, a failed step) leaves no such line.
set -uo pipefail
out=$1 expect=$2 build=$3 skips=$4 nonce=$5
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# /root is not writable in the guest (virtme-ng overlays only /etc /lib /home /opt /srv /usr /var
# /tmp: virtme_ng/run.py _get_virtme_overlay_rwdir); tshark and friends want a writable HOME.
export HOME=/tmp/csf-home LC_ALL=C
mkdir -p "$HOME"
cd /tmp || exit 1
export CSUMFIX_BIN=$build/userspace/csumfix
export CSUMFIX_EXPECT_MECHANISM=$expect  # tests/netns/mechanisms.cc: `auto` must pick it
export CSUMFIX_DIFF_CASES=${CSUMFIX_DIFF_CASES:-5000}
# The attach/detach leak tests (FaultInjection.*Cycles*) run 40 cycles here, not 100 and 1000:
# each cycle loads and verifies the BPF object, ten times slower under TCG; a per-cycle leak
# shows in 40 as well, and the full counts run on the host (scripts/test.sh).
export CSUMFIX_FI_CYCLES=${CSUMFIX_FI_CYCLES:-40}
# Deadlines of the netns tests (how long they wait for serve to follow a link) times 10: TCG
# runs about ten times slower than the host.
export CSUMFIX_TIME_SCALE=${CSUMFIX_TIME_SCALE:-10}
csumfix=$CSUMFIX_BIN

failed=()
say() { echo "vmtest[$(uname -r)]: $*" | tee -a "$out/guest.log"; }
save_dmesg() { dmesg > "$out/dmesg.txt" 2>&1 || echo "dmesg failed: $?" > "$out/dmesg.txt"; }
trap save_dmesg EXIT

# step NAME CMD...: run CMD with its output in OUT/NAME.log, record rc and seconds.
step() {
  local name=$1; shift
  local t0=$SECONDS rc
  say "step $name: $*"
  "$@" > "$out/$name.log" 2>&1
  rc=$?
  echo "$name rc=$rc seconds=$((SECONDS - t0))" >> "$out/steps.txt"
  if [[ $rc -ne 0 ]]; then
    failed+=("$name")
    say "step $name FAILED (rc=$rc, $((SECONDS - t0)) s); last lines of $out/$name.log:"
    tail -n 40 "$out/$name.log" | sed 's/^/    /' | tee -a "$out/guest.log"
  else
    say "step $name ok ($((SECONDS - t0)) s)"
  fi
  return 0
}

bpffs() {
  # A fresh kernel has no bpffs mounted (docs/MECHANISMS.md section 7).
  if [[ $(stat -f -c %T /sys/fs/bpf) != bpf_fs ]]; then
    mount -t bpf bpf /sys/fs/bpf || return 1
  fi
  stat -f -c %T /sys/fs/bpf
}

modules() {
  # run.sh links /lib/modules/$(uname -r) to the unpacked Debian package (virtme_link_mods).
  local d=/lib/modules/$(uname -r)
  # A booted Debian system has /dev/net/tun before tun.ko is loaded: kmod-static-nodes.service
  # creates the nodes of modules.devname and opening one loads the module. virtme-init runs no
  # such service (without it the TAP lab failed: "open /dev/net/tun: No such file or directory").
  kmod static-nodes --format=tmpfiles --output=/run/csf-static-nodes.conf || return 1
  systemd-tmpfiles --create --boot /run/csf-static-nodes.conf || return 1   # lines are "c!": boot-only
  ls -l /dev/net/tun || return 1
  ls -l /lib/modules/
  [[ -f $d/modules.dep ]] || { echo "no $d/modules.dep: the kernel's modules are not visible"; return 1; }
  modprobe -n -v act_csum || { echo "modprobe cannot resolve act_csum under $d"; return 1; }
  modprobe -n -v 8021q || { echo "modprobe cannot resolve 8021q under $d"; return 1; }
}

probe() {
  "$csumfix" probe -j > "$out/probe.json" || { echo "csumfix probe -j failed: rc=$?"; cat "$out/probe.json"; return 1; }
  cat "$out/probe.json"
  local got
  got=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["mechanism"])' "$out/probe.json") ||
    { echo "probe output is not JSON with a \"mechanism\" field"; return 1; }
  if [[ $got != "$expect" ]]; then
    echo "MISMATCH: csumfix probe -j reports mechanism \"$got\", vmtests/kernels.txt expects \"$expect\""
    return 1
  fi
  echo "mechanism \"$got\" as expected"
}

# csumfix check --stats, and headroom: every program must verify in at most 3/4 of the verifier's
# budget (1,000,000 processed instructions since Linux 5.2). The count grows with every branch
# whose outcome the verifier keeps apart (a constant flag carried to the end of the program
# doubled the tc programs' walk on 5.10: 490k to 886k), and each attach pays for it again (under
# TCG ~25 s per program on 5.10): a program near the limit fails CI here, not a user's next attach.
check_stats() {
  "$csumfix" check --stats > "$out/check-stats.txt" || { cat "$out/check-stats.txt"; return 1; }
  cat "$out/check-stats.txt"
  python3 - "$out/check-stats.txt" <<'PY'
import re, sys
limit_share = 0.75
bad = 0
for line in open(sys.argv[1]):
    m = re.match(r"(\S+): processed (\d+) insns \(limit (\d+)\)", line)
    if m and int(m[2]) > limit_share * int(m[3]):
        print(f"VERIFIER HEADROOM: {m[1]} took {m[2]} of {m[3]} instructions "
              f"(over {limit_share:.0%}): simplify it before it stops loading")
        bad = 1
sys.exit(bad)
PY
}

# gtest BINARY XML [ARGS]: run it, then fail on any skipped test not in SKIPS (and on a filter
# that matched nothing).
gtest() {
  local bin=$1 xml=$2
  shift 2
  "$bin" --gtest_output="xml:$xml" "$@"
  local rc=$?
  [[ -f $xml ]] || { echo "no XML report $xml (binary crashed?) rc=$rc"; return 1; }
  # Sharded (run.sh --shards), gtest deals the tests out in turn: shard 0 gets the first one, so
  # only there does an empty run mean a filter that matched nothing.
  if ! grep -q '<testcase ' "$xml"; then
    if [[ ${GTEST_SHARD_INDEX:-0} != 0 ]]; then echo "no test in this shard ($*)"; return $rc; fi
    echo "no test ran ($*)"; return 1
  fi
  python3 - "$xml" "$skips" <<'PY' || rc=1
import sys, xml.etree.ElementTree as ET
xml, allowed = sys.argv[1], set() if sys.argv[2] == "-" else set(sys.argv[2].split(","))
bad = []
for tc in ET.parse(xml).iter("testcase"):
    name = f'{tc.get("classname")}.{tc.get("name")}'
    if tc.get("result") == "skipped" or tc.find("skipped") is not None:
        why = tc.find("skipped")
        msg = (why.get("message") or "").strip() if why is not None else ""
        if name in allowed:
            print(f"skip allowed by kernels.txt: {name}: {msg}")
        else:
            bad.append(f"{name}: {msg}")
for b in bad:
    print(f"SKIP NOT ALLOWED on this kernel (a skip here is a failure): {b}")
sys.exit(1 if bad else 0)
PY
  return $rc
}

# The verdict, as the very last step: "pass NONCE" only when every step passed.
finish() {
  save_dmesg
  if [[ ${#failed[@]} -eq 0 ]]; then
    say "all steps passed"
    echo "pass $nonce" > "$out/result"
  else
    say "FAILED steps: ${failed[*]}"
    echo "fail $nonce: ${failed[*]}" > "$out/result"
  fi
  sync
}

say "guest up after $(cut -d' ' -f1 /proc/uptime) s of kernel uptime; expect mechanism $expect"
# How slow this guest is (TCG): tests that wait for a helper process to start have fixed timeouts.
TIMEFORMAT=%R
say "python3 startup: $( { time python3 -c pass; } 2>&1 ) s (host: a few hundredths)"
: > "$out/steps.txt"
step bpffs bpffs
step modules modules
step probe probe
step check check_stats
# run.sh --lab: the throughput lab instead of the tests, every fill mechanism the probe found.
lab() {
  local script args mechs
  { read -r script; read -r args; } < "$out/lab"
  mechs=$(python3 -c 'import json,sys; p=json.load(open(sys.argv[1]))
print(",".join(m for m, ok in (("bpf", p["change_tail_clears_partial"]), ("act-csum", p["act_csum"]), ("bounce", True)) if ok))' "$out/probe.json") || return 1
  echo "fill mechanisms this kernel has: $mechs"
  # shellcheck disable=SC2086
  python3 "$script" --csumfix "$csumfix" $args --mechanisms "$mechs" --skip-live \
    --json "$out/lab-raw.json" || return 1
  python3 - "$out/lab-raw.json" "$out/lab.json" "$(uname -r)" <<'PY' || return 1
import json, sys
j = json.load(open(sys.argv[1]))
j["where"] = f" (in a TCG guest, {sys.argv[3]})"
json.dump(j, open(sys.argv[2], "w"), indent=1)
PY
  python3 "$(dirname "$script")/report.py" --lab "$out/lab.json" --out "$out" > "$out/lab.txt" || return 1
  cat "$out/lab.txt"
}
if [[ -f $out/lab ]]; then
  step lab lab
  finish
  exit 0
fi
# The BPF suites once per object this kernel can load: the object csumfix picks here (auto), and
# the compat object (no bpf_loop) on every kernel, so the differential proves it against the
# reference here too. Where auto is compat (before 5.17) that is one and the same run: it runs
# once (under TCG on 5.10 each run took 300-440 s).
step bpf-tests gtest "$build/tests/csumfix_bpf_tests" "$out/bpf.xml"
compat_gtest() { CSUMFIX_TEST_BPF_OBJECT=compat gtest "$@"; }
if grep -q '(compat object) load on this kernel' "$out/check-stats.txt" 2>/dev/null; then
  say "bpf-tests-compat: csumfix picks the compat object on this kernel (csumfix check), so bpf-tests above already ran the suites on it; not run twice"
else
  step bpf-tests-compat compat_gtest "$build/tests/csumfix_bpf_tests" "$out/bpf-compat.xml"
fi
# CI's smoke (run.sh --smoke) runs only the fill tests, run.sh --netns-filter what it is given:
# the gtest filter is in $out/netns-filter (a file: the command line reaches the guest through
# the kernel's, which a long filter would overflow).
netns_filter=
[[ -f $out/netns-filter ]] && netns_filter=$(cat "$out/netns-filter")
step netns-tests gtest "$build/tests/csumfix_netns_tests" "$out/netns.xml" \
  ${netns_filter:+"--gtest_filter=$netns_filter"}

finish
