// The csumfix CLI on real interfaces in throwaway network namespaces: attach / status / stats /
// detach, JSON parsed (not grepped), pins and hooks gone afterwards, all-or-nothing attach.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "gtest/gtest.h"
#include "netns/lab.h"
#include "netns/mechanisms.h"
#include "nlohmann/json.hpp"

namespace csumfix::testing {
namespace {

using json = nlohmann::json;

class CliLifecycle : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(RootAndNamespaces({&ns_}));
    ASSERT_TRUE(VethPair({&ns_, "va", "10.77.0.1/24"}, {&ns_, "vb", ""}));
    ASSERT_EQ(ns_.Ip("addr add fd00:77::1/64 dev va nodad"), 0);
  }
  void TearDown() override {
    Csumfix({"-n", ns_.name(), "detach", "--all"});
    ns_.Destroy();
    EXPECT_FALSE(PathExists("/sys/fs/bpf/csumfix/v1")) << "pins left behind";
  }
  Netns ns_;
};

TEST_F(CliLifecycle, AttachStatusStatsDetach) {
  CmdResult a = Csumfix({"-n", ns_.name(), "attach", "va", "--both", "--action", "verify"});
  ASSERT_EQ(a.rc, 0) << a.err;
  CmdResult s = Csumfix({"-n", ns_.name(), "status", "-j"});
  ASSERT_EQ(s.rc, 0) << s.err;
  json st = json::parse(s.out);
  ASSERT_EQ(st.size(), 1u);
  EXPECT_EQ(st[0]["ifname"], "va");
  EXPECT_TRUE(st[0]["present"].get<bool>());
  ASSERT_EQ(st[0]["hooks"].size(), 2u);
  ASSERT_TRUE(Probe().ok) << Probe().error;
  const std::string mode = Probe().tcx ? "tcx" : "clsact";  // auto: tcx links where they exist
  for (const auto& h : st[0]["hooks"]) {
    EXPECT_TRUE(h["attached"].get<bool>()) << h.dump();
    EXPECT_EQ(h["action"], "verify");
    EXPECT_EQ(h["mode"], mode) << Probe().json;
  }
  // The device's offload switches, as `ethtool -k` shows them (veth: tx checksumming on).
  EXPECT_TRUE(st[0]["offloads"]["tx-checksumming"].get<bool>()) << s.out;
  EXPECT_TRUE(st[0]["offloads"].contains("generic-receive-offload")) << s.out;
  for (const char* f : {"state", "tc_ingress_prog", "tc_egress_prog"})
    EXPECT_TRUE(PathExists(ns_.PinDir("va") + "/" + f)) << f;
  // A tcx link is pinned; a clsact filter lives in the qdisc, with no link to pin.
  for (const char* f : {"tc_ingress_link", "tc_egress_link"})
    EXPECT_EQ(PathExists(ns_.PinDir("va") + "/" + f), Probe().tcx) << f;

  // Known traffic: 5 UDP datagrams out of va (to an address beyond vb: ARP first, then UDP).
  ASSERT_EQ(ns_.Ip("neigh add 10.77.0.2 lladdr 02:00:00:00:00:02 dev va"), 0);
  ASSERT_EQ(ns_.Exec("python3 -c \"import socket; s=socket.socket(socket.AF_INET, "
                     "socket.SOCK_DGRAM); [s.sendto(b'x'*100, ('10.77.0.2', 9)) for _ in "
                     "range(5)]\""),
            0);
  CmdResult t = Csumfix({"-n", ns_.name(), "stats", "va", "-j"});
  ASSERT_EQ(t.rc, 0) << t.err;
  json rows = json::parse(t.out);
  uint64_t udp_partial = 0;
  bool saw_egress = false;
  for (const auto& r : rows) {
    if (r["hook"] != "egress") continue;
    saw_egress = true;
    // UDP from a local socket over veth is CHECKSUM_PARTIAL.
    udp_partial = r["class"]["partial"].get<uint64_t>();
    EXPECT_EQ(r["action"]["verify"], r["packets"]);
    EXPECT_GE(r["packets"].get<uint64_t>(), 5u);
  }
  EXPECT_TRUE(saw_egress) << t.out;
  EXPECT_GE(udp_partial, 5u) << t.out;

  CmdResult d = Csumfix({"-n", ns_.name(), "detach", "va"});
  EXPECT_EQ(d.rc, 0) << d.err;
  EXPECT_FALSE(PathExists(ns_.PinDir("va")));
  EXPECT_FALSE(PathExists("/sys/fs/bpf/csumfix/v1"));
  EXPECT_EQ(ns_.Capture("bpftool net show dev va").find("csf_"), std::string::npos)
      << "a csumfix program is still attached";
}

TEST_F(CliLifecycle, ClsactFallbackAttachesAndDetachesOnlyOurFilter) {
  ASSERT_EQ(Csumfix({"-n", ns_.name(), "attach", "va", "--ingress", "--tc-api", "clsact"}).rc,
            0);
  CmdResult s = Csumfix({"-n", ns_.name(), "status", "va", "-j"});
  json st = json::parse(s.out);
  EXPECT_EQ(st[0]["hooks"][0]["mode"], "clsact");
  EXPECT_TRUE(st[0]["hooks"][0]["attached"].get<bool>());
  EXPECT_NE(ns_.Capture("tc filter show dev va ingress").find("csf_tc_ingress"),
            std::string::npos);
  ASSERT_EQ(Csumfix({"-n", ns_.name(), "detach", "va"}).rc, 0);
  EXPECT_EQ(ns_.Capture("tc filter show dev va ingress").find("csf_tc_ingress"),
            std::string::npos);
}

TEST_F(CliLifecycle, AttachIsAllOrNothing) {
  // Someone else's XDP program on va makes csumfix's XDP attach fail after its tc hooks
  // succeeded: everything csumfix did must be undone, and the foreign program kept.
  ASSERT_EQ(ns_.Ip(std::string("link set dev va xdpgeneric obj ") + BpfCompatObjPath() +
                   " sec xdp"),
            0);
  CmdResult a = Csumfix({"-n", ns_.name(), "attach", "va", "--both", "--xdp"});
  EXPECT_EQ(a.rc, 1);
  EXPECT_NE(a.err.find("attach XDP to va"), std::string::npos) << a.err;
  EXPECT_FALSE(PathExists(ns_.PinDir("va")));
  EXPECT_FALSE(PathExists("/sys/fs/bpf/csumfix/v1"));
  std::string net = ns_.Capture("bpftool net show dev va");
  EXPECT_EQ(net.find("csf_tc_"), std::string::npos) << "tc hook left behind:\n" << net;
  EXPECT_NE(ns_.Capture("ip link show va").find("xdpgeneric"), std::string::npos)
      << "the foreign XDP program must stay";
  ns_.Ip("link set dev va xdpgeneric off");
}

TEST_F(CliLifecycle, ErrorsSayWhatToDo) {
  CmdResult a = Csumfix({"-n", ns_.name(), "attach", "nosuch0"});
  EXPECT_EQ(a.rc, 1);
  EXPECT_NE(a.err.find("no interface named nosuch0"), std::string::npos) << a.err;
  CmdResult b = Csumfix({"-n", ns_.name(), "attach", "va", "--action", "fixit"});
  EXPECT_EQ(b.rc, 2);
  EXPECT_NE(b.err.find("unknown action \"fixit\""), std::string::npos) << b.err;
  ASSERT_EQ(Csumfix({"-n", ns_.name(), "attach", "va"}).rc, 0);
  CmdResult c = Csumfix({"-n", ns_.name(), "attach", "va"});
  EXPECT_EQ(c.rc, 1);
  EXPECT_NE(c.err.find("already attached; run `csumfix -n " + ns_.name() + " detach va`"),
            std::string::npos)
      << c.err;
  CmdResult d = Csumfix({"-n", ns_.name(), "detach", "vb"});
  EXPECT_EQ(d.rc, 1);
  EXPECT_NE(d.err.find("vb is not attached"), std::string::npos) << d.err;
  CmdResult e = Csumfix({"-n", "no-such-ns-csf", "status"});
  EXPECT_EQ(e.rc, 1);
  EXPECT_NE(e.err.find("no namespace /run/netns/no-such-ns-csf"), std::string::npos) << e.err;
}

TEST_F(CliLifecycle, InterfaceDeletedWhileAttached) {
  ASSERT_EQ(Csumfix({"-n", ns_.name(), "attach", "va", "--both"}).rc, 0);
  ASSERT_EQ(ns_.Ip("link del va"), 0);
  CmdResult s = Csumfix({"-n", ns_.name(), "status", "-j"});
  ASSERT_EQ(s.rc, 0) << s.err;
  json st = json::parse(s.out);
  ASSERT_EQ(st.size(), 1u);
  EXPECT_FALSE(st[0]["present"].get<bool>());
  EXPECT_FALSE(st[0]["hooks"][0]["attached"].get<bool>());
  EXPECT_EQ(Csumfix({"-n", ns_.name(), "detach", "va"}).rc, 0);
  EXPECT_FALSE(PathExists("/sys/fs/bpf/csumfix/v1"));
}

}  // namespace
}  // namespace csumfix::testing
