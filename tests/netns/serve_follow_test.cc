// serve follows the host live: links that appear, join a watched bridge or start to match are
// attached (how fast is reported; scripts/bench.sh measures it); one released from the bridge is detached; a TAP deleted and made
// again under its name is attached again; match and kind select; a named interface that does not
// exist is a warning and is attached when it appears; after an rtnetlink overflow (ENOBUFS,
// provoked with a tiny socket buffer while serve is stopped) it reads every link again and misses
// none; the shipped example config passes --check-config on a host that has none of its names.
#include <signal.h>
#include <stdlib.h>

#include <chrono>
#include <fstream>
#include <cstdio>
#include <set>
#include <string>

#include "gtest/gtest.h"
#include "netns/lab.h"
#include "netns/serve_fixture.h"
#include "nlohmann/json.hpp"

namespace csumfix::testing {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

class ServeFollow : public Serve {
 protected:
  void TearDown() override {
    unsetenv("CSUMFIX_NETLINK_RCVBUF");
    Serve::TearDown();
  }
  // The status entry of `name` when it is attached, present, with every hook attached.
  bool Attached(const std::string& name) {
    auto st = TryStatus();
    if (!st) return false;
    for (const auto& i : *st) {
      if (i["ifname"] != name || i["state"] != "ok" || !i["present"].get<bool>()) continue;
      for (const auto& h : i["hooks"])
        if (!h["attached"].get<bool>()) return false;
      return true;
    }
    return false;
  }
  bool Listed(const std::string& name) {
    for (const auto& i : Status())
      if (i["ifname"] == name) return true;
    return false;
  }
  uint32_t Ifindex(const std::string& name) {
    for (const auto& i : Status())
      if (i["ifname"] == name) return i["ifindex"].get<uint32_t>();
    return 0;
  }
  // Runs `change`, then waits until `done` holds: the seconds it took (-1: not within `limit`).
  double Latency(const std::function<void()>& change, const std::function<bool()>& done,
                 int limit) {
    const auto t0 = Clock::now();
    change();
    if (!WaitFor(done, limit)) return -1;
    return std::chrono::duration<double>(Clock::now() - t0).count();
  }
  // Reports how long a change took to be followed (the test's XML and its output). The speed
  // target (p99 <= 250 ms from RTM_NEWLINK to attached) is measured by scripts/bench.sh, not
  // asserted here: a loaded CI machine or a TCG guest would make it a flake.
  void Report(const std::string& what, double seconds) {
    RecordProperty(what + "_seconds", std::to_string(seconds));
    std::printf("  %s followed in %.3f s\n", what.c_str(), seconds);
  }
  // WaitFor scales it by TimeScale() itself.
  int Deadline(int seconds) { return seconds; }
};

TEST_F(ServeFollow, BridgePortsAreAttachedAsTheyJoinAndDetachedAsTheyLeave) {
  ASSERT_EQ(a_.Ip("link add br0 type bridge"), 0);
  ASSERT_EQ(a_.Ip("link set br0 up"), 0);
  WriteConfig("[[interface]]\nmaster = \"br0\"\nhooks = [\"egress\"]\naction = \"fill\"\n"
              "mechanism = \"bounce\"\n");
  // Before: va is not a port, so nothing is attached and vb reads seeds.
  EXPECT_EQ(SendAndRead(10, 7300), "10 10 0") << "the lab must produce partial datagrams";
  StartServe({"--config", cfg_});
  EXPECT_EQ(Status().size(), 0u);

  // A TAP created and enslaved after serve started (a VM starting): attached within a second.
  ASSERT_EQ(a_.Ip("tuntap add dev tapF mode tap"), 0);
  double t = Latency([&] { ASSERT_EQ(a_.Ip("link set tapF master br0"), 0); },
                     [&] { return Attached("tapF"); }, Deadline(30));
  ASSERT_GE(t, 0) << "tapF was not attached\n" << ReadFile(log_);
  Report("tapF_attached", t);
  const uint32_t first = Ifindex("tapF");

  // va joins the bridge, the address moves to br0: filled traffic within a second.
  ASSERT_EQ(a_.Ip("addr del 10.67.0.1/24 dev va"), 0);
  t = Latency([&] { ASSERT_EQ(a_.Ip("link set va master br0"), 0); },
              [&] { return Attached("va"); }, Deadline(30));
  ASSERT_GE(t, 0) << ReadFile(log_);
  Report("va_attached", t);
  EXPECT_EQ(Status()[0]["hooks"][0]["prog_id"], Status()[1]["hooks"][0]["prog_id"])
      << "serve attaches the programs it verified once: " << Status().dump();
  ASSERT_EQ(a_.Ip("addr add 10.67.0.1/24 dev br0"), 0);
  EXPECT_EQ(SendAndRead(10, 7301), "10 0 10") << "a port of br0: filled\n" << ReadFile(log_);

  // A VM restart: the TAP is deleted and made again under its name: attached again.
  ASSERT_EQ(a_.Ip("link del tapF"), 0);
  ASSERT_EQ(a_.Ip("tuntap add dev tapF mode tap"), 0);
  ASSERT_EQ(a_.Ip("link set tapF master br0"), 0);
  ASSERT_TRUE(WaitFor([&] { return Attached("tapF") && Ifindex("tapF") != first; },
                      Deadline(10)))
      << Status().dump() << "\n" << ReadFile(log_);

  // Released from the bridge: detached (serve attached it), its bounce veth gone with it.
  t = Latency([&] { ASSERT_EQ(a_.Ip("link set va nomaster"), 0); },
              [&] { return !Listed("va"); }, Deadline(30));
  ASSERT_GE(t, 0) << ReadFile(log_);
  Report("va_detached", t);
  EXPECT_TRUE(Attached("tapF"));
  EXPECT_NE(ReadFile(log_).find("detached va (no longer selected)"), std::string::npos)
      << ReadFile(log_);
  Scrape m = Metrics();
  EXPECT_GE(m.Get("csumfix_follow_attaches_total", {{"result", "success"}}).value_or(0), 3);
  EXPECT_EQ(m.Get("csumfix_follow_attaches_total", {{"result", "failure"}}), 0);
  EXPECT_EQ(StopServe(SIGTERM), 0);
  EXPECT_TRUE(Attached("tapF")) << "attachments stay after serve exits";
}

TEST_F(ServeFollow, MatchKindAndANameThatDoesNotExistYet) {
  WriteConfig(R"([[interface]]
name = "late0"
action = "observe"
mechanism = "observe"

[[interface]]
match = "m*"
kind = "tun"
action = "observe"
mechanism = "observe"

[[rule]]
iface = "late0"
proto = "udp"
dport = 7501
action = "verify"
)");
  CmdResult check = Csumfix({"-n", a_.name(), "serve", "--config", cfg_, "--check-config"});
  ASSERT_EQ(check.rc, 0) << "a rule may name an interface that does not exist yet: " << check.err;
  EXPECT_NE(check.out.find("late0 (" + cfg_ + ":1:1) does not exist now"), std::string::npos)
      << check.out;
  StartServe({"--config", cfg_});
  EXPECT_NE(ReadFile(log_).find("waiting for late0"), std::string::npos) << ReadFile(log_);
  EXPECT_NE(ReadFile(log_).find("rule 1 names late0, which does not exist now"),
            std::string::npos)
      << ReadFile(log_);
  EXPECT_EQ(Metrics().Get("csumfix_config_waiting_interfaces", {}), 1);
  json rules = Rules();
  ASSERT_EQ(rules.size(), 1u);
  EXPECT_EQ(rules[0]["iface"], "late0") << rules.dump();
  EXPECT_TRUE(rules[0]["iface_gone"].get<bool>()) << "it waits: " << rules.dump();

  // A veth named m*, then a TAP named m*: only the TAP is of kind tun.
  ASSERT_EQ(a_.Ip("link add m2 type veth peer name m3"), 0);
  ASSERT_EQ(a_.Ip("tuntap add dev m1 mode tap"), 0);
  ASSERT_TRUE(WaitFor([&] { return Attached("m1"); }, Deadline(5)))
      << ReadFile(log_);
  EXPECT_FALSE(Listed("m2"));
  EXPECT_FALSE(Listed("m3"));

  // The named one appears.
  double t = Latency([&] { ASSERT_EQ(a_.Ip("tuntap add dev late0 mode tun"), 0); },
                     [&] { return Attached("late0"); }, Deadline(30));
  ASSERT_GE(t, 0) << ReadFile(log_);
  Report("late0_attached", t);
  EXPECT_EQ(Metrics().Get("csumfix_config_waiting_interfaces", {}), 0);
  rules = Rules();
  ASSERT_EQ(rules.size(), 1u);
  EXPECT_FALSE(rules[0]["iface_gone"].get<bool>()) << "bound to the new late0: " << rules.dump();
  // A reload finds the rule set as stored: nothing replaced.
  kill(serve_, SIGHUP);
  EXPECT_TRUE(WaitFor([&] { return ReadFile(log_).find("rule set unchanged (1 rules)") !=
                                   std::string::npos; }, Deadline(10)))
      << ReadFile(log_);
  // Renamed so that it no longer matches: detached.
  ASSERT_EQ(a_.Ip("link set m1 name x1"), 0);
  EXPECT_TRUE(WaitFor([&] { return !Listed("m1") && !Listed("x1"); },
                      Deadline(5)))
      << Status().dump() << ReadFile(log_);
}

// serve killed with SIGKILL in the middle of a burst of new bridge ports (an OOM kill, a node
// drain): whatever it left half done, the next serve attaches every port, each exactly once, and
// a status of the namespace has no record other than "ok".
TEST_F(ServeFollow, KilledMidBurstTheNextServeAttachesEveryPort) {
  ASSERT_EQ(a_.Ip("link add br0 type bridge"), 0);
  ASSERT_EQ(a_.Ip("link set br0 up"), 0);
  WriteConfig("[[interface]]\nmaster = \"br0\"\nhooks = [\"ingress\", \"egress\"]\n"
              "action = \"observe\"\nmechanism = \"observe\"\n");
  constexpr int kTaps = 30;
  for (int i = 0; i < kTaps; ++i)
    ASSERT_EQ(a_.Ip("tuntap add dev kb" + std::to_string(i) + " mode tap"), 0);
  StartServe({"--config", cfg_});
  // The ports join 50 ms apart (about 1.5 s in all); serve is killed once a few are attached,
  // so some join while it works, some while no serve runs.
  pid_t ip = fork();
  if (ip == 0) {
    const std::string loop = "for i in $(seq 0 " + std::to_string(kTaps - 1) +
                             "); do ip link set kb$i master br0 || exit 1; sleep " +
                             std::to_string(0.05 * TimeScale()) + "; done";
    execlp("ip", "ip", "netns", "exec", a_.name().c_str(), "sh", "-c", loop.c_str(),
           static_cast<char*>(nullptr));
    _exit(127);
  }
  WaitFor([&] {
    auto st = TryStatus();
    return st && st->size() >= 3;  // a few attached: the rest still coming
  }, Deadline(10));
  const size_t at_kill = Status().size();
  EXPECT_EQ(StopServe(SIGKILL), 128 + SIGKILL);
  int ip_status = 0;
  waitpid(ip, &ip_status, 0);
  ASSERT_TRUE(WIFEXITED(ip_status) && WEXITSTATUS(ip_status) == 0);
  std::printf("  serve killed with %zu of %d ports attached\n", at_kill, kTaps);
  if (at_kill == static_cast<size_t>(kTaps))  // a slow guest: said, and the restart still checked
    std::printf("  the kill came after the burst here: only the restart is checked\n");

  StartServe({"--config", cfg_});
  ASSERT_TRUE(WaitFor([&] {
    auto st = TryStatus();
    if (!st || st->size() != static_cast<size_t>(kTaps)) return false;
    for (const auto& i : *st)
      if (i["state"] != "ok") return false;
    return true;
  }, Deadline(20))) << Status().dump() << ReadFile(log_);
  for (int i = 0; i < kTaps; ++i) {
    const std::string name = "kb" + std::to_string(i);
    EXPECT_TRUE(Attached(name)) << name;
    // Exactly one csumfix program per hook: nothing attached twice by the two serves.
    const std::string net = a_.Capture("bpftool net show dev " + name);
    size_t n = 0;
    for (size_t pos = 0; (pos = net.find("csf_tc_", pos)) != std::string::npos; ++pos) ++n;
    EXPECT_EQ(n, 2u) << name << ": " << net;
  }
  EXPECT_EQ(StopServe(SIGTERM), 0);
}

TEST_F(ServeFollow, AnOverflowIsFollowedByAFullResync) {
  WriteConfig("[[interface]]\nmatch = \"r*\"\naction = \"observe\"\nmechanism = \"observe\"\n");
  setenv("CSUMFIX_NETLINK_RCVBUF", "2048", 1);  // a few messages fill it
  StartServe({"--config", cfg_});
  unsetenv("CSUMFIX_NETLINK_RCVBUF");
  // serve stopped: the events of 30 new TAPs pile up and overflow its socket.
  ASSERT_EQ(kill(serve_, SIGSTOP), 0);
  ASSERT_EQ(a_.Exec("for i in $(seq 0 29); do ip tuntap add dev r$i mode tap && "
                    "ip link set r$i up || exit 1; done"),
            0);
  ASSERT_EQ(kill(serve_, SIGCONT), 0);
  ASSERT_TRUE(WaitFor(
      [&] {
        auto st = TryStatus();
        if (!st || st->size() != 30) return false;
        for (const auto& i : *st)
          if (i["state"] != "ok") return false;
        return true;
      },
      Deadline(60)))
      << ReadFile(log_);
  EXPECT_NE(ReadFile(log_).find("rtnetlink overflow"), std::string::npos) << ReadFile(log_);
  EXPECT_GE(Metrics().Get("csumfix_link_resyncs_total", {}).value_or(0), 1);
}

// serve verifies the programs once and attaches the same ones to every interface while the shared
// maps stay; when the last interface goes and the maps with it, the next attach loads afresh for
// the new maps (an attach with stale programs would configure maps nobody reads).
TEST_F(ServeFollow, ProgramsAreLoadedOnceAndAgainWhenTheSharedMapsAreNew) {
  WriteConfig("[[interface]]\nmatch = \"p*\"\naction = \"observe\"\nmechanism = \"observe\"\n");
  StartServe({"--config", cfg_});
  for (const char* n : {"p1", "p2", "p3"}) ASSERT_EQ(a_.Ip(std::string("tuntap add dev ") + n + " mode tap"), 0);
  ASSERT_TRUE(WaitFor([&] { return Attached("p1") && Attached("p2") && Attached("p3"); },
                      Deadline(30)))
      << ReadFile(log_);
  std::set<uint32_t> ids;
  for (const auto& i : Status())
    for (const auto& h : i["hooks"]) ids.insert(h["prog_id"].get<uint32_t>());
  EXPECT_EQ(ids.size(), 2u) << "one tc ingress and one tc egress program for all three: "
                            << Status().dump();
  // All gone: serve forgets them, the shared maps go with the last.
  ASSERT_EQ(a_.Exec("ip link del p1 && ip link del p2 && ip link del p3"), 0);
  ASSERT_TRUE(WaitFor([&] { return Status().empty(); }, Deadline(30))) << ReadFile(log_);
  ASSERT_TRUE(WaitFor([&] { return !PathExists(a_.PinRoot() + "/maps"); }, Deadline(10)))
      << "the shared maps stay after the last interface went\n" << ReadFile(log_);
  ASSERT_EQ(a_.Ip("tuntap add dev p4 mode tap"), 0);
  ASSERT_TRUE(WaitFor([&] { return Attached("p4"); }, Deadline(30))) << ReadFile(log_);
  json st = Status();
  ASSERT_EQ(st.size(), 1u);
  for (const auto& h : st[0]["hooks"]) {
    EXPECT_EQ(h["action"], "observe") << "configured in the pinned maps: " << st.dump();
    EXPECT_EQ(ids.count(h["prog_id"].get<uint32_t>()), 0u) << "loaded again for the new maps";
  }
}

// The Xen recipe (packaging/recipes/xen.toml) as written: a vif appearing (here a veth named as
// netback names them) is attached; inbound traffic is filled, outbound only DHCP answers.
TEST_F(ServeFollow, XenRecipeFillsInboundAndOutboundDhcp) {
  const std::string recipe = ReadFile(std::string(CSUMFIX_SOURCE_DIR) + "/packaging/recipes/xen.toml");
  ASSERT_FALSE(recipe.empty());
  WriteConfig(recipe);
  StartServe({"--config", cfg_});
  ASSERT_TRUE(VethPair({&a_, "vif3.0", "10.69.0.1/24"}, {&b_, "domU", "10.69.0.2/24"}));
  ASSERT_TRUE(WaitFor([&] { return Attached("vif3.0"); }, Deadline(30))) << ReadFile(log_);
  auto send = [&](const Netns& from, const std::string& to, int n, int port) {
    return [&from, to, n, port] {
      ASSERT_EQ(from.Exec("python3 -c \"import socket,time; s=socket.socket(socket.AF_INET,"
                          "socket.SOCK_DGRAM); [s.sendto(b'x'*100,('" + to + "'," +
                          std::to_string(port) + ")) or time.sleep(0.001) for _ in range(" +
                          std::to_string(n) + ")]\""),
                0);
    };
  };
  // Outbound (dom0 -> guest, egress of the vif): DHCP answers filled, the rest left as it is.
  EXPECT_EQ(RawRead(b_, "domU", 68, 10, send(a_, "10.69.0.2", 10, 68)), "10 0 10") << ReadFile(log_);
  EXPECT_EQ(RawRead(b_, "domU", 7400, 10, send(a_, "10.69.0.2", 10, 7400)), "10 10 0");
  // Inbound (guest -> dom0, ingress of the vif): everything filled. An AF_PACKET reader on the
  // vif itself sees packets before tc ingress, so the counters of the ingress hook say it.
  send(b_, "10.69.0.1", 10, 7401)();
  CmdResult st = Csumfix({"-n", a_.name(), "stats", "vif3.0", "-j"});
  ASSERT_EQ(st.rc, 0) << st.err;
  bool seen = false;
  for (const auto& row : json::parse(st.out)) {
    if (row["hook"] != "ingress") continue;
    seen = true;
    EXPECT_GE(row["action"]["fill"].get<int>(), 10) << row.dump();
    EXPECT_GE(row["policy_hit"].get<int>(), 10) << row.dump();
    EXPECT_EQ(row["fill_error"], 0) << row.dump();
  }
  EXPECT_TRUE(seen) << st.out;
}

// The Kubernetes recipe is the DaemonSet's default config (tests/packaging/k8s_test.py checks
// that they are the same text): a pod's veth appears and is observed, with counters.
TEST_F(ServeFollow, KubernetesRecipeObservesEveryPodVeth) {
  WriteConfig(ReadFile(std::string(CSUMFIX_SOURCE_DIR) + "/packaging/recipes/kubernetes.toml"));
  StartServe({"--config", cfg_});
  ASSERT_TRUE(WaitFor([&] { return Attached("va"); }, Deadline(30))) << ReadFile(log_);
  ASSERT_TRUE(VethPair({&a_, "vethpod1", "10.70.0.1/24"}, {&b_, "eth0", "10.70.0.2/24"}));
  ASSERT_TRUE(WaitFor([&] { return Attached("vethpod1"); }, Deadline(30))) << ReadFile(log_);
  EXPECT_EQ(SendAndRead(10, 7402), "10 10 0") << "observe never changes a packet";
  Scrape m = Metrics();
  EXPECT_EQ(m.Get("csumfix_class_packets_total", {{"device", "va"}, {"hook", "egress"},
                                                  {"class", "partial"}}),
            10);
  EXPECT_EQ(a_.Capture("ip -o link show | grep -c ': csf' || true"), "0\n")
      << "observe makes no helper link";
}

TEST_F(ServeFollow, TheShippedExampleConfigChecksOnAHostWithoutItsInterfaces) {
  CmdResult c = Csumfix({"-n", a_.name(), "serve", "--config",
                         std::string(CSUMFIX_SOURCE_DIR) + "/packaging/csumfix.toml",
                         "--check-config"});
  EXPECT_EQ(c.rc, 0) << c.err;
  EXPECT_NE(c.out.find(": ok: "), std::string::npos) << c.out;
}

}  // namespace
}  // namespace csumfix::testing
