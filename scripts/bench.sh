#!/usr/bin/env bash
# Set up, build and run every csumfix benchmark, as root:  scripts/bench.sh
# Prints one table, writes build/bench/results/{results.json,results.csv,results.txt,plot.svg}
# and build/bench/results/{churn.txt,churn.json,churn-serve.log}; with --publish copies them to
# bench/results/ (latest.svg, latest.json, latest.txt, latest-churn.txt).
#   --runs N       micro-benchmark runs per figure (median; default 7)
#   --rounds N     throughput rounds per configuration (median; default 3, at least 3 advised)
#   --seconds N    iperf3 duration per run (default 5)
#   --quick        fewer repetitions everywhere (a smoke run, not for publishing)
#   --profile      also sample csumfix pass/verify with `perf record -e cpu-clock` and print
#                  where the time goes (this kernel's KVM guest has no PMU: no hardware events),
#                  and in the lab one UDP 1400 B run per fill mechanism and of iptables under
#                  `perf record -a` (bench/lab_bench.py --profile fills)
#   --publish      copy the results to bench/results/ (for BENCHMARKS.md)
#   --mechanisms L fill mechanisms the lab compares, comma-separated (default: every one
#                  `csumfix probe -j` finds on this kernel: bpf, act-csum, bounce, ifb, and
#                  ifb-mirred, the ifb by selector + mirred, where ifb goes by redirect)
#   --skip-lab     micro-benchmarks only (no namespaces: no lab, no churn)
#   --skip-churn   leave out serve following a bridge (bench/churn_bench.py: attach latency of a
#                  burst of TAPs, leaks over create/delete churn, RSS with many interfaces)
# The lab and churn parts (namespaces, csumfix attachments, iptables) hold
# /tmp/csumfix-netns.lock, like the tests, so they never overlap them. Targets are reported,
# never asserted.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
source "$top/scripts/lib.sh"
csf_need_root

runs=7 rounds=3 seconds=5 quick=0 profile=0 publish=0 skip_lab=0 skip_churn=0 mechanisms=
packets=20000 reps=3
while [[ $# -gt 0 ]]; do
  case $1 in
    --runs) runs=$2; shift ;;
    --rounds) rounds=$2; shift ;;
    --seconds) seconds=$2; shift ;;
    --quick) quick=1 ;;
    --mechanisms) mechanisms=$2; shift ;;
    --profile) profile=1 ;;
    --publish) publish=1 ;;
    --skip-lab) skip_lab=1 ;;
    --skip-churn) skip_churn=1 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

"$top/scripts/deps.sh" >/dev/null
csf_ensure_bpffs
build=${CSUMFIX_BUILD_DIR:-$top/build}
CSUMFIX_BUILD_DIR=$build "$top/scripts/build.sh" >/dev/null
# A private copy of the binaries, so a rebuild of build/ during the run cannot pull them away.
work=$(mktemp -d /tmp/csfbench.XXXXXX)
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
cp "$build/bench/csumfix_bench" "$build/userspace/csumfix" "$work/"
out=$build/bench/results
mkdir -p "$out"

if [[ -z $mechanisms ]]; then
  # Every mechanism this kernel has (the lab attaches at tc ingress, where ifb works too).
  mechanisms=$("$work/csumfix" probe -j | python3 -c '
import json, sys
p = json.load(sys.stdin)
have = {"bpf": p.get("change_tail_clears_partial"), "act-csum": p.get("act_csum"),
        "bounce": True, "ifb": p.get("ifb"), "ifb-mirred": p.get("ifb_redirect")}
print(",".join(m for m, ok in have.items() if ok))')
fi
echo "== fill mechanisms compared in the lab: $mechanisms" >&2
micro_args=(--runs "$runs" --json "$out/micro.json")
lab_args=(--rounds "$rounds" --seconds "$seconds" --packets "$packets" --reps "$reps")
churn_args=()  # 200 TAPs in the burst, 1000 churn cycles, 1000 interfaces at once
if [[ $quick == 1 ]]; then
  micro_args+=(--quick)
  lab_args=(--rounds 1 --seconds 2 --packets 3000 --reps 1)
  churn_args=(--quick)  # 20 TAPs, 50 cycles, 50 at once
fi
if [[ $profile == 1 ]]; then lab_args+=(--profile fills); fi

# Machine description for the report.
python3 - "$out/meta.json" "$runs" "$rounds" "$seconds" <<'PY'
import json, subprocess, sys, time
def run(c):
    return subprocess.run(c, shell=True, capture_output=True, text=True).stdout.strip()
meta = {
    "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    "kernel": run("uname -r"),
    "cpu": run("lscpu | sed -n 's/^Model name: *//p'"),
    "cpus": run("nproc"),
    "hypervisor": run("lscpu | sed -n 's/^Hypervisor vendor: *//p'"),
    "loadavg_start": open("/proc/loadavg").read().split()[:3],
    "runs": int(sys.argv[2]), "rounds": int(sys.argv[3]), "seconds": int(sys.argv[4]),
}
meta["title"] = f"csumfix benchmarks, {meta['date']}, {meta['kernel']}, {meta['cpus']} vCPU"
json.dump(meta, open(sys.argv[1], "w"), indent=1)
PY
python3 - "$out/meta.json" "$top" <<'PY'
import json, subprocess, sys
m = json.load(open(sys.argv[1]))
m["git"] = subprocess.run(["git", "-C", sys.argv[2], "describe", "--always", "--dirty"],
                          capture_output=True, text=True).stdout.strip()
json.dump(m, open(sys.argv[1], "w"), indent=1)
PY

echo "== micro-benchmarks (BPF_PROG_TEST_RUN, userspace baselines, policy)" >&2
"$work/csumfix_bench" "${micro_args[@]}" >&2

if [[ $skip_lab == 0 ]]; then
  echo "== lab (iperf3 throughput, live BPF run time); waiting for /tmp/csumfix-netns.lock" >&2
  flock /tmp/csumfix-netns.lock \
    python3 "$top/bench/lab_bench.py" --csumfix "$work/csumfix" "${lab_args[@]}" \
      --mechanisms "$mechanisms" \
      --json "$out/lab.json"
else
  rm -f "$out/lab.json"
fi

rm -f "$out/churn.json" "$out/churn.txt" "$out/churn-serve.log"
if [[ $skip_lab == 0 && $skip_churn == 0 ]]; then
  echo "== churn (serve following a bridge: burst, churn, many); waiting for" \
    "/tmp/csumfix-netns.lock" >&2
  flock /tmp/csumfix-netns.lock \
    python3 "$top/bench/churn_bench.py" --csumfix "$work/csumfix" "${churn_args[@]}" \
      --json "$out/churn.json" --serve-log "$out/churn-serve.log" > "$out/churn.txt"
fi

if [[ $profile == 1 ]]; then
  echo "== profile: perf record -e cpu-clock on csf_tc_ingress test runs" >&2
  rm -f "$out/profile.txt"
  for act in empty pass observe verify; do
    perf record -q -e cpu-clock -F 20000 -g -o "$work/perf.$act" -- \
      "$work/csumfix_bench" --loop "$act" 64 3 >> "$out/profile.txt" 2>&1 || true
    echo "-- $act (64 B): self time by symbol inside BPF_PROG_TEST_RUN" | tee -a "$out/profile.txt"
    python3 "$top/bench/perf_breakdown.py" "$work/perf.$act" 10 | tee -a "$out/profile.txt"
  done
fi

echo "== results" >&2
python3 "$top/bench/report.py" --micro "$out/micro.json" --lab "$out/lab.json" \
  --meta "$out/meta.json" --out "$out" --svg "$out/plot.svg"
python3 -c "import json,sys; m=json.load(open(sys.argv[1])); m['loadavg_end']=open('/proc/loadavg').read().split()[:3]; json.dump(m,open(sys.argv[1],'w'),indent=1)" "$out/meta.json"
echo "machine: $(nproc) vCPU, $(uname -r); load average at start $(python3 -c "import json; print(' '.join(json.load(open('$out/meta.json'))['loadavg_start']))"), at end $(cut -d' ' -f1-3 /proc/loadavg)"
echo "written: $out/{results.txt,results.json,results.csv,plot.svg}"
if [[ -f $out/churn.txt ]]; then
  echo
  cat "$out/churn.txt"
  echo "written: $out/{churn.txt,churn.json,churn-serve.log}"
fi

if [[ $publish == 1 ]]; then
  mkdir -p "$top/bench/results"
  cp "$out/plot.svg" "$top/bench/results/latest.svg"
  cp "$out/results.json" "$top/bench/results/latest.json"
  cp "$out/results.txt" "$top/bench/results/latest.txt"
  cp "$out/results.csv" "$top/bench/results/latest.csv"
  [[ -f $out/profile.txt ]] && cp "$out/profile.txt" "$top/bench/results/latest-profile.txt"
  [[ -f $out/churn.txt ]] && cp "$out/churn.txt" "$top/bench/results/latest-churn.txt"
  echo "published to bench/results/latest.*"
fi
