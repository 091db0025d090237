// State per network namespace: every namespace has its own pin directory and map set
// (/sys/fs/bpf/csumfix/v1/netns/<inode>/), so the same interface name in two namespaces is two
// attachments with their own counters; views and metrics say which namespace; a policy rule
// bound to a name follows it when the interface is made again; csumfix 0.1's single pin set is
// moved into the per-namespace layout.
#include <cstdint>
#include <cstdio>
#include <string>

#include "gtest/gtest.h"
#include "netns/lab.h"
#include "netns/mechanisms.h"
#include "netns/serve_fixture.h"
#include "nlohmann/json.hpp"

namespace csumfix::testing {
namespace {

uint64_t Inode(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

// The egress counters of `ifname` in `rows` (stats -j) of namespace `netns_name`.
json EgressRow(const json& rows, const std::string& ifname, const std::string& netns_name) {
  for (const auto& r : rows)
    if (r["ifname"] == ifname && r["hook"] == "egress" && r["netns_name"] == netns_name) return r;
  return json();
}

uint32_t Ifindex(const Netns& ns, const std::string& dev) {
  const std::string out = ns.Capture("cat /sys/class/net/" + dev + "/ifindex");
  return static_cast<uint32_t>(std::strtoul(out.c_str(), nullptr, 10));
}

class NetnsState : public Serve {
 protected:
  // B gets an interface named va too, joined to vc; 10.68.0.9 is a neighbour beyond it (not a
  // local address, which would be delivered over lo).
  void SecondVa() {
    ASSERT_EQ(b_.Ip("link add va type veth peer name vc"), 0);
    ASSERT_EQ(b_.Ip("addr add 10.68.0.1/24 dev va"), 0);
    ASSERT_EQ(b_.Ip("link set va up"), 0);
    ASSERT_EQ(b_.Ip("neigh add 10.68.0.9 lladdr 02:00:00:00:00:09 dev va"), 0);
    ASSERT_EQ(b_.Ip("link set vc up"), 0);
  }
  void SendUdpInB(int n, int port) {
    ASSERT_EQ(b_.Exec("python3 -c \"import socket; s=socket.socket(socket.AF_INET,"
                      "socket.SOCK_DGRAM); [s.sendto(b'y'*150,('10.68.0.9'," +
                      std::to_string(port) + ")) for _ in range(" + std::to_string(n) + ")]\""),
              0);
  }
  json Stats(const Netns& ns, std::vector<std::string> more = {}) {
    std::vector<std::string> args{"-n", ns.name(), "stats", "-j"};
    args.insert(args.end(), more.begin(), more.end());
    CmdResult r = Csumfix(args);
    EXPECT_EQ(r.rc, 0) << r.err;
    return json::parse(r.out);
  }
  // B's attachments go even when an assertion stops the test half way.
  struct DetachB {
    const Netns& b;
    ~DetachB() { Csumfix({"-n", b.name(), "detach", "--all"}); }
  };
};

TEST_F(NetnsState, SameNameInTwoNamespacesAttachesCountsAndDetachesIndependently) {
  SecondVa();
  DetachB guard{b_};
  for (const Netns* ns : {&a_, &b_}) {
    CmdResult a = Csumfix({"-n", ns->name(), "attach", "va", "--egress", "--action", "observe"});
    ASSERT_EQ(a.rc, 0) << ns->name() << ": " << a.err;
  }
  EXPECT_TRUE(PathExists(a_.PinDir("va")));
  EXPECT_TRUE(PathExists(b_.PinDir("va")));
  ASSERT_NE(a_.PinRoot(), b_.PinRoot());
  for (const Netns* ns : {&a_, &b_}) {
    CmdResult s = Csumfix({"-n", ns->name(), "status", "-j"});
    ASSERT_EQ(s.rc, 0) << s.err;
    json st = json::parse(s.out);
    ASSERT_EQ(st.size(), 1u) << s.out;
    EXPECT_EQ(st[0]["ifname"], "va");
    EXPECT_EQ(st[0]["netns"].get<uint64_t>(), Inode("/run/netns/" + ns->name())) << s.out;
    EXPECT_EQ(st[0]["netns_name"], ns->name()) << s.out;
    EXPECT_TRUE(st[0]["hooks"][0]["attached"].get<bool>()) << s.out;
    // The other namespace's attachment is mentioned, not listed.
    EXPECT_NE(s.err.find("has 1 attachment"), std::string::npos) << s.err;
  }

  // Locally sent UDP over veth is CHECKSUM_PARTIAL: 5 in A, 12 in B, counted apart.
  SendUdp(5, 7201);
  SendUdpInB(12, 7202);
  json ra = EgressRow(Stats(a_), "va", a_.name()), rb = EgressRow(Stats(b_), "va", b_.name());
  ASSERT_FALSE(ra.is_null());
  ASSERT_FALSE(rb.is_null());
  EXPECT_EQ(ra["class"]["partial"], 5) << ra.dump();
  EXPECT_EQ(rb["class"]["partial"], 12) << rb.dump();
  // -A: both, each naming its namespace.
  json all = Stats(a_, {"-A"});
  EXPECT_EQ(EgressRow(all, "va", a_.name())["class"]["partial"], 5) << all.dump();
  EXPECT_EQ(EgressRow(all, "va", b_.name())["class"]["partial"], 12) << all.dump();

  // serve in A exports both namespaces' counters, labelled.
  StartServe({});
  Scrape m = Metrics();
  auto partial = [&](const Netns& ns) {
    return m.All("csumfix_class_packets_total",
                 {{"device", "va"}, {"hook", "egress"}, {"class", "partial"},
                  {"netns_name", ns.name()},
                  {"netns", std::to_string(Inode("/run/netns/" + ns.name()))}});
  };
  ASSERT_EQ(partial(a_).size(), 1u);
  ASSERT_EQ(partial(b_).size(), 1u);
  EXPECT_EQ(partial(a_)[0].second, 5);
  EXPECT_EQ(partial(b_)[0].second, 12);
  EXPECT_EQ(StopServe(SIGTERM), 0);

  // Detaching B's va leaves A's attached and counting.
  CmdResult d = Csumfix({"-n", b_.name(), "detach", "va"});
  ASSERT_EQ(d.rc, 0) << d.err;
  EXPECT_FALSE(PathExists(b_.PinRoot())) << "B's last attachment went: its directory too";
  EXPECT_EQ(b_.Capture("bpftool net show dev va").find("csf_"), std::string::npos);
  json st = Status();
  ASSERT_EQ(st.size(), 1u);
  EXPECT_TRUE(st[0]["hooks"][0]["attached"].get<bool>()) << st.dump();
  SendUdp(3, 7201);
  EXPECT_EQ(EgressRow(Stats(a_), "va", a_.name())["class"]["partial"], 8);
}

// A namespace deleted while an attachment lived in it (a pod that went) leaves its pins; `clean
// --all` in any namespace removes them where the interface is provably gone: tcx links report no
// device. clsact filters prove nothing: then the namespace is named, its pins left.
TEST_F(NetnsState, CleanRemovesThePinsOfADeletedNamespace) {
  SecondVa();
  ASSERT_EQ(Csumfix({"-n", b_.name(), "attach", "va", "--egress", "--action", "observe"}).rc, 0);
  // A's own attachment, on a pair that lives in A alone (A's va goes with B: its peer is there).
  ASSERT_EQ(a_.Ip("link add vk type veth peer name vl"), 0);
  ASSERT_EQ(Csumfix({"-n", a_.name(), "attach", "vk", "--egress", "--action", "observe"}).rc, 0);
  const std::string gone_root = b_.PinRoot();
  ASSERT_TRUE(PathExists(gone_root + "/va"));
  b_.Destroy();
  ASSERT_TRUE(Probe().ok) << Probe().error;
  // status in A names what is left of B and, where the links prove B's interfaces gone, the
  // command that removes it.
  CmdResult s = Csumfix({"-n", a_.name(), "status"});
  EXPECT_EQ(s.rc, 0) << s.err;
  EXPECT_NE(s.err.find("has 1 attachment"), std::string::npos) << s.err;
  EXPECT_EQ(s.err.find("`csumfix -n " + a_.name() + " clean --all` removes it") !=
                std::string::npos,
            Probe().tcx)
      << s.err;
  CmdResult c = Csumfix({"-n", a_.name(), "clean", "--all"});
  if (Probe().tcx) {
    EXPECT_EQ(c.rc, 0) << c.err;
    EXPECT_NE(c.out.find("record of va in network namespace"), std::string::npos) << c.out;
    EXPECT_FALSE(PathExists(gone_root)) << c.out;
  } else {
    std::printf("no tcx on this kernel: the deleted namespace's clsact record is only named\n");
    EXPECT_EQ(c.rc, 3) << c.err;
    EXPECT_NE(c.err.find("cannot prove gone"), std::string::npos) << c.err;
    EXPECT_TRUE(PathExists(gone_root + "/va"));
    ASSERT_EQ(csumfix::testing::Run({"rm", "-rf", gone_root}).rc, 0);
  }
  json st = Status();
  ASSERT_EQ(st.size(), 1u) << "A's own attachment stays: " << st.dump();
  EXPECT_EQ(st[0]["ifname"], "vk");
  EXPECT_TRUE(st[0]["hooks"][0]["attached"].get<bool>()) << st.dump();
}

// A VM restart deletes its TAP and makes a new one of the same name: the rules bound to the
// name (`policy add --iface`) apply to the new interface once it is attached again.
TEST_F(NetnsState, PolicyRuleBoundToANameFollowsTheRecreatedInterface) {
  CmdResult p = Csumfix({"-n", a_.name(), "policy", "add", "--iface", "va", "--proto", "udp",
                         "--dport", "7301", "--action", "verify"});
  ASSERT_EQ(p.rc, 0) << p.err;
  ASSERT_EQ(Csumfix({"-n", a_.name(), "attach", "va", "--egress", "--action", "observe"}).rc, 0);
  const uint32_t old_ifindex = Ifindex(a_, "va");
  SendUdp(2, 7301);
  json r = EgressRow(Stats(a_), "va", a_.name());
  EXPECT_EQ(r["action"]["verify"], 2) << r.dump();

  // The restart: same name, new ifindex.
  ASSERT_EQ(a_.Ip("link del va"), 0);
  ASSERT_TRUE(VethPair({&a_, "va", "10.67.0.1/24"}, {&b_, "vb", "10.67.0.2/24"}));
  const uint32_t new_ifindex = Ifindex(a_, "va");
  ASSERT_NE(new_ifindex, old_ifindex);
  json rules = Rules();
  ASSERT_EQ(rules.size(), 1u);
  EXPECT_EQ(rules[0]["iface"], "va") << rules.dump();
  EXPECT_TRUE(rules[0]["iface_gone"].get<bool>()) << rules.dump();
  EXPECT_NE(rules[0]["rule"].get<std::string>().find("waits for it"), std::string::npos)
      << rules.dump();

  CmdResult again = Csumfix({"-n", a_.name(), "attach", "va", "--egress", "--action", "observe"});
  ASSERT_EQ(again.rc, 0) << "the record of the deleted va is replaced: " << again.err;
  rules = Rules();
  ASSERT_EQ(rules.size(), 1u);
  EXPECT_EQ(rules[0]["ifindex"], new_ifindex) << rules.dump();
  EXPECT_FALSE(rules[0]["iface_gone"].get<bool>()) << rules.dump();
  SendUdp(4, 7301);
  SendUdp(3, 7302);  // not the rule's port: the default action
  r = EgressRow(Stats(a_), "va", a_.name());
  EXPECT_EQ(r["action"]["verify"], 4) << "the rule matches on the new va: " << r.dump();
  EXPECT_GE(r["action"]["observe"].get<uint64_t>(), 3u) << r.dump();
}

// csumfix 0.1 kept maps/ and <ifname>/ right under csumfix/v1/. The first command of this
// version moves them where their namespace's pins go; the attachment keeps working.
TEST_F(NetnsState, PinsOfVersion01AreMovedIntoTheirNamespace) {
  ASSERT_EQ(Csumfix({"-n", a_.name(), "attach", "va", "--egress", "--action", "observe"}).rc, 0);
  ASSERT_EQ(Csumfix({"-n", a_.name(), "policy", "add", "--proto", "udp", "--dport", "7401",
                     "--action", "verify"}).rc,
            0);
  const std::string v1 = "/sys/fs/bpf/csumfix/v1", root = a_.PinRoot();
  // Make the 0.1 layout out of it (0.1 had no rule-name map and no pin ABI marker).
  ASSERT_EQ(csumfix::testing::Run({"rm", root + "/maps/csf_pol_ifnames"}).rc, 0);
  ASSERT_EQ(csumfix::testing::Run({"rm", root + "/maps/csf_abi"}).rc, 0);
  ASSERT_EQ(csumfix::testing::Run({"mv", root + "/va", v1 + "/va"}).rc, 0);
  ASSERT_EQ(csumfix::testing::Run({"mv", root + "/maps", v1 + "/maps"}).rc, 0);
  ASSERT_EQ(csumfix::testing::Run({"rmdir", root, v1 + "/netns"}).rc, 0);

  CmdResult s = Csumfix({"-n", a_.name(), "status", "-j"});
  ASSERT_EQ(s.rc, 0) << s.err;
  EXPECT_NE(s.err.find("0.1 pins: moved va to " + root), std::string::npos) << s.err;
  EXPECT_TRUE(PathExists(a_.PinDir("va") + "/state"));
  EXPECT_TRUE(PathExists(root + "/maps/csf_slots"));
  EXPECT_FALSE(PathExists(v1 + "/maps"));
  EXPECT_FALSE(PathExists(v1 + "/va"));
  json st = json::parse(s.out);
  ASSERT_EQ(st.size(), 1u) << s.out;
  EXPECT_EQ(st[0]["state"], "ok");
  EXPECT_TRUE(st[0]["hooks"][0]["attached"].get<bool>()) << s.out;
  // The programs still count into the maps now pinned in A's directory, and the rule is there.
  SendUdp(3, 7401);
  json r = EgressRow(Stats(a_), "va", a_.name());
  EXPECT_EQ(r["action"]["verify"], 3) << r.dump();
  EXPECT_EQ(Rules().size(), 1u);
  // Nothing more to move the next time.
  CmdResult again = Csumfix({"-n", a_.name(), "status"});
  EXPECT_EQ(again.err.find("0.1 pins"), std::string::npos) << again.err;
}

}  // namespace
}  // namespace csumfix::testing
