#!/usr/bin/env bash
# The kernel matrix: boot each Debian kernel of vmtests/kernels.txt under virtme-ng (QEMU, TCG) and
# run in it: csumfix probe -j (the mechanism must be the one kernels.txt expects), csumfix check,
# the differential suite and the real-traffic netns tests; then check the guest's dmesg for splats.
# As root:
#   vmtests/run.sh [options] [NAME ...]     NAMEs from kernels.txt; none = every kernel
#   --ci            the kernels marked `ci` in kernels.txt
#   --smoke         CI's smoke (.ci/run): only the oldest kernel of the list (lowest version),
#                   with probe (mechanism asserted), check, the BPF suite (the differential at
#                   5,000 cases) and of the netns suite only the fill tests (PartialFill.*, every
#                   mechanism that kernel has); VM timeout 2400 s unless CSUMFIX_VM_TIMEOUT is set
#   --no-build      do not run scripts/deps.sh and scripts/build.sh first (scripts/test.sh --vm)
#   --build-dir D   csumfix build to test (default $CSUMFIX_BUILD_DIR or build/)
#   --list          print the matrix and exit
#   --jobs N        boot up to N kernels at once (default $CSUMFIX_VM_JOBS or 1). Each QEMU runs
#                   single-threaded TCG, i.e. one host core: on 2 cores, --jobs 2 halves the time
#   --netns-filter F  only the netns tests matching the gtest filter F (to run again what failed;
#                   the summary marks such a run "filtered": it is not the whole suite)
#   --shards N      split each kernel's gtest suites over N guests (gtest sharding: every guest
#                   runs probe and check, and 1/N of the BPF and netns tests; the kernel passes
#                   only if every shard does). Each guest is its own kernel, so shards share
#                   nothing. With --jobs N they run at once: on 2 cores, --shards 2 --jobs 2
#                   roughly halves a kernel's time. Default $CSUMFIX_VM_SHARDS or 1
#   --lab           instead of the tests: the interleaved throughput lab (bench/lab_bench.py)
#                   in the guest, every fill mechanism its probe finds beside iptables CHECKSUM
#                   and tx off; writes lab.json and lab.txt (ratios to "none" of the same round:
#                   TCG makes absolute figures meaningless). CSUMFIX_LAB_ROUNDS (default 3),
#                   CSUMFIX_LAB_SECONDS (default 5); CSUMFIX_LAB_PROFILE=1 also profiles one
#                   UDP 1400 B run per fill mechanism and of iptables with perf in the guest
# Environment: CSUMFIX_VM_CACHE (default /var/lib/csumfix-vm), CSUMFIX_VM_TIMEOUT (seconds per VM,
# default 5400: the suite takes ~4000 s under TCG on a 2-core host), CSUMFIX_VM_MEMORY (default 4G), CSUMFIX_VM_CPUS (default 2),
# CSUMFIX_DIFF_CASES (default 5000 in the guest), CSUMFIX_DIFF_SEED (passed on).
#
# Sets itself up from nothing: host packages from bookworm (qemu-system-x86, busybox-static, udev,
# python3-requests, ...), virtme-ng from trixie by `apt-get download` + `dpkg -x` with a private
# apt state (the system's sources and packages stay untouched), each kernel package by
# `apt-get download` + `dpkg -x` + `depmod`. Nothing is installed into /boot.
#
# One run.sh at a time (flock on /tmp/csumfix-vm.lock); within it, --jobs VMs at once.
# A kernel passes only if (1) the guest wrote "pass <nonce>" to its result file as its last step,
# (2) the VM ended before the timeout, (3) the guest's dmesg exists and, like the kernel lines of
# the console log, has no WARNING:/BUG:/Oops/general protection/KASAN/RCU stall/refcount_t splat.
# Everything else — a killed or hung VM, a crash, a stale result — is a failure.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
source "$top/scripts/lib.sh"
csf_need_root

cache=${CSUMFIX_VM_CACHE:-/var/lib/csumfix-vm}
timeout_s=${CSUMFIX_VM_TIMEOUT:-5400}
memory=${CSUMFIX_VM_MEMORY:-4G}
cpus=${CSUMFIX_VM_CPUS:-2}
build=${CSUMFIX_BUILD_DIR:-$top/build}
matrix=$top/vmtests/kernels.txt
do_build=1 ci=0 smoke=0 list=0 names=() jobs=${CSUMFIX_VM_JOBS:-1} netns_filter_opt= lab=0
shards=${CSUMFIX_VM_SHARDS:-1}
while [[ $# -gt 0 ]]; do
  case $1 in
    --ci) ci=1 ;;
    --smoke) smoke=1 ;;
    --no-build) do_build=0 ;;
    --build-dir) build=$(realpath "$2"); shift ;;
    --list) list=1 ;;
    --jobs) jobs=$2; shift ;;
    --netns-filter) netns_filter_opt=$2; shift ;;
    --lab) lab=1 ;;
    --shards) shards=$2; shift ;;
    -h|--help) sed -n '2,36p' "$0"; exit 0 ;;
    -*) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) names+=("$1") ;;
  esac
  shift
done

if ! [[ $jobs =~ ^[1-9][0-9]*$ ]]; then
  echo "run.sh: --jobs needs a positive number, got '$jobs'" >&2; exit 2
fi
if ! [[ $shards =~ ^[1-9][0-9]*$ ]]; then
  echo "run.sh: --shards needs a positive number, got '$shards'" >&2; exit 2
fi

# ---- the matrix ----
declare -A pkg ver expect inci skips archive
order=()
while read -r n p v e c s a _; do
  [[ -z $n || $n == \#* ]] && continue
  if [[ -z $s ]]; then echo "run.sh: $matrix: line for $n has fewer than 6 fields" >&2; exit 2; fi
  pkg[$n]=$p ver[$n]=$v expect[$n]=$e inci[$n]=$c skips[$n]=$s archive[$n]=${a:--}
  case ${archive[$n]} in
    -|bullseye-security) ;;
    *) echo "run.sh: $matrix: $n: unknown archive '${archive[$n]}' (- or bullseye-security)" >&2; exit 2 ;;
  esac
  order+=("$n")
done < "$matrix"
if [[ $list == 1 ]]; then
  grep -v '^#' "$matrix" | grep -v '^$'
  exit 0
fi
netns_filter=$netns_filter_opt
if [[ $smoke == 1 && -n $netns_filter ]]; then
  echo "run.sh: --smoke sets its own netns filter: no --netns-filter" >&2
  exit 2
fi
if [[ $lab == 1 && ( $smoke == 1 || -n $netns_filter || $shards != 1 ) ]]; then
  echo "run.sh: --lab runs no tests: no --smoke, --netns-filter or --shards" >&2
  exit 2
fi
if [[ $smoke == 1 ]]; then
  if [[ ${#names[@]} -gt 0 || $ci == 1 ]]; then
    echo "run.sh: --smoke picks its kernel itself (the oldest of $matrix): no NAME, no --ci" >&2
    exit 2
  fi
  names=("$(printf '%s\n' "${order[@]}" | sort -V | head -n1)")
  netns_filter='PartialFill.*'
  timeout_s=${CSUMFIX_VM_TIMEOUT:-2400}
  echo "run.sh: smoke: the oldest kernel of the list, ${names[0]}; netns tests $netns_filter"
fi
if [[ ${#names[@]} -eq 0 ]]; then
  for n in "${order[@]}"; do
    if [[ $ci == 0 || ${inci[$n]} == ci ]]; then names+=("$n"); fi
  done
fi
for n in "${names[@]}"; do
  if [[ -z ${pkg[$n]:-} ]]; then
    echo "run.sh: no kernel named \"$n\" in $matrix (known: ${order[*]})" >&2
    exit 2
  fi
done

# ---- host setup ----
export DEBIAN_FRONTEND=noninteractive
host_pkgs=(qemu-system-x86 busybox-static udev file kmod python3 python3-argcomplete
           python3-requests python3-pkg-resources)
missing=()
for p in "${host_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "run.sh: installing ${missing[*]} (bookworm)"
  apt-get update -o Acquire::Retries=3 >/dev/null
  apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null
fi

if [[ $do_build == 1 ]]; then
  "$top/scripts/deps.sh"
  CSUMFIX_BUILD_DIR=$build "$top/scripts/build.sh"
fi
for f in userspace/csumfix tests/csumfix_bpf_tests tests/csumfix_netns_tests; do
  if [[ ! -x $build/$f ]]; then
    echo "run.sh: $build/$f is missing: build first (scripts/build.sh) or drop --no-build" >&2
    exit 1
  fi
done

mkdir -p "$cache/debs" "$cache/kernels" "$cache/results"
vmroot=$cache/virtme-ng
# virtme-ng is not in bookworm: take trixie's package without touching the system's apt sources or
# dpkg database: a private source list and list/cache dirs, and no dpkg status.
if [[ ! -f $vmroot/.ok ]]; then
  a=$cache/apt-trixie
  mkdir -p "$a/lists/partial" "$a/cache/archives/partial" "$a/sources.list.d" "$a/preferences.d"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" \
    > "$a/sources.list"
  aopt=(-o "Dir::Etc::SourceList=$a/sources.list" -o "Dir::Etc::SourceParts=$a/sources.list.d"
        -o "Dir::Etc::Preferences=$a/preferences" -o "Dir::Etc::PreferencesParts=$a/preferences.d"
        -o "Dir::State::Lists=$a/lists" -o "Dir::Cache=$a/cache" -o "Dir::State::status=/dev/null"
        -o APT::Sandbox::User=root -o Acquire::Retries=3)
  echo "run.sh: fetching virtme-ng from trixie (private apt state in $a)"
  apt-get "${aopt[@]}" update >/dev/null
  rm -f "$cache"/debs/virtme-ng_*.deb
  (cd "$cache/debs" && apt-get "${aopt[@]}" download virtme-ng >/dev/null)
  deb=$(ls "$cache"/debs/virtme-ng_*.deb)
  rm -rf "$vmroot.tmp" && dpkg -x "$deb" "$vmroot.tmp"
  dpkg-deb -f "$deb" Version > "$vmroot.tmp/.ok"
  rm -rf "$vmroot" && mv "$vmroot.tmp" "$vmroot"
fi
vng=$vmroot/usr/bin/vng
vpath=$vmroot/usr/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
vpy=$vmroot/usr/lib/python3/dist-packages

# virtme-init links /lib/modules/$(uname -r) to the unpacked package's modules (virtme_link_mods
# in virtme/commands/run.py, `mount -t tmpfs none /lib/modules; ln -s ...` in
# virtme/guest/virtme-init). That mount needs /lib/modules to exist in the shared root; a container
# host may have none. An empty directory is harmless to the host.
mkdir -p /lib/modules

# apt_opts ARCHIVE: the apt options for a kernel line's archive column. "-": the system's sources
# (bookworm, -security, -backports). bullseye-security (Debian 11's kernels): a private apt state
# under $cache, as for trixie's virtme-ng; the system's sources and dpkg database stay untouched.
apt_opts() {
  aopt=(-o APT::Sandbox::User=root -o Acquire::Retries=3)
  [[ $1 == - ]] && return 0
  local a=$cache/apt-$1
  mkdir -p "$a/lists/partial" "$a/cache/archives/partial" "$a/sources.list.d" "$a/preferences.d"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security $1 main" \
    > "$a/sources.list"
  aopt+=(-o "Dir::Etc::SourceList=$a/sources.list" -o "Dir::Etc::SourceParts=$a/sources.list.d"
         -o "Dir::Etc::Preferences=$a/preferences" -o "Dir::Etc::PreferencesParts=$a/preferences.d"
         -o "Dir::State::Lists=$a/lists" -o "Dir::Cache=$a/cache" -o "Dir::State::status=/dev/null")
}

# ensure_kernel NAME: fetch and unpack the package, run depmod; sets kimg.
# ensure_kernel NAME [check]: fetch and unpack the kernel unless it is there; sets kimg. With
# `check`, only looks (guests start in parallel: only the loop before them fetches).
ensure_kernel() {
  local n=$1 p=${pkg[$1]} v=${ver[$1]}
  local root=$cache/kernels/$p
  if [[ ! -f $root/.ok || $(cat "$root/.ok") != "$v" ]]; then
    [[ ${2:-} == check ]] && return 1
    local aopt
    apt_opts "${archive[$n]}"
    if ! apt-cache "${aopt[@]}" show "$p=$v" >/dev/null 2>&1; then
      apt-get "${aopt[@]}" update >/dev/null
    fi
    if ! apt-cache "${aopt[@]}" show "$p=$v" >/dev/null 2>&1; then
      echo "run.sh: $p=$v is not in the archive (any more): see \`apt-cache madison $p\`, pick a version and change $matrix" >&2
      return 1
    fi
    echo "run.sh: fetching $p=$v"
    local t0=$SECONDS deb kver
    rm -f "$cache/debs/${p}_"*.deb
    (cd "$cache/debs" && apt-get "${aopt[@]}" download "$p=$v" >/dev/null) ||
      { echo "run.sh: apt-get download $p=$v failed" >&2; return 1; }
    deb=$(ls "$cache/debs/${p}_"*.deb) || return 1
    rm -rf "$root.tmp"
    dpkg -x "$deb" "$root.tmp" || { echo "run.sh: dpkg -x $deb failed" >&2; return 1; }
    kver=$(ls "$root.tmp/lib/modules") || return 1
    # Debian's packages ship no modules.dep (the postinst runs depmod); modprobe needs it.
    depmod -a -b "$root.tmp" "$kver" || { echo "run.sh: depmod for $kver failed" >&2; return 1; }
    echo "$v" > "$root.tmp/.ok"
    rm -rf "$root" && mv "$root.tmp" "$root" || return 1
    echo "run.sh: $p unpacked in $((SECONDS - t0)) s ($(du -sh "$deb" | cut -f1) download)"
  fi
  kimg=$(ls "$root"/boot/vmlinuz-*)
}

# Single-threaded TCG: with QEMU's default multi-threaded TCG and 2 vCPUs, 6.12.117 died at boot
# with "Oops: int3" in get_random_u64 (a text_poke site: code patched on one vCPU, stale on the
# other). One host thread still gives the guest 2 CPUs (per-CPU maps, concurrency).
qopts="-accel tcg,thread=single"
# Modules for q35 devices the tests never use: udev's coldplug loads them (xz, under TCG) and that
# took 80 s of a 140 s boot. module_blacklist= is the kernel's own list (kernel/module/main.c).
kargs="module_blacklist=kvm,kvm_amd,kvm_intel,ccp,irqbypass,sr_mod,cdrom,iTCO_wdt,iTCO_vendor_support,intel_pmc_bxt,i6300esb,psmouse,pcspkr,serio_raw,evdev,i2c_i801,i2c_smbus,lpc_ich,ahci,libahci,libata"

splats='WARNING:|BUG:|Oops|general protection|KASAN|RCU stall|detected stall|refcount_t'

exec 9>/tmp/csumfix-vm.lock
if ! flock -n 9; then
  echo "run.sh: another VM run holds /tmp/csumfix-vm.lock; waiting (one VM at a time on 2 cores)"
  flock 9
fi

stamp=$(date -u +%Y%m%dT%H%M%SZ)
results=$cache/results/$stamp
mkdir -p "$results"
echo "run.sh: kernels ${names[*]}; results in $results; build $build; timeout ${timeout_s}s per VM"
# Kernels are fetched one after the other (apt), then booted up to $jobs at a time; each VM's
# verdict and duration go to files in its result directory.
for n in "${names[@]}"; do
  mkdir -p "$results/$n"
  echo FAIL > "$results/$n/verdict"; echo 0 > "$results/$n/seconds"
  ensure_kernel "$n" > "$results/$n/setup.log" 2>&1 ||
    echo "run.sh: $n: could not get the kernel (see $results/$n/setup.log)"
  cat "$results/$n/setup.log"
done

# The directory of one guest: the kernel's, or with --shards its shard's below it.
guest_dir() { if [[ $shards == 1 ]]; then echo "$results/$1"; else echo "$results/$1/shard$2"; fi; }

run_one() {
  local n=$1 shard=$2 out kimg nonce env_args cmd t0 vrc why label=$1
  out=$(guest_dir "$n" "$shard")
  [[ $shards != 1 ]] && label+=" shard $shard of $shards"
  mkdir -p "$out"
  echo FAIL > "$out/verdict"; echo 0 > "$out/seconds"
  if ! ensure_kernel "$n" check >/dev/null 2>&1 || [[ ! -f $kimg ]]; then   # sets kimg
    echo "the kernel could not be fetched (setup.log)" > "$out/why.txt"
    return
  fi
  nonce=$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')
  env_args="CSUMFIX_DIFF_CASES=${CSUMFIX_DIFF_CASES:-5000}"
  [[ -n ${CSUMFIX_DIFF_SEED:-} ]] && env_args+=" CSUMFIX_DIFF_SEED=$CSUMFIX_DIFF_SEED"
  [[ $shards != 1 ]] && env_args+=" GTEST_TOTAL_SHARDS=$shards GTEST_SHARD_INDEX=$shard"
  # Guests side by side share the host's cores: give the tests' deadlines twice the room.
  [[ $jobs != 1 ]] && env_args+=" CSUMFIX_TIME_SCALE=20"
  # The filter goes in a file: the guest's command line is the kernel's (2048 bytes on x86), and
  # a long one hung the boot silently.
  rm -f "$out/netns-filter" "$out/lab"
  [[ -n $netns_filter ]] && printf '%s\n' "$netns_filter" > "$out/netns-filter"
  # The lab's script and arguments, the same way.
  [[ $lab == 1 ]] && printf '%s\n' "$top/bench/lab_bench.py" "--rounds ${CSUMFIX_LAB_ROUNDS:-3} --seconds ${CSUMFIX_LAB_SECONDS:-5}$([[ ${CSUMFIX_LAB_PROFILE:-0} == 1 ]] && echo " --profile fills")" > "$out/lab"
  # The guest runs its own copy: bash reads a script as it goes, so an edit of vmtests/guest.sh
  # during a run would change what the guest executes midway.
  cp "$top/vmtests/guest.sh" "$out/guest.sh"
  cmd="env $env_args bash $out/guest.sh $out ${expect[$n]} $build ${skips[$n]} $nonce"
  echo "run.sh: $label: booting $kimg (expect ${expect[$n]}); console in $out/console.log"
  t0=$SECONDS
  # timeout signals its whole process group: vng, virtme-run and qemu. /usr/bin/python3: vng
  # needs Debian's python3-argcomplete/-requests, not whatever python3 comes first in PATH.
  (cd "$out" && timeout --kill-after=30 "$timeout_s" env PATH="$vpath" PYTHONPATH="$vpy" \
     /usr/bin/python3 "$vng" --run "$kimg" --disable-kvm --cpus "$cpus" --memory "$memory" \
     --verbose --rwdir="$out" --append "$kargs" --qemu-opts="$qopts" --exec "$cmd" \
     </dev/null >"$out/console.log" 2>&1)
  vrc=$?
  echo $((SECONDS - t0)) > "$out/seconds"
  why=()
  if [[ $vrc -eq 124 || $vrc -eq 137 ]]; then why+=("VM timed out after ${timeout_s}s"); fi
  if [[ ! -f $out/result ]]; then
    why+=("the guest wrote no result (VM died or hung before the end; vng rc=$vrc)")
  elif [[ $(cat "$out/result") != "pass $nonce" ]]; then
    why+=("guest result: $(cat "$out/result")")
  fi
  if [[ ! -s $out/dmesg.txt ]]; then
    why+=("no guest dmesg to check")
  elif grep -E "$splats" "$out/dmesg.txt" > "$out/splats.txt"; then
    why+=("kernel splat in dmesg: $(head -1 "$out/splats.txt")")
  fi
  if grep -E '^\[ *[0-9]+\.[0-9]+\]' "$out/console.log" | grep -E "$splats" >> "$out/splats.txt"; then
    why+=("kernel splat on the console: $(grep -E '^\[ *[0-9]+\.[0-9]+\]' "$out/console.log" | grep -E -m1 "$splats")")
  fi
  if [[ ${#why[@]} -eq 0 ]]; then
    echo PASS > "$out/verdict"
    echo "run.sh: $label: PASS in $(cat "$out/seconds") s"
  else
    echo "run.sh: $label: FAIL in $(cat "$out/seconds") s:"
    printf '    %s\n' "${why[@]}"
    [[ -f $out/guest.log ]] && grep -E 'FAILED|MISMATCH|NOT ALLOWED' "$out/guest.log" | sed 's/^/    /'
  fi
  { printf '%s\n' "${why[@]}"; } > "$out/why.txt"
}

set +e
running=0
for n in "${names[@]}"; do
  for ((k = 0; k < shards; k++)); do
    if [[ $running -ge $jobs ]]; then wait -n; running=$((running - 1)); fi
    run_one "$n" "$k" &
    running=$((running + 1))
  done
done
wait
set -e
# A sharded kernel passes only if every shard did; its time is the slowest shard's (the shards
# ran at once when --jobs >= --shards), its why.txt every shard's.
if [[ $shards != 1 ]]; then
  for n in "${names[@]}"; do
    v=PASS t=0
    for ((k = 0; k < shards; k++)); do
      d=$(guest_dir "$n" "$k")
      [[ $(cat "$d/verdict" 2>/dev/null) == PASS ]] || v=FAIL
      sec=$(cat "$d/seconds" 2>/dev/null || echo 0)
      [[ $sec -gt $t ]] && t=$sec
    done
    echo "$v" > "$results/$n/verdict"; echo "$t" > "$results/$n/seconds"
    for ((k = 0; k < shards; k++)); do
      sed "s/^/shard $k: /" "$(guest_dir "$n" "$k")/why.txt" 2>/dev/null
    done > "$results/$n/why.txt"
    cp "$(guest_dir "$n" 0)/probe.json" "$results/$n/probe.json" 2>/dev/null || true
  done
fi
declare -A verdict secs
npass=0 nfail=0
for n in "${names[@]}"; do
  verdict[$n]=$(cat "$results/$n/verdict") secs[$n]=$(cat "$results/$n/seconds")
  if [[ ${verdict[$n]} == PASS ]]; then npass=$((npass + 1)); else nfail=$((nfail + 1)); fi
done

{
  echo "# vmtests/run.sh $stamp; binaries from $build; $top at $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo ?)${netns_filter:+; filtered: netns tests $netns_filter only}$([[ $shards != 1 ]] && echo "; $shards shards per kernel")$([[ $lab == 1 ]] && echo "; the throughput lab, no tests")"
  printf '%-10s %-9s %-10s %-6s %s\n' kernel expect probe result seconds
  for n in "${names[@]}"; do
    got=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["mechanism"])' \
            "$results/$n/probe.json" 2>/dev/null || echo "-")
    printf '%-10s %-9s %-10s %-6s %s\n' "$n" "${expect[$n]}" "$got" "${verdict[$n]}" "${secs[$n]}"
  done
} | tee "$results/summary.txt"
if [[ $lab == 1 ]]; then
  for n in "${names[@]}"; do
    [[ -f $results/$n/lab.txt ]] && { echo "== $n"; cat "$results/$n/lab.txt"; }
  done
fi
echo "vmtests: $npass passed, $nfail failed"
[[ $nfail -eq 0 ]]
