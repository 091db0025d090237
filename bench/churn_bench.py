#!/usr/bin/env python3
"""csumfix serve following a bridge: scale and churn (root; run under
`flock /tmp/csumfix-netns.lock`, as scripts/bench.sh does). Reported, never asserted.

In a throwaway network namespace (created here, always deleted) with a bridge br0, this starts
`csumfix -n NS serve --config FILE`, the file selecting every TAP port of br0:

    [[interface]]
    master = "br0"
    kind = "tun"
    action = "observe", mechanism = "observe"     (--action observe, the default: no helper links)
    action = "fill",    mechanism = "auto"        (--action fill: the probe's mechanism)

One TAP (canchor) stays a port of br0 the whole run, so the shared maps stay pinned and a leaked
map entry cannot vanish with them. TAPs are created with /dev/net/tun (TUNSETIFF, TUNSETPERSIST)
and enslaved and deleted with rtnetlink (RTM_SETLINK IFLA_MASTER + IFF_UP, RTM_DELLINK), from
this process, so no fork sits between two of them.

"Attached" means the attachment's state pin <bpffs>/csumfix/v1/netns/<ino>/<ifname>/state exists (Attach
writes it last, include/csumfix/abi.h CSF_PIN_STATE); "detached" that <ifname>/ is gone. Both
are polled every --poll-ms (5 ms). An attach latency runs from the moment the kernel
acknowledged the RTM_SETLINK of that TAP (it has sent its RTM_NEWLINK to serve by then) to the
first poll that sees the pin; a detach latency from the moment the RTM_DELLINK is sent (the
kernel tells serve before it waits for the device to be released, so serve can be done before
the ack comes).

1. Burst (--taps, 200): create the TAPs (not ports: serve ignores them), then enslave them in a
   tight loop, time.monotonic() after each; poll until every one is attached. Attach latency
   p50/p90/p99/max (target p99 <= 250 ms), serve's CPU seconds (utime+stime of /proc/PID/stat)
   from the first enslave to the last attach. Then delete them all the same way: detach latency
   and CPU.
2. Churn (--cycles, 1000): create a TAP, enslave it, wait until attached, delete it, wait until
   its pins are gone (--churn-mode serial; `overlap` does not wait for the pins to go, so the next
   cycle may recreate a name serve is still cleaning up); names come from a pool of --names (16),
   as libvirt reuses vnetN. Before and after: pins, entries of the pinned csf_ifcfg /
   csf_slots / csf_bounce maps (bpftool map dump), helper links (csf* veths), qdiscs, links of
   the namespace, serve's open fds (/proc/PID/fd), the interfaces serve records as its own
   (--state file), csf_* BPF programs loaded on the machine; serve's VmRSS at start and end.
3. Many (--many, 1000): that many TAPs attached at once: time until all are attached, serve's
   VmRSS and fds with them; then all deleted, and the whole state compared with the start.

Prints a table (stdout) and writes JSON (--json). Namespace, TAPs, serve and every pin this run
made are removed on exit, also on errors and SIGTERM.
"""
import argparse
import ctypes
import fcntl
import json
import math
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PID = os.getpid()
NS = f"csfchurn-{PID}"
BRIDGE = "br0"
ANCHOR = "canchor"
PREFIX = {"burst": "cb", "churn": "cc", "many": "cm"}
OUR_NAME = re.compile(r"^(canchor|cb\d+|cc\d+|cm\d+)$")


def abi_define(name, default):
    """A string #define of include/csumfix/abi.h (the pin names), or `default`."""
    try:
        with open(os.path.join(TOP, "include/csumfix/abi.h")) as f:
            m = re.search(r'#define\s+%s\s+"([^"]+)"' % name, f.read())
            if m:
                return m.group(1)
    except OSError:
        pass
    return default


PIN_STATE = abi_define("CSF_PIN_STATE", "state")
PIN_MAPS = abi_define("CSF_PIN_MAPS", "maps")
COUNTED_MAPS = ("csf_ifcfg", "csf_slots", "csf_bounce")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def sh(cmd, check=True, timeout=300):
    r = subprocess.run(cmd, shell=isinstance(cmd, str), text=True, timeout=timeout,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if check and r.returncode != 0:
        raise RuntimeError(f"`{cmd}` failed ({r.returncode}): {r.stderr.strip()}")
    return r


# ---- network namespace, TAPs and rtnetlink from this process -------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000


def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"setns: {os.strerror(e)}")


class InNetns:
    """Runs the with-block in network namespace `ns` (this thread), then comes back. Sockets
    and /dev/net/tun files opened inside keep that namespace."""

    def __init__(self, ns):
        self.ns = ns

    def __enter__(self):
        self.home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        fd = os.open(f"/run/netns/{self.ns}", os.O_RDONLY)
        try:
            _setns(fd)
        finally:
            os.close(fd)
        return self

    def __exit__(self, *exc):
        try:
            _setns(self.home)
        finally:
            os.close(self.home)


TUNSETIFF, TUNSETPERSIST = 0x400454CA, 0x400454CB
IFF_TAP, IFF_NO_PI, IFF_UP = 0x0002, 0x1000, 0x1
RTM_DELLINK, RTM_SETLINK = 17, 19
RTM_NAMES = {RTM_DELLINK: "RTM_DELLINK", RTM_SETLINK: "RTM_SETLINK"}
NLM_F_REQUEST, NLM_F_ACK, NLMSG_ERROR = 1, 4, 2
IFLA_IFNAME, IFLA_MASTER = 3, 10


def create_tap(ns, name):
    """A persistent TAP in `ns` (like `ip tuntap add NAME mode tap`), down, no master."""
    with InNetns(ns):
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", name.encode(), IFF_TAP | IFF_NO_PI))
        fcntl.ioctl(fd, TUNSETPERSIST, 1)
    finally:
        os.close(fd)


def _attr(kind, data):
    a = struct.pack("=HH", 4 + len(data), kind) + data
    return a + b"\0" * (-len(a) % 4)


class Rtnl:
    """One rtnetlink socket in `ns`; each request waits for the kernel's acknowledgement."""

    def __init__(self, ns):
        with InNetns(ns):
            self.s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
        self.s.bind((0, 0))
        self.seq = 0

    def close(self):
        self.s.close()

    def _link(self, msg_type, name, flags=0, change=0, attrs=b""):
        self.seq += 1
        body = struct.pack("=BBHiII", socket.AF_UNSPEC, 0, 0, 0, flags, change)
        body += _attr(IFLA_IFNAME, name.encode() + b"\0") + attrs
        hdr = struct.pack("=IHHII", 16 + len(body), msg_type, NLM_F_REQUEST | NLM_F_ACK,
                          self.seq, 0)
        self.s.send(hdr + body)
        while True:
            data = self.s.recv(65536)
            off = 0
            while off + 16 <= len(data):
                ln, typ, _, seq, _ = struct.unpack_from("=IHHII", data, off)
                if typ == NLMSG_ERROR and seq == self.seq:
                    err = struct.unpack_from("=i", data, off + 16)[0]
                    if err:
                        raise OSError(-err, f"{RTM_NAMES[msg_type]} {name}: {os.strerror(-err)}")
                    return
                off += (ln + 3) & ~3
                if ln == 0:
                    break

    def enslave(self, name, master_ifindex):
        """`ip link set NAME master BR up` as one RTM_SETLINK."""
        self._link(RTM_SETLINK, name, IFF_UP, IFF_UP,
                   _attr(IFLA_MASTER, struct.pack("=I", master_ifindex)))

    def delete(self, name):
        self._link(RTM_DELLINK, name)


# ---- what serve and the pins look like -----------------------------------------------------

class Proc:
    def __init__(self, pid):
        self.pid = pid

    def cpu(self):
        """(user, system) CPU seconds, children's included in case serve runs a tool."""
        with open(f"/proc/{self.pid}/stat") as f:
            f_ = [int(x) for x in f.read().rsplit(")", 1)[1].split()[11:15]]
        hz = os.sysconf("SC_CLK_TCK")
        return (f_[0] + f_[2]) / hz, (f_[1] + f_[3]) / hz

    def cpu_s(self):
        """utime+stime in seconds."""
        return sum(self.cpu())

    def status(self, key):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        return None

    def rss_kb(self):
        return self.status("VmRSS")

    def fds(self):
        """Number of open fds and how many of each kind (socket, anon_inode:bpf-map, file...)."""
        kinds = {}
        d = f"/proc/{self.pid}/fd"
        names = os.listdir(d)
        for n in names:
            try:
                t = os.readlink(f"{d}/{n}")
            except OSError:
                continue
            if t.startswith(("socket:", "pipe:")):
                k = t.split(":", 1)[0]
            elif t.startswith("anon_inode:"):  # anon_inode:bpf-map, anon_inode:[signalfd]
                k = t[len("anon_inode:"):].strip("[]")
            else:
                k = "bpffs" if t.startswith("/sys/fs/bpf") else "file"
            kinds[k] = kinds.get(k, 0) + 1
        return len(names), dict(sorted(kinds.items()))


class Bench:
    def __init__(self, a):
        self.a = a
        self.csumfix = os.path.abspath(a.csumfix)
        # The pins of the benchmark's namespace (csumfix/v1/netns/<inode>/), known once it exists.
        self.root = os.path.join(a.bpffs, "csumfix/v1/netns/none")
        self.tmp = tempfile.mkdtemp(prefix="csfchurn.")
        self.state_file = os.path.join(self.tmp, "serve.json")
        self.serve = None
        self.proc = None
        self.rtnl = None
        self.ns_made = False
        self.taps = set()  # TAPs that exist now
        self.br_ifindex = 0

    # -- set-up / tear-down
    def up(self):
        clash = sorted(n for n in self.pin_dirs() if OUR_NAME.match(n))
        if clash:
            raise RuntimeError(
                f"pins of interface names this benchmark uses exist already: {clash[:5]}... "
                f"(an interrupted run?) `csumfix detach NAME` (or `csumfix clean --all`) first")
        sh(f"ip netns add {NS}")
        self.ns_made = True
        self.root = os.path.join(self.a.bpffs, "csumfix/v1/netns", str(os.stat(f"/run/netns/{NS}").st_ino))
        sh(f"ip -n {NS} link set lo up")
        sh(f"ip -n {NS} link add {BRIDGE} type bridge")
        sh(f"ip -n {NS} link set {BRIDGE} up")
        with InNetns(NS):
            self.br_ifindex = socket.if_nametoindex(BRIDGE)
        self.rtnl = Rtnl(NS)
        create_tap(NS, ANCHOR)
        self.taps.add(ANCHOR)
        self.rtnl.enslave(ANCHOR, self.br_ifindex)
        mech = "observe" if self.a.action == "observe" else "auto"
        cfg = os.path.join(self.tmp, "csumfix.toml")
        with open(cfg, "w") as f:
            f.write(f'[[interface]]\nmaster = "{BRIDGE}"\nkind = "tun"\n'
                    f'hooks = ["ingress", "egress"]\naction = "{self.a.action}"\n'
                    f'mechanism = "{mech}"\n')
        self.serve_log = open(os.path.join(self.tmp, "serve.log"), "w+")
        self.serve = subprocess.Popen(
            [self.csumfix, "--bpffs", self.a.bpffs, "-n", NS, "serve", "--config", cfg,
             "--state", self.state_file,
             "--metrics-listen", f"127.0.0.1:{self.a.metrics_port}"],
            stdin=subprocess.DEVNULL, stdout=self.serve_log, stderr=subprocess.STDOUT)
        self.proc = Proc(self.serve.pid)
        deadline = time.monotonic() + 120
        while not (self.attached(ANCHOR) and self.scrape() is not None):
            if self.serve.poll() is not None:
                raise RuntimeError(f"serve exited ({self.serve.returncode}):\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"serve did not attach {ANCHOR} within 120 s:\n"
                                   f"{self.log_tail()}")
            time.sleep(0.05)

    def down(self):
        if self.serve is not None and self.serve.poll() is None:
            self.serve.send_signal(signal.SIGTERM)
            try:
                self.serve.wait(20)
            except subprocess.TimeoutExpired:
                self.serve.kill()
                self.serve.wait()
        if self.rtnl is not None:
            self.rtnl.close()
        # Attachments stay pinned when serve exits (bpffs is not part of the namespace).
        left = sorted(n for n in self.pin_dirs() if OUR_NAME.match(n))
        if left and self.ns_made:
            for n in left:
                sh([self.csumfix, "--bpffs", self.a.bpffs, "-n", NS, "detach", n], check=False)
        if self.ns_made:
            sh(f"ip netns del {NS}", check=False)
        left = sorted(n for n in self.pin_dirs() if OUR_NAME.match(n))
        if left:
            log(f"churn_bench: pins left under {self.root}: {left[:10]}")
        if self.a.serve_log and hasattr(self, "serve_log"):
            self.serve_log.flush()
            shutil.copyfile(self.serve_log.name, self.a.serve_log)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def log_tail(self, n=20):
        self.serve_log.flush()
        with open(self.serve_log.name) as f:
            return "".join(f.readlines()[-n:])

    def log_counts(self):
        self.serve_log.flush()
        c = {"lines": 0, "attach_failed": 0, "overflow": 0, "warning": 0}
        with open(self.serve_log.name) as f:
            for line in f:
                c["lines"] += 1
                c["attach_failed"] += "attach failed" in line
                c["overflow"] += "rtnetlink overflow" in line
                c["warning"] += "warning" in line
        return c

    # -- observation
    def pin_dirs(self):
        try:
            return [n for n in os.listdir(self.root) if n != PIN_MAPS]
        except FileNotFoundError:
            return []

    def pin_dir(self, name):
        # bpffs refuses '.': a pin directory writes it as ':' (userspace/control/pins.h).
        return f"{self.root}/{name.replace('.', ':')}"

    def attached(self, name):
        return os.path.exists(f"{self.pin_dir(name)}/{PIN_STATE}")

    def gone(self, name):
        return not os.path.isdir(self.pin_dir(name))

    def state_ino(self, name):
        try:
            return os.stat(f"{self.pin_dir(name)}/{PIN_STATE}").st_ino
        except FileNotFoundError:
            return None

    def scrape(self):
        """serve's /metrics as {'name{labels}': value}; None when it does not answer."""
        try:
            with InNetns(NS):
                s = socket.create_connection(("127.0.0.1", self.a.metrics_port), timeout=10)
            with s:
                s.sendall(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                data = b""
                while True:
                    b = s.recv(1 << 16)
                    if not b:
                        break
                    data += b
        except OSError:
            return None
        out = {}
        for line in data.decode(errors="replace").split("\r\n\r\n", 1)[-1].splitlines():
            if line and not line.startswith("#"):
                k, _, v = line.rpartition(" ")
                try:
                    out[k] = float(v)
                except ValueError:
                    pass
        return out

    def daemon_metrics(self):
        m = self.scrape() or {}
        pick = lambda p: {k: v for k, v in m.items() if k.startswith(p)}
        return {**pick("csumfix_follow_attaches_total"), **pick("csumfix_link_resyncs_total"),
                **pick("csumfix_scrape_errors_total"),
                **pick("csumfix_config_waiting_interfaces")}

    def map_entries(self, name, ifindexes):
        """(entries, entries of an interface that does not exist) of a pinned shared map, whose
        keys start with an ifindex (csf_if_key; csf_bounce: the bounce veth end's); (None, None)
        when it is not pinned."""
        path = os.path.join(self.root, PIN_MAPS, name)
        if not os.path.exists(path):
            return None, None
        r = sh(["bpftool", "-j", "map", "dump", "pinned", path], check=False)
        if r.returncode != 0:
            return f"error: {r.stderr.strip()}", None
        entries = json.loads(r.stdout or "[]")
        key_ifindex = lambda e: int.from_bytes(bytes(int(b, 16) for b in e["key"][:4]), "little")
        return len(entries), sum(1 for e in entries if key_ifindex(e) not in ifindexes)

    def csf_progs(self):
        r = sh(["bpftool", "-j", "prog", "show"], check=False)
        if r.returncode != 0:
            return None
        return sum(1 for p in json.loads(r.stdout or "[]") if p.get("name", "").startswith("csf"))

    def snapshot(self):
        links = json.loads(sh(f"ip -n {NS} -j link show").stdout or "[]")
        qdiscs = json.loads(sh(f"tc -n {NS} -j qdisc show").stdout or "[]")
        qkinds = {}
        for q in qdiscs:
            qkinds[q.get("kind", "?")] = qkinds.get(q.get("kind", "?"), 0) + 1
        pin_files = 0
        for _, _, files in os.walk(self.root):
            pin_files += len(files)
        try:
            with open(self.state_file) as f:
                owned = len(json.load(f).get("interfaces", []))
        except (OSError, ValueError):
            owned = None
        nfd, fd_kinds = self.proc.fds()
        ifindexes = {l["ifindex"] for l in links}
        maps = {}
        for m in COUNTED_MAPS:
            maps[f"{m}_entries"], maps[f"{m}_stale"] = self.map_entries(m, ifindexes)
        return {
            "pin_dirs": len(self.pin_dirs()),
            "pin_files": pin_files,
            **maps,
            "helper_links": len([l for l in links if l["ifname"].startswith("csf")]),
            "links": len(links),
            "qdiscs": len(qdiscs),
            "clsact_qdiscs": qkinds.get("clsact", 0),
            "serve_fds": nfd,
            "serve_fd_kinds": fd_kinds,
            "serve_owned": owned,
            "serve_rss_kb": self.proc.rss_kb(),
            "serve_threads": self.proc.status("Threads"),
            "csf_progs_on_machine": self.csf_progs(),
        }

    # -- waiting
    def wait_for(self, pending, test, timeout, tick=None):
        """pending: {name: t0}. Polls `test(name)` every poll-ms until true for all or the
        timeout; returns ({name: t1 - t0 in s}, [names never seen])."""
        tick = tick if tick is not None else self.a.poll_ms / 1000
        done = {}
        deadline = time.monotonic() + timeout
        while pending:
            for n in list(pending):
                if test(n):
                    done[n] = time.monotonic() - pending.pop(n)
            if not pending or time.monotonic() > deadline:
                break
            if self.serve.poll() is not None:
                raise RuntimeError(f"serve exited ({self.serve.returncode}):\n{self.log_tail()}")
            time.sleep(tick)
        return done, sorted(pending)

    def settle_cpu(self, quiet_s=0.5, limit_s=10):
        """serve's CPU seconds once they stop growing (quiet_s without a tick), at most limit_s."""
        end = time.monotonic() + limit_s
        last = self.proc.cpu_s()
        while time.monotonic() < end:
            time.sleep(quiet_s)
            now = self.proc.cpu_s()
            if now == last:
                break
            last = now
        return last

    # -- phases
    def make_taps(self, names):
        for n in names:
            create_tap(NS, n)
            self.taps.add(n)

    def poll_between(self, pending, done, test, last_poll):
        """Inside a loop of requests: one poll of `pending` when a tick has passed since
        `last_poll`; returns the time of the last poll."""
        now = time.monotonic()
        if now - last_poll < self.a.poll_ms / 1000:
            return last_poll
        for p in list(pending):
            if test(p):
                done[p] = time.monotonic() - pending.pop(p)
        return now

    def enslave_all(self, names, timeout):
        """Enslaves `names` back to back, polling between them; waits for all to attach."""
        pending, done, acked = {}, {}, {}
        cpu0 = self.proc.cpu()
        start = last_poll = time.monotonic()
        for n in names:
            self.rtnl.enslave(n, self.br_ifindex)
            pending[n] = acked[n] = time.monotonic()
            last_poll = self.poll_between(pending, done, self.attached, last_poll)
        enslaved_s = time.monotonic() - start
        more, missed = self.wait_for(pending, self.attached, timeout)
        done.update(more)
        end = time.monotonic()
        cpu1 = self.proc.cpu()
        return {"n": len(names), "attached": len(done), "missed": missed,
                "enslave_loop_s": enslaved_s, "all_attached_s": end - start,
                "latency_s": summary(done.values()), "serve_cpu_s": sum(cpu1) - sum(cpu0),
                "serve_user_s": cpu1[0] - cpu0[0], "serve_system_s": cpu1[1] - cpu0[1],
                "serve_cpu_s_settled": self.settle_cpu() - sum(cpu0),
                # per TAP: name, its RTM_SETLINK acknowledged (s after the loop began), attach
                # latency (s; None: never)
                "per_tap": [[n, acked[n] - start, done.get(n)] for n in names]}

    def delete_all(self, names, timeout):
        """Deletes `names` back to back, polling between them; waits for all pins to go."""
        pending, done, sent, acked = {}, {}, {}, {}
        cpu0 = self.proc.cpu()
        start = last_poll = time.monotonic()
        for n in names:
            # From the request, not its ack: the kernel sends RTM_DELLINK before it waits for
            # the device to be released, and serve may be done before the ack comes.
            pending[n] = sent[n] = time.monotonic()
            self.rtnl.delete(n)
            acked[n] = time.monotonic()
            self.taps.discard(n)
            last_poll = self.poll_between(pending, done, self.gone, last_poll)
        deleted_s = time.monotonic() - start
        more, missed = self.wait_for(pending, self.gone, timeout)
        done.update(more)
        end = time.monotonic()
        cpu1 = self.proc.cpu()
        return {"n": len(names), "cleaned": len(done), "missed": missed,
                "delete_loop_s": deleted_s, "all_cleaned_s": end - start,
                "latency_s": summary(done.values()), "serve_cpu_s": sum(cpu1) - sum(cpu0),
                "serve_user_s": cpu1[0] - cpu0[0], "serve_system_s": cpu1[1] - cpu0[1],
                "serve_cpu_s_settled": self.settle_cpu() - sum(cpu0),
                # per TAP: name, RTM_DELLINK sent and acknowledged (s after the loop began),
                # detach latency (s; None: never)
                "per_tap": [[n, sent[n] - start, acked[n] - start, done.get(n)] for n in names]}

    def burst(self, n):
        names = [f"{PREFIX['burst']}{i}" for i in range(n)]
        self.make_taps(names)
        time.sleep(0.5)  # serve sees the unenslaved TAPs come (not selected) before the clock runs
        self.settle_cpu()
        timeout = 60 + 2.0 * n
        att = self.enslave_all(names, timeout)
        att["serve_rss_kb"] = self.proc.rss_kb()
        det = self.delete_all(names, timeout)
        return {"attach": att, "detach": det}

    def churn(self, cycles):
        names = [f"{PREFIX['churn']}{i}" for i in range(min(self.a.names, cycles))]
        before = self.snapshot()
        cpu0 = self.proc.cpu_s()
        start = time.monotonic()
        att, det, missed_att, missed_det = [], [], [], []
        last_ino = {}
        gone = self.gone
        for i in range(cycles):
            n = names[i % len(names)]
            prev = last_ino.get(n)
            create_tap(NS, n)
            self.taps.add(n)
            self.rtnl.enslave(n, self.br_ifindex)
            t0 = time.monotonic()
            # Attached: a state pin that is not the one of this name's previous TAP (overlap mode
            # can find that one still there).
            done, miss = self.wait_for({n: t0}, lambda x: self.state_ino(x) not in (None, prev),
                                       self.a.cycle_timeout)
            att += done.values()
            missed_att += [f"{n} (cycle {i})" for _ in miss]
            last_ino[n] = self.state_ino(n)
            t0 = time.monotonic()  # before the request, as in delete_all
            self.rtnl.delete(n)
            self.taps.discard(n)
            if self.a.churn_mode == "serial":
                done, miss = self.wait_for({n: t0}, gone, self.a.cycle_timeout)
                det += done.values()
                missed_det += [f"{n} (cycle {i})" for _ in miss]
            if (i + 1) % max(1, cycles // 10) == 0:
                log(f"  churn: {i + 1}/{cycles} cycles, serve RSS {self.proc.rss_kb()} kB")
        # Let serve finish: every churn name's pins gone.
        _, left = self.wait_for({n: time.monotonic() for n in names}, gone, 60, tick=0.05)
        wall = time.monotonic() - start
        cpu = self.settle_cpu() - cpu0
        after = self.snapshot()
        return {"cycles": cycles, "names": len(names), "mode": self.a.churn_mode,
                "wall_s": wall, "serve_cpu_s": cpu,
                "attach_latency_s": summary(att), "missed_attaches": missed_att,
                "detach_latency_s": summary(det) if self.a.churn_mode == "serial" else None,
                "missed_detaches": missed_det, "pins_left_after_60s": left,
                "before": before, "after": after, "leaks": leaks(before, after)}

    def many(self, n):
        names = [f"{PREFIX['many']}{i}" for i in range(n)]
        self.make_taps(names)
        time.sleep(0.5)
        self.settle_cpu()
        att = self.enslave_all(names, 120 + 2.0 * n)
        with_many = self.snapshot()
        det = self.delete_all(names, 120 + 2.0 * n)
        return {"attach": att, "with_all_attached": with_many, "detach": det}


def pct(sorted_v, p):
    """Nearest-rank percentile."""
    return sorted_v[max(0, math.ceil(p / 100 * len(sorted_v)) - 1)]


def summary(values):
    v = sorted(values)
    if not v:
        return None
    return {"n": len(v), "p50": pct(v, 50), "p90": pct(v, 90), "p99": pct(v, 99),
            "max": v[-1], "mean": sum(v) / len(v)}


# What must come back to where it was once every TAP is gone. Reported, not judged: RSS (the
# allocator keeps memory), csf_* programs on the machine (other users load programs) and
# csf_slots entries (made by the first packet on a hook: canchor gets the bridge's multicast
# some time in the run); a counters entry of a deleted interface is judged, as "_stale".
LEAK_KEYS = ("pin_dirs", "pin_files", "csf_ifcfg_entries", "csf_bounce_entries",
             "csf_ifcfg_stale", "csf_slots_stale", "csf_bounce_stale", "helper_links",
             "links", "qdiscs", "clsact_qdiscs", "serve_fds", "serve_owned")
INFO_KEYS = ("csf_slots_entries", "serve_rss_kb", "serve_threads", "csf_progs_on_machine")


def leaks(before, after):
    return {k: [before[k], after[k]] for k in LEAK_KEYS if before.get(k) != after.get(k)}


# ---- report --------------------------------------------------------------------------------

W = 46  # label column


def row(label, text):
    return f"  {label:<{W}}{text}"


def ms(x):
    return f"{x * 1000:.1f}"


def lat_row(label, s):
    if not s:
        return row(label, "-")
    return row(label, f"p50 {ms(s['p50']):>8}  p90 {ms(s['p90']):>8}  p99 {ms(s['p99']):>8}  "
                      f"max {ms(s['max']):>8} ms  (n={s['n']})")


def never(missed):
    return f"; NEVER: {len(missed)}: {' '.join(missed[:10])}" if missed else ""


def cpu_text(x):
    return (f"{x['serve_cpu_s']:.2f} s (user {x['serve_user_s']:.2f}, system "
            f"{x['serve_system_s']:.2f}); {x['serve_cpu_s_settled']:.2f} s once quiet")


def result_label(sample):
    """'success' of 'csumfix_follow_attaches_total{result="success"}'."""
    m = re.search(r'result="([^"]*)"', sample)
    return m.group(1) if m else sample


def report(r):
    m, st = r["meta"], r["start"]
    out = [f"csumfix serve following a bridge: scale and churn (action {m['action']}, "
           f"mechanism {m['mechanism']})",
           f"machine: {m['cpus']} vCPU, {m['kernel']}; load average at start "
           f"{' '.join(m['loadavg_start'])}, at end {' '.join(m['loadavg_end'])}",
           f"serve at start ({ANCHOR} attached): RSS {st['serve_rss_kb']} kB, "
           f"{st['serve_fds']} fds"]
    if "burst" in r:
        a, d = r["burst"]["attach"], r["burst"]["detach"]
        t = a["latency_s"]
        verdict = "-" if not t else (
            "met" if t["p99"] <= 0.250 and not a["missed"] else "MISSED")
        out += ["",
                f"Burst: {a['n']} TAPs enslaved to {BRIDGE} back to back "
                f"(in {a['enslave_loop_s'] * 1000:.0f} ms)",
                row("attached", f"{a['attached']}/{a['n']}, the last "
                                f"{a['all_attached_s']:.2f} s after the first enslave"
                                + never(a["missed"])),
                lat_row("attach latency (RTM_NEWLINK -> state pin)", t),
                row("target p99 <= 250 ms", f"[{verdict}]"),
                row("wall time per attach (last / n)",
                    f"{a['all_attached_s'] / max(1, a['attached']) * 1000:.1f} ms"),
                row("serve CPU, first enslave to last attach", cpu_text(a)),
                row("serve CPU per TAP", f"{a['serve_cpu_s'] / max(1, a['n']) * 1000:.1f} ms"),
                row("serve RSS with them attached", f"{a['serve_rss_kb']} kB"),
                row("deleted: pins gone", f"{d['cleaned']}/{d['n']}, the last "
                                          f"{d['all_cleaned_s']:.2f} s after the first delete"
                                          + never(d["missed"])),
                row("the deletes themselves (RTM_DELLINK acks)", f"{d['delete_loop_s']:.2f} s"),
                lat_row("detach latency (RTM_DELLINK -> pins gone)", d["latency_s"]),
                row("serve CPU for the deletes", cpu_text(d))]
    if "churn" in r:
        c = r["churn"]
        out += ["",
                f"Churn: {c['cycles']} create/enslave/delete cycles ({c['mode']}, "
                f"{c['names']} names reused) in {c['wall_s']:.1f} s, serve CPU "
                f"{c['serve_cpu_s']:.2f} s",
                lat_row("attach latency", c["attach_latency_s"]),
                row(f"attaches missed (> {m['cycle_timeout']:g} s)",
                    f"{len(c['missed_attaches'])} {' '.join(c['missed_attaches'][:5])}")]
        if c["detach_latency_s"] is not None:
            out += [lat_row("detach latency", c["detach_latency_s"]),
                    row(f"detaches missed (> {m['cycle_timeout']:g} s)",
                        f"{len(c['missed_detaches'])} {' '.join(c['missed_detaches'][:5])}")]
        if c["pins_left_after_60s"]:
            out.append(row("pins there 60 s after the last cycle",
                           " ".join(c["pins_left_after_60s"])))
        out.append(row("", f"{'before':>10} {'after':>10}"))
        for k in LEAK_KEYS + INFO_KEYS:
            b, e = c["before"].get(k), c["after"].get(k)
            out.append(row(k, f"{str(b):>10} {str(e):>10}"
                              + ("  LEAK?" if k in c["leaks"] else "")))
        out.append(row("serve fds by kind, before", str(c["before"]["serve_fd_kinds"])))
        out.append(row("serve fds by kind, after", str(c["after"]["serve_fd_kinds"])))
        out.append(row("leaks", "none" if not c["leaks"] else ", ".join(
            f"{k} {v[0]} -> {v[1]}" for k, v in c["leaks"].items())))
    if "many" in r:
        a, w, d = (r["many"][k] for k in ("attach", "with_all_attached", "detach"))
        per = (w["serve_rss_kb"] - st["serve_rss_kb"]) / max(1, a["attached"])
        out += ["",
                f"Many: {a['n']} TAPs attached at once",
                row("attached", f"{a['attached']}/{a['n']}, the last {a['all_attached_s']:.2f} s "
                                f"after the first enslave" + never(a["missed"])),
                row("the enslaves themselves (RTM_SETLINK acks)", f"{a['enslave_loop_s']:.2f} s"),
                lat_row("attach latency", a["latency_s"]),
                row("serve CPU, first enslave to last attach", cpu_text(a)),
                row(f"serve RSS with {a['attached'] + 1} attached",
                    f"{w['serve_rss_kb']} kB ({per:+.1f} kB per interface over the start)"),
                row(f"serve fds with {a['attached'] + 1} attached", f"{w['serve_fds']}"),
                row("pin dirs / csf_ifcfg entries / helper links",
                    f"{w['pin_dirs']} / {w['csf_ifcfg_entries']} / {w['helper_links']}"),
                row("csf_* BPF programs loaded (machine)", f"{w['csf_progs_on_machine']}"),
                row("deleted: pins gone", f"{d['cleaned']}/{d['n']}, the last "
                                          f"{d['all_cleaned_s']:.2f} s after the first delete"
                                          + never(d["missed"])),
                row("the deletes themselves (RTM_DELLINK acks)", f"{d['delete_loop_s']:.2f} s"),
                lat_row("detach latency", d["latency_s"]),
                row("serve CPU for the deletes", cpu_text(d))]
    e = r["end"]
    sm = r["serve_metrics"]
    out += ["",
            f"End (every TAP but {ANCHOR} deleted): serve RSS {e['serve_rss_kb']} kB, "
            f"{e['serve_fds']} fds; against the start: "
            + ("nothing left over" if not r["leaks_overall"] else
               "LEFT OVER: " + ", ".join(f"{k} {v[0]} -> {v[1]}"
                                         for k, v in r["leaks_overall"].items())),
            "serve: follow attaches "
            + ", ".join(f"{result_label(k)} {v:g}"
                        for k, v in sm.items() if k.startswith("csumfix_follow_attaches_total{"))
            + f"; link resyncs {sm.get('csumfix_link_resyncs_total', 0):g}; log: "
            + ", ".join(f"{k} {v}" for k, v in r["serve_log"].items())]
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(
        description="csumfix serve following a bridge: attach latency for a burst of TAPs, "
                    "leaks over create/delete churn, memory with many interfaces (root; run under "
                    "`flock /tmp/csumfix-netns.lock`). Reported, not asserted.")
    ap.add_argument("--csumfix", default=os.path.join(TOP, "build/userspace/csumfix"),
                    help="the csumfix binary (default: build/userspace/csumfix)")
    ap.add_argument("--taps", type=int, default=None, help="TAPs in the burst (200; --quick 20)")
    ap.add_argument("--cycles", type=int, default=None,
                    help="create/delete cycles (1000; --quick 50)")
    ap.add_argument("--many", type=int, default=None,
                    help="TAPs attached at once for the memory figure (1000; --quick 50)")
    ap.add_argument("--action", choices=("observe", "fill"), default="observe",
                    help="observe: mechanism observe, no helper links (default); "
                         "fill: mechanism auto (bounce makes csf* veths)")
    ap.add_argument("--churn-mode", choices=("serial", "overlap"), default="serial",
                    help="serial: each cycle waits until the deleted TAP's pins are gone "
                         "(default); overlap: it does not, a reused name may be recreated while "
                         "serve still cleans it up")
    ap.add_argument("--names", type=int, default=16,
                    help="churn reuses this many interface names (default 16)")
    ap.add_argument("--cycle-timeout", type=float, default=10.0,
                    help="seconds a churn cycle waits for an attach or a clean-up (default 10)")
    ap.add_argument("--poll-ms", type=float, default=5.0, help="poll interval (default 5 ms)")
    ap.add_argument("--metrics-port", type=int, default=10786,
                    help="serve's metrics port inside the namespace (its default 10786)")
    ap.add_argument("--bpffs", default="/sys/fs/bpf", help="bpffs mount point")
    ap.add_argument("--skip", action="append", default=[], choices=("burst", "churn", "many"),
                    help="leave a phase out (repeatable)")
    ap.add_argument("--quick", action="store_true", help="small numbers: 20 TAPs, 50 cycles, 50")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--serve-log", help="copy serve's log here")
    a = ap.parse_args()
    for k, full, quick in (("taps", 200, 20), ("cycles", 1000, 50), ("many", 1000, 50)):
        if getattr(a, k) is None:
            setattr(a, k, quick if a.quick else full)
    if os.geteuid() != 0:
        sys.exit("churn_bench.py: needs root (namespaces, TAPs, BPF)")
    if not os.access(a.csumfix, os.X_OK):
        sys.exit(f"churn_bench.py: no csumfix binary at {a.csumfix} (--csumfix)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    r = {"meta": {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                  "kernel": os.uname().release, "cpus": os.cpu_count(),
                  "loadavg_start": open("/proc/loadavg").read().split()[:3],
                  "action": a.action,
                  "mechanism": "observe" if a.action == "observe" else "auto",
                  "taps": a.taps, "cycles": a.cycles, "many": a.many,
                  "churn_mode": a.churn_mode, "names": a.names,
                  "cycle_timeout": a.cycle_timeout, "poll_ms": a.poll_ms}}
    b = Bench(a)
    try:
        log(f"churn_bench: namespace {NS}, serve following {BRIDGE} ports "
            f"(action {a.action})")
        b.up()
        if a.action == "fill":
            st = json.loads(sh([b.csumfix, "-n", NS, "status", "-j"]).stdout or "[]")
            r["meta"]["mechanism"] = next((s.get("mechanism") for s in st
                                           if s.get("ifname") == ANCHOR), "auto")
        r["start"] = b.snapshot()
        if "burst" not in a.skip and a.taps > 0:
            log(f"churn_bench: burst of {a.taps} TAPs")
            r["burst"] = b.burst(a.taps)
        if "churn" not in a.skip and a.cycles > 0:
            log(f"churn_bench: {a.cycles} churn cycles")
            r["churn"] = b.churn(a.cycles)
        if "many" not in a.skip and a.many > 0:
            log(f"churn_bench: {a.many} TAPs at once")
            r["many"] = b.many(a.many)
        r["end"] = b.snapshot()
        r["leaks_overall"] = leaks(r["start"], r["end"])
        r["serve_metrics"] = b.daemon_metrics()
        r["serve_log"] = b.log_counts()
        r["meta"]["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    except BaseException:
        if b.serve is not None and hasattr(b, "serve_log"):
            log("churn_bench: serve's log (tail):\n" + b.log_tail())
        raise
    finally:
        b.down()
    if a.json:
        with open(a.json, "w") as f:
            json.dump(r, f, indent=1)
    print(report(r))


if __name__ == "__main__":
    main()
