// Unit tests for the reference checksum library (userspace/refcsum), per docs/SEMANTICS.md.
//
// Packets here are written by hand (literal bytes, or the tiny builder below with its own
// byte-at-a-time checksums); nothing comes from tests/common/pktgen.
#include "refcsum/refcsum.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace csumfix::ref {
namespace {

using Bytes = std::vector<uint8_t>;

// ---- Test-local helpers: naive checksums and a minimal packet builder ------------------------------

Bytes FromHex(std::string_view hex) {
  Bytes out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<uint8_t>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

// Byte-at-a-time one's-complement sum (big-endian words), folded.
uint16_t NaiveSum(const Bytes& b, size_t off, size_t n, uint32_t acc = 0) {
  for (size_t i = 0; i < n; ++i) acc += (i % 2 == 0) ? b[off + i] << 8 : b[off + i];
  while (acc > 0xffff) acc = (acc & 0xffff) + (acc >> 16);
  return static_cast<uint16_t>(acc);
}

uint32_t NaiveCrc32c(const Bytes& b, size_t off, size_t n) {
  uint32_t crc = 0xffffffff;
  for (size_t i = 0; i < n; ++i) {
    crc ^= b[off + i];
    for (int k = 0; k < 8; ++k) crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78 : crc >> 1;
  }
  return ~crc;
}

void Put16(Bytes& b, size_t off, uint16_t v) {
  b[off] = static_cast<uint8_t>(v >> 8);
  b[off + 1] = static_cast<uint8_t>(v);
}
uint16_t Get16(const Bytes& b, size_t off) { return static_cast<uint16_t>(b[off] << 8 | b[off + 1]); }
void Append16(Bytes& b, uint16_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}
void Append(Bytes& b, const Bytes& more) { b.insert(b.end(), more.begin(), more.end()); }

constexpr uint8_t kTcp = 6, kUdp = 17, kIcmp4 = 1, kIcmp6 = 58, kSctp = 132, kUdpLite = 136;

const Bytes kV4Src = {10, 0, 0, 1};
const Bytes kV4Dst = {10, 0, 0, 2};
const Bytes kV6Src = FromHex("fd000000000000000000000000000001");
const Bytes kV6Dst = FromHex("fd000000000000000000000000000002");

// Folded pseudo-header sum, computed from scratch.
uint16_t NaivePseudo(bool v6, uint8_t proto, size_t len) {
  Bytes ph;
  if (v6) {
    Append(ph, kV6Src);
    Append(ph, kV6Dst);
    Append16(ph, static_cast<uint16_t>(len >> 16));
    Append16(ph, static_cast<uint16_t>(len));
    ph.insert(ph.end(), {0, 0, 0, proto});
  } else {
    Append(ph, kV4Src);
    Append(ph, kV4Dst);
    ph.insert(ph.end(), {0, proto});
    Append16(ph, static_cast<uint16_t>(len));
  }
  return NaiveSum(ph, 0, ph.size());
}

enum class Cs { kValid, kSeed, kBad, kZero };

struct L4 {
  uint8_t proto;
  Bytes bytes;  // checksum field zero
  size_t field;
  size_t covered;
  size_t pseudo_len;  // 0: no pseudo-header
};

L4 Tcp(size_t payload_len) {
  Bytes b = FromHex("c0010050000000010000000250180200" "00000000");  // doff 5, PSH|ACK
  for (size_t i = 0; i < payload_len; ++i) b.push_back(static_cast<uint8_t>(0x41 + i % 26));
  return {kTcp, b, 16, b.size(), b.size()};
}
L4 Udp(size_t payload_len, size_t trailer = 0) {
  Bytes b = FromHex("d00d0035");
  Append16(b, static_cast<uint16_t>(8 + payload_len));
  Append16(b, 0);
  for (size_t i = 0; i < payload_len; ++i) b.push_back(static_cast<uint8_t>(0x61 + i % 26));
  const size_t ulen = b.size();
  b.insert(b.end(), trailer, 0xee);
  return {kUdp, b, 6, ulen, ulen};
}
L4 UdpLite(size_t payload_len, uint16_t coverage) {
  Bytes b = FromHex("138c138d");
  Append16(b, coverage);
  Append16(b, 0);
  for (size_t i = 0; i < payload_len; ++i) b.push_back(static_cast<uint8_t>(i * 7));
  return {kUdpLite, b, 6, coverage == 0 ? b.size() : coverage, b.size()};
}
L4 Icmp4(size_t payload_len) {
  Bytes b = FromHex("0800000012340001");
  for (size_t i = 0; i < payload_len; ++i) b.push_back(static_cast<uint8_t>(i));
  return {kIcmp4, b, 2, b.size(), 0};
}
L4 Icmp6(size_t payload_len) {
  Bytes b = FromHex("8000000012340001");
  for (size_t i = 0; i < payload_len; ++i) b.push_back(static_cast<uint8_t>(i));
  return {kIcmp6, b, 2, b.size(), b.size()};
}
L4 Sctp() {
  Bytes b = FromHex("0b590b59000000000000000001000014cafef00d0001a000000affff11223344");
  return {kSctp, b, 8, b.size(), 0};
}

// The correct field value per SEMANTICS.md, from scratch (field is zero in l4.bytes).
uint32_t NaiveCorrect(const L4& l4, bool v6) {
  if (l4.proto == kSctp) return NaiveCrc32c(l4.bytes, 0, l4.bytes.size());
  const uint32_t pseudo = l4.pseudo_len ? NaivePseudo(v6, l4.proto, l4.pseudo_len) : 0;
  const uint16_t v = static_cast<uint16_t>(~NaiveSum(l4.bytes, 0, l4.covered, pseudo));
  return v == 0 ? 0xffff : v;
}

void SetField(L4& l4, uint32_t value) {
  if (l4.proto == kSctp) {
    for (int i = 0; i < 4; ++i) l4.bytes[l4.field + i] = static_cast<uint8_t>(value >> (8 * i));
  } else {
    Put16(l4.bytes, l4.field, static_cast<uint16_t>(value));
  }
}

L4 WithCsum(L4 l4, bool v6, Cs cs) {
  uint32_t v = 0;
  switch (cs) {
    case Cs::kValid: v = NaiveCorrect(l4, v6); break;
    case Cs::kSeed:
      v = l4.proto == kSctp ? 0 : NaivePseudo(v6, l4.proto, l4.pseudo_len);
      break;
    case Cs::kBad: v = NaiveCorrect(l4, v6) ^ 0x0480; break;
    case Cs::kZero: v = 0; break;
  }
  SetField(l4, v);
  return l4;
}

struct FrameSpec {
  bool v6 = false;
  std::vector<uint16_t> vlan_tpids;  // outermost first
  Bytes ip4_options;                 // multiple of 4
  uint16_t ip4_frag = 0x4000;        // DF
  bool bad_ip4_hdr = false;
  uint8_t ext_first = 0xff;          // IPv6: first extension header type (0xff: none)
  Bytes ext;                         // IPv6: extension header bytes (next-header chain inside)
  Bytes padding;                     // after the IP packet
};

Bytes Frame(const FrameSpec& s, const L4& l4) {
  Bytes f = FromHex("0200000000020200000000ff");
  for (uint16_t tpid : s.vlan_tpids) {
    Append16(f, tpid);
    Append16(f, 0x0064);
  }
  if (!s.v6) {
    Append16(f, 0x0800);
    const size_t ip = f.size();
    const size_t hlen = 20 + s.ip4_options.size();
    f.push_back(static_cast<uint8_t>(0x40 | hlen / 4));
    f.push_back(0);
    Append16(f, static_cast<uint16_t>(hlen + l4.bytes.size()));
    Append16(f, 0xbeef);
    Append16(f, s.ip4_frag);
    f.push_back(64);
    f.push_back(l4.proto);
    Append16(f, 0);
    Append(f, kV4Src);
    Append(f, kV4Dst);
    Append(f, s.ip4_options);
    uint16_t hc = static_cast<uint16_t>(~NaiveSum(f, ip, hlen));
    if (s.bad_ip4_hdr) hc ^= 0x0101;
    Put16(f, ip + 10, hc);
  } else {
    Append16(f, 0x86dd);
    f.insert(f.end(), {0x60, 0, 0, 0});
    Append16(f, static_cast<uint16_t>(s.ext.size() + l4.bytes.size()));
    f.push_back(s.ext.empty() ? l4.proto : s.ext_first);
    f.push_back(64);
    Append(f, kV6Src);
    Append(f, kV6Dst);
    Append(f, s.ext);
  }
  Append(f, l4.bytes);
  Append(f, s.padding);
  return f;
}

Bytes Frame(const FrameSpec& s, L4 l4, Cs cs) { return Frame(s, WithCsum(std::move(l4), s.v6, cs)); }

// IPv6 extension headers: 8-byte hop-by-hop / destination options / routing / fragment.
Bytes ExtOpts(uint8_t nh) { return {nh, 0, 1, 4, 0, 0, 0, 0}; }
Bytes ExtRouting(uint8_t nh, uint8_t segments_left) { return {nh, 0, 4, segments_left, 0, 0, 0, 0}; }
Bytes ExtFrag(uint8_t nh, uint16_t offset, bool more) {
  Bytes b = {nh, 0};
  Append16(b, static_cast<uint16_t>(offset << 3 | (more ? 1 : 0)));
  b.insert(b.end(), {0x12, 0x34, 0x56, 0x78});
  return b;
}

Meta Tc() { return Meta{}; }
Meta Xdp() {
  Meta m;
  m.hook = CSF_HOOK_XDP;
  return m;
}
Meta Partial() {
  Meta m;
  m.is_partial = true;
  return m;
}

uint32_t Verify(const Bytes& f) { return Classify(f, CSF_ACT_VERIFY, Tc()); }
uint32_t Observe(const Bytes& f) { return Classify(f, CSF_ACT_OBSERVE, Tc()); }

// ---- Checksum primitives ------------------------------------------------------------------------

TEST(RefOnesSum16, Rfc1071Section3Example) {
  const Bytes b = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
  EXPECT_EQ(OnesSum16(b), 0xddf2);
  EXPECT_EQ(InternetChecksum(b), 0x220d);
  // Appending the checksum makes the sum fold to 0xffff.
  Bytes with = b;
  with.insert(with.end(), {0x22, 0x0d});
  EXPECT_EQ(OnesSum16(with), 0xffff);
  EXPECT_EQ(InternetChecksum(with), 0x0000);
}

TEST(RefOnesSum16, ByteOrderAndOddLength) {
  EXPECT_EQ(OnesSum16(Bytes{}), 0x0000);
  EXPECT_EQ(OnesSum16(Bytes{0x12, 0x34}), 0x1234);
  EXPECT_EQ(OnesSum16(Bytes{0xab}), 0xab00);  // odd byte is the high byte of a padded word
  EXPECT_EQ(OnesSum16(Bytes{0x00, 0x01, 0xf2}), 0xf201);
  EXPECT_EQ(OnesSum16(Bytes{0x12, 0x34, 0x56, 0x78, 0x9a}), 0x1234 + 0x5678 + 0x9a00 - 0xffff);
  EXPECT_EQ(InternetChecksum(Bytes{0xab}), 0x54ff);
}

TEST(RefOnesSum16, InitialIsFoldedAndAdded) {
  EXPECT_EQ(OnesSum16(Bytes{}, 0x1234), 0x1234);
  EXPECT_EQ(OnesSum16(Bytes{}, 0x12345), 0x2346);
  EXPECT_EQ(OnesSum16(Bytes{0x00, 0x01}, 0xffff), 0x0001);  // end-around carry
  EXPECT_EQ(OnesSum16(Bytes{}, 0xffffffff), 0xffff);
  EXPECT_EQ(OnesSum16(Bytes{0x80}, 0x8000), 0x0001);
}

TEST(RefOnesSum16, CarriesOnLongInputs) {
  EXPECT_EQ(OnesSum16(Bytes(65536, 0xff)), 0xffff);
  // 32767 words of 0xffff (-0) plus the padded odd byte 0xff00.
  EXPECT_EQ(OnesSum16(Bytes(65535, 0xff)), 0xff00);
  EXPECT_EQ(OnesSum16(Bytes(9000, 0x00)), 0x0000);
  // 0x8000 * 4 = 0x20000 -> 0x0002.
  EXPECT_EQ(OnesSum16(Bytes{0x80, 0, 0x80, 0, 0x80, 0, 0x80, 0}), 0x0002);
}

TEST(RefOnesSum16, MatchesNaiveAtEveryLengthAndAlignment) {
  std::mt19937_64 rng(1071);
  Bytes buf(9100);
  for (auto& x : buf) x = static_cast<uint8_t>(rng());
  for (size_t start = 0; start < 9; ++start) {
    for (size_t n = 0; n < 300; ++n) {
      std::span<const uint8_t> s(buf.data() + start, n);
      ASSERT_EQ(OnesSum16(s, 0x1d2c3), NaiveSum(buf, start, n, 0x1d2c3)) << start << " " << n;
    }
  }
  for (size_t n : {1499u, 1500u, 8999u, 9000u}) {
    EXPECT_EQ(OnesSum16(std::span<const uint8_t>(buf.data() + 3, n)), NaiveSum(buf, 3, n));
  }
}

TEST(RefIncrementalUpdate, Rfc1624Section4Example) {
  // The one's-complement sum of the other header words is 0xCD7A; m = 0x5555 changes to 0x3285.
  const uint16_t hc = 0xDD2F;  // ~(0xCD7A + 0x5555)
  // Recomputation gives ~(0xCD7A + 0x3285) = ~0xFFFF = 0x0000. Eqn. 3 gives the same...
  EXPECT_EQ(IncrementalUpdate(hc, 0x5555, 0x3285), 0x0000);
  // ...while RFC 1141's eqn. 2, HC' = HC + m + ~m', gives -0 (0xFFFF):
  uint32_t eqn2 = hc + 0x5555u + static_cast<uint16_t>(~0x3285);
  while (eqn2 > 0xffff) eqn2 = (eqn2 & 0xffff) + (eqn2 >> 16);
  EXPECT_EQ(eqn2, 0xFFFFu);
}

TEST(RefIncrementalUpdate, CornerCases) {
  EXPECT_EQ(IncrementalUpdate(0x0000, 0x5555, 0x5555), 0x0000);  // unchanged word
  EXPECT_EQ(IncrementalUpdate(0x1234, 0xabcd, 0xabcd), 0x1234);
  // ~(~0xffff + ~0xffff + 0) = ~0 = 0xffff: the only way eqn. 3 yields -0.
  EXPECT_EQ(IncrementalUpdate(0xffff, 0xffff, 0x0000), 0xffff);
  EXPECT_EQ(IncrementalUpdate(0x0000, 0x0000, 0xffff), 0x0000);
}

TEST(RefIncrementalUpdate, MatchesRecomputation) {
  std::mt19937_64 rng(1624);
  for (int iter = 0; iter < 20000; ++iter) {
    Bytes h(20);
    for (auto& x : h) x = static_cast<uint8_t>(rng());
    const size_t w = 2 * (rng() % 10);
    const uint16_t hc = InternetChecksum(h);
    const uint16_t m = Get16(h, w);
    const uint16_t m2 = static_cast<uint16_t>(rng());
    Put16(h, w, m2);
    ASSERT_EQ(IncrementalUpdate(hc, m, m2), InternetChecksum(h));
  }
}

TEST(RefCrc32c, KnownVectors) {
  const std::string s = "123456789";
  EXPECT_EQ(Crc32c(std::span(reinterpret_cast<const uint8_t*>(s.data()), s.size())),
            0xE3069283u);
  EXPECT_EQ(Crc32c(Bytes{}), 0x00000000u);
  // RFC 3720 B.4.
  EXPECT_EQ(Crc32c(Bytes(32, 0x00)), 0x8A9136AAu);
  EXPECT_EQ(Crc32c(Bytes(32, 0xff)), 0x62A8AB43u);
  Bytes inc(32);
  for (size_t i = 0; i < 32; ++i) inc[i] = static_cast<uint8_t>(i);
  EXPECT_EQ(Crc32c(inc), 0x46DD794Eu);
}

TEST(RefCrc32c, MatchesNaiveAtEveryLength) {
  std::mt19937_64 rng(3309);
  Bytes buf(200);
  for (auto& x : buf) x = static_cast<uint8_t>(rng());
  for (size_t start = 0; start < 8; ++start) {
    for (size_t n = 0; n + start <= buf.size(); ++n) {
      ASSERT_EQ(Crc32c(std::span<const uint8_t>(buf.data() + start, n)),
                NaiveCrc32c(buf, start, n));
    }
  }
}

// ---- Literal packets (captured from tests/fixtures/valid.pcap; tshark: checksum Good) -----------

// IPv4 TCP SYN 192.0.2.1:43210 -> 198.51.100.7:443, options MSS SACK TS WS; checksum 0xaea2.
const char kTcpSynHex[] =
    "02000000000202000000000108004500003c1c4640004006323ac0000201c6336407a8ca01bb1a2b3c4d5e6f7081"
    "a002faf0aea20000020405b40402080a0001e2400000000001030307";
// IPv4 UDP DNS query for example.com; checksum 0xc872.
const char kUdpDnsHex[] =
    "0200000000020200000000010800450000391c46400040113232c0000201c6336407cf8400350025c872abcd0100"
    "0001000000000000076578616d706c6503636f6d0000010001";
// IPv4 SCTP INIT; CRC32c 0x5d74f0b6 stored little endian (b6 f0 74 5d).
const char kSctpInitHex[] =
    "0200000000020200000000010800450000341c464000408431c4c0000201c63364078e3c8e3c00000000b6f0745d"
    "01000014cafef00d0001a000000affff11223344";

TEST(RefLiteral, TcpSyn) {
  const Bytes f = FromHex(kTcpSynHex);
  const Parsed p = Parse(f);
  EXPECT_EQ(p.cls, uint32_t{CSF_CLASS_NONE});
  EXPECT_EQ(p.l3, L3::kIpv4);
  EXPECT_EQ(p.l3_off, 14u);
  EXPECT_EQ(p.l4_off, 34u);
  EXPECT_EQ(p.l4_len, 40u);
  EXPECT_EQ(p.field_off, 50u);
  EXPECT_EQ(p.proto, kTcp);
  EXPECT_TRUE(p.ip4_hdr_ok);
  EXPECT_EQ(CorrectField(f, p), 0xaea2u);
  // Pseudo sum: c000+0201+c633+6407+0006+0028 folded.
  EXPECT_EQ(PseudoSum(f, p), 0xec6a);
  EXPECT_EQ(Verify(f), uint32_t{CSF_CLASS_VALID});
  // The seed in the field makes it PARTIAL; fill restores the captured bytes exactly.
  Bytes seeded = f;
  Put16(seeded, 50, 0xec6a);
  EXPECT_EQ(Verify(seeded), uint32_t{CSF_CLASS_PARTIAL});
  EXPECT_EQ(Apply(CSF_ACT_FILL, seeded, Tc()).out, f);
}

TEST(RefLiteral, UdpDns) {
  const Bytes f = FromHex(kUdpDnsHex);
  const Parsed p = Parse(f);
  EXPECT_EQ(p.proto, kUdp);
  EXPECT_EQ(p.covered, 37u);
  EXPECT_EQ(p.pseudo_len, 37u);
  EXPECT_EQ(CorrectField(f, p), 0xc872u);
  EXPECT_EQ(Verify(f), uint32_t{CSF_CLASS_VALID});
  Bytes zero = f;
  Put16(zero, 40, 0);
  EXPECT_EQ(Verify(zero), uint32_t{CSF_CLASS_ZERO});
  Bytes bad = f;
  Put16(bad, 40, 0xc873);
  EXPECT_EQ(Verify(bad), uint32_t{CSF_CLASS_BAD});
}

TEST(RefLiteral, SctpInit) {
  const Bytes f = FromHex(kSctpInitHex);
  const Parsed p = Parse(f);
  EXPECT_EQ(p.proto, kSctp);
  EXPECT_FALSE(p.has_pseudo);
  EXPECT_EQ(CorrectField(f, p), 0x5d74f0b6u);
  EXPECT_EQ(Verify(f), uint32_t{CSF_CLASS_VALID});
  Bytes seeded = f;
  std::fill(seeded.begin() + 42, seeded.begin() + 46, 0);
  EXPECT_EQ(Observe(seeded), uint32_t{CSF_CLASS_PARTIAL});
  EXPECT_EQ(Verify(seeded), uint32_t{CSF_CLASS_PARTIAL});
  const Result r = Apply(CSF_ACT_FILL, seeded, Tc());
  EXPECT_EQ(r.out, f);
  EXPECT_EQ(r.deltas[CSF_CTR_FILLED], 1u);
}

// ---- Field value equivalences -------------------------------------------------------------------

// A TCP/UDP segment whose sum with the field as zero is 0xffff (-0), so its computed checksum is
// 0x0000 and the correct value written is 0xffff. The last two payload bytes balance the sum.
L4 ComputesToZero(L4 l4, bool v6) {
  const size_t adj = l4.covered - 2;
  Put16(l4.bytes, adj, 0);
  const uint16_t s = NaiveSum(l4.bytes, 0, l4.covered, NaivePseudo(v6, l4.proto, l4.pseudo_len));
  Put16(l4.bytes, adj, static_cast<uint16_t>(~s));
  EXPECT_EQ(NaiveSum(l4.bytes, 0, l4.covered, NaivePseudo(v6, l4.proto, l4.pseudo_len)), 0xffff);
  return l4;
}

TEST(RefFieldValues, ZeroAndFfffBothVerifyForTcp) {
  const L4 l4 = ComputesToZero(Tcp(10), false);
  EXPECT_EQ(NaiveCorrect(l4, false), 0xffffu);
  L4 a = l4, b = l4;
  SetField(a, 0x0000);
  SetField(b, 0xffff);
  const Bytes fa = Frame({}, a), fb = Frame({}, b);
  EXPECT_EQ(Verify(fa), uint32_t{CSF_CLASS_VALID});
  EXPECT_EQ(Verify(fb), uint32_t{CSF_CLASS_VALID});
  EXPECT_EQ(CorrectField(fa, Parse(fa)), 0xffffu);
  EXPECT_EQ(CorrectField(fb, Parse(fb)), 0xffffu);
}

TEST(RefFieldValues, UdpComputedZeroIsWrittenAsFfff) {
  for (bool v6 : {false, true}) {
    SCOPED_TRACE(v6);
    FrameSpec s;
    s.v6 = v6;
    const Bytes seeded = Frame(s, ComputesToZero(Udp(12), v6), Cs::kSeed);
    const size_t field = v6 ? 14 + 40 + 6 : 14 + 20 + 6;
    EXPECT_EQ(Get16(seeded, field), NaivePseudo(v6, kUdp, 20));
    EXPECT_EQ(Verify(seeded), uint32_t{CSF_CLASS_PARTIAL});
    EXPECT_EQ(CorrectField(seeded, Parse(seeded)), 0xffffu);
    const Result r = Apply(CSF_ACT_FILL, seeded, Tc());
    EXPECT_EQ(Get16(r.out, field), 0xffff);
    EXPECT_EQ(Verify(r.out), uint32_t{CSF_CLASS_VALID});
    // For UDP the field 0 means "no checksum", whatever the sum.
    Bytes zero = seeded;
    Put16(zero, field, 0);
    EXPECT_EQ(Verify(zero), v6 ? uint32_t{CSF_CLASS_BAD} : uint32_t{CSF_CLASS_ZERO});
  }
}

// ---- Classification per class --------------------------------------------------------------------

struct ClassCase {
  std::string name;
  Bytes frame;
  uint32_t verify;
  uint32_t observe;
};

std::vector<ClassCase> ClassCases() {
  FrameSpec v4, v6;
  v6.v6 = true;
  std::vector<ClassCase> c;
  auto add = [&](std::string n, Bytes f, uint32_t verify, uint32_t observe) {
    c.push_back({std::move(n), std::move(f), verify, observe});
  };
  const uint32_t V = CSF_CLASS_VALID, P = CSF_CLASS_PARTIAL, B = CSF_CLASS_BAD,
                 Z = CSF_CLASS_ZERO, NA = CSF_CLASS_NA, U = CSF_CLASS_UNPARSABLE,
                 UV = CSF_CLASS_UNVERIFIED;
  add("tcp4 valid", Frame(v4, Tcp(33), Cs::kValid), V, UV);
  add("tcp4 seed", Frame(v4, Tcp(33), Cs::kSeed), P, P);
  add("tcp4 bad", Frame(v4, Tcp(33), Cs::kBad), B, UV);
  add("tcp6 valid", Frame(v6, Tcp(0), Cs::kValid), V, UV);
  add("tcp6 seed", Frame(v6, Tcp(0), Cs::kSeed), P, P);
  add("tcp6 bad", Frame(v6, Tcp(0), Cs::kBad), B, UV);
  add("udp4 valid", Frame(v4, Udp(5), Cs::kValid), V, UV);
  add("udp4 seed", Frame(v4, Udp(5), Cs::kSeed), P, P);
  add("udp4 bad", Frame(v4, Udp(5), Cs::kBad), B, UV);
  add("udp4 zero", Frame(v4, Udp(5), Cs::kZero), Z, Z);
  add("udp6 valid", Frame(v6, Udp(6), Cs::kValid), V, UV);
  add("udp6 seed", Frame(v6, Udp(6), Cs::kSeed), P, P);
  add("udp6 bad", Frame(v6, Udp(6), Cs::kBad), B, UV);
  add("udp6 zero", Frame(v6, Udp(6), Cs::kZero), B, B);
  add("udp4 trailer valid", Frame(v4, Udp(4, 3), Cs::kValid), V, UV);
  add("udplite4 cov8 valid", Frame(v4, UdpLite(20, 8), Cs::kValid), V, UV);
  add("udplite6 cov0 valid", Frame(v6, UdpLite(21, 0), Cs::kValid), V, UV);
  add("udplite6 cov12 seed", Frame(v6, UdpLite(21, 12), Cs::kSeed), P, P);
  add("udplite4 bad", Frame(v4, UdpLite(20, 9), Cs::kBad), B, UV);
  add("udplite4 zero", Frame(v4, UdpLite(20, 8), Cs::kZero), B, B);
  add("udplite4 cov7", Frame(v4, UdpLite(20, 7)), U, U);
  add("udplite4 cov>L", Frame(v4, UdpLite(20, 29)), U, U);  // field 0: parse fails first
  add("icmp4 valid", Frame(v4, Icmp4(9), Cs::kValid), V, UV);
  add("icmp4 bad", Frame(v4, Icmp4(9), Cs::kBad), B, UV);
  add("icmp4 zero field, wrong", Frame(v4, Icmp4(9), Cs::kZero), B, UV);
  add("icmp4 in ipv6", Frame(v6, Icmp4(9), Cs::kValid), NA, NA);
  add("icmp6 valid", Frame(v6, Icmp6(9), Cs::kValid), V, UV);
  add("icmp6 seed", Frame(v6, Icmp6(9), Cs::kSeed), P, P);
  add("icmp6 bad", Frame(v6, Icmp6(9), Cs::kBad), B, UV);
  add("icmp6 in ipv4", Frame(v4, Icmp6(9), Cs::kValid), NA, NA);
  add("sctp4 valid", Frame(v4, Sctp(), Cs::kValid), V, UV);
  add("sctp6 valid", Frame(v6, Sctp(), Cs::kValid), V, UV);
  add("sctp4 zero (seed)", Frame(v4, Sctp(), Cs::kSeed), P, P);
  add("sctp6 bad", Frame(v6, Sctp(), Cs::kBad), B, UV);
  // Minimum lengths.
  add("tcp L=19", Frame(v4, L4{kTcp, Bytes(19), 16, 19, 19}), U, U);
  {
    L4 t = Tcp(0);
    t.bytes[12] = 0x40;  // doff 4
    add("tcp doff 4", Frame(v4, t, Cs::kValid), U, U);
    t.bytes[12] = 0x60;  // doff 6 > L 20
    add("tcp doff > L", Frame(v4, t, Cs::kValid), U, U);
    L4 t2 = Tcp(4);
    t2.bytes[12] = 0x60;  // doff 6 == L 24
    add("tcp doff == L", Frame(v4, t2, Cs::kValid), V, UV);
  }
  add("udp L=7", Frame(v4, L4{kUdp, Bytes(7), 6, 7, 7}), U, U);
  {
    L4 u = Udp(4);
    Put16(u.bytes, 4, 7);
    add("udp ulen 7", Frame(v4, u), U, U);
    Put16(u.bytes, 4, 13);
    add("udp ulen > L", Frame(v4, u), U, U);
  }
  add("icmp4 L=7", Frame(v4, L4{kIcmp4, Bytes(7), 2, 7, 0}), U, U);
  add("icmp6 L=7", Frame(v6, L4{kIcmp6, Bytes(7), 2, 7, 7}), U, U);
  add("sctp L=11", Frame(v4, L4{kSctp, Bytes(11), 8, 11, 0}), U, U);
  add("other proto (GRE)", Frame(v4, L4{47, Bytes(8), 0, 8, 0}), NA, NA);
  add("no next header (59)", Frame(v6, L4{59, Bytes(8), 0, 0, 0}), NA, NA);
  // VLAN tags.
  {
    FrameSpec s = v4;
    s.vlan_tpids = {0x8100};
    add("1 tag udp4", Frame(s, Udp(3), Cs::kValid), V, UV);
    s.vlan_tpids = {0x88a8, 0x8100};
    add("2 tags udp4 seed", Frame(s, Udp(3), Cs::kSeed), P, P);
    s.vlan_tpids = {0x88a8, 0x8100, 0x8100};
    add("3 tags", Frame(s, Udp(3), Cs::kValid), NA, NA);
    s.vlan_tpids = {0x8100, 0x8100};
    s.v6 = true;
    add("2 tags tcp6 bad", Frame(s, Tcp(1), Cs::kBad), B, UV);
  }
  // IPv4 options and IPv4 fragments.
  {
    FrameSpec s = v4;
    s.ip4_options = FromHex("94040000");
    add("ip4 router alert", Frame(s, Udp(9), Cs::kValid), V, UV);
    s.ip4_options = Bytes(40, 0x01);  // 40 bytes of NOP: IHL 15
    add("ip4 ihl 15", Frame(s, Tcp(3), Cs::kSeed), P, P);
    FrameSpec f = v4;
    f.ip4_frag = 0x2000;  // MF
    add("ip4 first fragment", Frame(f, Udp(9), Cs::kValid), NA, NA);
    f.ip4_frag = 0x0001;  // offset 8
    add("ip4 nonfirst fragment", Frame(f, Udp(9), Cs::kValid), NA, NA);
    f.ip4_frag = 0x4000 | 0x8000;  // DF + reserved bit: not a fragment
    add("ip4 DF+reserved", Frame(f, Udp(9), Cs::kValid), V, UV);
    f.ip4_frag = 0;
    f.bad_ip4_hdr = true;
    add("ip4 bad header csum", Frame(f, Udp(9), Cs::kValid), V, UV);
  }
  // IPv6 extension headers.
  {
    FrameSpec s = v6;
    s.ext_first = 0;
    s.ext = ExtOpts(kUdp);
    add("ip6 hop-by-hop udp", Frame(s, Udp(2), Cs::kValid), V, UV);
    s.ext_first = 60;
    s.ext = ExtOpts(kTcp);
    add("ip6 dstopts tcp seed", Frame(s, Tcp(2), Cs::kSeed), P, P);
    s.ext_first = 43;
    s.ext = ExtRouting(kIcmp6, 0);
    add("ip6 routing sl=0 icmp6", Frame(s, Icmp6(2), Cs::kValid), V, UV);
    s.ext = ExtRouting(kIcmp6, 2);
    add("ip6 routing sl=2", Frame(s, Icmp6(2), Cs::kValid), NA, NA);
    s.ext_first = 44;
    s.ext = ExtFrag(kUdp, 0, false);
    add("ip6 atomic fragment", Frame(s, Udp(2), Cs::kValid), V, UV);
    s.ext = ExtFrag(kUdp, 0, true);
    add("ip6 first fragment", Frame(s, Udp(2), Cs::kValid), NA, NA);
    s.ext = ExtFrag(kUdp, 185, false);
    add("ip6 nonfirst fragment", Frame(s, Udp(2), Cs::kValid), NA, NA);
    // A 16-byte destination options header (hdr[1] = 1).
    s.ext_first = 60;
    s.ext = {kSctp, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    add("ip6 16-byte dstopts sctp", Frame(s, Sctp(), Cs::kValid), V, UV);
    // Chains of 8 (allowed) and 9 (NA) extension headers.
    Bytes chain;
    for (int i = 0; i < 7; ++i) Append(chain, ExtOpts(60));
    Append(chain, ExtOpts(kUdp));
    s.ext = chain;
    add("ip6 8 ext headers", Frame(s, Udp(2), Cs::kValid), V, UV);
    chain.resize(chain.size() - 8);
    Append(chain, ExtOpts(60));
    Append(chain, ExtOpts(kUdp));
    s.ext = chain;
    add("ip6 9 ext headers", Frame(s, Udp(2), Cs::kValid), NA, NA);
    // Extension header running past the payload end.
    s.ext = {kUdp, 3, 1, 4, 0, 0, 0, 0};  // claims 32 bytes; only 8 + 10 present
    add("ip6 ext too long", Frame(s, Udp(2), Cs::kValid), U, U);
    // Fewer than 8 bytes left for an extension header: the payload ends right after it.
    s.ext = {};
    s.ext_first = 0;
    add("ip6 ext header cut (4 bytes)", Frame(s, L4{0, Bytes(4), 0, 0, 0}), U, U);
  }
  // Non-IP and malformed L3.
  {
    Bytes arp = FromHex("02000000000202000000000108060001080006040001");
    arp.resize(60, 0);
    add("arp", arp, NA, NA);
    Bytes f = Frame(v4, Udp(4), Cs::kValid);
    f[14] = 0x65;  // version 6 in an IPv4 ethertype
    add("ip4 version 6", f, U, U);
    f = Frame(v4, Udp(4), Cs::kValid);
    f[14] = 0x44;  // IHL 4
    add("ip4 ihl 4", f, U, U);
    f = Frame(v4, Udp(4), Cs::kValid);
    Put16(f, 16, 19);  // total length < IHL*4
    add("ip4 totlen < ihl", f, U, U);
    f = Frame(v4, Udp(4), Cs::kValid);
    Put16(f, 16, static_cast<uint16_t>(Get16(f, 16) + 1));  // one byte more than present
    add("ip4 totlen > left", f, U, U);
    f = Frame(v6, Udp(4), Cs::kValid);
    f[14] = 0x40;
    add("ip6 version 4", f, U, U);
    f = Frame(v6, Udp(4), Cs::kValid);
    Put16(f, 18, 0);
    add("ip6 jumbo (plen 0)", f, NA, NA);
    f = Frame(v6, Udp(4), Cs::kValid);
    Put16(f, 18, 13);
    add("ip6 plen > left", f, U, U);
  }
  return c;
}

TEST(RefClassify, EveryClassCase) {
  for (const ClassCase& c : ClassCases()) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(ClassName(Verify(c.frame)), ClassName(c.verify));
    EXPECT_EQ(ClassName(Observe(c.frame)), ClassName(c.observe));
    // The same under the other verifying actions, and classification ignores the hook here.
    for (uint32_t a : {CSF_ACT_DROP_BAD, CSF_ACT_FILL, CSF_ACT_ZERO_UDP4}) {
      EXPECT_EQ(Classify(c.frame, a, Tc()), c.verify);
      EXPECT_EQ(Classify(c.frame, a, Xdp()), c.verify);
    }
    EXPECT_EQ(Classify(c.frame, CSF_ACT_PASS, Tc()), uint32_t{CSF_CLASS_NONE});
    // Apply puts the same class in its result.
    EXPECT_EQ(Apply(CSF_ACT_VERIFY, c.frame, Tc()).cls, c.verify);
    EXPECT_EQ(Apply(CSF_ACT_OBSERVE, c.frame, Tc()).cls, c.observe);
  }
}

TEST(RefClassify, ParsedOffsets) {
  FrameSpec s;
  s.v6 = true;
  s.vlan_tpids = {0x88a8, 0x8100};
  s.ext_first = 0;
  s.ext = ExtOpts(60);
  Append(s.ext, {kUdpLite, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0});
  const Bytes f = Frame(s, UdpLite(10, 9), Cs::kValid);
  const Parsed p = Parse(f);
  EXPECT_EQ(p.cls, uint32_t{CSF_CLASS_NONE});
  EXPECT_EQ(p.vlan_tags, 2);
  EXPECT_EQ(p.l3, L3::kIpv6);
  EXPECT_EQ(p.l3_off, 22u);
  EXPECT_EQ(p.l4_off, 22u + 40 + 24);
  EXPECT_EQ(p.l4_len, 18u);
  EXPECT_EQ(p.covered, 9u);
  EXPECT_EQ(p.pseudo_len, 18u);
  EXPECT_EQ(p.field_off, p.l4_off + 6);
  EXPECT_EQ(p.proto, kUdpLite);
  EXPECT_TRUE(p.has_pseudo);
  EXPECT_EQ(PseudoSum(f, p), NaivePseudo(true, kUdpLite, 18));
}

TEST(RefClassify, MetaFlags) {
  const Bytes valid = Frame({}, Udp(7), Cs::kValid);
  const Bytes bad = Frame({}, Tcp(7), Cs::kBad);
  const Bytes icmp = Frame({}, Icmp4(7), Cs::kBad);
  const Bytes zero = Frame({}, Udp(7), Cs::kZero);
  Meta gso;
  gso.is_gso = true;
  for (uint32_t a : {CSF_ACT_OBSERVE, CSF_ACT_VERIFY, CSF_ACT_FILL}) {
    // is_partial wins over valid/bad (but not over the UDP zero rule, listed before it).
    EXPECT_EQ(Classify(valid, a, Partial()), uint32_t{CSF_CLASS_PARTIAL});
    EXPECT_EQ(Classify(bad, a, Partial()), uint32_t{CSF_CLASS_PARTIAL});
    EXPECT_EQ(Classify(icmp, a, Partial()), uint32_t{CSF_CLASS_PARTIAL});
    EXPECT_EQ(Classify(zero, a, Partial()), uint32_t{CSF_CLASS_ZERO});
    // GSO wins over everything, even an unparsable frame.
    EXPECT_EQ(Classify(valid, a, gso), uint32_t{CSF_CLASS_GSO});
    EXPECT_EQ(Classify(Bytes(5), a, gso), uint32_t{CSF_CLASS_GSO});
    // XDP cannot see either flag.
    Meta xdp = Partial();
    xdp.hook = CSF_HOOK_XDP;
    xdp.is_gso = true;
    EXPECT_EQ(Classify(bad, a, xdp), a == CSF_ACT_OBSERVE ? uint32_t{CSF_CLASS_UNVERIFIED}
                                                          : uint32_t{CSF_CLASS_BAD});
  }
  EXPECT_EQ(Classify(valid, CSF_ACT_PASS, gso), uint32_t{CSF_CLASS_NONE});
  EXPECT_EQ(Classify(valid, CSF_ACT_PASS, Partial()), uint32_t{CSF_CLASS_NONE});
}

// Every prefix of a well-formed frame (no Ethernet padding) is UNPARSABLE, and never read past
// its end: each prefix is its own heap allocation so ASan sees an overrun.
TEST(RefClassify, TruncatedAtEveryLength) {
  std::vector<ClassCase> cases = ClassCases();
  for (const ClassCase& c : cases) {
    if (c.verify != CSF_CLASS_VALID && c.verify != CSF_CLASS_PARTIAL &&
        c.verify != CSF_CLASS_BAD) {
      continue;
    }
    SCOPED_TRACE(c.name);
    for (size_t n = 0; n < c.frame.size(); ++n) {
      const Bytes prefix(c.frame.begin(), c.frame.begin() + static_cast<ptrdiff_t>(n));
      ASSERT_EQ(ClassName(Verify(prefix)), "unparsable") << "length " << n;
      for (uint32_t a = 0; a < CSF_ACT_MAX; ++a) {
        for (const Meta& m : {Tc(), Partial(), Xdp()}) {
          const Result r = Apply(a, prefix, m);
          EXPECT_TRUE(r.cls == CSF_CLASS_UNPARSABLE || r.cls == CSF_CLASS_NONE);
          EXPECT_EQ(r.out, prefix);
        }
      }
    }
  }
  // A third VLAN tag is NA even when the frame ends right after its TPID.
  FrameSpec s;
  s.vlan_tpids = {0x8100, 0x8100, 0x8100};
  const Bytes f = Frame(s, Udp(2), Cs::kValid);
  for (size_t n = 22; n <= f.size(); ++n) {
    EXPECT_EQ(Verify(Bytes(f.begin(), f.begin() + static_cast<ptrdiff_t>(n))),
              uint32_t{CSF_CLASS_NA});
  }
}

TEST(RefClassify, NeverCrashesOnRandomBytes) {
  std::mt19937_64 rng(42);
  const Bytes base = Frame({}, Udp(30), Cs::kValid);
  for (int iter = 0; iter < 20000; ++iter) {
    Bytes f = base;
    f.resize(rng() % (base.size() + 8));
    for (int k = 0; k < 4 && !f.empty(); ++k) f[rng() % f.size()] = static_cast<uint8_t>(rng());
    for (uint32_t a = 0; a < CSF_ACT_MAX; ++a) {
      const Result r = Apply(a, f, Tc());
      ASSERT_LT(r.cls, uint32_t{CSF_CLASS_MAX});
    }
  }
}

// ---- Padding and uncovered bytes ---------------------------------------------------------------

TEST(RefFill, LeavesEthernetPaddingAndUdpTrailerAlone) {
  FrameSpec s;
  s.padding = Bytes(17, 0xa5);
  const Bytes seeded = Frame(s, Udp(1, 5), Cs::kSeed);  // ulen 9, 5 uncovered trailer bytes
  const Bytes filled = Frame(s, Udp(1, 5), Cs::kValid);
  EXPECT_EQ(Verify(seeded), uint32_t{CSF_CLASS_PARTIAL});
  EXPECT_EQ(Verify(filled), uint32_t{CSF_CLASS_VALID});
  const Result r = Apply(CSF_ACT_FILL, seeded, Tc());
  EXPECT_EQ(r.out, filled);
  // Only the two field bytes differ; padding (last 17) and trailer (5 before it) are identical.
  size_t diffs = 0;
  for (size_t i = 0; i < seeded.size(); ++i) diffs += seeded[i] != r.out[i];
  EXPECT_LE(diffs, 2u);
  EXPECT_TRUE(std::equal(seeded.end() - 22, seeded.end(), r.out.end() - 22));
  // Changing padding or trailer changes neither class nor the value written.
  Bytes other = seeded;
  std::fill(other.end() - 22, other.end(), 0x5a);
  const Result r2 = Apply(CSF_ACT_FILL, other, Tc());
  EXPECT_EQ(Get16(r2.out, 40), Get16(filled, 40));
  EXPECT_TRUE(std::equal(other.end() - 22, other.end(), r2.out.end() - 22));
  // IPv6 too.
  s.v6 = true;
  const Result r6 = Apply(CSF_ACT_FILL, Frame(s, Tcp(3), Cs::kSeed), Tc());
  EXPECT_EQ(r6.out, Frame(s, Tcp(3), Cs::kValid));
}

// ---- Actions: verdict, output bytes and counter deltas -------------------------------------------

struct ActionCase {
  std::string name;
  Bytes frame;
  Meta meta;
  uint32_t cls;          // under verifying actions
  uint32_t observe_cls;  // under observe
  bool ip4_hdr_bad;
  Bytes filled;  // expected output of fill (empty: same as frame)
  Bytes zeroed;  // expected output of zero-udp4 (empty: same as filled)
};

std::array<uint64_t, CSF_CTR_MAX> Deltas(size_t len, uint32_t cls, uint32_t action) {
  std::array<uint64_t, CSF_CTR_MAX> d{};
  d[CSF_CTR_PACKETS] = 1;
  d[CSF_CTR_BYTES] = len;
  d[CSF_CTR_CLASS_BASE + cls] = 1;
  d[CSF_CTR_ACTION_BASE + action] = 1;
  return d;
}

std::vector<ActionCase> ActionCases() {
  FrameSpec v4, v6, v4bad;
  v6.v6 = true;
  v4bad.bad_ip4_hdr = true;
  std::vector<ActionCase> c;
  const uint32_t V = CSF_CLASS_VALID, P = CSF_CLASS_PARTIAL, B = CSF_CLASS_BAD,
                 Z = CSF_CLASS_ZERO, NA = CSF_CLASS_NA, U = CSF_CLASS_UNPARSABLE,
                 UV = CSF_CLASS_UNVERIFIED;
  const Meta tc = Tc(), partial = Partial();
  c.push_back({"udp4 valid", Frame(v4, Udp(5), Cs::kValid), tc, V, UV, false, {}, {}});
  c.push_back({"udp4 seed", Frame(v4, Udp(5), Cs::kSeed), tc, P, P, false,
               Frame(v4, Udp(5), Cs::kValid), Frame(v4, Udp(5), Cs::kZero)});
  c.push_back({"udp6 seed", Frame(v6, Udp(5), Cs::kSeed), tc, P, P, false,
               Frame(v6, Udp(5), Cs::kValid), {}});
  c.push_back({"tcp6 seed", Frame(v6, Tcp(8), Cs::kSeed), tc, P, P, false,
               Frame(v6, Tcp(8), Cs::kValid), {}});
  c.push_back({"tcp4 bad", Frame(v4, Tcp(8), Cs::kBad), tc, B, UV, false, {}, {}});
  c.push_back({"tcp4 bad, is_partial", Frame(v4, Tcp(8), Cs::kBad), partial, P, P, false,
               Frame(v4, Tcp(8), Cs::kValid), {}});
  c.push_back({"tcp4 valid, is_partial", Frame(v4, Tcp(8), Cs::kValid), partial, P, P, false,
               {}, {}});
  c.push_back({"udp4 bad, is_partial", Frame(v4, Udp(8), Cs::kBad), partial, P, P, false,
               Frame(v4, Udp(8), Cs::kValid), Frame(v4, Udp(8), Cs::kZero)});
  c.push_back({"udplite4 seed", Frame(v4, UdpLite(8, 0), Cs::kSeed), tc, P, P, false,
               Frame(v4, UdpLite(8, 0), Cs::kValid), {}});
  c.push_back({"icmp6 seed", Frame(v6, Icmp6(4), Cs::kSeed), tc, P, P, false,
               Frame(v6, Icmp6(4), Cs::kValid), {}});
  c.push_back({"sctp4 seed", Frame(v4, Sctp(), Cs::kSeed), tc, P, P, false,
               Frame(v4, Sctp(), Cs::kValid), {}});
  c.push_back({"sctp6 bad", Frame(v6, Sctp(), Cs::kBad), tc, B, UV, false, {}, {}});
  c.push_back({"udp4 zero", Frame(v4, Udp(5), Cs::kZero), tc, Z, Z, false, {}, {}});
  c.push_back({"udp6 zero", Frame(v6, Udp(5), Cs::kZero), tc, B, B, false, {}, {}});
  c.push_back({"icmp4 valid", Frame(v4, Icmp4(5), Cs::kValid), tc, V, UV, false, {}, {}});
  c.push_back({"ip4 hdr bad, udp valid", Frame(v4bad, Udp(5), Cs::kValid), tc, V, UV, true, {},
               {}});
  c.push_back({"ip4 hdr bad, udp seed", Frame(v4bad, Udp(5), Cs::kSeed), tc, P, P, true,
               Frame(v4bad, Udp(5), Cs::kValid), Frame(v4bad, Udp(5), Cs::kZero)});
  c.push_back({"ip4 hdr bad, tcp bad", Frame(v4bad, Tcp(5), Cs::kBad), tc, B, UV, true, {}, {}});
  {
    FrameSpec f = v4bad;
    f.ip4_frag = 0x2000;
    c.push_back({"ip4 hdr bad, fragment", Frame(f, Udp(5), Cs::kValid), tc, NA, NA, true, {}, {}});
  }
  {
    Bytes arp = FromHex("02000000000202000000000108060001080006040001");
    arp.resize(60, 0);
    c.push_back({"arp", arp, tc, NA, NA, false, {}, {}});
  }
  {
    Bytes cut = Frame(v4, Udp(5), Cs::kValid);
    cut.resize(40);
    c.push_back({"truncated", cut, tc, U, U, false, {}, {}});
  }
  return c;
}

TEST(RefApply, EveryActionOnEveryCase) {
  for (const ActionCase& c : ActionCases()) {
    for (uint32_t hook : {uint32_t{CSF_HOOK_TC_INGRESS}, uint32_t{CSF_HOOK_TC_EGRESS},
                          uint32_t{CSF_HOOK_XDP}}) {
      Meta meta = c.meta;
      meta.hook = hook;
      const bool xdp = hook == CSF_HOOK_XDP;
      // XDP never sees is_partial: the frame is classified on its bytes alone.
      const uint32_t cls = xdp ? Classify(c.frame, CSF_ACT_VERIFY, Tc()) : c.cls;
      const uint32_t ocls = xdp ? Classify(c.frame, CSF_ACT_OBSERVE, Tc()) : c.observe_cls;
      for (uint32_t a = 0; a < CSF_ACT_MAX; ++a) {
        SCOPED_TRACE(c.name + " hook " + std::to_string(hook) + " " + std::string(ActionName(a)));
        const Result r = Apply(a, c.frame, meta);
        const uint32_t want_cls =
            a == CSF_ACT_PASS ? CSF_CLASS_NONE : a == CSF_ACT_OBSERVE ? ocls : cls;
        EXPECT_EQ(ClassName(r.cls), ClassName(want_cls));
        auto want = Deltas(c.frame.size(), want_cls, a);
        const bool verifying = a >= CSF_ACT_VERIFY;
        if (verifying && c.ip4_hdr_bad) want[CSF_CTR_IP4_HDR_BAD] = 1;
        const bool drop = a == CSF_ACT_DROP_BAD && (cls == CSF_CLASS_BAD || c.ip4_hdr_bad);
        EXPECT_EQ(r.verdict, drop ? Verdict::kDrop : Verdict::kPass);
        if (drop) want[CSF_CTR_DROPPED] = 1;
        Bytes want_out = c.frame;
        if (!xdp && cls == CSF_CLASS_PARTIAL && a == CSF_ACT_FILL) {
          want_out = c.filled.empty() ? c.frame : c.filled;
          want[CSF_CTR_FILLED] = 1;
        }
        if (!xdp && cls == CSF_CLASS_PARTIAL && a == CSF_ACT_ZERO_UDP4) {
          if (!c.zeroed.empty()) {
            want_out = c.zeroed;
            want[CSF_CTR_ZEROED] = 1;
          } else {
            want_out = c.filled.empty() ? c.frame : c.filled;
            want[CSF_CTR_FILLED] = 1;
          }
        }
        EXPECT_EQ(r.out, want_out);
        EXPECT_EQ(r.deltas, want);
        EXPECT_EQ(r.deltas[CSF_CTR_FILL_ERROR], 0u);
      }
    }
  }
}

TEST(RefApply, SpecificOutcomes) {
  FrameSpec v4;
  // drop-bad drops BAD...
  const Result bad = Apply(CSF_ACT_DROP_BAD, Frame(v4, Tcp(3), Cs::kBad), Tc());
  EXPECT_EQ(bad.verdict, Verdict::kDrop);
  EXPECT_EQ(bad.deltas[CSF_CTR_DROPPED], 1u);
  EXPECT_EQ(bad.deltas[CSF_CTR_CLASS_BASE + CSF_CLASS_BAD], 1u);
  EXPECT_EQ(bad.deltas[CSF_CTR_ACTION_BASE + CSF_ACT_DROP_BAD], 1u);
  // ...but never PARTIAL, ZERO, NA or UNPARSABLE.
  for (const Bytes& f :
       {Frame(v4, Tcp(3), Cs::kSeed), Frame(v4, Udp(3), Cs::kZero),
        Frame(v4, L4{47, Bytes(4), 0, 4, 0}), Bytes(13, 0)}) {
    const Result r = Apply(CSF_ACT_DROP_BAD, f, Tc());
    EXPECT_EQ(r.verdict, Verdict::kPass);
    EXPECT_EQ(r.deltas[CSF_CTR_DROPPED], 0u);
    EXPECT_EQ(r.out, f);
  }
  // A wrong IPv4 header checksum is dropped even when the L4 checksum is fine, and counted.
  FrameSpec hb;
  hb.bad_ip4_hdr = true;
  const Bytes hdr_bad = Frame(hb, Udp(3), Cs::kValid);
  const Result d = Apply(CSF_ACT_DROP_BAD, hdr_bad, Tc());
  EXPECT_EQ(d.verdict, Verdict::kDrop);
  EXPECT_EQ(d.cls, uint32_t{CSF_CLASS_VALID});
  EXPECT_EQ(d.deltas[CSF_CTR_IP4_HDR_BAD], 1u);
  // Observe never checks the IPv4 header checksum; verify counts it but passes.
  EXPECT_EQ(Apply(CSF_ACT_OBSERVE, hdr_bad, Tc()).deltas[CSF_CTR_IP4_HDR_BAD], 0u);
  const Result v = Apply(CSF_ACT_VERIFY, hdr_bad, Tc());
  EXPECT_EQ(v.deltas[CSF_CTR_IP4_HDR_BAD], 1u);
  EXPECT_EQ(v.verdict, Verdict::kPass);
  EXPECT_EQ(Apply(CSF_ACT_PASS, hdr_bad, Tc()).deltas[CSF_CTR_IP4_HDR_BAD], 0u);
  // Fill writes exactly the field of a seeded TCP packet.
  const Bytes seeded = Frame(v4, Tcp(11), Cs::kSeed);
  const Result fr = Apply(CSF_ACT_FILL, seeded, Tc());
  EXPECT_EQ(Get16(fr.out, 50), NaiveCorrect(Tcp(11), false));
  EXPECT_EQ(Verify(fr.out), uint32_t{CSF_CLASS_VALID});
  EXPECT_EQ(fr.deltas[CSF_CTR_BYTES], seeded.size());
  // zero-udp4: UDP over IPv4 gets 0, then classifies as ZERO; UDP over IPv6 is filled.
  const Result z = Apply(CSF_ACT_ZERO_UDP4, Frame(v4, Udp(3), Cs::kSeed), Tc());
  EXPECT_EQ(Get16(z.out, 40), 0);
  EXPECT_EQ(Verify(z.out), uint32_t{CSF_CLASS_ZERO});
  EXPECT_EQ(z.deltas[CSF_CTR_ZEROED], 1u);
  EXPECT_EQ(z.deltas[CSF_CTR_FILLED], 0u);
  FrameSpec v6;
  v6.v6 = true;
  const Result z6 = Apply(CSF_ACT_ZERO_UDP4, Frame(v6, Udp(3), Cs::kSeed), Tc());
  EXPECT_EQ(z6.out, Frame(v6, Udp(3), Cs::kValid));
  EXPECT_EQ(z6.deltas[CSF_CTR_FILLED], 1u);
  EXPECT_EQ(z6.deltas[CSF_CTR_ZEROED], 0u);
  // Under XDP fill and zero-udp4 act as verify: nothing written.
  for (uint32_t a : {CSF_ACT_FILL, CSF_ACT_ZERO_UDP4}) {
    const Result x = Apply(a, seeded, Xdp());
    EXPECT_EQ(x.out, seeded);
    EXPECT_EQ(x.cls, uint32_t{CSF_CLASS_PARTIAL});
    EXPECT_EQ(x.deltas[CSF_CTR_FILLED] + x.deltas[CSF_CTR_ZEROED], 0u);
    EXPECT_EQ(x.deltas[CSF_CTR_ACTION_BASE + a], 1u);
  }
}

TEST(RefApply, ValidPacketsAreByteIdenticalUnderEveryAction) {
  for (const ClassCase& c : ClassCases()) {
    if (c.verify == CSF_CLASS_PARTIAL) continue;
    for (uint32_t a = 0; a < CSF_ACT_MAX; ++a) {
      for (const Meta& m : {Tc(), Xdp()}) {
        const Result r = Apply(a, c.frame, m);
        EXPECT_EQ(r.out, c.frame) << c.name << " " << ActionName(a);
        EXPECT_EQ(r.deltas[CSF_CTR_FILLED] + r.deltas[CSF_CTR_ZEROED], 0u);
      }
    }
  }
}

// Pins two readings of the spec (see the notes at the top of refcsum.cc): GSO replaces only the
// class, so a wrong IPv4 header checksum is still counted (and dropped by drop-bad); and the UDP
// field-0 rule comes before is_partial.
TEST(RefApply, GsoIsNotParsedAndUdpZeroBeatsPartial) {
  FrameSpec hb;
  hb.bad_ip4_hdr = true;
  const Bytes f = Frame(hb, Tcp(3), Cs::kSeed);
  Meta gso;
  gso.is_gso = true;
  const Result v = Apply(CSF_ACT_VERIFY, f, gso);
  EXPECT_EQ(v.cls, uint32_t{CSF_CLASS_GSO});
  EXPECT_EQ(v.deltas[CSF_CTR_IP4_HDR_BAD], 0u);  // GSO: nothing parsed, not even the IPv4 header
  const Result d = Apply(CSF_ACT_DROP_BAD, f, gso);
  EXPECT_EQ(d.verdict, Verdict::kPass);
  const Result fl = Apply(CSF_ACT_FILL, Frame({}, Tcp(3), Cs::kSeed), gso);
  EXPECT_EQ(fl.out, Frame({}, Tcp(3), Cs::kSeed));  // GSO is never filled
  EXPECT_EQ(fl.deltas[CSF_CTR_FILLED], 0u);
  const Bytes z = Frame({}, Udp(3), Cs::kZero);
  const Result zr = Apply(CSF_ACT_FILL, z, Partial());
  EXPECT_EQ(zr.cls, uint32_t{CSF_CLASS_ZERO});
  EXPECT_EQ(zr.out, z);
}

TEST(RefApply, UnknownActionActsAsPass) {
  const Bytes f = Frame({}, Tcp(3), Cs::kBad);
  const Result r = Apply(CSF_ACT_MAX, f, Tc());
  EXPECT_EQ(r.verdict, Verdict::kPass);
  EXPECT_EQ(r.out, f);
  EXPECT_EQ(r.deltas, Deltas(f.size(), CSF_CLASS_NONE, CSF_ACT_PASS));
}

// ---- Names ----------------------------------------------------------------------------------------

TEST(RefNames, RoundTrip) {
  const std::vector<std::string_view> actions = {"pass", "observe", "verify",
                                                 "drop-bad", "fill", "zero-udp4"};
  for (uint32_t a = 0; a < CSF_ACT_MAX; ++a) {
    EXPECT_EQ(ActionName(a), actions[a]);
    EXPECT_EQ(ActionFromName(ActionName(a)), a);
  }
  EXPECT_EQ(ActionFromName("drop_bad"), uint32_t{CSF_ACT_MAX});
  EXPECT_EQ(ActionFromName(""), uint32_t{CSF_ACT_MAX});
  EXPECT_EQ(ActionFromName("FILL"), uint32_t{CSF_ACT_MAX});
  EXPECT_EQ(ActionName(CSF_ACT_MAX), "unknown");
  const std::vector<std::string_view> classes = {"none", "valid", "partial", "bad", "zero",
                                                 "na", "unparsable", "gso", "unverified"};
  for (uint32_t c = 0; c < CSF_CLASS_MAX; ++c) EXPECT_EQ(ClassName(c), classes[c]);
  EXPECT_EQ(ClassName(CSF_CLASS_MAX), "unknown");
}

// ---- pcap fixtures (tests/fixtures, made by make_fixtures.py) -----------------------------------

std::vector<Bytes> ReadPcap(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  const Bytes data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto le32 = [&](size_t off) {
    return static_cast<uint32_t>(data[off]) | static_cast<uint32_t>(data[off + 1]) << 8 |
           static_cast<uint32_t>(data[off + 2]) << 16 | static_cast<uint32_t>(data[off + 3]) << 24;
  };
  std::vector<Bytes> frames;
  if (data.size() < 24) return frames;
  EXPECT_EQ(le32(0), 0xa1b2c3d4u);  // classic pcap, little endian, microseconds
  EXPECT_EQ(le32(20), 1u);          // LINKTYPE_ETHERNET
  size_t off = 24;
  while (off + 16 <= data.size()) {
    const uint32_t caplen = le32(off + 8);
    EXPECT_EQ(caplen, le32(off + 12));  // never snapped
    off += 16;
    if (off + caplen > data.size()) {
      ADD_FAILURE() << path << ": truncated record";
      break;
    }
    frames.emplace_back(data.begin() + static_cast<ptrdiff_t>(off),
                        data.begin() + static_cast<ptrdiff_t>(off + caplen));
    off += caplen;
  }
  return frames;
}

TEST(RefFixtures, ClassificationMatchesExpectations) {
  const std::string dir = CSUMFIX_FIXTURE_DIR;
  std::ifstream exp(dir + "/expected.txt");
  ASSERT_TRUE(exp.good()) << dir;
  std::map<std::string, std::vector<Bytes>> pcaps;
  std::map<std::string, size_t> per_file;
  size_t checked = 0;
  std::string line;
  while (std::getline(exp, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream ls(line);
    std::string file, cls;
    size_t index = 0;
    ASSERT_TRUE(ls >> file >> index >> cls) << line;
    if (!pcaps.count(file)) pcaps[file] = ReadPcap(dir + "/" + file);
    const auto& frames = pcaps[file];
    ASSERT_LT(index, frames.size()) << line;
    const Bytes& f = frames[index];
    SCOPED_TRACE(line);
    EXPECT_EQ(ClassName(Verify(f)), cls);
    // Fill turns every partial fixture into a valid one and changes nothing else.
    const Result r = Apply(CSF_ACT_FILL, f, Tc());
    EXPECT_EQ(ClassName(Verify(r.out)), cls == "partial" ? "valid" : cls);
    if (cls != "partial") {
      EXPECT_EQ(r.out, f);
    }
    ++per_file[file];
    ++checked;
  }
  // Every packet in every pcap has an expectation.
  for (const auto& [file, frames] : pcaps) EXPECT_EQ(per_file[file], frames.size()) << file;
  EXPECT_EQ(pcaps.size(), 4u);
  EXPECT_GE(checked, 40u);
}

}  // namespace
}  // namespace csumfix::ref
