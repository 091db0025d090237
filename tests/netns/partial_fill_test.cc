// csumfix on the TAP / bridge lab (partial_lab.h): the reverse of partial_baseline_test.cc. A guest
// writes NEEDS_CSUM frames to tapg; with csumfix filling — with every fill mechanism this kernel
// supports (mechanisms.h: bounce everywhere, bpf with the change_tail fix, act-csum with act_csum,
// ifb at the TAP's ingress where ifb and mirred are)
// — the consumers behind the bridge see complete checksums, nothing is lost, the offloading TAP
// never gets a complete checksum flagged NEEDS_CSUM, and the counters equal the packets sent.
#include <unistd.h>

#include <cstdlib>
#include <numeric>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "netns/lab.h"
#include "netns/mechanisms.h"
#include "netns/partial_lab.h"
#include "nlohmann/json.hpp"

namespace csumfix::testing {
namespace {

using json = nlohmann::json;

constexpr uint16_t kDport = 5000;
constexpr uint16_t kPartialSport = 41000;
constexpr uint16_t kCompleteSport = 42000;
const std::vector<size_t> kSizes = {1, 64, 333, 1000, 1400};
constexpr size_t kControlSize = 100;

struct Where {
  const char* ifname;  // in the lab's bridge namespace
  const char* hook;    // --ingress / --egress
};
constexpr Where kTapIngress{"tapg", "--ingress"};  // where the guest's frames enter the host
constexpr Where kPortEgress{"vbr", "--egress"};    // where they leave the bridge toward the peer

class PartialFill : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0) << "netns tests need root: run scripts/test.sh as root";
  }
  void TearDown() override {
    if (!lab_.ns().name().empty()) Csumfix({"-n", lab_.ns().name(), "detach", "--all"});
    EXPECT_FALSE(PathExists("/sys/fs/bpf/csumfix/v1")) << "pins left behind";
  }
  void Start(const LabOptions& o = {}) {
    ASSERT_TRUE(lab_.Setup(o)) << "lab setup failed: " << lab_.error();
  }
  // Attaches with `mech` ("auto": the probe's choice, which must follow from its own facts and,
  // in the VM matrix, equal CSUMFIX_EXPECT_MECHANISM; observe for an action that never fills).
  void Attach(const Where& w, const std::string& action, const std::string& mech = "auto") {
    const ProbeFacts& p = Probe();
    ASSERT_TRUE(p.ok) << p.error;
    ASSERT_EQ(p.chosen, ExpectedChoice(p))
        << "the probe's choice contradicts its facts: " << p.json;
    if (const char* want = std::getenv("CSUMFIX_EXPECT_MECHANISM")) {
      ASSERT_EQ(p.chosen, want) << "this kernel must get mechanism " << want << ": " << p.json;
    }
    CmdResult r = Csumfix({"-n", lab_.ns().name(), "attach", w.ifname, w.hook, "--action", action,
                           "--mechanism", mech});
    ASSERT_EQ(r.rc, 0) << r.err;
    const bool fills = action == "fill" || action == "zero-udp4";
    const std::string got = mech != "auto" ? mech : fills ? p.chosen : "observe";
    ASSERT_NE(r.out.find("fill mechanism " + got), std::string::npos) << r.out;
    mech_ = got;
  }
  void Detach(const Where& w) {
    CmdResult d = Csumfix({"-n", lab_.ns().name(), "detach", w.ifname});
    ASSERT_EQ(d.rc, 0) << d.err;
  }
  json Stats(const Where& w) {
    CmdResult r = Csumfix({"-n", lab_.ns().name(), "stats", w.ifname, "-j"});
    EXPECT_EQ(r.rc, 0) << r.err;
    json rows = json::parse(r.out);
    EXPECT_EQ(rows.size(), 1u) << r.out;
    return rows.empty() ? json::object() : rows[0];
  }

  // kSizes partial frames + 1 complete control frame, guest -> vpeer.
  void FixedAtPeer(IpVer ip, L4Proto l4, bool vlan, const Where& w) {
    SCOPED_TRACE(std::string(Name(l4)) + "/" + Name(ip) + (vlan ? "/802.1Q" : "") + " at " +
                 w.ifname + " " + w.hook);
    LabOptions o;
    o.vlan = vlan;
    ASSERT_NO_FATAL_FAILURE(Start(o));
    const std::vector<std::string> mechs = FillMechanisms(std::string(w.hook) == "--ingress");
    ASSERT_FALSE(mechs.empty()) << Probe().error;
    for (const std::string& m : mechs) {
      SCOPED_TRACE("fill mechanism " + m);
      ASSERT_NO_FATAL_FAILURE(FixedWith(ip, l4, w, m));
      ASSERT_NO_FATAL_FAILURE(Detach(w));
    }
  }

  void FixedWith(IpVer ip, L4Proto l4, const Where& w, const std::string& mech) {
    ASSERT_NO_FATAL_FAILURE(Attach(w, "fill", mech));
    const std::string& ns = lab_.peer().name();
    const size_t n = kSizes.size();
    std::string err;
    RawReader raw;
    ASSERT_TRUE(raw.Open(ns, "vpeer", {0, kDport}, &err)) << err;
    UdpSink udp;
    TcpSink tcp;
    if (l4 == L4Proto::kUdp)
      ASSERT_TRUE(udp.Open(ns, ip, PartialLab::PeerAddr(ip), kDport, &err)) << err;
    else
      ASSERT_TRUE(tcp.Open(ns, ip, PartialLab::PeerAddr(ip), kDport, &err)) << err;
    PcapCapture cap;
    ASSERT_TRUE(cap.Start(ns, "vpeer", n + 1, "dst port " + std::to_string(kDport), &err)) << err;
    const int64_t rsts0 = SnmpCounter(lab_.peer(), "Tcp:OutRsts");

    for (size_t len : kSizes) {
      if (l4 == L4Proto::kUdp)
        ASSERT_TRUE(lab_.SendUdp(ip, len, kPartialSport, kDport, lab_.vlan())) << lab_.error();
      else
        ASSERT_TRUE(lab_.SendTcp(ip, len, kPartialSport, kDport, lab_.vlan())) << lab_.error();
    }
    if (l4 == L4Proto::kUdp)
      ASSERT_TRUE(lab_.SendUdpComplete(ip, kControlSize, kCompleteSport, kDport, lab_.vlan()));
    else
      ASSERT_TRUE(lab_.SendTcpComplete(ip, kControlSize, kCompleteSport, kDport, lab_.vlan()));

    // 1. The raw reader: every frame complete, none CSUMNOTREADY.
    std::vector<RawFrame> frames = raw.Collect(n + 1);
    ASSERT_EQ(frames.size(), n + 1);
    for (const RawFrame& f : frames) {
      SCOPED_TRACE("port " + std::to_string(f.check.src_port) + " payload " +
                   std::to_string(f.check.payload_len));
      EXPECT_FALSE(f.csum_not_ready()) << "tp_status 0x" << std::hex << f.tp_status;
      EXPECT_TRUE(f.check.valid) << "field 0x" << std::hex << f.check.field << " expected 0x"
                                 << f.check.expected;
    }
    // 2. Every datagram and byte still arrives.
    if (l4 == L4Proto::kUdp) {
      SinkStats s = udp.Collect(n + 1);
      EXPECT_EQ(s.datagrams, n + 1);
      EXPECT_EQ(s.bytes, std::accumulate(kSizes.begin(), kSizes.end(), kControlSize));
    } else {
      int64_t rsts = 0;
      for (int i = 0; i < 40 && (rsts = SnmpCounter(lab_.peer(), "Tcp:OutRsts") - rsts0) <
                                    static_cast<int64_t>(n + 1);
           ++i)
        usleep(50 * 1000);
      EXPECT_EQ(rsts, static_cast<int64_t>(n + 1)) << "every segment must reach TCP";
    }
    // 3. tshark, an independent oracle, agrees: Good for every frame.
    EXPECT_TRUE(cap.Stop()) << cap.log();
    auto st = TsharkChecksums(cap.path(), "", &err);
    ASSERT_TRUE(st.has_value()) << err;
    ASSERT_EQ(st->size(), n + 1);
    for (const TsharkStatus& t : *st) EXPECT_EQ(t.status(), 1) << "port " << t.src_port;
    // 4. Counters equal the packets sent: n partial (each filled once by the mechanism, each
    //    counted once) and the control frame valid.
    json c = Stats(w);
    EXPECT_EQ(c["packets"], n + 1) << c.dump();
    EXPECT_EQ(c["class"]["partial"], n) << c.dump();
    EXPECT_EQ(c["class"]["valid"], 1) << c.dump();
    EXPECT_EQ(c["filled"], n) << c.dump();
    EXPECT_EQ(c["fill_error"], 0) << c.dump();
    EXPECT_EQ(c["dropped"], 0) << c.dump();
    const size_t bounced = mech_ == "bounce" ? n : 0;
    const size_t selected = mech_ == "act-csum" || mech_ == "ifb" ? n : 0;
    EXPECT_EQ(c["bounced"], bounced) << c.dump();
    EXPECT_EQ(c["bounce_returned"], bounced) << c.dump();
    EXPECT_EQ(c["act_selected"], selected) << c.dump();
  }

  PartialLab lab_;
  std::string mech_;  // the mechanism of the current attachment
};

TEST_F(PartialFill, Udp4AtTapIngress) {
  FixedAtPeer(IpVer::kV4, L4Proto::kUdp, false, kTapIngress);
}
TEST_F(PartialFill, Udp6AtTapIngress) {
  FixedAtPeer(IpVer::kV6, L4Proto::kUdp, false, kTapIngress);
}
TEST_F(PartialFill, Tcp4AtTapIngress) {
  FixedAtPeer(IpVer::kV4, L4Proto::kTcp, false, kTapIngress);
}
TEST_F(PartialFill, Tcp6AtTapIngress) {
  FixedAtPeer(IpVer::kV6, L4Proto::kTcp, false, kTapIngress);
}
TEST_F(PartialFill, Vlan8021qUdp4AtTapIngress) {
  FixedAtPeer(IpVer::kV4, L4Proto::kUdp, true, kTapIngress);
}
TEST_F(PartialFill, Udp4AtBridgePortEgress) {
  FixedAtPeer(IpVer::kV4, L4Proto::kUdp, false, kPortEgress);
}
TEST_F(PartialFill, Tcp6AtBridgePortEgress) {
  FixedAtPeer(IpVer::kV6, L4Proto::kTcp, false, kPortEgress);
}

// Flooded frames reach the offloading TAP tapr: never a complete checksum flagged NEEDS_CSUM.
TEST_F(PartialFill, OffloadingTapNeverGetsCompleteWithNeedsCsum) {
  ASSERT_NO_FATAL_FAILURE(Start());
  for (const std::string& m : FillMechanisms(/*at_ingress=*/true)) {
    SCOPED_TRACE("fill mechanism " + m);
    ASSERT_NO_FATAL_FAILURE(Attach(kTapIngress, "fill", m));
    TapReader tapr(lab_.tapr_fd(), {0, kDport});
    for (IpVer ip : {IpVer::kV4, IpVer::kV6}) {
      FrameSpec s;
      s.ip = ip;
      s.broadcast = true;
      s.src_port = kPartialSport;
      s.dst_port = kDport;
      ASSERT_TRUE(lab_.Send(s)) << lab_.error();
    }
    std::vector<TapFrame> got = tapr.Collect(2);
    ASSERT_EQ(got.size(), 2u);
    for (const TapFrame& f : got) {
      EXPECT_TRUE(f.check.valid) << "tapr must get the completed checksum";
      EXPECT_FALSE(f.needs_csum()) << "complete checksum flagged NEEDS_CSUM: the guest would "
                                      "complete it again (flags "
                                   << int(f.flags) << ")";
    }
    ASSERT_NO_FATAL_FAILURE(Detach(kTapIngress));
  }
}

// Without a fill (verify), tapr keeps getting NEEDS_CSUM + seed: csumfix leaves it alone.
TEST_F(PartialFill, VerifyLeavesPartialForTheOffloadingTap) {
  ASSERT_NO_FATAL_FAILURE(Start());
  ASSERT_NO_FATAL_FAILURE(Attach(kTapIngress, "verify"));
  TapReader tapr(lab_.tapr_fd(), {0, kDport});
  FrameSpec s;
  s.broadcast = true;
  s.src_port = kPartialSport;
  s.dst_port = kDport;
  ASSERT_TRUE(lab_.Send(s)) << lab_.error();
  std::vector<TapFrame> got = tapr.Collect(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(got[0].needs_csum());
  EXPECT_TRUE(got[0].check.is_seed);
  json c = Stats(kTapIngress);
  EXPECT_EQ(c["class"]["partial"], 1);
  EXPECT_EQ(c["filled"], 0);
}

// drop-bad drops a frame with a wrong checksum and never a partial one; zero-udp4 on a
// kernel-PARTIAL UDP/IPv4 frame fills it (the core cannot write 0), so it arrives valid.
TEST_F(PartialFill, DropBadAndZeroUdp4OnRealTraffic) {
  ASSERT_NO_FATAL_FAILURE(Start());
  ASSERT_NO_FATAL_FAILURE(Attach(kTapIngress, "drop-bad"));
  std::string err;
  UdpSink udp;
  ASSERT_TRUE(
      udp.Open(lab_.peer().name(), IpVer::kV4, PartialLab::PeerAddr(IpVer::kV4), kDport, &err))
      << err;
  FrameSpec bad;
  bad.partial = false;
  bad.corrupt_xor = 0x0101;
  bad.src_port = kCompleteSport;
  bad.dst_port = kDport;
  ASSERT_TRUE(lab_.Send(bad));
  ASSERT_TRUE(lab_.SendUdp(IpVer::kV4, 50, kPartialSport, kDport, lab_.vlan()));
  ASSERT_TRUE(lab_.SendUdpComplete(IpVer::kV4, 60, kCompleteSport, kDport, lab_.vlan()));
  SinkStats s = udp.Collect(2);
  EXPECT_EQ(s.datagrams, 2u) << "the partial and the good datagram arrive";
  EXPECT_EQ(s.bytes, 110u);
  json c = Stats(kTapIngress);
  EXPECT_EQ(c["dropped"], 1);
  EXPECT_EQ(c["class"]["bad"], 1);
  EXPECT_EQ(c["class"]["partial"], 1);

  // Same interface, new action: zero-udp4, with every mechanism. The pure-BPF fill writes the
  // bytes itself, so it can write 0; the others complete the checksum in the kernel's way.
  ASSERT_NO_FATAL_FAILURE(Detach(kTapIngress));
  for (const std::string& m : FillMechanisms(/*at_ingress=*/true)) {
    SCOPED_TRACE("fill mechanism " + m);
    ASSERT_NO_FATAL_FAILURE(Attach(kTapIngress, "zero-udp4", m));
    RawReader raw;
    ASSERT_TRUE(raw.Open(lab_.peer().name(), "vpeer", {0, kDport}, &err)) << err;
    ASSERT_TRUE(lab_.SendUdp(IpVer::kV4, 70, kPartialSport, kDport, lab_.vlan()));
    std::vector<RawFrame> f = raw.Collect(1);
    ASSERT_EQ(f.size(), 1u);
    EXPECT_FALSE(f[0].csum_not_ready());
    json c = Stats(kTapIngress);
    if (m == "bpf") {
      EXPECT_EQ(f[0].check.field, 0) << "zero-udp4 with the pure-BPF fill writes checksum 0";
      EXPECT_EQ(c["zeroed"], 1) << c.dump();
      EXPECT_EQ(c["filled"], 0) << c.dump();
    } else {
      EXPECT_TRUE(f[0].check.valid);
      EXPECT_EQ(c["filled"], 1) << c.dump();
    }
    ASSERT_NO_FATAL_FAILURE(Detach(kTapIngress));
  }
}

}  // namespace
}  // namespace csumfix::testing
