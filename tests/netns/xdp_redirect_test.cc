// XDP redirect completion: a frame redirected by XDP leaves without checksum metadata, so a seed
// goes onto the wire as a wrong checksum. With --redirect-to, csumfix completes seeds on exactly
// those frames. Three namespaces: A (sender, va) -- R (vb with XDP -> vc) -- C (vd, raw reader).
#include <unistd.h>

#include <string>

#include "gtest/gtest.h"
#include "netns/lab.h"
#include "nlohmann/json.hpp"

namespace csumfix::testing {
namespace {

using json = nlohmann::json;

class XdpRedirect : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(RootAndNamespaces({&a_, &r_, &c_}));
    ASSERT_TRUE(VethPair({&a_, "va", "10.70.0.1/24"}, {&r_, "vb", ""}));
    ASSERT_TRUE(VethPair({&r_, "vc", ""}, {&c_, "vd", "10.70.0.2/24"}));
    // A veth takes XDP-redirected frames only when its peer runs NAPI: since 5.13 GRO on the
    // peer is enough, before that (5.10) only an XDP program there does (else the redirect
    // fails with ENXIO and the frame is dropped). csumfix's own XDP program in observe mode
    // passes every frame unchanged and works on every kernel; its counters show what arrived.
    CmdResult o = Csumfix({"-n", c_.name(), "attach", "vd", "--xdp", "--action", "observe"});
    ASSERT_EQ(o.rc, 0) << o.err;
    // A resolves C's address to vd's MAC directly: R only redirects frames.
    std::string mac = c_.Capture("cat /sys/class/net/vd/address");
    ASSERT_GE(mac.size(), 17u);
    ASSERT_EQ(a_.Ip("neigh add 10.70.0.2 lladdr " + mac.substr(0, 17) + " dev va"), 0);
    tmp_ = "/tmp/csf-xdp-" + std::to_string(getpid());
  }
  void TearDown() override {
    Csumfix({"-n", r_.name(), "detach", "--all"});
    Csumfix({"-n", c_.name(), "detach", "--all"});
    a_.Destroy();
    r_.Destroy();
    c_.Destroy();
    EXPECT_FALSE(PathExists("/sys/fs/bpf/csumfix/v1")) << "pins left behind";
  }
  // 20 UDP datagrams A -> C; "got csumnotready valid" from a raw reader on vd.
  std::string SendAndRead(int port) {
    return RawRead(c_, "vd", port, 20, [&] {
      a_.Exec("python3 -c \"import socket,time; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
              " [s.sendto(b'q'*300,('10.70.0.2'," + std::to_string(port) +
              ")) or time.sleep(0.005) for _ in range(20)]\"");
    });
  }
  Netns a_, r_, c_;
  std::string tmp_;
};

TEST_F(XdpRedirect, RedirectedSeedsReachTheWireBrokenWithoutFill) {
  CmdResult a = Csumfix({"-n", r_.name(), "attach", "vb", "--xdp", "--action", "verify",
                         "--redirect-to", "vc"});
  ASSERT_EQ(a.rc, 0) << a.err;
  // No CSUMNOTREADY (the metadata is gone) and no valid checksum: what a peer host would drop.
  EXPECT_EQ(SendAndRead(7300), "20 0 0");
  // C's XDP hook saw the 20 seeds (observe: a field equal to the pseudo-header seed).
  CmdResult s = Csumfix({"-n", c_.name(), "stats", "vd", "-j"});
  ASSERT_EQ(s.rc, 0) << s.err;
  json st = json::parse(s.out);
  ASSERT_EQ(st.size(), 1u) << s.out;
  EXPECT_EQ(st[0]["hook"], "xdp");
  EXPECT_EQ(st[0]["class"]["partial"], 20) << s.out;
}

TEST_F(XdpRedirect, FillCompletesRedirectedFrames) {
  CmdResult a = Csumfix({"-n", r_.name(), "attach", "vb", "--xdp", "--action", "fill",
                         "--redirect-to", "vc"});
  ASSERT_EQ(a.rc, 0) << a.err;
  EXPECT_EQ(SendAndRead(7301), "20 0 20");
  CmdResult s = Csumfix({"-n", r_.name(), "stats", "vb", "-j"});
  json st = json::parse(s.out);
  ASSERT_EQ(st.size(), 1u);
  EXPECT_EQ(st[0]["hook"], "xdp");
  EXPECT_EQ(st[0]["class"]["partial"], 20);
  EXPECT_EQ(st[0]["filled"], 20);
}

TEST_F(XdpRedirect, RedirectNeedsXdpAndAnInterface) {
  CmdResult a = Csumfix({"-n", r_.name(), "attach", "vb", "--redirect-to", "vc"});
  EXPECT_EQ(a.rc, 1);
  EXPECT_NE(a.err.find("--redirect-to needs --xdp"), std::string::npos) << a.err;
  CmdResult b = Csumfix({"-n", r_.name(), "attach", "vb", "--xdp", "--redirect-to", "nope0"});
  EXPECT_EQ(b.rc, 1);
  EXPECT_NE(b.err.find("--redirect-to nope0: no such interface"), std::string::npos) << b.err;
}

}  // namespace
}  // namespace csumfix::testing
