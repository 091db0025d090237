#!/usr/bin/env python3
"""csumfix lab benchmarks on real traffic (root; run under `flock /tmp/csumfix-netns.lock`).

Lab, in namespaces this script creates and removes:

    client ns  c0 ──veth── bc ┐                      ┌ bs ──veth── s0  server ns
    10.77.0.1/24               └── br0 (bridge ns) ──┘              10.77.0.2/24

Locally generated TCP/UDP over veth is CHECKSUM_PARTIAL; the bridge forwards it PARTIAL, so a
fill mechanism on the bridge ports has work to do.

1. Throughput (iperf3 client -> server: TCP, UDP datagrams of 1400 B and of 64 B) in each
   configuration, interleaved round by round so that load from other jobs hits all of them
   alike; each as a ratio to the no-program run of the same round, median over the rounds:
     none      no program
     pass      csumfix on both ports, tc ingress, action pass
     fill:M    csumfix on both ports, tc ingress, action fill, mechanism M, for each M of
               `--mechanisms` (default bounce; scripts/bench.sh passes every one `csumfix probe`
               finds: bpf, act-csum, bounce, ifb, and ifb-mirred where ifb goes by redirect:
               the ifb reached through the classic selector and mirred, CSUMFIX_IFB_VIA=mirred,
               as kernels before 6.4 do it)
     iptables  iptables mangle POSTROUTING -j CHECKSUM --checksum-fill (tcp and udp) in the bridge
               ns (bridged IPv4 traverses iptables through br_netfilter: built in here, a module
               in Debian's kernels, loaded; net.bridge.bridge-nf-call-iptables=1 in the bridge ns)
     txoff     ethtool -K bc tx off; ethtool -K bs tx off (the ports complete in software; TSO
               goes with tx checksumming)
   and, beside each throughput, the machine's busy CPU seconds per GB received (/proc/stat over
   the run): the cost that does not depend on how much idle CPU the machine has.
2. Per-packet BPF time on live traffic (bpf_enable_stats(BPF_STATS_RUN_TIME), prog info
   run_time_ns / run_cnt): UDP datagrams of 64/512/1500/9000-byte frames (MTU 9000), csumfix on
   bc ingress with pass / observe / verify / fill. verify runs with tx checksumming off on c0, so
   the packets arrive complete (a "valid" packet, the whole checksum computed in BPF); fill gets
   kernel-PARTIAL packets and uses the bounce mechanism — this cannot be made with a test run.
   Also the sender's wall time per datagram (sendto() runs the whole veth/bridge path in softirq
   on the sending CPU), so the bounce's extra veth traversal shows up there.

3. With --profile CONFIGS (e.g. fill:bpf,iptables): one more run of the --profile-protocol stream
   per configuration under `perf record -a -g -e cpu-clock` (a software clock: no PMU needed, so
   it works in a TCG guest too), counting only the lab's work (iperf3 and softirqs, not idle,
   not other processes): self time by symbol, and the share of those samples whose call chain
   passes through a few functions of interest (the BPF
   programs, bpf_skb_change_tail, skb_checksum_help, csum_partial, netfilter, veth, ifb, ...).

Writes JSON (--json). Everything created is removed on exit, also on errors and SIGTERM.
"""
import argparse
import ctypes
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

PID = os.getpid()
NS_C, NS_B, NS_S = f"csfb-c-{PID}", f"csfb-b-{PID}", f"csfb-s-{PID}"
C_IP, S_IP = "10.77.0.1", "10.77.0.2"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def sh(cmd, check=True, capture=False, timeout=120):
    r = subprocess.run(cmd, shell=True, text=True, timeout=timeout,
                       stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    if check and r.returncode != 0:
        raise RuntimeError(f"`{cmd}` failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout if capture else r.returncode


def nsx(ns, cmd, **kw):
    return sh(f"ip netns exec {ns} {cmd}", **kw)


class Lab:
    def __init__(self, csumfix):
        self.csumfix = os.path.abspath(csumfix)
        self.attached = False
        self.loaded_br_netfilter = False

    def up(self, mtu=1500):
        for ns in (NS_C, NS_B, NS_S):
            sh(f"ip netns add {ns}")
            sh(f"ip -n {ns} link set lo up")
        sh(f"ip -n {NS_C} link add c0 type veth peer name bc netns {NS_B}")
        sh(f"ip -n {NS_S} link add s0 type veth peer name bs netns {NS_B}")
        sh(f"ip -n {NS_B} link add br0 type bridge")
        # iptables sees bridged IPv4 only through br_netfilter (a module in Debian's kernels) and
        # with bridge-nf-call-iptables set in the bridge's namespace (per namespace since 5.3).
        # Only the iptables configuration turns it on (cfg_apply): the others do not pay for
        # the netfilter traversal. A module loaded here is unloaded at the end (down()).
        if not os.path.exists("/proc/sys/net/bridge"):
            sh("modprobe br_netfilter")
            self.loaded_br_netfilter = True
        self.bridge_nf(False)
        for p in ("bc", "bs"):
            sh(f"ip -n {NS_B} link set {p} master br0")
        sh(f"ip -n {NS_C} addr add {C_IP}/24 dev c0")
        sh(f"ip -n {NS_S} addr add {S_IP}/24 dev s0")
        self.set_mtu(mtu)
        for ns, dev in ((NS_C, "c0"), (NS_S, "s0"), (NS_B, "bc"), (NS_B, "bs"), (NS_B, "br0")):
            sh(f"ip -n {ns} link set {dev} up")
        # Wait for the bridge to forward (no STP: immediately, but ARP must resolve).
        for _ in range(50):
            if nsx(NS_C, f"ping -c1 -W1 {S_IP}", check=False) == 0:
                return
            time.sleep(0.1)
        raise RuntimeError("lab: client cannot reach the server through the bridge")

    def bridge_nf(self, on):
        nsx(NS_B, f"sysctl -q -w net.bridge.bridge-nf-call-iptables={1 if on else 0}")

    def set_mtu(self, mtu):
        for ns, dev in ((NS_C, "c0"), (NS_B, "bc"), (NS_B, "bs"), (NS_S, "s0"), (NS_B, "br0")):
            sh(f"ip -n {ns} link set {dev} mtu {mtu}")

    def cf(self, args, check=True):
        return sh(f"{self.csumfix} -n {NS_B} {args}", check=check, capture=True)

    def attach(self, ports, action, mechanism=None, hooks="--ingress"):
        env = ""
        if mechanism == "ifb-mirred":  # the ifb by the selector and mirred (docs/MECHANISMS.md)
            mechanism, env = "ifb", "env CSUMFIX_IFB_VIA=mirred "
        for p in ports:
            mech = f" --mechanism {mechanism}" if mechanism else ""
            sh(f"{env}{self.csumfix} -n {NS_B} attach {p} {hooks} --action {action}{mech}",
               capture=True)
        self.attached = True

    def detach(self):
        if self.attached:
            self.cf("detach --all", check=False)
            self.attached = False

    def status(self):
        return json.loads(self.cf("status -j"))

    def down(self):
        self.detach()
        for ns in (NS_C, NS_B, NS_S):
            pids = sh(f"ip netns pids {ns} 2>/dev/null", check=False, capture=True) or ""
            for p in pids.split():
                try:
                    os.kill(int(p), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            sh(f"ip netns del {ns} 2>/dev/null", check=False)
        if self.loaded_br_netfilter:
            sh("modprobe -r br_netfilter", check=False)


# ---- configurations ------------------------------------------------------------------------
def work_done(lab, name):
    """What the configuration has done so far: packets through the CHECKSUM rules (iptables),
    csumfix's filled counter summed over both ports (fill); None for the others."""
    if name == "iptables":
        out = nsx(NS_B, "iptables -t mangle -L POSTROUTING -v -x -n", capture=True)
        return sum(int(l.split()[0]) for l in out.splitlines() if "CHECKSUM" in l)
    if name == "fill":
        return sum(r.get("filled", 0) for r in json.loads(lab.cf("stats -j")))
    return None


def cfg_apply(lab, name, mech=None):
    if name == "none":
        return
    if name == "pass":
        lab.attach(["bc", "bs"], "pass")
    elif name == "fill":
        lab.attach(["bc", "bs"], "fill", mechanism=mech)
        st = lab.status()
        want = {"ifb-mirred": ("ifb", "mirred"), "ifb": ("ifb", None)}.get(mech, (mech, None))
        for row in st:
            if mech and (row.get("mechanism") != want[0] or
                         (want[1] and row.get("ifb_via") != want[1])):
                raise RuntimeError(f"fill: mechanism {mech} not in status: {json.dumps(st)}")
    elif name == "iptables":
        lab.bridge_nf(True)
        for proto in ("tcp", "udp"):
            nsx(NS_B, f"iptables -t mangle -A POSTROUTING -p {proto} -j CHECKSUM --checksum-fill")
    elif name == "txoff":
        for p in ("bc", "bs"):
            nsx(NS_B, f"ethtool -K {p} tx off")
    else:
        raise ValueError(name)


def cfg_undo(lab, name):
    if name in ("pass", "fill"):
        lab.detach()
    elif name == "iptables":
        nsx(NS_B, "iptables -t mangle -F POSTROUTING")
        lab.bridge_nf(False)
    elif name == "txoff":
        for p in ("bc", "bs"):
            nsx(NS_B, f"ethtool -K {p} tx on")


# ---- iperf3 --------------------------------------------------------------------------------
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_busy_seconds():
    """CPU time spent by the whole machine (every CPU, every context but idle and iowait), from
    the aggregate line of /proc/stat (man 5 proc: user nice system idle iowait irq softirq steal
    ...; guest time is already inside user)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return (sum(v) - v[3] - v[4]) / CLK_TCK


# The measured streams: name -> (iperf3 options, transport).
PROTOCOLS = {"tcp": ("", "tcp"), "udp": ("-u -b 0 -l 1400", "udp"),
             "udp64": ("-u -b 0 -l 64", "udp")}


def iperf(proto, seconds, port):
    srv = subprocess.Popen(["ip", "netns", "exec", NS_S, "iperf3", "-s", "-1", "-p", str(port)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        args = f"iperf3 -c {S_IP} -p {port} -t {seconds} -J"
        args += " " + PROTOCOLS[proto][0]
        cpu0 = cpu_busy_seconds()
        out = nsx(NS_C, args, capture=True, check=False, timeout=seconds + 30)
        cpu = cpu_busy_seconds() - cpu0
        j = json.loads(out)
        if "error" in j:
            raise RuntimeError(f"iperf3 {proto}: {j['error']}")
        end = j["end"]
        # CPU cost of moving the data, whatever the throughput: machine-wide busy CPU seconds
        # during the run per GB received (1e9 bytes). Includes iperf3 itself and its start.
        if PROTOCOLS[proto][1] == "tcp":
            got = end["sum_received"]["bytes"]
            return {"bps": end["sum_received"]["bits_per_second"],
                    "retransmits": end["sum_sent"].get("retransmits", 0),
                    "cpu_s": cpu, "cpu_s_per_gb": cpu / (got / 1e9) if got else None}
        s = end.get("sum_received") or end["sum"]
        got = s.get("bytes", 0)
        return {"bps": s["bits_per_second"], "lost_percent": end["sum"].get("lost_percent", 0),
                "sender_bps": (end.get("sum_sent") or end["sum"])["bits_per_second"],
                "cpu_s": cpu, "cpu_s_per_gb": cpu / (got / 1e9) if got else None}
    finally:
        try:
            srv.wait(timeout=5)
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.wait()


def throughput(lab, configs, rounds, seconds, protocols):
    res = {c: {p: [] for p in protocols} for c in configs}
    port = 5301
    for r in range(rounds):
        for c in configs:
            name, _, mech = c.partition(":")
            cfg_apply(lab, name, mech or None)
            try:
                for proto in protocols:
                    port += 1
                    w0 = work_done(lab, name)
                    x = iperf(proto, seconds, port)
                    w1 = work_done(lab, name)
                    if w0 is not None:
                        x["work"] = w1 - w0
                        if w1 <= w0:
                            raise RuntimeError(f"{c} {proto}: the configuration did nothing "
                                               f"(counter {w0} -> {w1}): the figure would lie")
                    res[c][proto].append(x)
                    log(f"  round {r + 1}/{rounds} {c:14s} {proto:5s}: {x['bps'] / 1e9:7.3f} Gbit/s"
                        + (f" ({x['work']} packets {'through CHECKSUM' if name == 'iptables' else 'filled'})"
                           if "work" in x else ""))
            finally:
                cfg_undo(lab, name)
    out = {}
    for c in configs:
        out[c] = {}
        for proto in protocols:
            bps = [x["bps"] for x in res[c][proto]]
            base = [x["bps"] for x in res[configs[0]][proto]]
            ratios = [b / a for a, b in zip(base, bps)]
            cpu = [x["cpu_s_per_gb"] for x in res[c][proto] if x.get("cpu_s_per_gb")]
            out[c][proto] = {"runs": res[c][proto], "bps_median": statistics.median(bps),
                             "ratio_runs": ratios, "ratio_median": statistics.median(ratios),
                             "cpu_s_per_gb_median": statistics.median(cpu) if cpu else None}
    return out


# ---- where the time goes: perf on one stream per configuration ------------------------------
# Leaf symbols of an idle CPU (not work: left out of the shares).
IDLE = ("safe_halt", "default_idle", "cpu_idle_poll", "mwait_idle", "intel_idle", "acpi_idle",
        "poll_idle", "cpuidle_enter", "halt")
# Processes whose samples count: the streams' ends and the softirqs they cause.
LAB_COMMS = ("iperf3", "ksoftirqd", "swapper")
# Call-chain shares reported for every profiled configuration: name -> symbol prefixes.
INCLUSIVE = {
    "csumfix BPF programs": ("bpf_prog_",),
    "bpf_skb_change_tail": ("bpf_skb_change_tail", "sk_skb_change_tail", "__bpf_skb_change_tail"),
    "bpf_csum_diff": ("bpf_csum_diff",),
    "skb_checksum_help": ("skb_checksum_help",),
    "csum_partial (any caller)": ("csum_partial",),
    "netfilter hooks": ("nf_hook_slow",),
    "xt_CHECKSUM": ("checksum_tg",),
    "br_netfilter": ("br_nf_",),
    "tc classify": ("tcf_classify", "tcx_run", "sch_handle_ingress", "sch_handle_egress"),
    "act_csum": ("tcf_csum",),
    "veth xmit": ("veth_xmit",),
    "ifb": ("ifb_",),
    "bridge forwarding": ("br_handle_frame", "br_forward", "br_dev_queue_push_xmit"),
    "copy to user (recv)": ("_copy_to_iter", "copy_user", "rep_movs_alternative"),
}


def perf_profile(lab, cfg, proto, seconds, port, workdir):
    """One stream of `proto` kept running while `perf record -a` samples `seconds` of it. The
    stream starts first and outlasts the recording: perf takes seconds to set up under TCG, and
    a stream of the same length as the recording would be over before the first sample."""
    name, _, mech = cfg.partition(":")
    data = os.path.join(workdir, f"perf-{cfg.replace(':', '-')}.data")
    cfg_apply(lab, name, mech or None)
    procs = []
    try:
        procs.append(subprocess.Popen(["ip", "netns", "exec", NS_S, "iperf3", "-s", "-1", "-p",
                                       str(port)], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
        time.sleep(0.5)
        procs.append(subprocess.Popen(
            ["ip", "netns", "exec", NS_C, "iperf3", "-c", S_IP, "-p", str(port), "-t",
             str(seconds * 10 + 300)] + PROTOCOLS[proto][0].split(),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(2)
        if procs[-1].poll() is not None:
            raise RuntimeError(f"profile {cfg}: the {proto} stream ended at once "
                               f"(iperf3 exit {procs[-1].returncode})")
        rec = subprocess.run(["perf", "record", "-q", "-a", "-g", "-e", "cpu-clock", "-F", "999",
                              "-o", data, "--", "sleep", str(seconds)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             timeout=seconds * 10 + 240)
        if rec.returncode != 0:
            raise RuntimeError(f"perf record ({cfg}) failed ({rec.returncode}): {rec.stderr.strip()}")
        if procs[-1].poll() is not None:
            raise RuntimeError(f"profile {cfg}: the {proto} stream ended before perf did: the "
                               "samples would not all be of the stream")
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        cfg_undo(lab, name)
    out = sh(f"perf script -i {data} -F comm,ip,sym", capture=True, timeout=900)
    os.unlink(data)
    self_c, incl_c, busy, total = {}, {k: 0 for k in INCLUSIVE}, 0, 0
    for block in out.split("\n\n"):
        lines = block.strip().splitlines()
        if not lines:
            continue
        total += 1
        # Only the lab's work: iperf3 and the softirqs it causes (in ksoftirqd or interrupting
        # an idle CPU). Other processes of the machine (a guest's qemu beside a host run) are not
        # part of any configuration's cost.
        if not lines[0].strip().startswith(LAB_COMMS):
            continue
        syms = []
        for line in lines[1:]:
            parts = line.split(None, 1)
            syms.append(parts[1].split("+")[0] if len(parts) > 1 else "[unknown]")
        if not syms or any(i in syms[0] for i in IDLE):
            continue
        busy += 1
        self_c[syms[0]] = self_c.get(syms[0], 0) + 1
        for k, prefixes in INCLUSIVE.items():
            if any(s.startswith(prefixes) for s in syms):
                incl_c[k] += 1
    if busy < max(50, total // 20):
        raise RuntimeError(f"perf ({cfg}): only {busy} of {total} samples were the lab's work "
                           f"({', '.join(LAB_COMMS)}, not idle): the stream did not run while "
                           "perf sampled, so the profile would say nothing")
    top = sorted(self_c.items(), key=lambda kv: -kv[1])[:15]
    return {"protocol": proto, "samples": total, "lab_busy_samples": busy,
            "self_top": [[s, 100.0 * n / busy] for s, n in top],
            "inclusive": {k: 100.0 * n / busy for k, n in incl_c.items()}}


def profiles(lab, configs, proto, seconds, workdir):
    res = {}
    for i, cfg in enumerate(configs):
        res[cfg] = perf_profile(lab, cfg, proto, seconds, 5901 + i, workdir)
        p = res[cfg]
        log(f"  profile {cfg:14s} {proto}: {p['lab_busy_samples']} samples of the lab's work (of {p['samples']}); "
            + ", ".join(f"{k} {v:.1f}%" for k, v in p["inclusive"].items() if v >= 1.0))
    return res


# ---- live per-packet BPF time --------------------------------------------------------------
class BpfStats:
    """bpf_enable_stats(BPF_STATS_RUN_TIME): run time is counted while the fd is open."""

    def __init__(self):
        libc = ctypes.CDLL(None, use_errno=True)
        attr = (ctypes.c_uint8 * 128)()  # union bpf_attr: enable_stats.type = 0 (RUN_TIME)
        self.fd = libc.syscall(321, 32, attr, 128)  # SYS_bpf, BPF_ENABLE_STATS
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "BPF_ENABLE_STATS")

    def close(self):
        os.close(self.fd)


def prog_stats(ids):
    tot = {"run_time_ns": 0, "run_cnt": 0}
    for i in ids:
        j = json.loads(sh(f"bpftool prog show id {i} -j", capture=True))
        tot["run_time_ns"] += j.get("run_time_ns", 0)
        tot["run_cnt"] += j.get("run_cnt", 0)
    return tot


def csumfix_prog_ids(ns):
    """Every tc program in the bridge ns: csumfix's hooks and its bounce return programs (nothing
    else runs there)."""
    ids = []
    for entry in json.loads(nsx(ns, "bpftool net -j", capture=True)):
        for t in entry.get("tc", []):
            if t.get("name", "").startswith("csf_"):
                ids.append(t["prog_id"])
    return sorted(set(ids))


WARMUP = 200
SENDER = r"""
import socket, sys, time
WARMUP = %d
n, size, port = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
d = (sys.argv[4], port)
b = bytes(size)
for _ in range(WARMUP): s.sendto(b, d)   # warm up (ARP, caches); counted by the BPF stats
t0 = time.perf_counter_ns(); c0 = time.process_time_ns()
for _ in range(n): s.sendto(b, d)
print(time.perf_counter_ns() - t0, time.process_time_ns() - c0)
""" % WARMUP


def send_udp(n, frame, port):
    payload = frame - 42  # Ethernet 14 + IPv4 20 + UDP 8
    out = nsx(NS_C, f"python3 -c '{SENDER}' {n} {payload} {port} {S_IP}", capture=True)
    wall, cpu = (int(x) for x in out.split())
    return wall / n, cpu / n


def live(lab, sizes, actions, packets, reps):
    rows = []
    lab.set_mtu(9000)
    # Nobody listens on the port: the server's stack frees the datagrams after the UDP lookup
    # (its ICMP errors are rate-limited). The same for every action.
    stats = BpfStats()
    try:
        for action in ["none"] + actions:
            txoff = action == "verify"
            if txoff:
                nsx(NS_C, "ethtool -K c0 tx off")
            if action != "none":
                mech = "bounce" if action == "fill" else None
                lab.attach(["bc"], action, mechanism=mech)
                ids = csumfix_prog_ids(NS_B)
            else:
                ids = []
            try:
                for size in sizes:
                    per_rep = []
                    for r in range(reps):
                        before = prog_stats(ids) if ids else None
                        wall, cpu = send_udp(packets, size, 9000 + r)
                        after = prog_stats(ids) if ids else None
                        sent = packets + WARMUP
                        ns = ((after["run_time_ns"] - before["run_time_ns"]) / sent) if ids else 0
                        cnt = ((after["run_cnt"] - before["run_cnt"]) / sent) if ids else 0
                        per_rep.append({"bpf_ns_per_packet": ns, "prog_runs_per_packet": cnt,
                                        "sender_wall_ns": wall, "sender_cpu_ns": cpu})
                    row = {"action": action, "bytes": size, "packets": packets, "reps": per_rep,
                           "mechanism": "bounce" if action == "fill" else "",
                           "tx_checksum_c0": "off" if txoff else "on"}
                    for k in ("bpf_ns_per_packet", "prog_runs_per_packet", "sender_wall_ns",
                              "sender_cpu_ns"):
                        row[k] = statistics.median(x[k] for x in per_rep)
                    rows.append(row)
                    log(f"  live {action:8s} {size:5d} B: bpf {row['bpf_ns_per_packet']:8.1f} ns/pkt"
                        f" ({row['prog_runs_per_packet']:.2f} runs/pkt), sender "
                        f"{row['sender_wall_ns']:8.1f} ns/pkt")
            finally:
                lab.detach()
                if txoff:
                    nsx(NS_C, "ethtool -K c0 tx on")
    finally:
        stats.close()
        lab.set_mtu(1500)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--csumfix", required=True)
    ap.add_argument("--rounds", type=int, default=3, help="throughput rounds (median)")
    ap.add_argument("--seconds", type=int, default=5, help="iperf3 duration per run")
    ap.add_argument("--mechanisms", default="bounce", help="fill mechanisms to compare, comma-separated")
    ap.add_argument("--packets", type=int, default=20000, help="live: datagrams per size")
    ap.add_argument("--reps", type=int, default=3, help="live: repetitions per size (median)")
    ap.add_argument("--protocols", default="tcp,udp,udp64",
                    help="throughput streams: tcp, udp (1400 B datagrams), udp64 (64 B)")
    ap.add_argument("--profile", default="",
                    help="configurations to profile with perf, comma-separated (e.g. fill:bpf,iptables), "
                         "or 'fills': every fill mechanism of the run and iptables")
    ap.add_argument("--profile-protocol", default="udp", help="the stream profiled (default udp)")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--skip-live", action="store_true")
    ap.add_argument("--json", required=True)
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("lab_bench.py: run as root")

    def on_term(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    protocols = [p for p in a.protocols.split(",") if p]
    unknown = [p for p in protocols if p not in PROTOCOLS]
    if unknown or not protocols:
        sys.exit(f"lab_bench.py: --protocols {a.protocols!r}: name one or more of {list(PROTOCOLS)}")
    fills = [f"fill:{m}" for m in a.mechanisms.split(",") if m]
    prof = [c for c in a.profile.split(",") if c]
    if prof == ["fills"]:  # every fill mechanism of the run and iptables, the one they must beat
        prof = fills + ["iptables"]
    if a.profile_protocol not in PROTOCOLS:
        sys.exit(f"lab_bench.py: --profile-protocol {a.profile_protocol!r}: one of {list(PROTOCOLS)}")
    known = {"none", "pass", "iptables", "txoff"} | set(fills)
    if any(c not in known for c in prof):
        sys.exit(f"lab_bench.py: --profile {a.profile!r}: name configurations of this run, "
                 f"one or more of {sorted(known)}")
    if prof and subprocess.run(["perf", "--version"], capture_output=True).returncode != 0:
        sys.exit("lab_bench.py: --profile needs perf (apt-get install linux-perf)")
    lab = Lab(a.csumfix)
    out = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "rounds": a.rounds,
           "seconds": a.seconds}
    try:
        lab.up()
        configs = ["none", "pass"] + [f"fill:{m}" for m in a.mechanisms.split(",") if m] + \
                  ["iptables", "txoff"]
        if not a.skip_throughput:
            log(f"throughput: {a.rounds} rounds x {len(configs)} configurations x "
                f"{'+'.join(protocols)}, {a.seconds} s each")
            out["protocols"] = protocols
            out["throughput"] = throughput(lab, configs, a.rounds, a.seconds, protocols)
        if prof:
            log(f"profile: perf record -a -e cpu-clock over one {a.profile_protocol} run of "
                f"{a.seconds} s per configuration: {', '.join(prof)}")
            with tempfile.TemporaryDirectory(prefix="csfperf.") as d:
                out["profile"] = profiles(lab, prof, a.profile_protocol, a.seconds, d)
        if not a.skip_live:
            log(f"live per-packet BPF time: {a.packets} datagrams x {a.reps} reps per size")
            out["live"] = live(lab, [64, 512, 1500, 9000], ["pass", "observe", "verify", "fill"],
                               a.packets, a.reps)
    finally:
        lab.down()
    leftovers = [ns for ns in (NS_C, NS_B, NS_S) if os.path.exists(f"/run/netns/{ns}")]
    if leftovers:
        log(f"lab_bench.py: namespaces left behind: {leftovers}")
        return 1
    with open(a.json, "w") as f:
        json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
