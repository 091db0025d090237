// refcsum::Inspect: a frame's L4 checksum as a capture shows it (no skb metadata), the entry
// point `csumfix diagnose` uses. Packets are built here with their own byte-at-a-time sums.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "refcsum/refcsum.h"

namespace csumfix::ref {
namespace {

using Bytes = std::vector<uint8_t>;

uint16_t Sum(const Bytes& b, size_t off, size_t n, uint32_t acc = 0) {
  for (size_t i = 0; i < n; ++i) acc += (i % 2 == 0) ? b[off + i] << 8 : b[off + i];
  while (acc > 0xffff) acc = (acc & 0xffff) + (acc >> 16);
  return static_cast<uint16_t>(acc);
}
void Put16(Bytes& b, size_t off, uint16_t v) {
  b[off] = static_cast<uint8_t>(v >> 8);
  b[off + 1] = static_cast<uint8_t>(v);
}

// Ethernet + IPv4 (192.0.2.1 > 198.51.100.7) + UDP 1000 > 53 with 5 payload bytes.
// state: 0 valid, 1 seed, 2 correct ^ 0x00ff.
struct Udp4 {
  Bytes f;
  uint16_t seed = 0, correct = 0;
};
Udp4 MakeUdp4(int state) {
  Udp4 u;
  Bytes& f = u.f;
  f.assign(14, 0);
  f[12] = 0x08;
  const Bytes ip = {0x45, 0, 0, 33, 0, 1, 0x40, 0, 64, 17, 0, 0, 192, 0, 2, 1, 198, 51, 100, 7};
  f.insert(f.end(), ip.begin(), ip.end());
  Put16(f, 14 + 10, static_cast<uint16_t>(~Sum(f, 14, 20)));
  const Bytes udp = {0x03, 0xe8, 0, 53, 0, 13, 0, 0, 'h', 'e', 'l', 'l', 'o'};
  f.insert(f.end(), udp.begin(), udp.end());
  u.seed = Sum(f, 14 + 12, 8, 17 + 13);
  u.correct = static_cast<uint16_t>(~Sum(f, 34, 13, u.seed));
  if (u.correct == 0) u.correct = 0xffff;
  Put16(f, 34 + 6, state == 0 ? u.correct : state == 1 ? u.seed : u.correct ^ 0x00ff);
  return u;
}

TEST(RefInspect, ValidSeedAndBadReportFieldCorrectAndSeed) {
  for (int state = 0; state < 3; ++state) {
    SCOPED_TRACE(state);
    const Udp4 u = MakeUdp4(state);
    const Inspection in = Inspect(u.f);
    EXPECT_EQ(in.cls, Classify(u.f, CSF_ACT_VERIFY, Meta{}));
    EXPECT_EQ(in.cls, state == 0   ? uint32_t{CSF_CLASS_VALID}
                      : state == 1 ? uint32_t{CSF_CLASS_PARTIAL}
                                   : uint32_t{CSF_CLASS_BAD});
    ASSERT_TRUE(in.has_field);
    EXPECT_EQ(in.correct, u.correct);
    EXPECT_TRUE(in.has_seed);
    EXPECT_EQ(in.seed, u.seed);
    EXPECT_EQ(in.found, state == 0 ? u.correct : state == 1 ? u.seed : u.correct ^ 0x00ffu);
    EXPECT_EQ(in.ip_len, 33u);
    EXPECT_TRUE(in.parsed.ip4_hdr_ok);
  }
}

TEST(RefInspect, CutFrameHasNoFieldButKeepsTheDeclaredLength) {
  Udp4 u = MakeUdp4(1);
  u.f.resize(14 + 20 + 4);  // cut inside the UDP header
  const Inspection in = Inspect(u.f);
  EXPECT_EQ(in.cls, uint32_t{CSF_CLASS_UNPARSABLE});
  EXPECT_FALSE(in.has_field);
  EXPECT_EQ(in.ip_len, 33u);
  EXPECT_EQ(in.parsed.l3, L3::kIpv4);
  u.f.resize(14 + 3);  // the total length field itself is not captured
  EXPECT_EQ(Inspect(u.f).ip_len, 0u);
}

TEST(RefInspect, ZeroUdp4IsZeroWithTheCorrectValueStillComputed) {
  Udp4 u = MakeUdp4(0);
  const uint16_t correct = u.correct;
  Put16(u.f, 34 + 6, 0);
  const Inspection in = Inspect(u.f);
  EXPECT_EQ(in.cls, uint32_t{CSF_CLASS_ZERO});
  EXPECT_EQ(in.found, 0u);
  EXPECT_EQ(in.correct, correct);
}

TEST(RefInspect, Icmp4HasNoSeed) {
  Bytes f(14, 0);
  f[12] = 0x08;
  const Bytes ip = {0x45, 0, 0, 28, 0, 1, 0, 0, 64, 1, 0, 0, 192, 0, 2, 1, 198, 51, 100, 7};
  f.insert(f.end(), ip.begin(), ip.end());
  Put16(f, 24, static_cast<uint16_t>(~Sum(f, 14, 20)));
  const Bytes icmp = {8, 0, 0, 0, 0x42, 0x42, 0, 1};
  f.insert(f.end(), icmp.begin(), icmp.end());
  Put16(f, 34 + 2, static_cast<uint16_t>(~Sum(f, 34, 8)));
  const Inspection in = Inspect(f);
  EXPECT_EQ(in.cls, uint32_t{CSF_CLASS_VALID});
  EXPECT_TRUE(in.has_field);
  EXPECT_FALSE(in.has_seed);
  EXPECT_EQ(in.found, in.correct);
}

TEST(RefInspect, Ipv6JumboLengthIsZeroAndNonIpHasNothing) {
  Bytes f(14 + 40 + 8, 0);
  f[12] = 0x86;
  f[13] = 0xdd;
  f[14] = 0x60;
  f[14 + 6] = 17;  // payload length 0: jumbogram / BIG TCP
  Inspection in = Inspect(f);
  EXPECT_EQ(in.cls, uint32_t{CSF_CLASS_NA});
  EXPECT_EQ(in.ip_len, 0u);
  Put16(f, 14 + 4, 8);
  EXPECT_EQ(Inspect(f).ip_len, 48u);

  Bytes arp(60, 0);
  arp[12] = 0x08;
  arp[13] = 0x06;
  in = Inspect(arp);
  EXPECT_EQ(in.cls, uint32_t{CSF_CLASS_NA});
  EXPECT_FALSE(in.has_field);
  EXPECT_EQ(in.ip_len, 0u);
  EXPECT_EQ(in.parsed.l3, L3::kNone);
}

TEST(RefInspect, Ipv4HeaderChecksumIsJudged) {
  Udp4 u = MakeUdp4(0);
  u.f[14 + 10] ^= 0x01;
  const Inspection in = Inspect(u.f);
  EXPECT_EQ(in.cls, uint32_t{CSF_CLASS_VALID});  // the L4 checksum does not cover it
  EXPECT_FALSE(in.parsed.ip4_hdr_ok);
}

}  // namespace
}  // namespace csumfix::ref
