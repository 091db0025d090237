// The operator's day on the CLI: a VM restart recreates its TAP under the same name, an attach
// whose pins vanished (killed, or run under `ip netns exec`) leaves helper links and filters, the
// same interface name exists in two namespaces, `ip netns exec` itself, and a private bpffs.
#include <unistd.h>

#include <set>
#include <string>

#include "gtest/gtest.h"
#include "netns/lab.h"
#include "nlohmann/json.hpp"

namespace csumfix::testing {
namespace {

using json = nlohmann::json;

class HostChurn : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(RootAndNamespaces({&ns_}));
  }
  void TearDown() override {
    Csumfix({"-n", ns_.name(), "detach", "--all"});
    if (other_.name().size()) Csumfix({"-n", other_.name(), "detach", "--all"});
    ns_.Destroy();
    other_.Destroy();
    EXPECT_FALSE(PathExists("/sys/fs/bpf/csumfix/v1")) << "pins left behind";
  }
  json Status() {
    CmdResult s = Csumfix({"-n", ns_.name(), "status", "-j"});
    EXPECT_EQ(s.rc, 0) << s.err;
    return s.rc == 0 ? json::parse(s.out) : json::array();
  }
  // Links of the namespace whose name starts with csf (bounce veths).
  std::string CsfLinks(const Netns& ns) {
    return ns.Capture("ip -o link show | awk -F': ' '{print $2}' | grep '^csf' | sort | tr '\\n' ' '");
  }
  Netns ns_, other_;
};

TEST_F(HostChurn, ATapRecreatedUnderItsNameIsAttachedAgain) {
  ASSERT_EQ(ns_.Ip("tuntap add dev tapD mode tap"), 0);
  ASSERT_EQ(ns_.Ip("link set tapD up"), 0);
  CmdResult a = Csumfix({"-n", ns_.name(), "attach", "tapD", "--both", "--mechanism", "bounce"});
  ASSERT_EQ(a.rc, 0) << a.err;
  const uint32_t first = Status()[0]["ifindex"].get<uint32_t>();
  // A VM restart: the TAP goes and a new one of the same name comes.
  ASSERT_EQ(ns_.Ip("link del tapD"), 0);
  ASSERT_EQ(ns_.Ip("tuntap add dev tapD mode tap"), 0);
  ASSERT_EQ(ns_.Ip("link set tapD up"), 0);
  json s = Status();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_FALSE(s[0]["present"].get<bool>()) << "the recorded tapD is gone: " << s.dump();
  CmdResult b = Csumfix({"-n", ns_.name(), "attach", "tapD", "--both", "--mechanism", "bounce"});
  ASSERT_EQ(b.rc, 0) << "a recreated TAP must be attachable again: " << b.err;
  s = Status();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_NE(s[0]["ifindex"].get<uint32_t>(), first);
  EXPECT_TRUE(s[0]["present"].get<bool>()) << s.dump();
  for (const auto& h : s[0]["hooks"]) EXPECT_TRUE(h["attached"].get<bool>()) << s.dump();
  // Each hook of the new TAP has its counter row from the attach on, before its first packet
  // (a scrape has the series at once), and none is left of the old TAP's ifindex.
  CmdResult t = Csumfix({"-n", ns_.name(), "stats", "tapD", "-j"});
  ASSERT_EQ(t.rc, 0) << t.err;
  const json rows = json::parse(t.out);
  std::set<std::string> hooks;
  for (const json& r : rows) {
    EXPECT_EQ(r["ifindex"], s[0]["ifindex"]) << rows.dump();
    hooks.insert(r["hook"].get<std::string>());
  }
  EXPECT_EQ(hooks.size(), s[0]["hooks"].size()) << rows.dump();
  EXPECT_EQ(hooks.size(), 2u) << rows.dump();
  // The old TAP's bounce pairs went with its record: only the new one's two pairs are left.
  EXPECT_EQ(ns_.Capture("ip -o link show | grep -c ': csf'"), "4\n") << CsfLinks(ns_);
  // Attaching the live one again is still refused.
  CmdResult c = Csumfix({"-n", ns_.name(), "attach", "tapD"});
  EXPECT_EQ(c.rc, 1);
  EXPECT_NE(c.err.find("already attached"), std::string::npos) << c.err;
  ASSERT_EQ(Csumfix({"-n", ns_.name(), "detach", "tapD"}).rc, 0);
  EXPECT_EQ(CsfLinks(ns_), "") << "detach leaves no bounce veth";
}

TEST_F(HostChurn, LeftoversOfVanishedPinsAreReplacedByAttachAndRemovedByClean) {
  ASSERT_TRUE(VethPair({&ns_, "va", "10.78.0.1/24"}, {&ns_, "vb", ""}));
  // clsact filters and bounce veths outlive their pins; tcx links would go with them.
  CmdResult a = Csumfix({"-n", ns_.name(), "attach", "va", "--both", "--tc-api", "clsact",
                         "--mechanism", "bounce"});
  ASSERT_EQ(a.rc, 0) << a.err;
  ASSERT_EQ(testing::Run({"rm", "-rf", ns_.PinDir("va")}).rc, 0);  // as a private bpffs going
  ASSERT_EQ(Status().size(), 0u);
  EXPECT_NE(CsfLinks(ns_), "");
  CmdResult b = Csumfix({"-n", ns_.name(), "attach", "va", "--both", "--tc-api", "clsact",
                         "--mechanism", "bounce"});
  ASSERT_EQ(b.rc, 0) << "attach must replace csumfix's own leftovers: " << b.err;
  json s = Status();
  ASSERT_EQ(s.size(), 1u);
  for (const auto& h : s[0]["hooks"]) EXPECT_TRUE(h["attached"].get<bool>()) << s.dump();
  // Leave leftovers again, and a filter that is not csumfix's at another priority.
  ASSERT_EQ(testing::Run({"rm", "-rf", ns_.PinDir("va")}).rc, 0);
  ASSERT_EQ(ns_.Ip("tuntap add dev foreign mode tap"), 0);
  CmdResult c = Csumfix({"-n", ns_.name(), "clean", "--all"});
  ASSERT_EQ(c.rc, 0) << c.err;
  EXPECT_NE(c.out.find("bounce veth pair"), std::string::npos) << c.out;
  EXPECT_NE(c.out.find("filter of program csf_tc_ingress"), std::string::npos) << c.out;
  EXPECT_EQ(CsfLinks(ns_), "") << c.out;
  EXPECT_EQ(ns_.Capture("tc filter show dev va ingress; tc filter show dev va egress"), "")
      << c.out;
  EXPECT_EQ(ns_.Ip("link show foreign"), 0) << "clean touched a link that is not csumfix's";
  CmdResult again = Csumfix({"-n", ns_.name(), "clean", "--all"});
  EXPECT_EQ(again.rc, 0) << again.err;
  EXPECT_NE(again.out.find("nothing to clean"), std::string::npos) << again.out;
}

// The same name in another namespace is an attachment of its own (pins per namespace): attaching,
// cleaning and detaching it there never touches this namespace's.
TEST_F(HostChurn, TheSameNameInAnotherNamespaceIsNeverTakenOver) {
  ASSERT_TRUE(other_.Create());
  ASSERT_TRUE(VethPair({&ns_, "va", "10.79.0.1/24"}, {&ns_, "vb", ""}));
  ASSERT_TRUE(VethPair({&other_, "va", "10.79.1.1/24"}, {&other_, "vb", ""}));
  ASSERT_EQ(Csumfix({"-n", ns_.name(), "attach", "va", "--mechanism", "observe"}).rc, 0);
  CmdResult b = Csumfix({"-n", other_.name(), "attach", "va", "--mechanism", "observe"});
  EXPECT_EQ(b.rc, 0) << b.err;
  CmdResult c = Csumfix({"-n", other_.name(), "clean", "--all"});
  EXPECT_EQ(c.rc, 0) << c.err;
  EXPECT_NE(c.out.find("nothing to clean"), std::string::npos) << c.out;
  CmdResult d = Csumfix({"-n", other_.name(), "detach", "va"});
  EXPECT_EQ(d.rc, 0) << d.err;
  EXPECT_FALSE(PathExists(other_.PinRoot()));
  json s = Status();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_TRUE(s[0]["present"].get<bool>()) << "the first namespace's va was disturbed";
  EXPECT_TRUE(s[0]["hooks"][0]["attached"].get<bool>()) << s.dump();
}

// `ip netns exec NS csumfix ...` is what people type: csumfix joins PID 1's mount namespace (where
// the host's bpffs is) and works there as `csumfix -n NS ...` does, keeping the working directory.
TEST_F(HostChurn, IpNetnsExecWorksLikeDashN) {
  ASSERT_TRUE(VethPair({&ns_, "va", "10.80.0.1/24"}, {&ns_, "vb", ""}));
  auto exec = [&](const std::string& cmd) {
    return testing::Run({"ip", "netns", "exec", ns_.name(), "sh", "-c", cmd});
  };
  CmdResult a = exec(CsumfixPath() + " attach va --mechanism bounce");
  ASSERT_EQ(a.rc, 0) << a.out << a.err;
  EXPECT_TRUE(PathExists(ns_.PinDir("va"))) << "the pins are not in the host's bpffs";
  EXPECT_NE(CsfLinks(ns_), "") << "no bounce veths in the namespace";
  json s = Status();  // by -n: the same attachment
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0]["ifname"], "va");
  EXPECT_TRUE(s[0]["hooks"][0]["attached"].get<bool>()) << s.dump();
  CmdResult st = exec(CsumfixPath() + " status -j");
  ASSERT_EQ(st.rc, 0) << st.err;
  EXPECT_EQ(json::parse(st.out), s) << "status under ip netns exec differs from -n";
  // A relative path still means the directory the command was started in.
  const std::string fixtures = std::string(CSUMFIX_SOURCE_DIR) + "/tests/fixtures";
  const std::string diag = "cd " + fixtures + " && " + CsumfixPath() + " diagnose -j bad.pcap";
  CmdResult here = testing::Run({"sh", "-c", diag});
  CmdResult there = exec(diag);
  EXPECT_EQ(there.rc, here.rc) << there.err;
  EXPECT_EQ(there.out, here.out);
  EXPECT_NE(here.out.find("bad"), std::string::npos) << here.out << here.err;
  CmdResult d = exec(CsumfixPath() + " detach va");
  EXPECT_EQ(d.rc, 0) << d.err;
  EXPECT_FALSE(PathExists(ns_.PinDir("va")));
  EXPECT_EQ(CsfLinks(ns_), "") << "detach under ip netns exec left bounce veths";
  EXPECT_EQ(Status().size(), 0u);
}

// A private mount namespace without the host's bpffs that is not `ip netns exec` (a container
// without /sys/fs/bpf mounted; here unshare, in an unnamed network namespace): pins made there
// would vanish, so csumfix refuses before it changes anything and says what to mount.
TEST_F(HostChurn, APrivateBpffsOutsideIpNetnsExecIsRefused) {
  const std::string cmd = "mount -t tmpfs none /sys/fs/bpf && ip link add va type veth peer name vb && "
                          "ip link set va up && " + CsumfixPath() +
                          " attach va --action observe; echo rc=$?; tc qdisc show dev va";
  CmdResult r = testing::Run({"unshare", "--mount", "--net", "sh", "-c", cmd});
  EXPECT_NE(r.out.find("rc=1\n"), std::string::npos) << r.out << r.err;
  EXPECT_NE(r.err.find("mount the host's /sys/fs/bpf"), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find("clsact"), std::string::npos) << "the refused attach added a qdisc: " << r.out;
}

// Names with a dot (a VLAN's eth0.100, Xen's vif1.0) attach, show, detach and clean like any
// other: bpffs refuses '.' in pin names, so csumfix writes the pin directory as vif1:0.
TEST_F(HostChurn, ANameWithADotAttachesAndDetaches) {
  ASSERT_EQ(ns_.Ip("tuntap add dev vif1.0 mode tap"), 0);
  CmdResult a = Csumfix({"-n", ns_.name(), "attach", "vif1.0", "--action", "observe"});
  ASSERT_EQ(a.rc, 0) << a.err;
  json s = Status();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0]["ifname"], "vif1.0");
  EXPECT_EQ(s[0]["state"], "ok") << s.dump();
  EXPECT_TRUE(PathExists(ns_.PinDir("vif1.0")));
  CmdResult again = Csumfix({"-n", ns_.name(), "attach", "vif1.0"});
  EXPECT_EQ(again.rc, 1);
  EXPECT_NE(again.err.find("already attached"), std::string::npos) << again.err;
  ASSERT_EQ(Csumfix({"-n", ns_.name(), "detach", "vif1.0"}).rc, 0);
  EXPECT_EQ(Status().size(), 0u);
}

}  // namespace
}  // namespace csumfix::testing
