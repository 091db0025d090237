// The field problem reproduced WITHOUT csumfix (LAB.md): a "guest" writes NEEDS_CSUM frames to a
// TAP (CHECKSUM_PARTIAL skbs carrying the pseudo-header seed), a bridge forwards them over a veth
// into a second namespace, and the consumers there are observed. csumfix's fix tests reverse these
// assertions; if one of these fails, the lab no longer reproduces the problem.
//
// Observed on 6.18.44 (this machine), every run:
//  - AF_PACKET (PACKET_AUXDATA) on vpeer, partial frames: tp_status 0x9 = TP_STATUS_USER |
//    TP_STATUS_CSUMNOTREADY (never TP_STATUS_CSUM_VALID), the field holds exactly the seed
//    (UDP/TCP x IPv4/IPv6, payloads 1..1400). Control frame: tp_status 0x1 (CHECKSUM_NONE: neither
//    CSUMNOTREADY nor CSUM_VALID) and a valid checksum.
//  - tcpdump -w on vpeer, tshark -o {udp,tcp}.check_checksum:TRUE: checksum.status 0 (Bad) for
//    every partial frame, 1 (Good) for the control.
//  - The stack trusts PARTIAL: the UDP socket gets every datagram and byte (Udp[6]InDatagrams +6,
//    InCsumErrors +0); the TCP listener answers every PSH|ACK segment with a RST (Tcp:OutRsts +6,
//    so its checksum was accepted) and Tcp:InCsumErrors stays 0.
//  - 802.1Q: this kernel has no 8021q (CONFIG_VLAN_8021Q unset), so the lab pops the tag at tcx
//    ingress of vpeer (VlanMode::kTcxPop). AF_PACKET on vpeer sees the frame untagged with the tag
//    in auxdata: tp_status 0x59 = USER | CSUMNOTREADY | VLAN_VALID | VLAN_TPID_VALID, tci 100,
//    the seed in the field (control: 0x51, valid). tcpdump re-inserts the tag (tshark vlan.id
//    100) and says Bad/Good likewise; the UDP socket gets everything.
//  - Broadcast destination (flooded to every bridge port): tapr with TUN_F_CSUM reads flags 1
//    (NEEDS_CSUM), csum_start = L4 offset (34 UDP/IPv4, 54 TCP/IPv6), csum_offset 6/16 and the
//    seed; the control frame arrives with flags 0 and valid. tapr WITHOUT TUN_F_CSUM reads a valid
//    checksum with flags 0 (the core completed tapr's copy) while vpeer's copy of the same flood
//    is still CSUMNOTREADY + seed (pkttype PACKET_BROADCAST).
//  - Unicast to vpeer (static fdb entry) never reaches tapr.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "netns/partial_lab.h"

namespace csumfix::testing {
namespace {

constexpr uint16_t kDport = 5000;
constexpr uint16_t kPartialSport = 41000;
constexpr uint16_t kCompleteSport = 42000;
// Payload sizes of the partial frames: odd, even, up to near the MTU.
const std::vector<size_t> kSizes = {1, 64, 333, 1000, 1400};
constexpr size_t kControlSize = 100;

std::string Hex(uint32_t v) {
  char b[16];
  snprintf(b, sizeof(b), "0x%x", v);
  return b;
}

class PartialBaseline : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0) << "netns tests need root: run scripts/test.sh as root";
  }

  void StartLab(const LabOptions& o = {}) {
    ASSERT_TRUE(lab_.Setup(o)) << "lab setup failed: " << lab_.error();
  }

  // What AF_PACKET on `ifname` saw of kSizes partial frames + 1 control frame.
  void CheckRaw(const std::vector<RawFrame>& frames, const std::string& ifname, IpVer ip,
                L4Proto l4, bool vlan) {
    SCOPED_TRACE("AF_PACKET on " + ifname);
    const size_t n = kSizes.size();
    ASSERT_EQ(frames.size(), n + 1) << "frames seen by AF_PACKET on " << ifname;
    size_t partial_seen = 0;
    for (const RawFrame& f : frames) {
      SCOPED_TRACE("frame from port " + std::to_string(f.check.src_port) + ", payload " +
                   std::to_string(f.check.payload_len) + ", tp_status " + Hex(f.tp_status));
      EXPECT_EQ(f.check.ip, ip);
      EXPECT_EQ(f.check.l4, l4);
      if (vlan) {
        // The tag is out of band on the receiving side (hw-accel tag -> auxdata).
        ASSERT_TRUE(f.aux_vlan_tci.has_value() || f.check.vlan.has_value())
            << "802.1Q tag lost";
        EXPECT_EQ((f.aux_vlan_tci ? *f.aux_vlan_tci : *f.check.vlan) & 0x0fff,
                  lab_.options().vlan_id);
      }
      if (f.check.src_port == kPartialSport) {
        EXPECT_EQ(f.check.payload_len, kSizes[partial_seen]);
        ++partial_seen;
        EXPECT_TRUE(f.csum_not_ready()) << "a partial frame must carry TP_STATUS_CSUMNOTREADY";
        EXPECT_FALSE(f.csum_valid());
        EXPECT_TRUE(f.check.is_seed) << "field 0x" << std::hex << f.check.field << " seed 0x"
                                     << f.check.seed;
        EXPECT_FALSE(f.check.valid) << "the field must NOT verify before any fix";
      } else {
        EXPECT_EQ(f.check.src_port, kCompleteSport);
        EXPECT_EQ(f.check.payload_len, kControlSize);
        EXPECT_FALSE(f.csum_not_ready()) << "the control frame is complete";
        EXPECT_TRUE(f.check.valid) << "control field 0x" << std::hex << f.check.field
                                   << " expected 0x" << f.check.expected;
      }
    }
    EXPECT_EQ(partial_seen, n);
  }

  // N partial frames + 1 complete control frame from the guest to vpeer's address: what do the
  // raw reader, tcpdump/tshark, the socket and tapr see?
  void PartialReachesPeerUnfixed(IpVer ip, L4Proto l4, bool vlan) {
    SCOPED_TRACE(std::string(Name(l4)) + "/" + Name(ip) + (vlan ? "/802.1Q" : ""));
    LabOptions o;
    o.vlan = vlan;
    ASSERT_NO_FATAL_FAILURE(StartLab(o));
    const std::string& ns = lab_.peer().name();
    const size_t n = kSizes.size();

    std::string err;
    // The raw reader and tcpdump sit on vpeer itself: there a tagged frame still shows its tag
    // (in auxdata). With a vpeer.<id> subinterface (kernels with 8021q) a second reader there
    // sees what a dhclient on the VLAN interface would.
    RawReader raw, raw_sub;
    ASSERT_TRUE(raw.Open(ns, "vpeer", {0, kDport}, &err)) << err;
    const bool subif = lab_.peer_if() != "vpeer";
    if (subif) {
      ASSERT_TRUE(raw_sub.Open(ns, lab_.peer_if(), {0, kDport}, &err)) << err;
    }
    UdpSink udp;
    TcpSink tcp;
    if (l4 == L4Proto::kUdp)
      ASSERT_TRUE(udp.Open(ns, ip, PartialLab::PeerAddr(ip), kDport, &err)) << err;
    else
      ASSERT_TRUE(tcp.Open(ns, ip, PartialLab::PeerAddr(ip), kDport, &err)) << err;
    TapReader tapr(lab_.tapr_fd(), {0, kDport});
    PcapCapture cap;
    ASSERT_TRUE(cap.Start(ns, "vpeer", n + 1, "dst port " + std::to_string(kDport), &err))
        << err;

    const bool v4 = ip == IpVer::kV4;
    const std::string udp_in = v4 ? "Udp:InDatagrams" : "Udp6InDatagrams";
    const std::string udp_csum = v4 ? "Udp:InCsumErrors" : "Udp6InCsumErrors";
    const int64_t rsts0 = SnmpCounter(lab_.peer(), "Tcp:OutRsts");
    const int64_t tcp_csum0 = SnmpCounter(lab_.peer(), "Tcp:InCsumErrors");
    const int64_t udp_in0 = SnmpCounter(lab_.peer(), udp_in);
    const int64_t udp_csum0 = SnmpCounter(lab_.peer(), udp_csum);
    ASSERT_GE(rsts0, 0);
    ASSERT_GE(udp_in0, 0);

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

    // 1. The raw reader on the peer: CSUMNOTREADY + the seed; the control frame valid.
    ASSERT_NO_FATAL_FAILURE(CheckRaw(raw.Collect(n + 1), "vpeer", ip, l4, vlan));
    if (subif) {
      ASSERT_NO_FATAL_FAILURE(CheckRaw(raw_sub.Collect(n + 1), lab_.peer_if(), ip, l4, false));
    }

    // 2. The stack trusts PARTIAL: everything delivered, no checksum error counted.
    if (l4 == L4Proto::kUdp) {
      SinkStats s = udp.Collect(n + 1);
      EXPECT_EQ(s.datagrams, n + 1) << "the UDP socket must get every datagram";
      EXPECT_EQ(s.bytes, std::accumulate(kSizes.begin(), kSizes.end(), kControlSize));
      EXPECT_EQ(SnmpCounter(lab_.peer(), udp_in) - udp_in0, static_cast<int64_t>(n + 1));
      EXPECT_EQ(SnmpCounter(lab_.peer(), udp_csum), udp_csum0);
    } else {
      // A PSH|ACK to a listener is answered with a RST — only if its checksum was accepted.
      int64_t rsts = 0;
      for (int i = 0; i < 40 && (rsts = SnmpCounter(lab_.peer(), "Tcp:OutRsts") - rsts0) <
                                    static_cast<int64_t>(n + 1); ++i)
        usleep(50 * 1000);
      EXPECT_EQ(rsts, static_cast<int64_t>(n + 1)) << "every segment must reach TCP";
      EXPECT_EQ(SnmpCounter(lab_.peer(), "Tcp:InCsumErrors"), tcp_csum0);
    }

    // 3. tcpdump + tshark agree: Bad for the partial frames, Good for the control.
    EXPECT_TRUE(cap.Stop()) << "tcpdump did not capture " << n + 1 << " packets: " << cap.log();
    auto st = TsharkChecksums(cap.path(), "", &err);
    ASSERT_TRUE(st.has_value()) << err;
    ASSERT_EQ(st->size(), n + 1) << cap.log();
    for (const TsharkStatus& t : *st) {
      EXPECT_EQ(l4 == L4Proto::kUdp ? t.udp : t.tcp, t.src_port == kPartialSport ? 0 : 1)
          << "tshark checksum status for port " << t.src_port << " (0 Bad, 1 Good)";
      if (vlan) {
        EXPECT_EQ(t.vlan, lab_.options().vlan_id) << "tcpdump must record the tag";
      }
    }

    // 4. Unicast to vpeer's (static) fdb entry is not flooded: tapr sees none of it.
    EXPECT_TRUE(tapr.Collect(1, std::chrono::milliseconds(200)).empty());
  }

  // Broadcast destination: the bridge floods to tapr and vbr.
  void FloodReachesTapr(IpVer ip, L4Proto l4, bool tapr_offload) {
    SCOPED_TRACE(std::string(Name(l4)) + "/" + Name(ip) +
                 (tapr_offload ? " tapr TUN_F_CSUM" : " tapr no offload"));
    LabOptions o;
    o.tapr_csum_offload = tapr_offload;
    ASSERT_NO_FATAL_FAILURE(StartLab(o));
    std::string err;
    RawReader raw;
    ASSERT_TRUE(raw.Open(lab_.peer().name(), lab_.peer_if(), {0, kDport}, &err)) << err;
    TapReader tapr(lab_.tapr_fd(), {0, kDport});
    FrameSpec s;
    s.ip = ip;
    s.l4 = l4;
    s.payload_len = 200;
    s.src_port = kPartialSport;
    s.dst_port = kDport;
    s.broadcast = true;
    ASSERT_TRUE(lab_.Send(s)) << lab_.error();
    s.partial = false;
    s.src_port = kCompleteSport;
    ASSERT_TRUE(lab_.Send(s)) << lab_.error();

    std::vector<TapFrame> got = tapr.Collect(2);
    ASSERT_EQ(got.size(), 2u) << "flooded frames on tapr";
    const uint16_t field_off = l4 == L4Proto::kUdp ? 6 : 16;
    for (const TapFrame& f : got) {
      SCOPED_TRACE("tapr frame from port " + std::to_string(f.check.src_port) + " flags " +
                   std::to_string(f.flags));
      EXPECT_EQ(f.gso_type, 0);
      if (f.check.src_port == kPartialSport && tapr_offload) {
        EXPECT_TRUE(f.needs_csum()) << "an offloading receiver is handed the partial frame";
        EXPECT_EQ(f.csum_start, f.check.l4_offset);
        EXPECT_EQ(f.csum_offset, field_off);
        EXPECT_TRUE(f.check.is_seed) << std::hex << f.check.field << " vs seed " << f.check.seed;
      } else {
        // The control frame, or a partial one the core completed for a non-offloading TAP.
        EXPECT_FALSE(f.needs_csum()) << "complete checksum must not come with NEEDS_CSUM";
        EXPECT_TRUE(f.check.valid) << std::hex << f.check.field << " vs " << f.check.expected;
      }
    }
    // The veth copy of the same flood is partial on the peer.
    std::vector<RawFrame> frames = raw.Collect(2);
    ASSERT_EQ(frames.size(), 2u);
    for (const RawFrame& f : frames) {
      const bool partial = f.check.src_port == kPartialSport;
      EXPECT_EQ(f.csum_not_ready(), partial) << "port " << f.check.src_port;
      EXPECT_EQ(f.check.is_seed, partial);
      EXPECT_EQ(f.check.valid, !partial);
    }
  }

  PartialLab lab_;
};

TEST_F(PartialBaseline, UdpV4) { PartialReachesPeerUnfixed(IpVer::kV4, L4Proto::kUdp, false); }
TEST_F(PartialBaseline, UdpV6) { PartialReachesPeerUnfixed(IpVer::kV6, L4Proto::kUdp, false); }
TEST_F(PartialBaseline, TcpV4) { PartialReachesPeerUnfixed(IpVer::kV4, L4Proto::kTcp, false); }
TEST_F(PartialBaseline, TcpV6) { PartialReachesPeerUnfixed(IpVer::kV6, L4Proto::kTcp, false); }
TEST_F(PartialBaseline, VlanUdpV4) {
  PartialReachesPeerUnfixed(IpVer::kV4, L4Proto::kUdp, true);
}

TEST_F(PartialBaseline, FloodToOffloadingTaprKeepsSeedUdpV4) {
  FloodReachesTapr(IpVer::kV4, L4Proto::kUdp, true);
}
TEST_F(PartialBaseline, FloodToOffloadingTaprKeepsSeedTcpV6) {
  FloodReachesTapr(IpVer::kV6, L4Proto::kTcp, true);
}
TEST_F(PartialBaseline, FloodToNonOffloadingTaprIsCompletedUdpV4) {
  FloodReachesTapr(IpVer::kV4, L4Proto::kUdp, false);
}

// The lab's own checksum code against a known frame (no root needed, but lives with the lab).
TEST(PartialBaselineChecksum, LabSeedAndCompleteAreConsistent) {
  for (IpVer ip : {IpVer::kV4, IpVer::kV6}) {
    for (L4Proto l4 : {L4Proto::kUdp, L4Proto::kTcp}) {
      for (size_t len : {0, 1, 2, 333, 1400}) {
        FrameSpec s;
        s.ip = ip;
        s.l4 = l4;
        s.payload_len = len;
        s.vlan = len == 333 ? std::optional<uint16_t>(7) : std::nullopt;
        BuiltFrame p = BuildFrame(s, PartialLab::kGuestMac, PartialLab::kGuestMac);
        s.partial = false;
        BuiltFrame c = BuildFrame(s, PartialLab::kGuestMac, PartialLab::kGuestMac);
        L4Check pc = InspectFrame(p.frame), cc = InspectFrame(c.frame);
        ASSERT_TRUE(pc.parsed && cc.parsed);
        EXPECT_TRUE(pc.is_seed);
        EXPECT_FALSE(pc.valid);
        EXPECT_TRUE(cc.valid);
        EXPECT_EQ(pc.expected, cc.field);
        EXPECT_EQ(cc.seed, pc.field);
        EXPECT_EQ(pc.payload_len, len);
        EXPECT_EQ(pc.vlan.has_value(), s.vlan.has_value());
        EXPECT_EQ(p.l4_offset, pc.l4_offset);
        // virtio_net_hdr: NEEDS_CSUM, csum_start = L4 offset, csum_offset 6/16 (little endian).
        EXPECT_EQ(p.vnet_hdr[0], 1);
        EXPECT_EQ(p.vnet_hdr[6] | p.vnet_hdr[7] << 8, static_cast<int>(pc.l4_offset));
        EXPECT_EQ(p.vnet_hdr[8], l4 == L4Proto::kUdp ? 6 : 16);
        EXPECT_EQ(c.vnet_hdr[0], 0);
      }
    }
  }
}

}  // namespace
}  // namespace csumfix::testing
