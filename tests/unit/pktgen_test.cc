// Tests of the packet generator (tests/common/pktgen.*). Every checksum is re-checked here with an
// independent implementation (word-wise 32-bit one's-complement adder, table-driven CRC32c) and,
// for TCP/UDP/UDP-Lite/SCTP/ICMP, by tshark.
#include "common/pktgen.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace csumfix::testing {
namespace {

constexpr L4Kind kAllL4[] = {L4Kind::kTcp,   L4Kind::kUdp,  L4Kind::kUdpLite, L4Kind::kIcmp4,
                             L4Kind::kIcmp6, L4Kind::kSctp, L4Kind::kOther};
constexpr CsumState kAllCsum[] = {CsumState::kValid, CsumState::kSeed, CsumState::kCorrupt,
                                  CsumState::kZero};

uint16_t Be16(const std::vector<uint8_t>& f, size_t off) {
  return static_cast<uint16_t>(f.at(off) << 8 | f.at(off + 1));
}

// ---- independent checksum helpers --------------------------------------------------------------

uint32_t OnesAdd(uint32_t a, uint32_t b) {
  uint32_t s = a + b;
  return (s & 0xffff) + (s >> 16);
}

// One's-complement sum of 16-bit big-endian words, folded after every add.
uint16_t OnesSum(const uint8_t* p, size_t n, uint16_t init = 0) {
  uint32_t s = init;
  size_t i = 0;
  for (; i + 1 < n; i += 2) s = OnesAdd(s, static_cast<uint32_t>(p[i]) << 8 | p[i + 1]);
  if (i < n) s = OnesAdd(s, static_cast<uint32_t>(p[i]) << 8);
  return static_cast<uint16_t>(OnesAdd(s, 0));
}

uint32_t Crc32cTable(const uint8_t* p, size_t n) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t crc = ~0u;
  for (size_t i = 0; i < n; ++i) crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

// ---- an independent frame walker (for well-formed frames) ---------------------------------------

struct Walk {
  bool ok = false;
  std::vector<uint16_t> tpids;
  uint16_t ethertype = 0;
  size_t l3 = 0;      // IP header offset
  size_t ip_hdr = 0;  // IPv4 IHL*4 / 40
  size_t l4 = 0;      // L4 offset
  size_t L = 0;       // L4 segment length
  size_t ip_end = 0;  // end of the IP packet
  uint8_t proto = 0;
  std::vector<std::pair<uint8_t, size_t>> ext;  // (type, offset)
};

Walk WalkFrame(const std::vector<uint8_t>& f) {
  Walk w;
  if (f.size() < 14) return w;
  size_t off = 12;
  uint16_t et = Be16(f, off);
  while (et == 0x8100 || et == 0x88a8) {
    w.tpids.push_back(et);
    off += 4;
    if (off + 2 > f.size()) return w;
    et = Be16(f, off);
  }
  w.ethertype = et;
  w.l3 = off + 2;
  if (et == 0x0800) {
    if (w.l3 + 20 > f.size()) return w;
    w.ip_hdr = (f[w.l3] & 0x0f) * 4u;
    const size_t total = Be16(f, w.l3 + 2);
    if (w.ip_hdr < 20 || total < w.ip_hdr || w.l3 + total > f.size()) return w;
    w.proto = f[w.l3 + 9];
    w.l4 = w.l3 + w.ip_hdr;
    w.ip_end = w.l3 + total;
  } else if (et == 0x86dd) {
    if (w.l3 + 40 > f.size()) return w;
    w.ip_hdr = 40;
    w.ip_end = w.l3 + 40 + Be16(f, w.l3 + 4);
    if (w.ip_end > f.size()) return w;
    uint8_t nh = f[w.l3 + 6];
    size_t p = w.l3 + 40;
    while (nh == 0 || nh == 60 || nh == 43 || nh == 44) {
      if (p + 8 > w.ip_end) return w;
      const size_t len = nh == 44 ? 8 : (f[p + 1] + 1u) * 8;
      if (p + len > w.ip_end) return w;
      w.ext.emplace_back(nh, p);
      nh = f[p];
      p += len;
    }
    w.proto = nh;
    w.l4 = p;
  } else {
    w.ok = true;
    return w;
  }
  w.L = w.ip_end - w.l4;
  w.ok = true;
  return w;
}

uint16_t PseudoSum(const std::vector<uint8_t>& f, const Walk& w, uint8_t proto, size_t len) {
  std::vector<uint8_t> ph;
  if (w.ethertype == 0x0800) {
    ph.assign(f.begin() + w.l3 + 12, f.begin() + w.l3 + 20);
    ph.insert(ph.end(), {0, proto, static_cast<uint8_t>(len >> 8), static_cast<uint8_t>(len)});
  } else {
    ph.assign(f.begin() + w.l3 + 8, f.begin() + w.l3 + 40);
    ph.insert(ph.end(),
              {static_cast<uint8_t>(len >> 24), static_cast<uint8_t>(len >> 16),
               static_cast<uint8_t>(len >> 8), static_cast<uint8_t>(len), 0, 0, 0, proto});
  }
  return OnesSum(ph.data(), ph.size());
}

// Where the Internet checksum of the frame's L4 lives and what it covers.
struct InetCsum {
  size_t field = 0;  // frame offset of the 16-bit field
  size_t cover = 0;  // bytes covered from the L4 start
  bool pseudo = false;
  size_t pseudo_len = 0;
};

InetCsum InetFor(const std::vector<uint8_t>& f, const Walk& w) {
  InetCsum c;
  switch (w.proto) {
    case 6:
      c = {w.l4 + 16, w.L, true, w.L};
      break;
    case 17: {
      const size_t ulen = Be16(f, w.l4 + 4);
      c = {w.l4 + 6, ulen, true, ulen};
      break;
    }
    case 136: {
      const size_t cov = Be16(f, w.l4 + 4);
      c = {w.l4 + 6, cov == 0 ? w.L : cov, true, w.L};
      break;
    }
    case 1:
      c = {w.l4 + 2, w.L, false, 0};
      break;
    case 58:
      c = {w.l4 + 2, w.L, true, w.L};
      break;
    default:
      ADD_FAILURE() << "no Internet checksum for protocol " << int{w.proto};
  }
  return c;
}

uint16_t SeedOf(const std::vector<uint8_t>& f, const Walk& w, const InetCsum& c) {
  return c.pseudo ? PseudoSum(f, w, w.proto, c.pseudo_len) : 0;
}

// Sum including the field folds to 0xffff.
bool InetVerifies(const std::vector<uint8_t>& f, const Walk& w, const InetCsum& c) {
  return OnesSum(f.data() + w.l4, c.cover, SeedOf(f, w, c)) == 0xffff;
}

// The correct value, computed with the field as zero.
uint16_t InetCorrect(std::vector<uint8_t> f, const Walk& w, const InetCsum& c) {
  f[c.field] = f[c.field + 1] = 0;
  const uint16_t v = static_cast<uint16_t>(~OnesSum(f.data() + w.l4, c.cover, SeedOf(f, w, c)));
  return v == 0 ? 0xffff : v;
}

uint32_t SctpField(const std::vector<uint8_t>& f, const Walk& w) {
  return f[w.l4 + 8] | f[w.l4 + 9] << 8 | f[w.l4 + 10] << 16 |
         static_cast<uint32_t>(f[w.l4 + 11]) << 24;
}
uint32_t SctpCorrect(std::vector<uint8_t> f, const Walk& w) {
  for (int i = 8; i < 12; ++i) f[w.l4 + i] = 0;
  return Crc32cTable(f.data() + w.l4, w.L);
}

size_t L4HeaderLen(L4Kind k) {
  switch (k) {
    case L4Kind::kTcp:
      return 20;
    case L4Kind::kSctp:
      return 12;
    case L4Kind::kOther:
      return 4;
    default:
      return 8;
  }
}

uint8_t ProtoNumber(L4Kind k) {
  switch (k) {
    case L4Kind::kTcp:
      return 6;
    case L4Kind::kUdp:
      return 17;
    case L4Kind::kUdpLite:
      return 136;
    case L4Kind::kIcmp4:
      return 1;
    case L4Kind::kIcmp6:
      return 58;
    case L4Kind::kSctp:
      return 132;
    case L4Kind::kOther:
      return 47;
  }
  return 0;
}

// Checks the checksum field of a well-formed frame against spec.csum.
void CheckCsum(const PacketSpec& s, const std::vector<uint8_t>& f) {
  SCOPED_TRACE(Describe(s) + "\n" + HexDump(f));
  const Walk w = WalkFrame(f);
  ASSERT_TRUE(w.ok);
  ASSERT_EQ(w.proto, ProtoNumber(s.l4));
  if (s.l4 == L4Kind::kOther) return;
  if (s.l4 == L4Kind::kSctp) {
    const uint32_t field = SctpField(f, w);
    const uint32_t good = SctpCorrect(f, w);
    switch (s.csum) {
      case CsumState::kValid:
        EXPECT_EQ(field, good);
        break;
      case CsumState::kSeed:
      case CsumState::kZero:
        EXPECT_EQ(field, 0u);
        break;
      case CsumState::kCorrupt:
        EXPECT_NE(field, good);
        EXPECT_NE(field, 0u);
        break;
    }
    return;
  }
  const InetCsum c = InetFor(f, w);
  const uint16_t field = Be16(f, c.field);
  const uint16_t seed = SeedOf(f, w, c);
  if (c.pseudo) {
    EXPECT_NE(seed, 0);
  }
  switch (s.csum) {
    case CsumState::kValid:
      EXPECT_TRUE(InetVerifies(f, w, c));
      EXPECT_EQ(field, InetCorrect(f, w, c));
      EXPECT_NE(field, 0);
      break;
    case CsumState::kSeed:
      EXPECT_EQ(field, seed);
      break;
    case CsumState::kCorrupt:
      EXPECT_FALSE(InetVerifies(f, w, c));
      EXPECT_NE(field, seed);
      EXPECT_NE(field, 0);
      break;
    case CsumState::kZero:
      EXPECT_EQ(field, 0);
      break;
  }
}

// ---- tests
// ---------------------------------------------------------------------------------------

TEST(PktgenTest, TestHelpersAreSane) {
  const std::string s = "123456789";
  EXPECT_EQ(Crc32cTable(reinterpret_cast<const uint8_t*>(s.data()), s.size()), 0xE3069283u);
  // RFC 1071 example: words 0001 f203 f4f5 f6f7 sum to 0xddf2.
  const uint8_t d[] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
  EXPECT_EQ(OnesSum(d, sizeof d), 0xddf2);
}

TEST(PktgenTest, EthernetAndVlanTags) {
  for (int tags = 0; tags <= 3; ++tags) {
    PacketSpec s;
    s.vlan_tags = tags;
    s.l4 = L4Kind::kUdp;
    s.payload_len = 10;
    s.payload_seed = 42 + tags;
    const auto f = Build(s);
    SCOPED_TRACE(Describe(s) + "\n" + HexDump(f));
    ASSERT_EQ(f.size(), 14 + 4u * tags + 20 + 8 + 10);
    EXPECT_EQ(f[0] & 1, 0) << "unicast destination";
    for (int i = 0; i < tags; ++i) {
      EXPECT_EQ(Be16(f, 12 + 4 * i), i % 2 == 0 ? 0x88a8 : 0x8100);
      const uint16_t vid = Be16(f, 14 + 4 * i) & 0x0fff;
      EXPECT_GE(vid, 1);
      EXPECT_LE(vid, 4094);
    }
    EXPECT_EQ(Be16(f, 12 + 4 * tags), 0x0800);
    const Walk w = WalkFrame(f);
    ASSERT_TRUE(w.ok);
    EXPECT_EQ(w.tpids.size(), static_cast<size_t>(tags));
    EXPECT_EQ(w.l3, 14 + 4u * tags);
  }
}

TEST(PktgenTest, NonIpIsArp) {
  PacketSpec s;
  s.l3 = L3Kind::kNonIp;
  s.vlan_tags = 1;
  s.payload_len = 5;
  s.eth_padding = 7;
  const auto f = Build(s);
  ASSERT_EQ(f.size(), 18 + 28 + 5 + 7u);
  EXPECT_EQ(Be16(f, 16), 0x0806);
  EXPECT_EQ(Be16(f, 18), 1);       // htype Ethernet
  EXPECT_EQ(Be16(f, 20), 0x0800);  // ptype IPv4
  EXPECT_EQ(f[22], 6);
  EXPECT_EQ(f[23], 4);
  EXPECT_TRUE(std::equal(f.begin() + 6, f.begin() + 12, f.begin() + 26)) << "sender MAC";
}

TEST(PktgenTest, Ipv4HeaderAndOptions) {
  for (size_t opt = 0; opt <= 40; opt += 4) {
    for (bool bad : {false, true}) {
      PacketSpec s;
      s.l4 = L4Kind::kTcp;
      s.ip4_option_bytes = opt;
      s.bad_ip4_hdr_csum = bad;
      s.payload_len = 33;
      s.payload_seed = opt * 7 + bad;
      const auto f = Build(s);
      SCOPED_TRACE(Describe(s) + "\n" + HexDump(f));
      ASSERT_EQ(f.size(), 14 + 20 + opt + 20 + 33);
      EXPECT_EQ(f[14] >> 4, 4);
      EXPECT_EQ((f[14] & 0xf) * 4u, 20 + opt);
      EXPECT_EQ(Be16(f, 16), 20 + opt + 20 + 33);
      EXPECT_EQ(f[14 + 9], 6);
      EXPECT_EQ(Be16(f, 20), 0x4000) << "DF, offset 0";
      EXPECT_EQ(OnesSum(f.data() + 14, 20 + opt) == 0xffff, !bad);
      if (opt >= 4) {
        EXPECT_EQ(f[34], 0x94) << "router alert";
        EXPECT_EQ(f[35], 4);
        if (opt > 4) {
          EXPECT_EQ(f[34 + opt - 1], 0) << "EOL";
        }
        for (size_t i = 4; i + 1 < opt; ++i) EXPECT_EQ(f[34 + i], 1) << "NOP";
      }
      CheckCsum(s, f);
    }
  }
}

TEST(PktgenTest, Ipv4Fragments) {
  for (int k = 1; k < 4; ++k) {
    PacketSpec s;
    s.fragment_first = k & 1;
    s.fragment_nonfirst = k & 2;
    s.payload_len = 20;
    const auto f = Build(s);
    const uint16_t frag = Be16(f, 20);
    EXPECT_EQ((frag & 0x2000) != 0, s.fragment_first);
    EXPECT_EQ((frag & 0x1fff) != 0, s.fragment_nonfirst);
    EXPECT_EQ(OnesSum(f.data() + 14, 20), 0xffff);
  }
}

TEST(PktgenTest, Ipv6ExtensionHeaders) {
  const std::vector<std::vector<uint8_t>> lists = {
      {}, {0}, {60}, {43}, {44}, {0, 60, 43, 44}, {44, 43, 60, 0, 60}, {0, 0, 0, 0, 0, 0, 0, 0, 0},
  };
  for (const auto& list : lists) {
    for (uint64_t seed = 0; seed < 8; ++seed) {
      PacketSpec s;
      s.l3 = L3Kind::kIpv6;
      s.l4 = L4Kind::kUdp;
      s.ip6_ext = list;
      s.payload_len = 17;
      s.payload_seed = seed;
      const auto f = Build(s);
      SCOPED_TRACE(Describe(s) + "\n" + HexDump(f));
      const Walk w = WalkFrame(f);
      ASSERT_TRUE(w.ok);
      EXPECT_EQ(f[14] >> 4, 6);
      EXPECT_EQ(w.ip_end, f.size());
      ASSERT_EQ(w.ext.size(), list.size());
      for (size_t i = 0; i < list.size(); ++i) {
        EXPECT_EQ(w.ext[i].first, list[i]);
        const size_t p = w.ext[i].second;
        if (list[i] == 43) {
          EXPECT_TRUE(f[p + 2] == 4 || f[p + 2] == 2) << "routing type";
          EXPECT_EQ(f[p + 3], 0) << "segments left";
        } else if (list[i] == 44) {
          EXPECT_EQ(Be16(f, p + 2), 0) << "atomic fragment";
        }
      }
      EXPECT_EQ(w.proto, 17);
      EXPECT_EQ(w.L, 8 + 17u);
      CheckCsum(s, f);
    }
  }
}

TEST(PktgenTest, Ipv6FragmentAndSegmentsLeft) {
  struct Case {
    std::vector<uint8_t> ext;
    bool first, nonfirst, rsl;
    size_t want_ext;
  };
  const Case cases[] = {
      {{}, true, false, false, 1},  {{}, false, true, false, 1},
      {{44}, true, true, false, 1}, {{0, 44}, false, true, false, 2},
      {{}, false, false, true, 1},  {{43, 60}, false, false, true, 2},
      {{}, true, false, true, 2},
  };
  for (const auto& c : cases) {
    PacketSpec s;
    s.l3 = L3Kind::kIpv6;
    s.l4 = L4Kind::kTcp;
    s.ip6_ext = c.ext;
    s.fragment_first = c.first;
    s.fragment_nonfirst = c.nonfirst;
    s.routing_segments_left = c.rsl;
    s.payload_len = 3;
    const auto f = Build(s);
    SCOPED_TRACE(Describe(s) + "\n" + HexDump(f));
    const Walk w = WalkFrame(f);
    ASSERT_TRUE(w.ok);
    ASSERT_EQ(w.ext.size(), c.want_ext);
    bool saw_frag = false, saw_rt = false;
    for (const auto& [type, p] : w.ext) {
      if (type == 44 && !saw_frag) {
        saw_frag = true;
        EXPECT_EQ((f[p + 3] & 1) != 0, c.first);
        EXPECT_EQ((Be16(f, p + 2) >> 3) != 0, c.nonfirst);
      }
      if (type == 43 && !saw_rt) {
        saw_rt = true;
        EXPECT_EQ(f[p + 3] != 0, c.rsl);
      }
    }
    EXPECT_EQ(saw_frag, c.first || c.nonfirst || std::count(c.ext.begin(), c.ext.end(), 44) > 0);
    EXPECT_EQ(w.proto, 6);
  }
}

TEST(PktgenTest, AllChecksumStatesAllKinds) {
  const size_t payloads[] = {0, 1, 2, 3, 17, 100, 1001};
  uint64_t seed = 1000;
  for (L3Kind l3 : {L3Kind::kIpv4, L3Kind::kIpv6}) {
    for (L4Kind l4 : kAllL4) {
      for (CsumState cs : kAllCsum) {
        for (size_t pl : payloads) {
          for (int variant = 0; variant < 3; ++variant) {
            PacketSpec s;
            s.l3 = l3;
            s.l4 = l4;
            s.csum = cs;
            s.payload_len = pl;
            s.payload_seed = seed++;
            s.vlan_tags = variant;
            s.corrupt_mask = static_cast<uint16_t>(variant == 2 ? 0xffff : 0x1234 + variant);
            if (variant == 1) s.ip4_option_bytes = 8;
            if (variant == 2) s.ip6_ext = {44, 43};
            if (variant == 1) s.eth_padding = 11;
            const auto f = Build(s);
            SCOPED_TRACE(Describe(s));
            const size_t l3_hdr =
                l3 == L3Kind::kIpv4 ? 20 + s.ip4_option_bytes : 40 + (variant == 2 ? 8 + 24 : 0);
            EXPECT_EQ(f.size(), 14 + 4u * variant + l3_hdr + L4HeaderLen(l4) + pl + s.eth_padding);
            CheckCsum(s, f);
          }
        }
      }
    }
  }
}

TEST(PktgenTest, CorruptNeverLooksValidOrSeedOrZero) {
  // Masks that, xored onto the value, can land on 0, 0xffff or anything.
  for (uint64_t seed = 0; seed < 3000; ++seed) {
    PacketSpec s;
    s.l3 = seed & 1 ? L3Kind::kIpv6 : L3Kind::kIpv4;
    s.l4 = kAllL4[seed % 6];
    s.csum = CsumState::kCorrupt;
    s.csum_all_ones = seed % 3 == 0;
    s.payload_len = seed % 40;
    s.payload_seed = seed;
    const auto good = [&] {
      PacketSpec v = s;
      v.csum = CsumState::kValid;
      return Build(v);
    }();
    const auto seeded = [&] {
      PacketSpec v = s;
      v.csum = CsumState::kSeed;
      return Build(v);
    }();
    const Walk w = WalkFrame(good);
    ASSERT_TRUE(w.ok);
    if (s.l4 == L4Kind::kSctp) continue;
    const InetCsum c = InetFor(good, w);
    // Choose masks that hit the forbidden values exactly.
    const uint16_t v = Be16(good, c.field);
    const uint16_t sd = Be16(seeded, c.field);
    for (uint16_t mask : {static_cast<uint16_t>(v ^ sd), static_cast<uint16_t>(v),
                          static_cast<uint16_t>(v ^ 0xffff), uint16_t{0}, uint16_t{1}}) {
      s.corrupt_mask = mask;
      const auto f = Build(s);
      SCOPED_TRACE(Describe(s));
      const uint16_t field = Be16(f, c.field);
      EXPECT_NE(field, v);
      EXPECT_NE(field, sd);
      EXPECT_NE(field, 0);
      EXPECT_FALSE(InetVerifies(f, w, c));
      if (mask != 0 && static_cast<uint16_t>(v ^ mask) != sd && (v ^ mask) != 0 &&
          !(v == 0xffff && (v ^ mask) == 0)) {
        EXPECT_EQ(field, v ^ mask) << "plain xor when nothing collides";
      }
    }
  }
}

TEST(PktgenTest, CsumAllOnes) {
  for (L3Kind l3 : {L3Kind::kIpv4, L3Kind::kIpv6}) {
    for (L4Kind l4 :
         {L4Kind::kTcp, L4Kind::kUdp, L4Kind::kUdpLite, L4Kind::kIcmp4, L4Kind::kIcmp6}) {
      for (uint64_t seed = 0; seed < 50; ++seed) {
        PacketSpec s;
        s.l3 = l3;
        s.l4 = l4;
        s.csum_all_ones = true;
        s.payload_len = seed * 3;
        s.payload_seed = seed;
        s.udp_trailer = seed % 4;
        if (l4 == L4Kind::kUdpLite) s.udplite_coverage = seed % 2 ? 0 : 8 + seed % 5;
        const auto f = Build(s);
        SCOPED_TRACE(Describe(s) + "\n" + HexDump(f));
        const Walk w = WalkFrame(f);
        ASSERT_TRUE(w.ok);
        const InetCsum c = InetFor(f, w);
        EXPECT_EQ(Be16(f, c.field), 0xffff);
        EXPECT_TRUE(InetVerifies(f, w, c));
        auto z = f;
        z[c.field] = z[c.field + 1] = 0;
        EXPECT_EQ(OnesSum(z.data() + w.l4, c.cover, SeedOf(z, w, c)), 0xffff)
            << "computed value would be 0x0000";
      }
    }
  }
}

TEST(PktgenTest, UdpTrailerAndUlen) {
  for (L3Kind l3 : {L3Kind::kIpv4, L3Kind::kIpv6}) {
    for (size_t trailer : {0, 1, 2, 7, 100}) {
      PacketSpec s;
      s.l3 = l3;
      s.l4 = L4Kind::kUdp;
      s.payload_len = 21;
      s.udp_trailer = trailer;
      s.eth_padding = 3;
      s.payload_seed = trailer;
      const auto f = Build(s);
      SCOPED_TRACE(Describe(s) + "\n" + HexDump(f));
      const Walk w = WalkFrame(f);
      ASSERT_TRUE(w.ok);
      EXPECT_EQ(Be16(f, w.l4 + 4), 8 + 21);
      EXPECT_EQ(w.L, 8 + 21 + trailer);
      EXPECT_EQ(f.size(), w.ip_end + 3);
      CheckCsum(s, f);
    }
  }
}

TEST(PktgenTest, UdpLiteCoverage) {
  for (L3Kind l3 : {L3Kind::kIpv4, L3Kind::kIpv6}) {
    for (size_t cov : {0, 8, 9, 10, 30, 58}) {
      PacketSpec s;
      s.l3 = l3;
      s.l4 = L4Kind::kUdpLite;
      s.payload_len = 50;
      s.udplite_coverage = cov;
      s.payload_seed = cov;
      const auto f = Build(s);
      SCOPED_TRACE(Describe(s));
      const Walk w = WalkFrame(f);
      EXPECT_EQ(Be16(f, w.l4 + 4), cov);
      CheckCsum(s, f);
      for (CsumState cs : kAllCsum) {
        s.csum = cs;
        CheckCsum(s, Build(s));
      }
    }
    // Invalid coverage is still written as given (the classifier calls it UNPARSABLE).
    for (size_t cov : {1, 7, 59, 1000}) {
      PacketSpec s;
      s.l3 = l3;
      s.l4 = L4Kind::kUdpLite;
      s.payload_len = 50;
      s.udplite_coverage = cov;
      const auto f = Build(s);
      EXPECT_EQ(Be16(f, WalkFrame(f).l4 + 4), cov);
    }
  }
}

TEST(PktgenTest, TcpHeaderAndOptions) {
  std::set<int> doffs;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    PacketSpec s;
    s.l3 = seed & 1 ? L3Kind::kIpv6 : L3Kind::kIpv4;
    s.l4 = L4Kind::kTcp;
    s.payload_len = seed % 30;
    s.payload_seed = seed;
    const auto f = Build(s);
    SCOPED_TRACE(Describe(s) + "\n" + HexDump(f));
    const Walk w = WalkFrame(f);
    ASSERT_EQ(w.L, 20 + s.payload_len);
    const int doff = f[w.l4 + 12] >> 4;
    doffs.insert(doff);
    EXPECT_GE(doff, 5);
    EXPECT_LE(doff * 4u, w.L);
    EXPECT_EQ(Be16(f, w.l4 + 18), 0) << "urgent pointer";
    CheckCsum(s, f);
    if (doff > 5) {  // options are well formed: walk them
      size_t p = w.l4 + 20;
      const size_t end = w.l4 + doff * 4;
      while (p < end) {
        if (f[p] == 1) {
          ++p;
          continue;
        }
        ASSERT_NE(f[p], 0);
        ASSERT_GE(f[p + 1], 2);
        p += f[p + 1];
      }
      EXPECT_EQ(p, end);
    }
  }
  EXPECT_EQ(doffs, (std::set<int>{5, 6, 8, 10}));
}

TEST(PktgenTest, SctpAndOther) {
  for (L3Kind l3 : {L3Kind::kIpv4, L3Kind::kIpv6}) {
    for (size_t pl : {0, 5, 16, 100}) {
      PacketSpec s;
      s.l3 = l3;
      s.l4 = L4Kind::kSctp;
      s.payload_len = pl;
      const auto f = Build(s);
      const Walk w = WalkFrame(f);
      ASSERT_EQ(w.proto, 132);
      EXPECT_EQ(w.L, 12 + pl);
      EXPECT_EQ(SctpField(f, w), SctpCorrect(f, w));
      if (pl >= 16) {
        EXPECT_EQ(Be16(f, w.l4 + 14), pl) << "DATA chunk length";
      }
      s.l4 = L4Kind::kOther;
      const auto g = Build(s);
      const Walk wg = WalkFrame(g);
      EXPECT_EQ(wg.proto, 47);
      EXPECT_EQ(wg.L, 4 + pl);
      EXPECT_EQ(Be16(g, wg.l4 + 2), 0x6558);
    }
  }
}

TEST(PktgenTest, MismatchedIcmp) {
  for (CsumState cs : kAllCsum) {
    PacketSpec s;
    s.l3 = L3Kind::kIpv6;
    s.l4 = L4Kind::kIcmp4;
    s.csum = cs;
    s.payload_len = 9;
    auto f = Build(s);
    EXPECT_EQ(WalkFrame(f).proto, 1);
    EXPECT_EQ(f[WalkFrame(f).l4], 8) << "echo request";
    CheckCsum(s, f);  // no pseudo-header, seed 0
    s.l3 = L3Kind::kIpv4;
    s.l4 = L4Kind::kIcmp6;
    f = Build(s);
    EXPECT_EQ(WalkFrame(f).proto, 58);
    EXPECT_EQ(f[WalkFrame(f).l4], 128) << "echo request";
    CheckCsum(s, f);  // IPv4 pseudo-header
  }
}

TEST(PktgenTest, EthPadding) {
  PacketSpec s;
  s.l4 = L4Kind::kUdp;
  s.payload_len = 2;
  s.eth_padding = 60 - (14 + 20 + 8 + 2);
  const auto f = Build(s);
  EXPECT_EQ(f.size(), 60u);
  EXPECT_EQ(Be16(f, 16), 20 + 8 + 2);
  CheckCsum(s, f);
}

TEST(PktgenTest, Truncate) {
  PacketSpec s;
  s.l3 = L3Kind::kIpv6;
  s.l4 = L4Kind::kTcp;
  s.payload_len = 50;
  const auto full = Build(s);
  s.damage = Damage::kTruncate;
  for (size_t to = 0; to < full.size() + 3; ++to) {
    s.truncate_to = to;
    const auto f = Build(s);
    ASSERT_EQ(f.size(), std::min(to, full.size()));
    EXPECT_TRUE(std::equal(f.begin(), f.end(), full.begin()));
  }
}

TEST(PktgenTest, BadVersionAndIhl) {
  for (uint64_t seed = 0; seed < 100; ++seed) {
    PacketSpec s;
    s.payload_seed = seed;
    s.payload_len = 10;
    s.damage = Damage::kBadVersion;
    s.l3 = L3Kind::kIpv4;
    auto f = Build(s);
    EXPECT_NE(f[14] >> 4, 4);
    EXPECT_EQ(OnesSum(f.data() + 14, 20), 0xffff) << "header checksum rewritten after damage";
    s.l3 = L3Kind::kIpv6;
    f = Build(s);
    EXPECT_NE(f[14] >> 4, 6);
    s.l3 = L3Kind::kIpv4;
    s.damage = Damage::kBadIhl;
    f = Build(s);
    EXPECT_LT(f[14] & 0xf, 5);
    EXPECT_EQ(f[14] >> 4, 4);
  }
}

TEST(PktgenTest, BadLengthVariants) {
  const size_t mins[] = {20, 8, 8, 8, 8, 12, 4};
  for (L3Kind l3 : {L3Kind::kIpv4, L3Kind::kIpv6}) {
    for (size_t k = 0; k < std::size(kAllL4); ++k) {
      for (int variant = 0; variant < 4; ++variant) {
        for (uint64_t seed = 0; seed < 40; ++seed) {
          PacketSpec s;
          s.l3 = l3;
          s.l4 = kAllL4[k];
          s.payload_len = seed % 3 == 0 ? 3 : 40 + seed;
          s.payload_seed = seed;
          s.ip4_option_bytes = seed % 2 ? 8 : 0;
          if (seed % 4 == 1) s.ip6_ext = {0, 44};
          s.eth_padding = seed % 5;
          const auto good = Build(s);
          const Walk w = WalkFrame(good);
          ASSERT_TRUE(w.ok);
          s.damage = Damage::kBadLength;
          s.damage_variant = variant;
          const auto f = Build(s);
          SCOPED_TRACE(Describe(s) + "\n" + HexDump(f));
          ASSERT_EQ(f.size(), good.size());
          const bool v4 = l3 == L3Kind::kIpv4;
          const size_t left = f.size() - w.l3;
          const size_t iplen = Be16(f, w.l3 + (v4 ? 2 : 4));
          const size_t ext_total = w.l4 - w.l3 - w.ip_hdr;
          const bool l4_field = k < 3;
          int eff = variant;
          if (eff == 3 && !l4_field) eff = 0;
          if (eff == 2 && s.l4 == L4Kind::kOther) eff = 1;
          if (v4) {
            EXPECT_EQ(OnesSum(f.data() + w.l3, w.ip_hdr), 0xffff);
          }
          switch (eff) {
            case 0:
              EXPECT_GT(v4 ? iplen : 40 + iplen, left);
              break;
            case 1:
              if (v4) {
                EXPECT_LT(iplen, w.ip_hdr);
              } else {
                EXPECT_EQ(iplen, 0u);
              }
              break;
            case 2: {
              const size_t L = v4 ? iplen - w.ip_hdr : iplen - ext_total;
              EXPECT_LT(L, mins[k]);
              EXPECT_GE(iplen, v4 ? w.ip_hdr : 1);
              break;
            }
            case 3: {
              const size_t L = w.L;
              if (s.l4 == L4Kind::kTcp) {
                const size_t doff = f[w.l4 + 12] >> 4;
                EXPECT_TRUE(doff < 5 || doff * 4 > L) << doff;
              } else {
                const size_t v = Be16(f, w.l4 + 4);
                if (s.l4 == L4Kind::kUdpLite) {
                  EXPECT_NE(v, 0u);
                }
                EXPECT_TRUE(v < 8 || v > L) << v;
              }
              EXPECT_EQ(iplen, Be16(good, w.l3 + (v4 ? 2 : 4)));
              break;
            }
          }
        }
      }
    }
  }
}

// SEMANTICS.md §1.5: an extension header that does not fit in the payload.
bool ExtOverruns(const std::vector<uint8_t>& f, size_t l3) {
  const size_t end = l3 + 40 + Be16(f, l3 + 4);
  uint8_t nh = f[l3 + 6];
  size_t p = l3 + 40;
  while (nh == 0 || nh == 60 || nh == 43 || nh == 44) {
    if (p + 8 > end) return true;
    const size_t len = nh == 44 ? 8 : (f[p + 1] + 1u) * 8;
    if (p + len > end) return true;
    nh = f[p];
    p += len;
  }
  return false;
}

TEST(PktgenTest, BadExtHeader) {
  const std::vector<std::vector<uint8_t>> lists = {{}, {0}, {44}, {60, 43}, {43, 44}, {44, 44, 0}};
  for (const auto& list : lists) {
    for (size_t pl : {0, 10, 3000}) {
      for (uint64_t seed = 0; seed < 30; ++seed) {
        PacketSpec s;
        s.l3 = L3Kind::kIpv6;
        s.l4 = kAllL4[seed % 7];
        s.ip6_ext = list;
        s.payload_len = pl;
        s.payload_seed = seed;
        s.eth_padding = seed % 3;
        s.damage = Damage::kBadExtHeader;
        const auto f = Build(s);
        SCOPED_TRACE(Describe(s));
        ASSERT_TRUE(WalkFrame(f).l3 == 14);
        EXPECT_LE(40 + Be16(f, 18), f.size() - 14) << "payload length itself is consistent";
        EXPECT_NE(Be16(f, 18), 0);
        EXPECT_TRUE(ExtOverruns(f, 14));
      }
    }
  }
}

TEST(PktgenTest, Deterministic) {
  std::mt19937_64 a(7), b(7);
  for (int i = 0; i < 2000; ++i) {
    const PacketSpec sa = RandomSpec(a, 1514);
    const PacketSpec sb = RandomSpec(b, 1514);
    ASSERT_EQ(Describe(sa), Describe(sb));
    ASSERT_EQ(Build(sa), Build(sb));
  }
}

TEST(PktgenTest, AbsurdSpecsDoNotCrash) {
  std::mt19937_64 rng(99);
  auto r = [&](uint64_t n) { return rng() % n; };
  for (int i = 0; i < 20000; ++i) {
    PacketSpec s;
    s.vlan_tags = static_cast<int>(r(40)) - 10;
    s.l3 = static_cast<L3Kind>(r(4));
    s.l4 = static_cast<L4Kind>(r(8));
    s.ip4_option_bytes = r(100);
    for (size_t n = r(12); n > 0; --n)
      s.ip6_ext.push_back(r(3) ? std::array<uint8_t, 4>{0, 60, 43, 44}[r(4)]
                               : static_cast<uint8_t>(rng()));
    s.fragment_first = r(2);
    s.fragment_nonfirst = r(2);
    s.routing_segments_left = r(2);
    s.payload_len = r(10) == 0 ? r(70000) : r(100);
    s.udp_trailer = r(3) == 0 ? r(300) : 0;
    s.udplite_coverage = r(3) == 0 ? r(100000) : r(60);
    s.eth_padding = r(4) == 0 ? r(100) : 0;
    s.csum = static_cast<CsumState>(r(4));
    s.corrupt_mask = static_cast<uint16_t>(rng());
    s.bad_ip4_hdr_csum = r(2);
    s.damage = static_cast<Damage>(r(6));
    s.truncate_to = r(200);
    s.payload_seed = rng();
    s.damage_variant = static_cast<int>(r(7)) - 1;
    s.csum_all_ones = r(2);
    const auto f = Build(s);
    EXPECT_FALSE(Describe(s).empty());
    if (s.damage == Damage::kTruncate) {
      EXPECT_LE(f.size(), s.truncate_to);
    }
  }
  PacketSpec huge;
  huge.payload_len = SIZE_MAX;
  huge.udp_trailer = SIZE_MAX;
  huge.eth_padding = SIZE_MAX;
  huge.ip4_option_bytes = SIZE_MAX;
  huge.vlan_tags = INT32_MAX;
  huge.udplite_coverage = SIZE_MAX;
  for (L3Kind l3 : {L3Kind::kNonIp, L3Kind::kIpv4, L3Kind::kIpv6}) {
    for (L4Kind l4 : kAllL4) {
      huge.l3 = l3;
      huge.l4 = l4;
      EXPECT_FALSE(Build(huge).empty());
    }
  }
}

TEST(PktgenTest, RandomSpecRespectsMaxFrame) {
  std::mt19937_64 rng(1);
  for (size_t max : {0, 1, 13, 14, 20, 41, 42, 60, 64, 100, 128, 600, 1514, 9000, 70000}) {
    size_t biggest = 0;
    for (int i = 0; i < 3000; ++i) {
      const PacketSpec s = RandomSpec(rng, max);
      const auto f = Build(s);
      ASSERT_LE(f.size(), max) << Describe(s);
      biggest = std::max(biggest, f.size());
    }
    if (max >= 64) {
      EXPECT_GE(biggest, std::min<size_t>(max, 0xffff) - 8) << "frames reach max_frame";
    }
  }
}

TEST(PktgenTest, RandomSpecCoverage) {
  std::mt19937_64 rng(2024);
  constexpr size_t kMax = 1514;
  std::map<int, int> l3, l4, csum, damage, vlan, variant;
  std::map<std::string, int> feature;
  std::map<size_t, int> ext_count;
  std::map<int, int> size_bucket;  // <=64, <=600, <=1400, >1400
  for (int i = 0; i < 100000; ++i) {
    const PacketSpec s = RandomSpec(rng, kMax);
    const auto f = Build(s);
    ASSERT_LE(f.size(), kMax) << Describe(s);
    ++l3[static_cast<int>(s.l3)];
    ++l4[static_cast<int>(s.l4)];
    ++csum[static_cast<int>(s.csum)];
    ++damage[static_cast<int>(s.damage)];
    ++vlan[s.vlan_tags];
    if (s.l3 == L3Kind::kIpv6) ++ext_count[s.ip6_ext.size()];
    if (s.ip4_option_bytes) ++feature["ip4opt"];
    if (s.fragment_first) ++feature["frag_first"];
    if (s.fragment_nonfirst) ++feature["frag_nonfirst"];
    if (s.routing_segments_left) ++feature["segleft"];
    if (s.udp_trailer) ++feature["udp_trailer"];
    if (s.l4 == L4Kind::kUdpLite && s.udplite_coverage) ++feature["udplite_cov"];
    if (s.eth_padding) ++feature["eth_padding"];
    if (s.csum_all_ones) ++feature["all_ones"];
    if (s.bad_ip4_hdr_csum) ++feature["bad_ip4_hdr"];
    if (s.payload_len == 0) ++feature["empty_payload"];
    if (s.l3 == L3Kind::kIpv6 && s.l4 == L4Kind::kIcmp4) ++feature["icmp4_in_ipv6"];
    if (s.l3 == L3Kind::kIpv4 && s.l4 == L4Kind::kIcmp6) ++feature["icmp6_in_ipv4"];
    if (f.size() == kMax) ++feature["max_frame"];
    if (f.size() < 14) ++feature["runt"];
    ++size_bucket[f.size() <= 64 ? 0 : f.size() <= 600 ? 1 : f.size() <= 1400 ? 2 : 3];
  }
  EXPECT_EQ(l3.size(), 3u);
  EXPECT_EQ(l4.size(), std::size(kAllL4));
  EXPECT_EQ(csum.size(), std::size(kAllCsum));
  EXPECT_EQ(damage.size(), 6u);
  EXPECT_EQ(vlan.size(), 4u);
  for (auto& m : {l3, l4, csum, damage, vlan}) {
    for (auto& [k, n] : m) EXPECT_GT(n, 500) << k;
  }
  EXPECT_GT(csum[static_cast<int>(CsumState::kValid)], csum[static_cast<int>(CsumState::kCorrupt)]);
  EXPECT_GT(csum[static_cast<int>(CsumState::kSeed)], csum[static_cast<int>(CsumState::kZero)]);
  const int damaged = 100000 - damage[static_cast<int>(Damage::kNone)];
  EXPECT_GT(damaged, 15000);
  EXPECT_LT(damaged, 25000);
  for (size_t n : {0, 1, 2, 3, 4, 8, 9}) EXPECT_GT(ext_count[n], 50) << n << " ext headers";
  for (const char* name : {"ip4opt", "frag_first", "frag_nonfirst", "segleft", "udp_trailer",
                           "udplite_cov", "eth_padding", "all_ones", "bad_ip4_hdr", "empty_payload",
                           "icmp4_in_ipv6", "icmp6_in_ipv4", "max_frame", "runt"}) {
    EXPECT_GT(feature[name], 50) << name;
  }
  for (int b = 0; b < 4; ++b) EXPECT_GT(size_bucket[b], 5000) << "size bucket " << b;
}

TEST(PktgenTest, DescribeAndHexDump) {
  PacketSpec s;
  s.l3 = L3Kind::kIpv6;
  s.l4 = L4Kind::kUdpLite;
  s.ip6_ext = {0, 44};
  s.vlan_tags = 2;
  s.udplite_coverage = 12;
  s.csum = CsumState::kCorrupt;
  s.damage = Damage::kTruncate;
  s.truncate_to = 33;
  const std::string d = Describe(s);
  EXPECT_EQ(d.find('\n'), std::string::npos);
  for (const char* want :
       {"ipv6", "udplite", "vlan=2", "ext=[0,44]", "cov=12", "corrupt", "truncate", "to=33"}) {
    EXPECT_NE(d.find(want), std::string::npos) << want << " in " << d;
  }
  std::vector<uint8_t> b(33);
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>(i * 9);
  const std::string h = HexDump(b);
  EXPECT_EQ(std::count(h.begin(), h.end(), '\n'), 3);
  EXPECT_EQ(h.substr(0, 20), "0000: 00 09 12 1b 24");
  EXPECT_NE(h.find("0010: 90 99"), std::string::npos);
  EXPECT_NE(h.find("0020: 20\n"), std::string::npos);
  EXPECT_EQ(HexDump({}), "");
}

std::string TempPath(const std::string& name) {
  return ::testing::TempDir() + "csumfix_pktgen_" + std::to_string(getpid()) + "_" + name;
}

TEST(PktgenTest, WritePcapFormat) {
  const std::string path = TempPath("format.pcap");
  const std::vector<std::vector<uint8_t>> frames = {{1, 2, 3}, {}, std::vector<uint8_t>(70, 0xab)};
  ASSERT_TRUE(WritePcap(path, frames));
  std::ifstream in(path, std::ios::binary);
  const std::vector<uint8_t> d((std::istreambuf_iterator<char>(in)), {});
  std::remove(path.c_str());
  ASSERT_EQ(d.size(), 24 + 3 * 16 + 3 + 0 + 70u);
  auto le32 = [&](size_t o) {
    return d[o] | d[o + 1] << 8 | d[o + 2] << 16 | static_cast<uint32_t>(d[o + 3]) << 24;
  };
  EXPECT_EQ(le32(0), 0xa1b2c3d4u);
  EXPECT_EQ(d[4] | d[5] << 8, 2);
  EXPECT_EQ(d[6] | d[7] << 8, 4);
  EXPECT_EQ(le32(16), 262144u);
  EXPECT_EQ(le32(20), 1u);
  EXPECT_EQ(le32(24 + 8), 3u);   // incl_len
  EXPECT_EQ(le32(24 + 12), 3u);  // orig_len
  EXPECT_EQ(d[40], 1);
  EXPECT_EQ(le32(43 + 8), 0u);
  EXPECT_EQ(le32(59 + 8), 70u);
  EXPECT_FALSE(WritePcap("/nonexistent-dir/x.pcap", frames));
}

// tshark's checksum status values (Wireshark's proto_checksum_enum_e: bad 0, good 1, unverified 2,
// not present 3, illegal 4), accepting names too in case a version prints them.
std::string NormalizeStatus(const std::string& v) {
  static const std::map<std::string, std::string> names = {{"0", "bad"},
                                                           {"1", "good"},
                                                           {"2", "unverified"},
                                                           {"3", "not-present"},
                                                           {"4", "illegal"},
                                                           {"Bad", "bad"},
                                                           {"Good", "good"},
                                                           {"Unverified", "unverified"},
                                                           {"Not present", "not-present"},
                                                           {"Illegal", "illegal"}};
  auto it = names.find(v);
  return it == names.end() ? "?" + v : it->second;
}

TEST(PktgenTest, TsharkAgreesOnChecksums) {
  if (std::system("command -v tshark >/dev/null 2>&1") != 0) {
    FAIL() << "tshark not found: run scripts/deps.sh (as root) to install it";
  }
  struct Expect {
    std::string field;  // tshark field name
    std::string status;
    std::string what;
  };
  std::vector<std::vector<uint8_t>> frames;
  std::vector<Expect> expects;
  uint64_t seed = 5;
  for (L3Kind l3 : {L3Kind::kIpv4, L3Kind::kIpv6}) {
    for (L4Kind l4 : {L4Kind::kTcp, L4Kind::kUdp, L4Kind::kUdpLite, L4Kind::kSctp,
                      l3 == L3Kind::kIpv4 ? L4Kind::kIcmp4 : L4Kind::kIcmp6}) {
      for (CsumState cs : kAllCsum) {
        for (int v = 0; v < 12; ++v) {
          PacketSpec s;
          s.l3 = l3;
          s.l4 = l4;
          s.csum = cs;
          s.payload_seed = seed++;
          s.payload_len =
              std::array<size_t, 12>{0, 1, 2, 3, 16, 17, 64, 100, 333, 512, 1001, 1400}[v];
          s.vlan_tags = v % 3;
          if (v % 4 == 1) s.ip4_option_bytes = 12;
          if (v % 4 == 2) s.ip6_ext = {0, 60, 43};
          if (v % 4 == 3) s.ip6_ext = {60};
          if (v % 5 == 4) s.eth_padding = 9;
          if (l4 == L4Kind::kUdp && v % 3 == 2) s.udp_trailer = 5;
          if (l4 == L4Kind::kUdpLite && v % 2) s.udplite_coverage = 8 + v;
          s.csum_all_ones = v == 7 && l4 != L4Kind::kSctp;
          std::string field, status;
          switch (l4) {
            case L4Kind::kTcp:
              field = "tcp";
              break;
            case L4Kind::kUdp:
            case L4Kind::kUdpLite:
              field = "udp";
              break;
            case L4Kind::kSctp:
              field = "sctp";
              break;
            case L4Kind::kIcmp4:
              field = "icmp";
              break;
            default:
              field = "icmpv6";
              break;
          }
          // With csum_all_ones the correct value is 0xffff, and a 0x0000 field (kZero, or the
          // ICMPv4 seed) is its one's-complement equivalent, so it verifies too. tshark flags a
          // TCP 0xffff as bad ("0xffff instead of 0x0000 (see RFC 1624)") although the sum
          // verifies; SEMANTICS.md writes 0xffff (what skb_checksum_help() writes).
          const bool zero_is_valid = s.csum_all_ones && l4 != L4Kind::kUdp &&
                                     l4 != L4Kind::kUdpLite && l4 != L4Kind::kSctp;
          switch (cs) {
            case CsumState::kValid:
              status = l4 == L4Kind::kTcp && s.csum_all_ones ? "bad" : "good";
              break;
            case CsumState::kSeed:
              status = l4 == L4Kind::kIcmp4 && zero_is_valid ? "good" : "bad";
              break;
            case CsumState::kCorrupt:
              status = "bad";
              break;
            case CsumState::kZero:
              status = l4 == L4Kind::kUdp       ? (l3 == L3Kind::kIpv4 ? "not-present" : "illegal")
                       : l4 == L4Kind::kUdpLite ? "illegal"
                       : zero_is_valid          ? "good"
                                                : "bad";
              break;
          }
          frames.push_back(Build(s));
          expects.push_back({field, status, Describe(s)});
        }
      }
    }
  }
  const std::string pcap = TempPath("tshark.pcap");
  ASSERT_TRUE(WritePcap(pcap, frames));
  const std::string cmd =
      "tshark -n -r '" + pcap +
      "' -o tcp.check_checksum:TRUE -o udp.check_checksum:TRUE -o udplite.check_checksum:TRUE"
      " -o 'sctp.checksum:CRC 32c' -T fields -E separator=/t -e frame.number"
      " -e tcp.checksum.status -e udp.checksum.status -e sctp.checksum.status"
      " -e icmp.checksum.status -e icmpv6.checksum.status 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int rc = pclose(p);
  std::remove(pcap.c_str());
  ASSERT_EQ(rc, 0) << cmd;
  const std::vector<std::string> fields = {"tcp", "udp", "sctp", "icmp", "icmpv6"};
  std::istringstream lines(out);
  std::string line;
  size_t seen = 0;
  std::map<std::string, int> observed;
  while (std::getline(lines, line)) {
    std::vector<std::string> cols;
    std::string col;
    std::istringstream ls(line);
    while (std::getline(ls, col, '\t')) cols.push_back(col);
    cols.resize(1 + fields.size());
    const size_t idx = std::stoul(cols[0]) - 1;
    ASSERT_LT(idx, frames.size());
    const Expect& e = expects[idx];
    for (size_t i = 0; i < fields.size(); ++i) {
      if (fields[i] == e.field) {
        ++observed[e.field + "=" + cols[1 + i]];
        EXPECT_EQ(NormalizeStatus(cols[1 + i]), e.status)
            << "frame " << idx + 1 << ": " << e.what << "\n"
            << HexDump(frames[idx]);
      } else {
        EXPECT_EQ(cols[1 + i], "")
            << "frame " << idx + 1 << " unexpected " << fields[i] << ": " << e.what;
      }
    }
    ++seen;
  }
  EXPECT_EQ(seen, frames.size());
  std::string summary;
  for (auto& [k, v] : observed) summary += " " + k + ":" + std::to_string(v);
  std::printf("tshark status values observed:%s\n", summary.c_str());
}

}  // namespace
}  // namespace csumfix::testing
