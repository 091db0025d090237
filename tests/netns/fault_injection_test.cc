// Fault injection (issue #7): attach failing at every step it has (CSUMFIX_FAULT_INJECT, see
// control/control.h) in every attach flavour leaves no state behind — no pins, no hooks, no tc
// filters, no helper veths, no csumfix programs, maps or links the kernel keeps alive — and a
// normal attach works right after; detach while a UDP flood runs; the interface deleted while
// attached; 1000 attach/detach cycles under traffic leak nothing; a full policy map refuses one
// more rule clearly and keeps the rules it has. JSON is parsed, never grepped.
#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "control/control.h"
#include "control/policy.h"
#include "csumfix/abi.h"
#include "gtest/gtest.h"
#include "netns/lab.h"
#include "netns/mechanisms.h"
#include "nlohmann/json.hpp"

namespace csumfix::testing {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

constexpr char kPinTop[] = "/sys/fs/bpf/csumfix";

json ParseJson(const std::string& text, const std::string& what) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  EXPECT_FALSE(j.is_discarded()) << what << " printed no JSON:\n" << text;
  return j.is_discarded() ? json() : j;
}

// Everything under /sys/fs/bpf/csumfix, relative and sorted ("" for the directory itself).
std::vector<std::string> PinTree() {
  std::vector<std::string> out;
  std::error_code ec;
  if (!fs::exists(kPinTop, ec)) return out;
  out.push_back("");
  for (auto it = fs::recursive_directory_iterator(kPinTop, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
    out.push_back(fs::relative(it->path(), kPinTop).string());
  std::sort(out.begin(), out.end());
  return out;
}

std::string Join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : " ") + (x.empty() ? "." : x);
  return s.empty() ? "(nothing)" : s;
}

// csumfix's BPF objects that the kernel keeps alive without any process holding them: programs
// named csf_*, maps named csf_* or used by such a program, links running such a program — minus
// every id some process holds a file descriptor for (/proc/*/fdinfo). What a finished csumfix
// command leaves is exactly this set: pinned or attached objects. Programs loaded by other
// processes at the same time (e.g. csumfix_bpf_tests) are held by them and so not counted.
struct Orphans {
  std::set<uint32_t> progs, maps, links;
  bool operator==(const Orphans&) const = default;
};

// What `now` has that `base` has not: objects a command left alive. (Objects that vanish after
// the baseline are not leaks: e.g. another process's, freed after it exited.)
Orphans Fresh(const Orphans& now, const Orphans& base) {
  Orphans d;
  auto minus = [](const std::set<uint32_t>& a, const std::set<uint32_t>& b, std::set<uint32_t>* out) {
    std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::inserter(*out, out->end()));
  };
  minus(now.progs, base.progs, &d.progs);
  minus(now.maps, base.maps, &d.maps);
  minus(now.links, base.links, &d.links);
  return d;
}

std::string Describe(const Orphans& o) {
  auto ids = [](const std::set<uint32_t>& s) {
    std::string r;
    for (uint32_t i : s) r += (r.empty() ? "" : ",") + std::to_string(i);
    return "{" + r + "}";
  };
  return "progs " + ids(o.progs) + " maps " + ids(o.maps) + " links " + ids(o.links);
}

json Bpftool(const std::string& what) {
  CmdResult r = testing::Run({"bpftool", "-j", what, "show"});
  EXPECT_EQ(r.rc, 0) << "bpftool " << what << " show: " << r.err;
  json j = json::parse(r.out, nullptr, false);
  return j.is_array() ? j : json::array();
}

Orphans CsfOrphans() {
  std::set<uint32_t> held_progs, held_maps, held_links;
  std::error_code ec;
  for (const auto& p : fs::directory_iterator("/proc", ec)) {
    const std::string pid = p.path().filename();
    if (pid.empty() || !std::all_of(pid.begin(), pid.end(), ::isdigit)) continue;
    std::error_code ec2;
    for (const auto& f : fs::directory_iterator(p.path() / "fdinfo", ec2)) {
      const std::string info = ReadFile(f.path());
      auto field = [&](const char* key) -> long {
        size_t at = info.find(key);
        return at == std::string::npos ? -1 : std::atol(info.c_str() + at + strlen(key));
      };
      if (long l = field("link_id:"); l >= 0) held_links.insert(l);
      else if (long pr = field("prog_id:"); pr >= 0) held_progs.insert(pr);
      else if (long m = field("map_id:"); m >= 0) held_maps.insert(m);
    }
  }
  std::set<uint32_t> csf_progs, csf_maps;
  for (const json& p : Bpftool("prog")) {
    if (p.value("name", "").rfind("csf_", 0) != 0) continue;
    csf_progs.insert(p["id"].get<uint32_t>());
    for (const json& m : p.value("map_ids", json::array())) csf_maps.insert(m.get<uint32_t>());
  }
  for (const json& m : Bpftool("map"))
    if (m.value("name", "").rfind("csf_", 0) == 0) csf_maps.insert(m["id"].get<uint32_t>());
  Orphans o;
  for (uint32_t id : csf_progs)
    if (!held_progs.count(id)) o.progs.insert(id);
  for (uint32_t id : csf_maps)
    if (!held_maps.count(id)) o.maps.insert(id);
  for (const json& l : Bpftool("link"))
    if (csf_progs.count(l.value("prog_id", 0u)) && !held_links.count(l["id"].get<uint32_t>()))
      o.links.insert(l["id"].get<uint32_t>());
  return o;
}

// `csumfix ARGS` with CSUMFIX_FAULT_INJECT=point.
CmdResult Inject(const std::string& point, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"env", std::string(control::kFaultInjectEnv) + "=" + point,
                                   CsumfixPath()};
  argv.insert(argv.end(), args.begin(), args.end());
  return Run(argv);
}

// "injected fault at step list (points reached: a, b@ingress, ...)" -> {a, b@ingress, ...}.
std::vector<std::string> ReachedPoints(const std::string& err) {
  const std::string head = "injected fault at step list (points reached: ";
  const size_t at = err.find(head);
  if (at == std::string::npos) return {};
  const size_t end = err.find(')', at);
  std::vector<std::string> out;
  std::stringstream ss(err.substr(at + head.size(), end - at - head.size()));
  std::string p;
  while (std::getline(ss, p, ',')) {
    p.erase(0, p.find_first_not_of(' '));
    if (!p.empty()) out.push_back(p);
  }
  return out;
}

std::string StepOf(const std::string& point) { return point.substr(0, point.find('@')); }

// An attach flavour: its arguments (after `attach va`), the hooks it attaches, whether another
// attachment (vb) and a policy rule exist beforehand.
struct Flavour {
  std::string name;
  std::vector<std::string> args;
  size_t hooks;
  bool neighbours = false;
  const char* ifb_via = nullptr;  // CSUMFIX_IFB_VIA for its csumfix runs (null: unset)
};

std::vector<Flavour> Flavours() {
  std::vector<Flavour> f = {
      {"tcx-or-clsact (auto)", {"--both", "--mechanism", "observe", "--action", "verify"}, 2},
      {"clsact", {"--both", "--tc-api", "clsact", "--mechanism", "observe"}, 2},
      {"xdp redirect", {"--xdp", "--redirect-to", "vb", "--action", "fill"}, 1},
      {"bounce", {"--both", "--mechanism", "bounce", "--action", "fill"}, 2},
      {"bounce+xdp beside vb and a rule",
       {"--both", "--xdp", "--mechanism", "bounce", "--action", "fill"},
       3,
       true},
  };
  if (Probe().act_csum)
    f.push_back({"act-csum", {"--both", "--mechanism", "act-csum", "--action", "fill"}, 2});
  if (Probe().ifb)
    f.push_back({"ifb", {"--ingress", "--mechanism", "ifb", "--action", "fill"}, 1});
  // Where csumfix's program redirects into the ifb itself, the selector with mirred (what older
  // kernels get) is still tested, by asking for it.
  if (Probe().ifb_redirect)
    f.push_back({"ifb by mirred", {"--ingress", "--mechanism", "ifb", "--action", "fill"}, 1,
                 false, "mirred"});
  return f;
}

// The flavour of that name (the list depends on the kernel).
Flavour FlavourNamed(const std::string& name) {
  for (const Flavour& f : Flavours())
    if (f.name == name) return f;
  ADD_FAILURE() << "no flavour " << name;
  return {};
}

// What attach may change, seen from outside.
struct Snapshot {
  std::vector<std::string> pins;
  std::vector<std::string> links;  // interface names in the namespace
  json net;                        // bpftool net show (every hook of every device in the ns)
  json filters;                    // tc filter show dev va/vb ingress/egress
  json qdiscs;                     // qdisc kinds by device (a clsact one attach made, left?)
  json status;                     // csumfix status -j
  json rules;                      // csumfix policy list -j
  json keys;                       // keys of the shared per-interface maps
  Orphans orphans;
};

// The keys in csumfix's shared maps keyed by interface (per-CPU counters change with traffic, so
// only keys are compared).
json SharedMapKeys(const Netns& ns) {
  json out = json::object();
  for (const char* m : {"csf_ifcfg", "csf_slots", "csf_bounce"}) {
    const std::string pin = ns.PinRoot() + "/maps/" + m;
    if (!PathExists(pin)) continue;
    CmdResult r = testing::Run({"bpftool", "-j", "map", "dump", "pinned", pin});
    EXPECT_EQ(r.rc, 0) << r.err;
    json keys = json::array();
    for (const json& e : ParseJson(r.out, "bpftool map dump"))
      keys.push_back(e.contains("formatted") ? e["formatted"].value("key", json()) : e.value("key", json()));
    std::sort(keys.begin(), keys.end());
    out[m] = keys;
  }
  return out;
}

class FaultInjection : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0) << "netns tests need root: run scripts/test.sh as root";
    ASSERT_FALSE(PathExists(std::string(kPinTop) + "/v1"))
        << "csumfix pins exist before the test (another attachment or policy on this host?): "
        << Join(PinTree());
    ASSERT_TRUE(Probe().ok) << Probe().error;
    ASSERT_TRUE(ns_.Create());
    // No spontaneous IPv6 traffic (DAD, MLD), which would make counters appear at any time.
    ASSERT_EQ(ns_.Exec("sysctl -qw net.ipv6.conf.all.disable_ipv6=1 "
                       "net.ipv6.conf.default.disable_ipv6=1"),
              0);
    ASSERT_TRUE(VethPair({&ns_, "va", "10.88.0.1/24"}, {&ns_, "vb", ""}));
    tmp_ = "/tmp/csf-fi-" + std::to_string(getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    ASSERT_EQ(testing::Run({"mkdir", "-p", tmp_}).rc, 0);
  }
  void TearDown() override {
    Csumfix({"policy", "flush"});
    if (!ns_.name().empty()) Csumfix({"-n", ns_.name(), "policy", "flush"});
    if (!ns_.name().empty()) Csumfix({"-n", ns_.name(), "detach", "--all"});
    if (!peer_.name().empty()) Csumfix({"-n", peer_.name(), "detach", "--all"});
    ns_.Destroy();
    peer_.Destroy();
    testing::Run({"rm", "-rf", tmp_});
    EXPECT_FALSE(PathExists(std::string(kPinTop) + "/v1")) << "pins left behind";
  }

  std::vector<std::string> Attach(const std::vector<std::string>& args) {
    std::vector<std::string> a = {"-n", ns_.name(), "attach", "va"};
    a.insert(a.end(), args.begin(), args.end());
    return a;
  }

  json TcFilters() {
    json out = json::object();
    for (const char* dev : {"va", "vb"})
      for (const char* dir : {"ingress", "egress"}) {
        CmdResult r =
            testing::Run({"tc", "-n", ns_.name(), "-j", "filter", "show", "dev", dev, dir});
        json j = json::parse(r.out, nullptr, false);
        // No clsact qdisc: tc prints nothing. A clsact qdisc without filters: [].
        out[std::string(dev) + " " + dir] =
            j.is_discarded() || (j.is_array() && j.empty()) ? json::array() : j;
      }
    return out;
  }

  // Kinds of the qdiscs of every device in the namespace, by device.
  json Qdiscs() {
    json out = json::object();
    CmdResult r = testing::Run({"tc", "-n", ns_.name(), "-j", "qdisc", "show"});
    EXPECT_EQ(r.rc, 0) << r.err;
    for (const json& q : ParseJson(r.out, "tc -j qdisc show"))
      out[q.value("dev", "?")].push_back(q.value("kind", "?"));
    for (auto& [dev, kinds] : out.items()) std::sort(kinds.begin(), kinds.end());
    return out;
  }

  Snapshot Take() {
    Snapshot s;
    s.pins = PinTree();
    CmdResult l = testing::Run({"ip", "-n", ns_.name(), "-j", "link", "show"});
    EXPECT_EQ(l.rc, 0) << l.err;
    for (const json& x : ParseJson(l.out, "ip -j link show"))
      s.links.push_back(x.value("ifname", "?"));
    std::sort(s.links.begin(), s.links.end());
    CmdResult n = testing::Run({"ip", "netns", "exec", ns_.name(), "bpftool", "-j", "net", "show"});
    EXPECT_EQ(n.rc, 0) << n.err;
    s.net = ParseJson(n.out, "bpftool net show");
    s.filters = TcFilters();
    s.qdiscs = Qdiscs();
    CmdResult st = Csumfix({"-n", ns_.name(), "status", "-j"});
    EXPECT_EQ(st.rc, 0) << st.err;
    s.status = ParseJson(st.out, "csumfix status -j");
    CmdResult pl = Csumfix({"-n", ns_.name(), "policy", "list", "-j"});
    EXPECT_EQ(pl.rc, 0) << pl.err;
    s.rules = ParseJson(pl.out, "csumfix policy list -j");
    s.keys = SharedMapKeys(ns_);
    s.orphans = CsfOrphans();
    return s;
  }

  // `now` must equal `base` in every respect, and no csumfix object may have been left alive.
  void ExpectSame(const Snapshot& base, const std::string& ctx) {
    Snapshot now = Take();
    EXPECT_EQ(Join(now.pins), Join(base.pins)) << ctx << ": pins under " << kPinTop;
    EXPECT_EQ(Join(now.links), Join(base.links)) << ctx << ": links (helper veths?)";
    EXPECT_EQ(now.net, base.net) << ctx << ": bpftool net show\nnow:  " << now.net.dump()
                                 << "\nwas:  " << base.net.dump();
    EXPECT_EQ(now.filters, base.filters) << ctx << ": tc filters\nnow: " << now.filters.dump();
    EXPECT_EQ(now.qdiscs, base.qdiscs) << ctx << ": qdiscs (a clsact qdisc attach made, left?)\nnow: "
                                       << now.qdiscs.dump() << "\nwas: " << base.qdiscs.dump();
    EXPECT_EQ(now.status, base.status) << ctx << ": csumfix status -j\nnow: " << now.status.dump();
    EXPECT_EQ(now.rules, base.rules) << ctx << ": csumfix policy list -j";
    EXPECT_EQ(now.keys, base.keys) << ctx << ": keys of the shared maps\nnow: " << now.keys.dump()
                                   << "\nwas: " << base.keys.dump();
    ExpectNoFreshOrphans(base.orphans, ctx);
  }

  // No csumfix program, map or link alive without a process that was not there at `base`; the
  // kernel frees unreferenced objects shortly after the last fd closes, so this polls a while.
  static void ExpectNoFreshOrphans(const Orphans& base, const std::string& ctx) {
    Orphans d;
    WaitFor([&] { return (d = Fresh(CsfOrphans(), base)) == Orphans{}; }, 30);
    EXPECT_EQ(Describe(d), Describe(Orphans{}))
        << ctx << ": csumfix BPF objects left alive without a process";
  }

  // Prepares the flavour's surroundings; returns the baseline.
  Snapshot Prepare(const Flavour& f) {
    if (f.neighbours) {
      CmdResult a = Csumfix({"-n", ns_.name(), "attach", "vb", "--egress", "--mechanism",
                             "bounce", "--action", "verify"});
      EXPECT_EQ(a.rc, 0) << a.err;
      CmdResult p = Csumfix({"-n", ns_.name(), "policy", "add", "--proto", "udp", "--dport", "7777", "--action",
                             "pass", "--priority", "5"});
      EXPECT_EQ(p.rc, 0) << p.err;
    }
    Snapshot s = Take();
    if (f.neighbours) {  // the comparisons below have something to compare
      EXPECT_EQ(s.keys["csf_ifcfg"].size(), 1u) << s.keys.dump();
      EXPECT_EQ(s.keys["csf_bounce"].size(), 1u) << s.keys.dump();
      EXPECT_EQ(s.rules.size(), 1u) << s.rules.dump();
      EXPECT_EQ(s.status.size(), 1u) << s.status.dump();
      EXPECT_FALSE(s.orphans.progs.empty() || s.orphans.maps.empty()) << Describe(s.orphans);
      if (Probe().tcx) {
        EXPECT_FALSE(s.orphans.links.empty()) << Describe(s.orphans);
      }
    }
    return s;
  }

  // Every point `flavour` passes, from CSUMFIX_FAULT_INJECT=list (which itself fails at the end).
  std::vector<std::string> Points(const Flavour& f) {
    ScopedEnv via("CSUMFIX_IFB_VIA", f.ifb_via);
    CmdResult r = Inject("list", Attach(f.args));
    EXPECT_EQ(r.rc, 1) << f.name << ": list must fail (after the last step)\n" << r.err;
    std::vector<std::string> p = ReachedPoints(r.err);
    EXPECT_FALSE(p.empty()) << f.name << ": no points listed: " << r.err;
    return p;
  }

  void EveryStepRollsBack(const Flavour& f) {
    ScopedEnv via("CSUMFIX_IFB_VIA", f.ifb_via);
    const Snapshot base = Prepare(f);
    if (::testing::Test::HasFatalFailure()) return;
    const std::vector<std::string> points = Points(f);
    ExpectSame(base, f.name + ", after list");
    for (const std::string& point : points) {
      const std::string ctx = f.name + ", fault at " + point;
      CmdResult r = Inject(point, Attach(f.args));
      EXPECT_EQ(r.rc, 1) << ctx << "\n" << r.out << r.err;
      EXPECT_NE(r.err.find("injected fault at step " + point + " "), std::string::npos)
          << ctx << ": " << r.err;
      ExpectSame(base, ctx);
      // A normal attach works right after, with every hook attached, and detaches cleanly.
      CmdResult a = Csumfix(Attach(f.args));
      ASSERT_EQ(a.rc, 0) << ctx << ": attach after the fault: " << a.err;
      CmdResult s = Csumfix({"-n", ns_.name(), "status", "va", "-j"});
      json st = ParseJson(s.out, "status");
      ASSERT_TRUE(st.is_array() && st.size() == 1) << s.out;
      EXPECT_EQ(st[0]["hooks"].size(), f.hooks) << ctx << ": " << s.out;
      for (const json& h : st[0]["hooks"]) EXPECT_TRUE(h["attached"].get<bool>()) << h.dump();
      CmdResult d = Csumfix({"-n", ns_.name(), "detach", "va"});
      EXPECT_EQ(d.rc, 0) << ctx << ": detach: " << d.err;
      EXPECT_EQ(Join(PinTree()), Join(base.pins)) << ctx << ": after attach + detach";
      if (::testing::Test::HasFailure()) return;  // one broken step is enough to read
    }
    std::printf("[ fault    ] %s: %zu points rolled back: ", f.name.c_str(), points.size());
    for (const auto& p : points) std::printf("%s ", p.c_str());
    std::printf("\n");
  }

  // Moves vb into its own namespace peer_ as 10.88.0.2.
  void MakePeer() {
    ASSERT_TRUE(peer_.Create());
    ASSERT_EQ(ns_.Ip("link set vb netns " + peer_.name()), 0);
    ASSERT_EQ(peer_.Ip("addr add 10.88.0.2/24 dev vb"), 0);
    ASSERT_EQ(peer_.Ip("link set vb up"), 0);
  }

  // A UDP flood from 10.88.0.1 (ns_) to 10.88.0.2:port in peer_ (made here, vb moved there),
  // counted by a receiver that rewrites its count to tmp_/count every 100 ms. Both run until the
  // namespaces go (the sender stops by itself after 2 hours, should that fail).
  void StartFlood(int port) {
    const int seconds = 7200;
    MakePeer();
    if (::testing::Test::HasFatalFailure()) return;
    const std::string recv = tmp_ + "/recv.py", send = tmp_ + "/send.py";
    std::ofstream(recv) << "import os, socket, sys, time\n"
                           "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                           "s.bind(('10.88.0.2', int(sys.argv[1])))\n"
                           "s.settimeout(0.05)\n"
                           "out = sys.argv[2]\n"
                           "n = 0\n"
                           "t = 0\n"
                           "while True:\n"
                           "    try:\n"
                           "        s.recv(4096)\n"
                           "        n += 1\n"
                           "    except socket.timeout:\n"
                           "        pass\n"
                           "    if time.time() - t > 0.1:\n"
                           "        open(out + '.tmp', 'w').write(str(n))\n"
                           "        os.rename(out + '.tmp', out)\n"
                           "        t = time.time()\n";
    std::ofstream(send) << "import socket, sys, time\n"
                           "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                           "end = time.time() + int(sys.argv[2])\n"
                           "i = 0\n"
                           "while time.time() < end:\n"
                           "    try:\n"
                           "        s.sendto(b'f' * 256, ('10.88.0.2', int(sys.argv[1])))\n"
                           "    except OSError:\n"
                           "        pass\n"
                           "    i += 1\n"
                           "    if i % 64 == 0:\n"
                           "        time.sleep(0.001)\n";
    ASSERT_EQ(peer_.Exec("python3 " + recv + " " + std::to_string(port) + " " + tmp_ +
                         "/count > " + tmp_ + "/recv.log 2>&1 &"),
              0);
    ASSERT_TRUE(WaitFor([&] { return PathExists(tmp_ + "/count"); }, 60))
        << "receiver not up: " << ReadFile(tmp_ + "/recv.log");
    ASSERT_EQ(ns_.Exec("python3 " + send + " " + std::to_string(port) + " " +
                       std::to_string(seconds) + " > " + tmp_ + "/send.log 2>&1 &"),
              0);
    const long start = Received();
    ASSERT_TRUE(WaitFor([&] { return Received() > start + 500; }, 60))
        << "the flood does not arrive: " << ReadFile(tmp_ + "/send.log");
  }
  long Received() { return std::atol(ReadFile(tmp_ + "/count").c_str()); }
  // True when at least `n` more datagrams arrive within 20 s.
  bool FloodContinues(long n) {
    const long start = Received();
    return WaitFor([&] { return Received() >= start + n; }, 20);
  }

  Netns ns_, peer_;
  std::string tmp_;
};

TEST_F(FaultInjection, ListedPointsCoverEveryStepAndUnknownStepsAreRefused) {
  const Snapshot base = Take();
  std::set<std::string> reached;
  for (const Flavour& f : Flavours())
    for (const std::string& p : Points(f)) reached.insert(StepOf(p));
  ExpectSame(base, "after the list runs");
  // Steps a kernel cannot reach, each for a stated and checked reason.
  std::map<std::string, std::string> unreachable;
  if (!Probe().act_csum) {
    unreachable["act-csum-filter"] = "this kernel has no act_csum (csumfix probe)";
    CmdResult r = Inject("act-csum-filter", Attach({"--both", "--mechanism", "act-csum"}));
    EXPECT_EQ(r.rc, 1);
    EXPECT_NE(r.err.find("fill mechanism act-csum needs the act_csum tc action"),
              std::string::npos)
        << r.err;
  }
  if (!Probe().ifb) {
    for (const char* s : {"ifb-device", "ifb-setup", "ifb-filter"})
      unreachable[s] = "this kernel has no ifb devices or mirred action (csumfix probe)";
    CmdResult r = Inject("ifb-device", Attach({"--ingress", "--mechanism", "ifb"}));
    EXPECT_EQ(r.rc, 1);
    EXPECT_NE(r.err.find("fill mechanism ifb needs ifb devices"), std::string::npos) << r.err;
  }
  if (!Probe().tcx) {
    unreachable["tc-link-pin"] = "no tcx links on this kernel: clsact filters are not pinned";
    unreachable["bounce-return-link-pin"] = unreachable["tc-link-pin"];
  }
  for (absl::string_view step : control::AttachFaultSteps()) {
    const std::string s(step);
    if (unreachable.count(s)) {
      EXPECT_FALSE(reached.count(s)) << s << " was reached after all";
      std::printf("[ fault    ] step %s not exercised here: %s\n", s.c_str(),
                  unreachable[s].c_str());
      RecordProperty("not_exercised_" + s, unreachable[s]);
      continue;
    }
    EXPECT_TRUE(reached.count(s)) << "no attach flavour reaches step " << s
                                  << ": add a flavour to Flavours()";
  }
  for (const std::string& s : reached)
    EXPECT_NE(std::find(control::AttachFaultSteps().begin(), control::AttachFaultSteps().end(), s),
              control::AttachFaultSteps().end())
        << s << " reached but not in AttachFaultSteps()";

  // A name that is no step is refused before anything changes, naming it and the valid ones.
  for (const std::string bad : {"nosuch", "state@ingress", "tc-attach@sideways", ""}) {
    CmdResult r = Inject(bad, Attach({"--both"}));
    EXPECT_EQ(r.rc, 1) << "'" << bad << "': " << r.err;
    EXPECT_NE(r.err.find("CSUMFIX_FAULT_INJECT=" + bad + ": not a fault-injection step"),
              std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("tc-attach"), std::string::npos) << "the valid steps are listed: " << r.err;
  }
  ExpectSame(base, "after refused step names");
}

TEST_F(FaultInjection, EveryStepRollsBackTcObserve) { EveryStepRollsBack(Flavours()[0]); }
TEST_F(FaultInjection, EveryStepRollsBackClsact) { EveryStepRollsBack(Flavours()[1]); }
TEST_F(FaultInjection, EveryStepRollsBackXdpRedirect) { EveryStepRollsBack(Flavours()[2]); }
TEST_F(FaultInjection, EveryStepRollsBackBounce) { EveryStepRollsBack(Flavours()[3]); }
TEST_F(FaultInjection, EveryStepRollsBackBesideAnotherAttachmentAndARule) {
  EveryStepRollsBack(Flavours()[4]);
}
TEST_F(FaultInjection, EveryStepRollsBackActCsum) {
  if (!Probe().act_csum)
    GTEST_SKIP() << "this kernel has no act_csum, so attach refuses --mechanism act-csum (checked "
                    "in ListedPointsCoverEveryStepAndUnknownStepsAreRefused)";
  EveryStepRollsBack(FlavourNamed("act-csum"));
}
TEST_F(FaultInjection, EveryStepRollsBackIfb) {
  if (!Probe().ifb)
    GTEST_SKIP() << "this kernel has no ifb devices or mirred action, so attach refuses "
                    "--mechanism ifb (checked in ListedPointsCoverEveryStepAndUnknownStepsAreRefused)";
  EveryStepRollsBack(FlavourNamed("ifb"));
  if (Probe().ifb_redirect) EveryStepRollsBack(FlavourNamed("ifb by mirred"));
}

// True when some string in `j` names a csumfix program (csf_...).
bool MentionsCsf(const json& j) {
  if (j.is_string()) return j.get<std::string>().rfind("csf_", 0) == 0;
  if (j.is_structured())
    for (const auto& x : j) if (MentionsCsf(x)) return true;
  return false;
}

TEST_F(FaultInjection, DetachDuringTrafficLeavesNothingAndTrafficContinues) {
  StartFlood(7300);
  ASSERT_FALSE(HasFatalFailure());
  const Snapshot base = Take();
  for (int round = 0; round < 3; ++round) {
    const std::string ctx = "round " + std::to_string(round);
    CmdResult a = Csumfix(Attach({"--both", "--mechanism", "bounce", "--action", "fill"}));
    ASSERT_EQ(a.rc, 0) << ctx << ": " << a.err;
    ASSERT_TRUE(FloodContinues(1000)) << ctx << ": no traffic while attached";
    CmdResult t = Csumfix({"-n", ns_.name(), "stats", "va", "-j"});
    ASSERT_EQ(t.rc, 0) << t.err;
    uint64_t bounced = 0;
    for (const json& r : ParseJson(t.out, "stats")) bounced += r["bounced"].get<uint64_t>();
    EXPECT_GT(bounced, 500u) << ctx << ": the flood's partial datagrams went through the fill: "
                             << t.out;
    CmdResult d = Csumfix({"-n", ns_.name(), "detach", "va"});
    EXPECT_EQ(d.rc, 0) << ctx << ": " << d.err;
    EXPECT_EQ(d.err, "") << ctx << ": detach under traffic warned";
    ExpectSame(base, ctx + ", detached under traffic");
    EXPECT_TRUE(FloodContinues(1000)) << ctx << ": traffic stopped after detach";
  }
  EXPECT_EQ(ReadFile(tmp_ + "/send.log") + ReadFile(tmp_ + "/recv.log"), "")
      << "the sender or receiver failed";
}

TEST_F(FaultInjection, InterfaceDeletedWhileAttachedThenDetachAllCleansEverything) {
  StartFlood(7301);
  ASSERT_FALSE(HasFatalFailure());
  const Snapshot base = Take();
  CmdResult a = Csumfix(Attach({"--both", "--xdp", "--mechanism", "bounce", "--action", "fill"}));
  ASSERT_EQ(a.rc, 0) << a.err;
  ASSERT_TRUE(FloodContinues(500));
  const Snapshot attached = Take();
  EXPECT_EQ(attached.links.size(), base.links.size() + 4) << "two helper veth pairs: "
                                                           << Join(attached.links);
  ASSERT_EQ(ns_.Ip("link del va"), 0);  // the peer end vb goes with it
  CmdResult s = Csumfix({"-n", ns_.name(), "status", "-j"});
  ASSERT_EQ(s.rc, 0) << s.err;
  json st = ParseJson(s.out, "status");
  ASSERT_EQ(st.size(), 1u) << s.out;
  EXPECT_EQ(st[0]["ifname"], "va");
  EXPECT_FALSE(st[0]["present"].get<bool>()) << s.out;
  ASSERT_EQ(st[0]["hooks"].size(), 3u) << s.out;
  for (const json& h : st[0]["hooks"]) EXPECT_FALSE(h["attached"].get<bool>()) << h.dump();

  CmdResult d = Csumfix({"-n", ns_.name(), "detach", "--all"});
  EXPECT_EQ(d.rc, 0) << d.err;
  EXPECT_EQ(d.err, "");
  const Snapshot after = Take();
  EXPECT_EQ(Join(after.pins), "(nothing)") << "pins left";
  EXPECT_EQ(Join(after.links), "lo") << "helper veths left";
  EXPECT_FALSE(MentionsCsf(after.net)) << after.net.dump();
  EXPECT_EQ(after.status, json::array());
  ExpectNoFreshOrphans(base.orphans, "after detach --all");
}

// Runs the calling thread in /run/netns/NAME while alive (the test process is single-threaded).
class InNetns {
 public:
  explicit InNetns(const std::string& name) {
    orig_ = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    const int fd = open(("/run/netns/" + name).c_str(), O_RDONLY | O_CLOEXEC);
    ok_ = orig_ >= 0 && fd >= 0 && setns(fd, CLONE_NEWNET) == 0;
    if (fd >= 0) close(fd);
  }
  ~InNetns() {
    if (ok_) setns(orig_, CLONE_NEWNET);
    if (orig_ >= 0) close(orig_);
  }
  bool ok() const { return ok_; }

 private:
  int orig_ = -1;
  bool ok_ = false;
};

size_t OpenFds() {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

// The clsact qdisc: one csumfix created goes with its last filter on detach (and on a failed
// attach, see EveryStepRollsBack*); one that was there before, or that holds someone else's
// filter by the time of the detach, stays with that filter.
TEST_F(FaultInjection, DetachDeletesOnlyAnEmptyClsactQdiscItCreated) {
  auto clsact = [&] {
    json q = Qdiscs()["va"];
    return std::find(q.begin(), q.end(), "clsact") != q.end();
  };
  const std::vector<std::string> attach =
      Attach({"--both", "--tc-api", "clsact", "--mechanism", "observe"});
  ASSERT_FALSE(clsact());
  // 1. csumfix made it: it goes.
  CmdResult a = Csumfix(attach);
  ASSERT_EQ(a.rc, 0) << a.err;
  EXPECT_TRUE(clsact());
  CmdResult d = Csumfix({"-n", ns_.name(), "detach", "va"});
  EXPECT_EQ(d.rc, 0) << d.err;
  EXPECT_FALSE(clsact()) << "the clsact qdisc csumfix created was left";
  // 2. It was there before: it stays.
  ASSERT_EQ(ns_.Exec("tc qdisc add dev va clsact"), 0);
  a = Csumfix(attach);
  ASSERT_EQ(a.rc, 0) << a.err;
  d = Csumfix({"-n", ns_.name(), "detach", "va"});
  EXPECT_EQ(d.rc, 0) << d.err;
  EXPECT_TRUE(clsact()) << "detach deleted a clsact qdisc csumfix did not create";
  ASSERT_EQ(ns_.Exec("tc qdisc del dev va clsact"), 0);
  // 3. csumfix made it, someone else's filter joined: qdisc and filter stay.
  a = Csumfix(attach);
  ASSERT_EQ(a.rc, 0) << a.err;
  ASSERT_EQ(ns_.Exec("tc filter add dev va ingress prio 7 protocol ip u32 match u32 0 0"), 0);
  d = Csumfix({"-n", ns_.name(), "detach", "va"});
  EXPECT_EQ(d.rc, 0) << d.err;
  EXPECT_TRUE(clsact()) << "detach deleted a clsact qdisc holding another user's filter";
  CmdResult f = testing::Run({"tc", "-n", ns_.name(), "filter", "show", "dev", "va", "ingress"});
  EXPECT_NE(f.out.find("u32"), std::string::npos) << "the other filter went: " << f.out;
  EXPECT_EQ(f.out.find("csf_"), std::string::npos) << "csumfix's filter stayed: " << f.out;
}

// Cycles cost about 0.2 s each, through the CLI or the library alike (measured on kernel 6.18
// under the flood: 100 CLI cycles 21 s, 1000 library cycles 213 s; 126 s and 996 s with a qemu
// guest busy beside): the time goes into loading and verifying the BPF object on every attach,
// not into starting processes. 1000 CLI cycles would add another 3.5 minutes or more, so the CLI
// does 100 and the library, which also lets the test count its own file descriptors, does 1000.
//
// How many attach/detach cycles a cycle test runs: `n`, or fewer when CSUMFIX_FI_CYCLES says so
// (vmtests/guest.sh: under TCG each cycle is ten times slower; the full counts run on the host in
// scripts/test.sh). The count run is printed.
int Cycles(int n) {
  const char* e = getenv("CSUMFIX_FI_CYCLES");
  if (e == nullptr || *e == '\0') return n;
  const int cap = atoi(e);
  return cap > 0 && cap < n ? cap : n;
}

TEST_F(FaultInjection, HundredCliAttachDetachCyclesUnderTrafficLeakNothing) {
  StartFlood(7302);
  ASSERT_FALSE(HasFatalFailure());
  const Snapshot base = Take();
  const auto t0 = std::chrono::steady_clock::now();
  const int cycles = Cycles(100);
  for (int i = 0; i < cycles; ++i) {
    // Every fourth cycle the full set: bounce veths, both tc hooks and XDP.
    const bool full = i % 4 == 3;
    CmdResult a = Csumfix(full ? Attach({"--both", "--xdp", "--mechanism", "bounce", "--action",
                                         "fill"})
                               : Attach({"--both", "--mechanism", "observe", "--action", "verify"}));
    ASSERT_EQ(a.rc, 0) << "cycle " << i << ": " << a.err;
    CmdResult d = Csumfix({"-n", ns_.name(), "detach", "va"});
    ASSERT_EQ(d.rc, 0) << "cycle " << i << ": " << d.err;
    ASSERT_EQ(d.err, "") << "cycle " << i;
  }
  std::printf("[ cycles   ] %d CLI attach/detach cycles under traffic: %.1f s\n", cycles,
              Seconds(t0));
  ExpectSame(base, "after the CLI cycles");
  EXPECT_TRUE(FloodContinues(1000)) << "traffic stopped";
}

// The library in this process: also its own file descriptors must not grow.
TEST_F(FaultInjection, ThousandAttachDetachCyclesUnderTrafficLeakNoFdsMapsLinksOrPins) {
  StartFlood(7303);
  ASSERT_FALSE(HasFatalFailure());
  const Snapshot base = Take();
  const auto t0 = std::chrono::steady_clock::now();
  size_t fds_before = 0, fds_after = 0;
  const int cycles = Cycles(1000);
  {
    InNetns in(ns_.name());
    ASSERT_TRUE(in.ok()) << "setns into " << ns_.name();
    control::Controller c;
    fds_before = OpenFds();
    for (int i = 0; i < cycles; ++i) {
      control::AttachRequest req;
      req.ifname = "va";
      req.ingress = req.egress = true;
      if (i % 4 == 3) {  // the full set: bounce veths, both tc hooks and XDP
        req.xdp = true;
        req.mechanism = CSF_MECH_BOUNCE;
        req.action = CSF_ACT_FILL;
      } else {
        req.mechanism = CSF_MECH_OBSERVE;
        req.action = CSF_ACT_VERIFY;
      }
      // bounce and observe need no kernel feature: an empty probe result will do.
      absl::Status a = c.Attach(req, control::ProbeResult{});
      ASSERT_TRUE(a.ok()) << "cycle " << i << ": " << a;
      Outcome d = c.Detach("va");
      ASSERT_TRUE(d.ok()) << "cycle " << i << ": " << d.status();
      ASSERT_TRUE(d->clean()) << "cycle " << i << ": " << d->warnings.front();
    }
    fds_after = OpenFds();
  }
  std::printf("[ cycles   ] %d in-process attach/detach cycles under traffic: %.1f s\n", cycles,
              Seconds(t0));
  EXPECT_EQ(fds_after, fds_before) << "file descriptors leaked by " << cycles << " cycles";
  ExpectSame(base, "after the in-process cycles");
  EXPECT_TRUE(FloodContinues(1000)) << "traffic stopped";
}

// Rule specs for the policy tests.
csf_pol_rule Rule(const std::string& proto, const std::string& sport, const std::string& dport,
                  const std::string& action) {
  control::RuleSpec spec;
  spec.proto = proto;
  spec.sport = sport;
  spec.dport = dport;
  spec.action = action;
  auto r = control::ParseRule(spec);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : csf_pol_rule{};
}

// Adds `rules` in this process (the CLI adds one rule per call); returns them with their ids.
std::vector<csf_pol_rule> AddInProcess(std::vector<csf_pol_rule> rules) {
  auto p = control::Policy::Open();  // holds the pin lock until it goes out of scope
  EXPECT_TRUE(p.ok()) << p.status();
  if (!p.ok()) return {};
  auto ids = p->AddAll(rules);
  EXPECT_TRUE(ids.ok()) << ids.status();
  if (!ids.ok()) return {};
  for (size_t i = 0; i < rules.size(); ++i) rules[i].id = (*ids)[i];
  return rules;
}

// What `csumfix policy list -j` must print for `rules` (all of priority 100, so in id order).
json ExpectedList(const std::vector<csf_pol_rule>& rules) {
  static const char* kActs[] = {"pass", "observe", "verify", "drop-bad", "fill", "zero-udp4"};
  json out = json::array();
  for (const auto& r : rules)
    out.push_back({{"id", r.id},
                   {"priority", r.priority},
                   {"action", kActs[r.action]},
                   {"rule", control::DescribeRule(r)}});
  return out;
}

// The first difference between two rule lists, for messages.
std::string FirstDiff(const json& a, const json& b) {
  if (!a.is_array() || !b.is_array()) return "not arrays";
  if (a.size() != b.size())
    return "sizes " + std::to_string(a.size()) + " vs " + std::to_string(b.size());
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i] != b[i]) return "[" + std::to_string(i) + "] " + a[i].dump() + " vs " + b[i].dump();
  return "none";
}

// `csumfix policy list -j`, each rule cut to the fields compared here.
json PolicyList(const Netns& ns) {
  CmdResult l = Csumfix({"-n", ns.name(), "policy", "list", "-j"});
  EXPECT_EQ(l.rc, 0) << l.err;
  json out = json::array();
  for (const json& r : ParseJson(l.out, "policy list -j"))
    out.push_back({{"id", r.value("id", json())},
                   {"priority", r.value("priority", json())},
                   {"action", r.value("action", json())},
                   {"rule", r.value("rule", json())}});
  return out;
}

TEST_F(FaultInjection, FullPolicyStoreRefusesOneMoreRuleAndKeepsEveryRule) {
  MakePeer();
  ASSERT_FALSE(HasFatalFailure());
  // CSF_POL_MAX_RULES rules of one shape: tcp to every port, then udp to 1, 2, ... — udp to
  // 7401 only verifies (seeds stay); udp beyond the last rule's port has no rule.
  std::vector<csf_pol_rule> rules;
  for (uint32_t port = 1; rules.size() < CSF_POL_MAX_RULES && port < 65536; ++port)
    rules.push_back(Rule("tcp", "", std::to_string(port), "fill"));
  for (uint32_t port = 1; rules.size() < CSF_POL_MAX_RULES; ++port)
    rules.push_back(Rule("udp", "", std::to_string(port), port == 7401 ? "verify" : "fill"));
  const uint32_t last_udp = CSF_POL_MAX_RULES - 65535;
  ASSERT_LT(last_udp, 40000u);
  {
    InNetns in(ns_.name());  // the rules of ns_, where va is attached
    ASSERT_TRUE(in.ok());
    rules = AddInProcess(rules);
  }
  ASSERT_EQ(rules.size(), size_t{CSF_POL_MAX_RULES});
  const json expected = ExpectedList(rules);

  // The store really is the kernel map at its capacity.
  CmdResult m = testing::Run({"bpftool", "-j", "map", "show", "pinned",
                     ns_.PinRoot() + "/maps/csf_pol_store"});
  ASSERT_EQ(m.rc, 0) << m.err;
  EXPECT_EQ(ParseJson(m.out, "bpftool map show")["max_entries"], CSF_POL_MAX_RULES);
  json before = PolicyList(ns_);
  ASSERT_EQ(before.size(), size_t{CSF_POL_MAX_RULES});
  EXPECT_TRUE(before == expected) << "the listed rules differ from those added: "
                                  << FirstDiff(before, expected);

  CmdResult add = Csumfix({"-n", ns_.name(), "policy", "add", "--proto", "udp", "--dport", "50000", "--action",
                           "pass"});
  EXPECT_EQ(add.rc, 1) << add.out;
  EXPECT_NE(add.err.find("policy: at most " + std::to_string(CSF_POL_MAX_RULES) +
                         " rules; existing rules are unchanged"),
            std::string::npos)
      << add.err;
  json after = PolicyList(ns_);
  EXPECT_EQ(after.size(), size_t{CSF_POL_MAX_RULES});
  EXPECT_TRUE(after == expected) << "the rules changed after the refused add: "
                                 << FirstDiff(after, expected);

  // And the rules are still in force: udp to 7401 only verifies, to a port without rule fills.
  ASSERT_EQ(Csumfix(Attach({"--egress", "--mechanism", "bounce", "--action", "fill"})).rc, 0);
  auto send = [&](int port) {
    return RawRead(peer_, "vb", port, 10, [&] {
      ns_.Exec("python3 -c \"import socket,time; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
               " [s.sendto(b'p'*200,('10.88.0.2'," + std::to_string(port) + ")) or time.sleep(0.002)"
               " for _ in range(10)]\"");
    });
  };
  EXPECT_EQ(send(7401), "10 10 0") << "rule 'udp dport 7401 -> verify': seeds stay";
  EXPECT_EQ(send(40001), "10 0 10") << "no rule: the interface's fill";
}

TEST_F(FaultInjection, FullPolicyTableRefusesMoreEntriesAndKeepsEveryRule) {
  // CSF_POL_MAX_ENTRIES table entries exactly: rules of 64 x 64 (source, destination) ports.
  std::vector<csf_pol_rule> rules;
  for (uint32_t i = 0; rules.size() * 4096 < CSF_POL_MAX_ENTRIES; ++i)
    rules.push_back(Rule("udp", "1-64", std::to_string(64 * i + 1) + "-" +
                                            std::to_string(64 * i + 64), "fill"));
  ASSERT_EQ(rules.size() * 4096, size_t{CSF_POL_MAX_ENTRIES});
  {
    InNetns in(ns_.name());  // the rules of ns_, where va is attached
    ASSERT_TRUE(in.ok());
    rules = AddInProcess(rules);
  }
  ASSERT_FALSE(rules.empty());
  const json expected = ExpectedList(rules);
  ASSERT_TRUE(PolicyList(ns_) == expected) << FirstDiff(PolicyList(ns_), expected);

  // One more entry does not fit.
  CmdResult add = Csumfix({"-n", ns_.name(), "policy", "add", "--proto", "udp", "--dport", "60000", "--action",
                           "pass"});
  EXPECT_EQ(add.rc, 1) << add.out;
  EXPECT_NE(add.err.find(std::to_string(CSF_POL_MAX_ENTRIES + 1) +
                         " table entries after expanding port ranges; at most " +
                         std::to_string(CSF_POL_MAX_ENTRIES) + " fit"),
            std::string::npos)
      << add.err;
  EXPECT_TRUE(PolicyList(ns_) == expected) << "the rules changed after the refused add: "
                                        << FirstDiff(PolicyList(ns_), expected);

  // Fewer entries that still cannot sit beside the rules in force until the switch: a delete.
  CmdResult del = Csumfix({"-n", ns_.name(), "policy", "del", std::to_string(rules[0].id)});
  EXPECT_EQ(del.rc, 1) << del.out;
  EXPECT_NE(del.err.find("policy: the new rules need " +
                         std::to_string(CSF_POL_MAX_ENTRIES - 4096) +
                         " table entries and the rules in force hold " +
                         std::to_string(CSF_POL_MAX_ENTRIES)),
            std::string::npos)
      << del.err;
  EXPECT_NE(del.err.find("`csumfix -n " + ns_.name() + " policy flush`"), std::string::npos)
      << del.err;
  EXPECT_TRUE(PolicyList(ns_) == expected) << "the rules changed after the refused delete: "
                                        << FirstDiff(PolicyList(ns_), expected);
  CmdResult t = testing::Run({"bpftool", "-j", "map", "show", "pinned",
                     ns_.PinRoot() + "/maps/csf_pol_rules"});
  EXPECT_EQ(ParseJson(t.out, "bpftool map show")["max_entries"], CSF_POL_MAX_ENTRIES);
  // flush still works (TearDown checks the pins go).
  CmdResult f = Csumfix({"-n", ns_.name(), "policy", "flush"});
  EXPECT_EQ(f.rc, 0) << f.err;
  EXPECT_EQ(PolicyList(ns_), json::array());
}

}  // namespace
}  // namespace csumfix::testing
