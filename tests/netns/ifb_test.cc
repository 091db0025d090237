// The ifb fill mechanism's life cycle (tc ingress only): A sends CHECKSUM_PARTIAL UDP over the
// veth va -> vb; csumfix on vb's ingress (namespace B) hands those packets to its ifb device,
// whose transmit completes them, and the ifb returns them to vb's ingress past tc. Traffic to
// consumers behind a bridge is PartialFill's (partial_fill_test.cc); here: what attach makes,
// refuses, reports, and what detach, clean and an upgrade do with the ifb. Each test runs twice:
// "probe", the way the probe found (csumfix's own redirect into the ifb where the kernel allows
// it, else the selector with mirred), and "mirred", asked for with CSUMFIX_IFB_VIA=mirred.
#include <unistd.h>

#include <string>

#include "gtest/gtest.h"
#include "netns/lab.h"
#include "netns/mechanisms.h"
#include "netns/partial_lab.h"
#include "nlohmann/json.hpp"

namespace csumfix::testing {
namespace {

using json = nlohmann::json;

class Ifb : public ::testing::TestWithParam<const char*> {
 protected:
  Ifb() : via_env_("CSUMFIX_IFB_VIA", std::string(GetParam()) == "mirred" ? "mirred" : nullptr) {}
  // How packets reach the ifb in this run: "redirect" or "mirred" (status's ifb_via).
  std::string Via() const {
    return std::string(GetParam()) == "probe" && Probe().ifb_redirect ? "redirect" : "mirred";
  }
  void SetUp() override {
    ASSERT_TRUE(RootAndNamespaces({&a_, &b_}));
    ASSERT_TRUE(VethPair({&a_, "va", "10.68.0.1/24"}, {&b_, "vb", "10.68.0.2/24"}));
    ifb_ = "csfifb" + Hex(b_.Capture("cat /sys/class/net/vb/ifindex"));
  }
  // False on a kernel without ifb devices or the mirred action, after checking that attach
  // refuses the mechanism there with a clear error (what such a kernel can be tested for).
  bool HaveIfb() {
    if (Probe().ifb) return true;
    CmdResult r = Csumfix({"-n", b_.name(), "attach", "vb", "--ingress", "--mechanism", "ifb"});
    EXPECT_EQ(r.rc, 1);
    EXPECT_NE(r.err.find("fill mechanism ifb needs ifb devices and the mirred action"),
              std::string::npos)
        << r.err;
    EXPECT_FALSE(Exists(ifb_));
    std::printf("[ ifb      ] no ifb/mirred on this kernel (csumfix probe): checked the refusal\n");
    return false;
  }
  void TearDown() override {
    Csumfix({"-n", b_.name(), "detach", "--all"});
    a_.Destroy();
    b_.Destroy();
    EXPECT_FALSE(PathExists("/sys/fs/bpf/csumfix/v1")) << "pins left behind";
  }
  static std::string Hex(const std::string& dec) {
    char buf[16];
    std::snprintf(buf, sizeof(buf), "%x", std::stoi(dec));
    return buf;
  }
  bool Exists(const std::string& dev) {
    return b_.Exec("ip link show " + dev + " > /dev/null 2>&1") == 0;
  }
  uint64_t IfbTxPackets() {
    const std::string s = b_.Capture("cat /sys/class/net/" + ifb_ + "/statistics/tx_packets");
    return s.empty() ? 0 : std::stoull(s);
  }
  // n datagrams A -> B; how many B's UDP socket layer received (the ifb gave every one back).
  int64_t Send(int n, int port) {
    const int64_t before = SnmpCounter(b_, "Udp:InDatagrams") + SnmpCounter(b_, "Udp:NoPorts");
    a_.Exec("python3 -c \"import socket,time; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
            " [s.sendto(b'i'*300,('10.68.0.2'," + std::to_string(port) +
            ")) or time.sleep(0.002) for _ in range(" + std::to_string(n) + ")]\"");
    int64_t got = 0;
    WaitFor([&] {
      got = SnmpCounter(b_, "Udp:InDatagrams") + SnmpCounter(b_, "Udp:NoPorts") - before;
      return got >= n;
    }, 10);
    return got;
  }
  json Stats() {
    CmdResult r = Csumfix({"-n", b_.name(), "stats", "vb", "-j"});
    EXPECT_EQ(r.rc, 0) << r.err;
    json rows = json::parse(r.out);
    EXPECT_EQ(rows.size(), 1u) << r.out;
    return rows.empty() ? json::object() : rows[0];
  }
  ScopedEnv via_env_;
  Netns a_, b_;
  std::string ifb_;
};

TEST_P(Ifb, IngressFillsThroughItsOwnIfbAndDetachRemovesIt) {
  if (!HaveIfb()) return;
  CmdResult a = Csumfix({"-n", b_.name(), "attach", "vb", "--ingress", "--mechanism", "ifb"});
  ASSERT_EQ(a.rc, 0) << a.err;
  EXPECT_NE(a.out.find("fill mechanism ifb"), std::string::npos) << a.out;
  ASSERT_TRUE(Exists(ifb_)) << b_.Capture("ip -o link show");
  EXPECT_NE(b_.Capture("ethtool -k " + ifb_).find("tx-checksumming: off"), std::string::npos);
  const std::string filters = b_.Capture("tc filter show dev vb ingress");
  // The selector's mirred action exactly when packets go that way.
  EXPECT_EQ(filters.find("Egress Redirect to device " + ifb_ + ")") != std::string::npos,
            Via() == "mirred")
      << filters;
  CmdResult s = Csumfix({"-n", b_.name(), "status", "vb", "-j"});
  ASSERT_EQ(s.rc, 0) << s.err;
  json st = json::parse(s.out);
  ASSERT_EQ(st.size(), 1u);
  EXPECT_EQ(st[0]["mechanism"], "ifb");
  EXPECT_EQ(st[0]["ifb_device"], ifb_);
  EXPECT_EQ(st[0]["ifb_via"], Via()) << s.out;
  EXPECT_TRUE(st[0]["hooks"][0]["attached"].get<bool>()) << s.out;
  EXPECT_EQ(st[0]["hooks"][0]["act_csum_prog_id"] != 0, Via() == "mirred") << s.out;

  EXPECT_EQ(Send(25, 7400), 25) << "every datagram came back from the ifb to B's stack";
  json c = Stats();
  EXPECT_EQ(c["class"]["partial"], 25) << c.dump();
  EXPECT_EQ(c["filled"], 25) << c.dump();
  EXPECT_EQ(c["act_selected"], 25) << c.dump();
  EXPECT_EQ(c["fill_error"], 0) << c.dump();
  EXPECT_EQ(IfbTxPackets(), 25u) << "exactly the partial datagrams went through the ifb";

  ASSERT_EQ(Csumfix({"-n", b_.name(), "detach", "vb"}).rc, 0);
  EXPECT_FALSE(Exists(ifb_)) << "the ifb goes with detach";
  EXPECT_EQ(b_.Capture("tc filter show dev vb ingress"), "");
  EXPECT_EQ(Send(5, 7401), 5) << "traffic goes on without csumfix";
}

TEST_P(Ifb, EgressIsRefusedWithAClearErrorAndNothingIsMade) {
  for (const std::vector<std::string>& hooks :
       {std::vector<std::string>{"--egress"}, {"--both"}, {}}) {
    std::vector<std::string> args = {"-n", b_.name(), "attach", "vb", "--mechanism", "ifb"};
    args.insert(args.end(), hooks.begin(), hooks.end());
    CmdResult r = Csumfix(args);
    EXPECT_EQ(r.rc, 1) << r.out;
    EXPECT_NE(r.err.find("fill mechanism ifb works at tc ingress only"), std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("use --ingress"), std::string::npos) << r.err;
    EXPECT_FALSE(Exists(ifb_));
    EXPECT_EQ(b_.Capture("tc qdisc show dev vb").find("clsact"), std::string::npos);
  }
  EXPECT_FALSE(PathExists("/sys/fs/bpf/csumfix/v1"));
}

// Without its ifb, mirred would drop what the selector hands it: status says NOT attached, and
// detach and a new attach still work.
TEST_P(Ifb, ADeletedIfbShowsAsNotAttachedAndAttachRepairs) {
  if (!HaveIfb()) return;
  ASSERT_EQ(Csumfix({"-n", b_.name(), "attach", "vb", "--ingress", "--mechanism", "ifb"}).rc, 0);
  ASSERT_EQ(b_.Exec("ip link del " + ifb_), 0);
  json st = json::parse(Csumfix({"-n", b_.name(), "status", "vb", "-j"}).out);
  ASSERT_EQ(st.size(), 1u);
  EXPECT_FALSE(st[0]["hooks"][0]["attached"].get<bool>()) << st.dump();
  CmdResult d = Csumfix({"-n", b_.name(), "detach", "vb"});
  EXPECT_EQ(d.rc, 0) << d.err;
  EXPECT_EQ(b_.Capture("tc filter show dev vb ingress"), "");
  ASSERT_EQ(Csumfix({"-n", b_.name(), "attach", "vb", "--ingress", "--mechanism", "ifb"}).rc, 0);
  EXPECT_TRUE(Exists(ifb_));
  EXPECT_EQ(Send(10, 7402), 10);
  EXPECT_EQ(Stats()["filled"], 10);
}

// The record gone (a private bpffs under `ip netns exec`): clean removes the ifb and the filters,
// and only csumfix's: an ifb of another name stays.
TEST_P(Ifb, CleanRemovesAnIfbNoRecordUsesAndNoOtherOne) {
  if (!HaveIfb()) return;
  ASSERT_EQ(b_.Exec("ip link add ifbother type ifb"), 0);
  ASSERT_EQ(Csumfix({"-n", b_.name(), "attach", "vb", "--ingress", "--mechanism", "ifb"}).rc, 0);
  CmdResult s = Csumfix({"-n", b_.name(), "status", "vb", "-j"});
  const uint64_t ino = json::parse(s.out)[0]["netns"].get<uint64_t>();
  ASSERT_EQ(csumfix::testing::Run({"rm", "-rf", "/sys/fs/bpf/csumfix/v1/netns/" + std::to_string(ino) + "/vb"}).rc,
            0);
  CmdResult c = Csumfix({"-n", b_.name(), "clean", "--all"});
  ASSERT_EQ(c.rc, 0) << c.err;
  EXPECT_NE(c.out.find("ifb device " + ifb_), std::string::npos) << c.out;
  EXPECT_FALSE(Exists(ifb_));
  EXPECT_TRUE(Exists("ifbother"));
  EXPECT_EQ(b_.Capture("tc filter show dev vb ingress"), "");
}

// A VM restart: the interface is deleted with csumfix attached and made again under its name
// (a new ifindex). The new attach replaces the stale record and deletes the old ifb, which the
// interface's deletion left behind; the new one is named for the new ifindex.
TEST_P(Ifb, AnInterfaceRecreatedUnderItsNameGetsANewIfbAndTheOldOneGoes) {
  if (!HaveIfb()) return;
  ASSERT_EQ(Csumfix({"-n", b_.name(), "attach", "vb", "--ingress", "--mechanism", "ifb"}).rc, 0);
  const std::string old_ifb = ifb_;
  ASSERT_EQ(a_.Exec("ip link del va"), 0);  // takes vb with it
  ASSERT_TRUE(Exists(old_ifb)) << "the ifb outlives its interface until csumfix removes it";
  ASSERT_TRUE(VethPair({&a_, "va", "10.68.0.1/24"}, {&b_, "vb", "10.68.0.2/24"}));
  ifb_ = "csfifb" + Hex(b_.Capture("cat /sys/class/net/vb/ifindex"));
  ASSERT_NE(ifb_, old_ifb);
  CmdResult a = Csumfix({"-n", b_.name(), "attach", "vb", "--ingress", "--mechanism", "ifb"});
  ASSERT_EQ(a.rc, 0) << a.err;
  EXPECT_FALSE(Exists(old_ifb)) << b_.Capture("ip -o link show");
  EXPECT_TRUE(Exists(ifb_));
  EXPECT_EQ(Send(10, 7404), 10);
  EXPECT_EQ(Stats()["filled"], 10);
  ASSERT_EQ(Csumfix({"-n", b_.name(), "detach", "vb"}).rc, 0);
  EXPECT_FALSE(Exists(ifb_));
}

// An upgrade swaps the programs in place (the selector after the main program) and keeps the
// ifb, and the mirred action pointing at it.
TEST_P(Ifb, UpgradeSwapsTheProgramsAndKeepsTheIfb) {
  if (!HaveIfb()) return;
  ASSERT_EQ(Csumfix({"-n", b_.name(), "attach", "vb", "--ingress", "--mechanism", "ifb"}).rc, 0);
  const std::string c = CsumfixPath();
  const std::string variant = c.substr(0, c.rfind('/') + 1) + "csumfix-upgrade-variant";
  CmdResult u = csumfix::testing::Run({variant, "-n", b_.name(), "upgrade"});
  ASSERT_EQ(u.rc, 0) << u.err;
  const size_t main_at = u.out.find("ingress: prog");
  const size_t sel_at = u.out.find("ingress ifb selector: prog");
  EXPECT_NE(main_at, std::string::npos) << u.out;
  EXPECT_EQ(sel_at != std::string::npos, Via() == "mirred") << u.out;
  if (sel_at != std::string::npos) {
    EXPECT_LT(main_at, sel_at) << "the selector goes last: " << u.out;
  }
  EXPECT_EQ(b_.Capture("tc filter show dev vb ingress").find("Redirect to device " + ifb_) !=
                std::string::npos,
            Via() == "mirred");
  EXPECT_EQ(Send(10, 7403), 10);
  EXPECT_EQ(Stats()["act_selected"], 10);
  EXPECT_EQ(IfbTxPackets(), 10u);
  ASSERT_EQ(Csumfix({"-n", b_.name(), "upgrade"}).rc, 0);  // and back
}


INSTANTIATE_TEST_SUITE_P(Via, Ifb, ::testing::Values("probe", "mirred"),
                         [](const ::testing::TestParamInfo<const char*>& i) {
                           return std::string(i.param);
                         });

}  // namespace
}  // namespace csumfix::testing
