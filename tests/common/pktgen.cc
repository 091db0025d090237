// Packet builder and seeded generator for csumfix tests. See pktgen.h and docs/SEMANTICS.md.
//
// Checksums here are deliberately naive (byte pairs into a 64-bit accumulator, bitwise CRC32c) and
// share no code with userspace/refcsum or bpf/: this is the third opinion.
#include "common/pktgen.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>

namespace csumfix::testing {
namespace {

constexpr uint16_t kEthIpv4 = 0x0800;
constexpr uint16_t kEthIpv6 = 0x86dd;
constexpr uint16_t kEthArp = 0x0806;
constexpr uint16_t kEthQinQ = 0x88a8;
constexpr uint16_t kEthVlan = 0x8100;

constexpr uint8_t kProtoIcmp4 = 1;
constexpr uint8_t kProtoTcp = 6;
constexpr uint8_t kProtoUdp = 17;
constexpr uint8_t kProtoGre = 47;
constexpr uint8_t kProtoIcmp6 = 58;
constexpr uint8_t kProtoSctp = 132;
constexpr uint8_t kProtoUdpLite = 136;

constexpr uint8_t kExtRouting = 43;
constexpr uint8_t kExtFragment = 44;

// Absurd sizes are clamped so that no spec can exhaust memory.
constexpr size_t kMaxChunk = size_t{1} << 20;
constexpr int kMaxVlanTags = 16;
constexpr size_t kMaxExtHeaders = 64;

// SplitMix64: small, deterministic, platform-independent.
class Mix {
 public:
  explicit Mix(uint64_t seed) : s_(seed) {}
  uint64_t Next() {
    uint64_t z = (s_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  uint64_t Below(uint64_t n) { return n == 0 ? 0 : Next() % n; }
  uint8_t Byte() { return static_cast<uint8_t>(Next() >> 24); }

 private:
  uint64_t s_;
};

uint64_t Hash(uint64_t seed, uint64_t salt) { return Mix(seed ^ salt).Next(); }

void Push8(std::vector<uint8_t>& b, uint64_t v) { b.push_back(static_cast<uint8_t>(v)); }
void Push16(std::vector<uint8_t>& b, uint64_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}
void Push32(std::vector<uint8_t>& b, uint64_t v) {
  Push16(b, v >> 16);
  Push16(b, v);
}
void PushRandom(std::vector<uint8_t>& b, Mix& m, size_t n) {
  for (size_t i = 0; i < n; ++i) b.push_back(m.Byte());
}
void Put16(std::vector<uint8_t>& b, size_t off, uint64_t v) {
  if (off + 2 > b.size()) return;
  b[off] = static_cast<uint8_t>(v >> 8);
  b[off + 1] = static_cast<uint8_t>(v);
}
uint16_t Get16(const std::vector<uint8_t>& b, size_t off) {
  if (off + 2 > b.size()) return 0;
  return static_cast<uint16_t>((b[off] << 8) | b[off + 1]);
}

// One's-complement sum, naive: big-endian byte pairs (odd tail padded with zero) into 64 bits.
uint64_t SumBytes(const uint8_t* p, size_t n) {
  uint64_t s = 0;
  for (size_t i = 0; i < n; i += 2) {
    uint64_t hi = p[i];
    uint64_t lo = i + 1 < n ? p[i + 1] : 0;
    s += (hi << 8) | lo;
  }
  return s;
}
uint16_t Fold(uint64_t s) {
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return static_cast<uint16_t>(s);
}

// CRC32c (Castagnoli), bitwise, reflected polynomial 0x82F63B78.
uint32_t Crc32c(const uint8_t* p, size_t n) {
  uint32_t crc = 0xffffffffu;
  for (size_t i = 0; i < n; ++i) {
    crc ^= p[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ ((crc & 1u) ? 0x82F63B78u : 0u);
  }
  return crc ^ 0xffffffffu;
}

uint8_t ProtoOf(L4Kind k) {
  switch (k) {
    case L4Kind::kTcp:
      return kProtoTcp;
    case L4Kind::kUdp:
      return kProtoUdp;
    case L4Kind::kUdpLite:
      return kProtoUdpLite;
    case L4Kind::kIcmp4:
      return kProtoIcmp4;
    case L4Kind::kIcmp6:
      return kProtoIcmp6;
    case L4Kind::kSctp:
      return kProtoSctp;
    case L4Kind::kOther:
      return kProtoGre;
  }
  return kProtoGre;
}

// Minimum L4 segment per SEMANTICS.md §1.6 (kOther: the 4-byte GRE header we build).
size_t L4Min(L4Kind k) {
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

const char* L3Name(L3Kind k) {
  switch (k) {
    case L3Kind::kNonIp:
      return "nonip";
    case L3Kind::kIpv4:
      return "ipv4";
    case L3Kind::kIpv6:
      return "ipv6";
  }
  return "l3?";
}
const char* L4Name(L4Kind k) {
  switch (k) {
    case L4Kind::kTcp:
      return "tcp";
    case L4Kind::kUdp:
      return "udp";
    case L4Kind::kUdpLite:
      return "udplite";
    case L4Kind::kIcmp4:
      return "icmp4";
    case L4Kind::kIcmp6:
      return "icmp6";
    case L4Kind::kSctp:
      return "sctp";
    case L4Kind::kOther:
      return "other(gre)";
  }
  return "l4?";
}
const char* CsumName(CsumState c) {
  switch (c) {
    case CsumState::kValid:
      return "valid";
    case CsumState::kSeed:
      return "seed";
    case CsumState::kCorrupt:
      return "corrupt";
    case CsumState::kZero:
      return "zero";
  }
  return "csum?";
}
const char* DamageName(Damage d) {
  switch (d) {
    case Damage::kNone:
      return "none";
    case Damage::kTruncate:
      return "truncate";
    case Damage::kBadLength:
      return "bad-length";
    case Damage::kBadVersion:
      return "bad-version";
    case Damage::kBadIhl:
      return "bad-ihl";
    case Damage::kBadExtHeader:
      return "bad-ext-header";
  }
  return "damage?";
}

int ResolveVariant(const PacketSpec& s) {
  if (s.damage_variant >= 0) return s.damage_variant % 4;
  return static_cast<int>(Hash(s.payload_seed, 0x76617269616e74ULL) % 4);
}

// The IPv6 extension header list Build() actually emits: the spec's list, plus a fragment header
// if a fragment is requested and none is listed, plus a routing header if segments left is
// requested and none is listed, plus a destination options header for kBadExtHeader without any.
std::vector<uint8_t> EffectiveExt(const PacketSpec& s) {
  std::vector<uint8_t> ext(s.ip6_ext.begin(),
                           s.ip6_ext.begin() + std::min(s.ip6_ext.size(), kMaxExtHeaders));
  auto has = [&](uint8_t nh) { return std::find(ext.begin(), ext.end(), nh) != ext.end(); };
  if ((s.fragment_first || s.fragment_nonfirst) && !has(kExtFragment)) ext.push_back(kExtFragment);
  if (s.routing_segments_left && !has(kExtRouting)) ext.push_back(kExtRouting);
  if (s.damage == Damage::kBadExtHeader && ext.empty()) ext.push_back(60);
  return ext;
}

struct Layout {
  size_t l3_off = 0;            // start of the IP header
  size_t ip_hdr_len = 0;        // IPv4: IHL*4; IPv6: 40
  size_t l4_off = 0;            // start of the L4 segment
  size_t l4_len = 0;            // L
  size_t ip_end = 0;            // end of the IP packet (start of Ethernet padding)
  std::vector<size_t> ext_off;  // IPv6 extension header offsets (frame-relative)
  std::vector<size_t> ext_len;
  std::vector<uint8_t> ext_type;
};

struct PseudoInfo {
  bool v6 = false;
  std::array<uint8_t, 16> src{};
  std::array<uint8_t, 16> dst{};
};

uint64_t PseudoSum(const PseudoInfo& ph, uint8_t proto, uint64_t len) {
  std::vector<uint8_t> b;
  if (ph.v6) {
    b.insert(b.end(), ph.src.begin(), ph.src.end());
    b.insert(b.end(), ph.dst.begin(), ph.dst.end());
    Push32(b, len);
    Push8(b, 0);
    Push8(b, 0);
    Push8(b, 0);
    Push8(b, proto);
  } else {
    b.insert(b.end(), ph.src.begin(), ph.src.begin() + 4);
    b.insert(b.end(), ph.dst.begin(), ph.dst.begin() + 4);
    Push8(b, 0);
    Push8(b, proto);
    Push16(b, len);
  }
  return SumBytes(b.data(), b.size());
}

uint16_t CorruptInet(uint16_t valid, uint16_t seed, uint16_t mask) {
  if (mask == 0) mask = 0x1234;
  auto forbidden = [&](uint16_t c) {
    return c == valid || (valid == 0xffff && c == 0) || (valid == 0 && c == 0xffff) || c == seed ||
           c == 0;
  };
  uint16_t c = valid ^ mask;
  while (forbidden(c)) c = static_cast<uint16_t>(c + 1);
  return c;
}

// Builds the L4 segment (header, payload, UDP trailer) and writes its checksum field.
std::vector<uint8_t> BuildL4(const PacketSpec& s, L3Kind l3, const PseudoInfo& ph, Mix& m) {
  const size_t payload_len = std::min(s.payload_len, kMaxChunk);
  std::vector<uint8_t> l4;
  size_t csum_off = 0;
  size_t adjust_off = 0;  // word tweaked for csum_all_ones
  bool inet = true;       // Internet checksum (vs SCTP CRC32c / none)
  bool pseudo = true;     // covered by a pseudo-header
  size_t cover = 0;       // bytes covered by the checksum
  uint64_t pseudo_len = 0;
  const uint8_t proto = ProtoOf(s.l4);

  switch (s.l4) {
    case L4Kind::kTcp: {
      // Options come out of the payload when it is large enough (deterministic from the seed).
      static constexpr size_t kOptSizes[] = {0, 4, 12, 20};
      size_t opt = kOptSizes[Hash(s.payload_seed, 0x7463706f7074ULL) % 4];
      if (opt > payload_len) opt = 0;
      Push16(l4, 1024 + m.Below(60000));  // source port
      Push16(l4, 1 + m.Below(1023));      // destination port
      Push32(l4, m.Next());               // sequence
      Push32(l4, m.Next());               // acknowledgment
      Push8(l4, ((5 + opt / 4) << 4));    // data offset
      Push8(l4, 0x18);                    // PSH|ACK
      Push16(l4, 1 + m.Below(65535));     // window
      Push16(l4, 0);                      // checksum
      Push16(l4, 0);                      // urgent pointer
      if (opt == 4 || opt == 20) {
        Push8(l4, 2);  // MSS
        Push8(l4, 4);
        Push16(l4, 1460);
      }
      if (opt == 20) {
        Push8(l4, 4);  // SACK permitted
        Push8(l4, 2);
      }
      if (opt == 12) {
        Push8(l4, 1);  // NOP NOP
        Push8(l4, 1);
      }
      if (opt == 12 || opt == 20) {
        Push8(l4, 8);  // timestamps
        Push8(l4, 10);
        Push32(l4, m.Next());
        Push32(l4, m.Next());
      }
      if (opt == 20) {
        Push8(l4, 1);  // NOP, window scale 7
        Push8(l4, 3);
        Push8(l4, 3);
        Push8(l4, 7);
      }
      PushRandom(l4, m, payload_len - opt);
      csum_off = 16;
      cover = l4.size();
      pseudo_len = l4.size();
      break;
    }
    case L4Kind::kUdp: {
      const size_t trailer = std::min(s.udp_trailer, kMaxChunk);
      Push16(l4, 1024 + m.Below(60000));
      Push16(l4, 1 + m.Below(1023));
      Push16(l4, 8 + payload_len);  // ulen (wraps for absurd sizes)
      Push16(l4, 0);
      PushRandom(l4, m, payload_len);
      cover = l4.size();
      pseudo_len = static_cast<uint16_t>(8 + payload_len);
      PushRandom(l4, m, trailer);
      csum_off = 6;
      break;
    }
    case L4Kind::kUdpLite: {
      Push16(l4, 1024 + m.Below(60000));
      Push16(l4, 1 + m.Below(1023));
      Push16(l4, s.udplite_coverage);
      Push16(l4, 0);
      PushRandom(l4, m, payload_len);
      const size_t len = l4.size();
      const size_t cov = static_cast<uint16_t>(s.udplite_coverage);
      cover = cov == 0 ? len : std::clamp<size_t>(cov, 8, len);
      pseudo_len = len;
      csum_off = 6;
      break;
    }
    case L4Kind::kIcmp4:
    case L4Kind::kIcmp6: {
      Push8(l4, s.l4 == L4Kind::kIcmp4 ? 8 : 128);  // echo request
      Push8(l4, 0);
      Push16(l4, 0);
      Push16(l4, m.Below(65536));  // identifier
      Push16(l4, m.Below(65536));  // sequence
      PushRandom(l4, m, payload_len);
      csum_off = 2;
      adjust_off = 4;
      cover = l4.size();
      pseudo_len = l4.size();
      // ICMPv4 never has a pseudo-header; ICMPv6 uses whichever IP header carries it.
      pseudo = s.l4 == L4Kind::kIcmp6 && l3 != L3Kind::kNonIp;
      break;
    }
    case L4Kind::kSctp: {
      Push16(l4, 1024 + m.Below(60000));
      Push16(l4, 1 + m.Below(1023));
      Push32(l4, m.Next());                              // verification tag
      Push32(l4, 0);                                     // checksum
      if (payload_len >= 16 && payload_len <= 0xffff) {  // one DATA chunk (unpadded)
        Push8(l4, 0);                                    // DATA
        Push8(l4, 0x03);                                 // B|E
        Push16(l4, payload_len);
        Push32(l4, m.Next());  // TSN
        Push16(l4, 0);         // stream
        Push16(l4, 0);         // stream sequence
        Push32(l4, 0);         // PPID
        PushRandom(l4, m, payload_len - 16);
      } else {
        PushRandom(l4, m, payload_len);
      }
      inet = false;
      break;
    }
    case L4Kind::kOther:
    default: {
      Push16(l4, 0);       // GRE: no checksum, version 0
      Push16(l4, 0x6558);  // transparent Ethernet bridging
      PushRandom(l4, m, payload_len);
      return l4;
    }
  }

  if (!inet) {  // SCTP
    const uint32_t crc = Crc32c(l4.data(), l4.size());
    uint32_t v = 0;
    switch (s.csum) {
      case CsumState::kValid:
        v = crc;
        break;
      case CsumState::kSeed:
      case CsumState::kZero:
        v = 0;
        break;
      case CsumState::kCorrupt: {
        v = crc ^ (s.corrupt_mask ? s.corrupt_mask : 0x1234u);
        while (v == crc || v == 0) ++v;
        break;
      }
    }
    l4[8] = static_cast<uint8_t>(v);
    l4[9] = static_cast<uint8_t>(v >> 8);
    l4[10] = static_cast<uint8_t>(v >> 16);
    l4[11] = static_cast<uint8_t>(v >> 24);
    return l4;
  }

  const uint64_t psum = pseudo ? PseudoSum(ph, proto, pseudo_len) : 0;
  auto data_sum = [&] { return psum + SumBytes(l4.data(), std::min(cover, l4.size())); };
  if (s.csum_all_ones) {
    // Make the folded sum (field zero) 0xffff so that the correct value computes to 0x0000.
    const uint16_t d = static_cast<uint16_t>(~Fold(data_sum()));
    Put16(l4, adjust_off, Fold(uint64_t{Get16(l4, adjust_off)} + d));
  }
  uint16_t valid = static_cast<uint16_t>(~Fold(data_sum()));
  if (valid == 0) valid = 0xffff;
  const uint16_t seed = pseudo ? Fold(psum) : 0;
  uint16_t v = 0;
  switch (s.csum) {
    case CsumState::kValid:
      v = valid;
      break;
    case CsumState::kSeed:
      v = seed;
      break;
    case CsumState::kCorrupt:
      v = CorruptInet(valid, seed, s.corrupt_mask);
      break;
    case CsumState::kZero:
      v = 0;
      break;
  }
  Put16(l4, csum_off, v);
  return l4;
}

void WriteIp4HdrCsum(std::vector<uint8_t>& f, const Layout& lay, bool bad) {
  Put16(f, lay.l3_off + 10, 0);
  uint16_t c = static_cast<uint16_t>(~Fold(SumBytes(f.data() + lay.l3_off, lay.ip_hdr_len)));
  if (bad) c ^= 0x5a5a;
  Put16(f, lay.l3_off + 10, c);
}

void ApplyBadLength(std::vector<uint8_t>& f, const PacketSpec& s, const Layout& lay) {
  if (s.l3 == L3Kind::kNonIp) return;
  Mix m(Hash(s.payload_seed, 0x6261646c656eULL));
  const bool v4 = s.l3 == L3Kind::kIpv4;
  const size_t avail = f.size() - lay.l3_off;  // bytes after L2, Ethernet padding included
  const size_t L = lay.l4_len;
  const size_t ext_total = lay.l4_off - lay.l3_off - lay.ip_hdr_len;  // IPv6 extension headers
  const size_t len_field = lay.l3_off + (v4 ? 2 : 4);
  int variant = ResolveVariant(s);
  const bool l4_field = s.l4 == L4Kind::kTcp || s.l4 == L4Kind::kUdp || s.l4 == L4Kind::kUdpLite;
  if (variant == 3 && !l4_field) variant = 0;
  if (variant == 2 && s.l4 == L4Kind::kOther) variant = 1;
  if (variant == 0) {
    const size_t base = v4 ? avail : avail - 40;  // what the length field may at most say
    const size_t v = base + 1 + m.Below(64);
    if (v > 0xffff) {
      variant = 1;
    } else {
      Put16(f, len_field, v);
      return;
    }
  }
  if (variant == 1) {
    Put16(f, len_field, v4 ? m.Below(lay.ip_hdr_len) : 0);
    return;
  }
  if (variant == 2) {
    const size_t min = L4Min(s.l4);
    size_t k = m.Below(min);
    if (!v4 && ext_total == 0 && k == 0) k = 1 + m.Below(min - 1);  // 0 would mean jumbogram
    Put16(f, len_field, (v4 ? lay.ip_hdr_len : ext_total) + k);
    return;
  }
  // variant 3: the L4 length field.
  const bool small = m.Next() & 1;
  const size_t o = lay.l4_off;
  if (s.l4 == L4Kind::kTcp) {
    uint64_t doff;
    if (small || L >= 60) {
      doff = m.Below(5);
    } else {
      const uint64_t lo = L / 4 + 1;  // smallest doff with doff*4 > L
      doff = lo + m.Below(16 - lo);
    }
    f[o + 12] = static_cast<uint8_t>((doff << 4) | (f[o + 12] & 0x0f));
  } else {  // UDP ulen / UDP-Lite coverage
    uint64_t v = small || L + 1 > 0xffff ? m.Below(8) : L + 1 + m.Below(16);
    if (s.l4 == L4Kind::kUdpLite && v == 0) v = 1 + m.Below(7);  // 0 means "whole": valid
    if (v > 0xffff) v = m.Below(8);
    Put16(f, o + 4, v);
  }
}

void ApplyBadExt(std::vector<uint8_t>& f, const PacketSpec& s, const Layout& lay) {
  if (s.l3 != L3Kind::kIpv6 || lay.ext_off.empty()) return;
  Mix m(Hash(s.payload_seed, 0x626164657874ULL));
  const size_t payload_start = lay.l3_off + 40;
  const size_t pl = Get16(f, lay.l3_off + 4);
  // Prefer growing the length byte of the last non-fragment header (its length then runs past
  // the payload end); otherwise (or sometimes anyway) shrink the payload length to end inside the
  // last extension header (fewer than 8 bytes left to read, or its length runs past).
  std::optional<size_t> pick;
  for (size_t i = 0; i < lay.ext_off.size(); ++i) {
    if (lay.ext_type[i] != kExtFragment) pick = i;
  }
  if (pick && (m.Next() & 1)) {
    const size_t o = lay.ext_off[*pick] - payload_start;
    const size_t remaining = pl > o ? pl - o : 0;
    const size_t lo = remaining / 8;  // (lo + 1) * 8 > remaining
    if (pl > o && lo <= 255) {
      f[lay.ext_off[*pick] + 1] = static_cast<uint8_t>(lo + m.Below(256 - lo));
      return;
    }
  }
  const size_t last = lay.ext_off.size() - 1;
  const size_t o = lay.ext_off[last] - payload_start;
  Put16(f, lay.l3_off + 4, o + 1 + m.Below(lay.ext_len[last] - 1));
}

}  // namespace

std::vector<uint8_t> Build(const PacketSpec& spec) {
  Mix m(spec.payload_seed);
  std::vector<uint8_t> f;
  f.reserve(128 + std::min(spec.payload_len, kMaxChunk));

  // Ethernet: unicast, locally administered MACs.
  Push8(f, 0x02);
  PushRandom(f, m, 5);
  Push8(f, 0x06);
  PushRandom(f, m, 5);
  const int tags = std::clamp(spec.vlan_tags, 0, kMaxVlanTags);
  for (int i = 0; i < tags; ++i) {
    Push16(f, i % 2 == 0 ? kEthQinQ : kEthVlan);
    Push16(f, (m.Below(8) << 13) | (1 + m.Below(4094)));  // PCP, DEI 0, VID 1..4094
  }

  Layout lay;
  PseudoInfo ph;
  const size_t padding = std::min(spec.eth_padding, kMaxChunk);

  if (spec.l3 == L3Kind::kNonIp) {
    Push16(f, kEthArp);
    Push16(f, 1);  // Ethernet
    Push16(f, kEthIpv4);
    Push8(f, 6);
    Push8(f, 4);
    Push16(f, 1);  // request
    const std::vector<uint8_t> sender_mac(f.begin() + 6, f.begin() + 12);
    f.insert(f.end(), sender_mac.begin(), sender_mac.end());
    Push32(f, 0x0a000000 | m.Below(1 << 24));
    for (int i = 0; i < 6; ++i) Push8(f, 0);
    Push32(f, 0x0a000000 | m.Below(1 << 24));
    PushRandom(f, m, std::min(spec.payload_len, kMaxChunk));
    PushRandom(f, m, padding);
    if (spec.damage == Damage::kTruncate && spec.truncate_to < f.size()) f.resize(spec.truncate_to);
    return f;
  }

  const uint8_t proto = ProtoOf(spec.l4);
  if (spec.l3 == L3Kind::kIpv4) {
    Push16(f, kEthIpv4);
    lay.l3_off = f.size();
    const size_t opt = std::min<size_t>(spec.ip4_option_bytes, 40) / 4 * 4;
    lay.ip_hdr_len = 20 + opt;
    Push8(f, 0x40 | (lay.ip_hdr_len / 4));
    Push8(f, 0);                // DSCP/ECN
    Push16(f, 0);               // total length, below
    Push16(f, m.Below(65536));  // identification
    uint16_t frag = 0;
    if (spec.fragment_first) frag |= 0x2000;                             // MF
    if (spec.fragment_nonfirst) frag |= 185;                             // offset 1480 bytes
    if (!spec.fragment_first && !spec.fragment_nonfirst) frag = 0x4000;  // DF
    Push16(f, frag);
    Push8(f, 64);  // TTL
    Push8(f, proto);
    Push16(f, 0);  // header checksum, below
    ph.v6 = false;
    ph.src = {10, m.Byte(), m.Byte(), static_cast<uint8_t>(1 + m.Below(254))};
    ph.dst = {192, 168, m.Byte(), static_cast<uint8_t>(1 + m.Below(254))};
    f.insert(f.end(), ph.src.begin(), ph.src.begin() + 4);
    f.insert(f.end(), ph.dst.begin(), ph.dst.begin() + 4);
    if (opt >= 4) {  // Router Alert, then NOPs and a final EOL
      Push8(f, 0x94);
      Push8(f, 4);
      Push16(f, 0);
      for (size_t i = 4; i + 1 < opt; ++i) Push8(f, 1);
      if (opt > 4) Push8(f, 0);
    }
    lay.l4_off = f.size();
  } else {
    Push16(f, kEthIpv6);
    lay.l3_off = f.size();
    lay.ip_hdr_len = 40;
    const std::vector<uint8_t> ext = EffectiveExt(spec);
    const uint32_t flow = static_cast<uint32_t>(m.Below(1 << 20));
    Push32(f, (6u << 28) | flow);
    Push16(f, 0);  // payload length, below
    Push8(f, ext.empty() ? proto : ext[0]);
    Push8(f, 64);  // hop limit
    ph.v6 = true;
    ph.src = {0x20, 0x01, 0x0d, 0xb8};
    ph.dst = {0xfd, 0x00};
    for (size_t i = 8; i < 16; ++i) ph.src[i] = m.Byte();
    for (size_t i = 2; i < 16; ++i) ph.dst[i] = m.Byte();
    f.insert(f.end(), ph.src.begin(), ph.src.end());
    f.insert(f.end(), ph.dst.begin(), ph.dst.end());
    bool frag_done = false;
    bool rsl_done = false;
    for (size_t i = 0; i < ext.size(); ++i) {
      const uint8_t next = i + 1 < ext.size() ? ext[i + 1] : proto;
      const size_t start = f.size();
      Push8(f, next);
      if (ext[i] == kExtFragment) {
        uint16_t fo = 0;
        if (!frag_done) {
          if (spec.fragment_nonfirst) fo |= 185 << 3;
          if (spec.fragment_first) fo |= 1;
          frag_done = true;
        }
        Push8(f, 0);
        Push16(f, fo);
        Push32(f, m.Next());
      } else if (ext[i] == kExtRouting) {
        const uint8_t sl = spec.routing_segments_left && !rsl_done ? 1 : 0;
        rsl_done = true;
        const bool srh = m.Next() & 1;
        Push8(f, 2);            // 24 bytes
        Push8(f, srh ? 4 : 2);  // routing type: SRH / type 2
        Push8(f, sl);           // segments left
        if (srh) {
          Push8(f, 0);   // last entry
          Push8(f, 0);   // flags
          Push16(f, 0);  // tag
        } else {
          Push32(f, 0);  // reserved
        }
        Push16(f, 0x2001);
        Push16(f, 0x0db8);
        PushRandom(f, m, 12);
      } else {  // hop-by-hop, destination options (and anything unknown): PadN only
        const size_t units = m.Below(2);
        const size_t len = (units + 1) * 8;
        Push8(f, units);
        Push8(f, 1);  // PadN
        Push8(f, len - 4);
        for (size_t k = 4; k < len; ++k) Push8(f, 0);
      }
      lay.ext_off.push_back(start);
      lay.ext_len.push_back(f.size() - start);
      lay.ext_type.push_back(ext[i]);
    }
    lay.l4_off = f.size();
  }

  const std::vector<uint8_t> l4 = BuildL4(spec, spec.l3, ph, m);
  f.insert(f.end(), l4.begin(), l4.end());
  lay.l4_len = l4.size();
  lay.ip_end = f.size();
  if (spec.l3 == L3Kind::kIpv4) {
    Put16(f, lay.l3_off + 2, lay.ip_end - lay.l3_off);
  } else {
    Put16(f, lay.l3_off + 4, lay.ip_end - lay.l3_off - 40);
  }
  PushRandom(f, m, padding);

  switch (spec.damage) {
    case Damage::kNone:
    case Damage::kTruncate:
      break;
    case Damage::kBadLength:
      ApplyBadLength(f, spec, lay);
      break;
    case Damage::kBadVersion: {
      Mix d(Hash(spec.payload_seed, 0x76657273ULL));
      const uint8_t good = spec.l3 == L3Kind::kIpv4 ? 4 : 6;
      uint8_t v = d.Next() & 1 ? (good == 4 ? 6 : 4) : static_cast<uint8_t>(d.Below(16));
      if (v == good) v = static_cast<uint8_t>((good + 1 + d.Below(15)) % 16);
      f[lay.l3_off] = static_cast<uint8_t>((v << 4) | (f[lay.l3_off] & 0x0f));
      break;
    }
    case Damage::kBadIhl:
      if (spec.l3 == L3Kind::kIpv4) {
        const uint8_t ihl = static_cast<uint8_t>(Hash(spec.payload_seed, 0x69686cULL) % 5);
        f[lay.l3_off] = static_cast<uint8_t>((f[lay.l3_off] & 0xf0) | ihl);
      }
      break;
    case Damage::kBadExtHeader:
      ApplyBadExt(f, spec, lay);
      break;
  }
  if (spec.l3 == L3Kind::kIpv4) WriteIp4HdrCsum(f, lay, spec.bad_ip4_hdr_csum);
  if (spec.damage == Damage::kTruncate && spec.truncate_to < f.size()) f.resize(spec.truncate_to);
  return f;
}

PacketSpec RandomSpec(std::mt19937_64& rng, size_t max_frame) {
  auto below = [&](uint64_t n) -> uint64_t { return n == 0 ? 0 : rng() % n; };
  auto pct = [&](uint64_t p) { return below(100) < p; };
  PacketSpec s;
  s.payload_seed = rng();

  uint64_t u = below(100);
  s.vlan_tags = u < 55 ? 0 : u < 80 ? 1 : u < 95 ? 2 : 3;

  u = below(100);
  s.l3 = u < 5 ? L3Kind::kNonIp : u < 52 ? L3Kind::kIpv4 : L3Kind::kIpv6;

  // L4: the native ICMP for the L3 is common, the other one (a mismatch, NA) occasional.
  const bool v6 = s.l3 == L3Kind::kIpv6;
  u = below(100);
  if (u < 28)
    s.l4 = L4Kind::kTcp;
  else if (u < 56)
    s.l4 = L4Kind::kUdp;
  else if (u < 66)
    s.l4 = L4Kind::kUdpLite;
  else if (u < 76)
    s.l4 = v6 ? L4Kind::kIcmp6 : L4Kind::kIcmp4;
  else if (u < 86)
    s.l4 = L4Kind::kSctp;
  else if (u < 92)
    s.l4 = L4Kind::kOther;
  else
    s.l4 = v6 ? L4Kind::kIcmp4 : L4Kind::kIcmp6;

  if (s.l3 == L3Kind::kIpv4 && pct(15)) s.ip4_option_bytes = 4 * (1 + below(10));
  if (v6) {
    static constexpr uint8_t kExt[] = {0, 60, 43, 44};
    u = below(100);
    size_t n = u < 50 ? 0 : u < 95 ? 1 + below(4) : 8 + below(2);
    for (size_t i = 0; i < n; ++i) s.ip6_ext.push_back(kExt[below(4)]);
    s.routing_segments_left = pct(5);
  }
  if (s.l3 != L3Kind::kNonIp) {
    s.fragment_first = pct(4);
    s.fragment_nonfirst = pct(4);
  }

  u = below(100);
  s.csum = u < 40   ? CsumState::kValid
           : u < 75 ? CsumState::kSeed
           : u < 90 ? CsumState::kCorrupt
                    : CsumState::kZero;
  s.corrupt_mask = static_cast<uint16_t>(1 + below(0xffff));
  s.csum_all_ones = pct(3);
  s.bad_ip4_hdr_csum = s.l3 == L3Kind::kIpv4 && pct(5);

  if (pct(20)) {
    std::vector<Damage> kinds = {Damage::kTruncate};
    if (s.l3 != L3Kind::kNonIp) {
      kinds.push_back(Damage::kBadLength);
      kinds.push_back(Damage::kBadVersion);
    }
    if (s.l3 == L3Kind::kIpv4) kinds.push_back(Damage::kBadIhl);
    if (v6) kinds.push_back(Damage::kBadExtHeader);
    s.damage = kinds[below(kinds.size())];
    if (s.damage == Damage::kBadExtHeader && s.ip6_ext.empty()) {
      static constexpr uint8_t kExt[] = {0, 60, 43, 44};
      s.ip6_ext.push_back(kExt[below(4)]);
    }
  }

  // Sizes. The fixed part is everything but payload, UDP trailer and padding.
  // IP length fields are 16 bits: keep the L3 part within 65535 bytes.
  const size_t cap = std::min(max_frame, 14 + 4 * static_cast<size_t>(s.vlan_tags) + 0xffff);
  auto fixed_size = [](const PacketSpec& spec) {
    PacketSpec b = spec;
    b.payload_len = 0;
    b.udp_trailer = 0;
    b.eth_padding = 0;
    b.damage = Damage::kNone;
    return Build(b).size();
  };
  size_t fixed = fixed_size(s);
  if (fixed > cap) {  // simplify
    s.vlan_tags = 0;
    s.ip4_option_bytes = 0;
    s.ip6_ext.clear();
    s.fragment_first = s.fragment_nonfirst = s.routing_segments_left = false;
    if (s.damage == Damage::kBadExtHeader) s.damage = Damage::kTruncate;
    fixed = fixed_size(s);
  }
  if (fixed > cap) {  // cannot fit even a bare frame: a truncated one
    s.damage = Damage::kTruncate;
    s.truncate_to = below(cap + 1);
    return s;
  }
  size_t room = cap - fixed;

  if (s.l4 == L4Kind::kUdp && s.l3 != L3Kind::kNonIp && pct(10)) {
    s.udp_trailer = std::min<size_t>(pct(80) ? 1 + below(16) : 1 + below(300), room);
    room -= s.udp_trailer;
  }

  // Target frame size: tiny, ~64, ~512, ~1500, near max_frame, or anywhere.
  u = below(100);
  size_t target;
  if (u < 25)
    target = fixed + s.udp_trailer + below(17);
  else if (u < 45)
    target = 54 + below(27);
  else if (u < 60)
    target = 400 + below(201);
  else if (u < 75)
    target = 1400 + below(131);
  else if (u < 85)
    target = cap - std::min<size_t>(cap, below(65));
  else
    target = below(cap + 1);
  const size_t used = fixed + s.udp_trailer;
  s.payload_len = target > used ? std::min(target - used, room) : 0;
  room -= s.payload_len;

  const size_t frame = fixed + s.udp_trailer + s.payload_len;
  u = below(100);
  if (u < 20 && frame < 60)
    s.eth_padding = std::min(60 - frame, room);
  else if (u < 25)
    s.eth_padding = std::min<size_t>(1 + below(32), room);

  if (s.l4 == L4Kind::kUdpLite) {
    const size_t L = 8 + s.payload_len;
    u = below(100);
    if (u < 40)
      s.udplite_coverage = 0;
    else if (u < 80)
      s.udplite_coverage = 8 + below(L - 8 + 1);
    else if (u < 90)
      s.udplite_coverage = 1 + below(7);
    else
      s.udplite_coverage = std::min<size_t>(L + 1 + below(32), 0xffff);
  }

  if (s.damage == Damage::kTruncate) {
    const size_t total = frame + s.eth_padding;
    s.truncate_to = pct(50) ? below(std::min(total, fixed + 8)) : below(total);
  }
  return s;
}

std::string Describe(const PacketSpec& s) {
  std::ostringstream o;
  o << L3Name(s.l3);
  if (s.l3 != L3Kind::kNonIp) o << '/' << L4Name(s.l4);
  o << " vlan=" << s.vlan_tags;
  if (s.l3 == L3Kind::kIpv4) o << " ip4opt=" << s.ip4_option_bytes;
  if (s.l3 == L3Kind::kIpv6) {
    o << " ext=[";
    const std::vector<uint8_t> ext = EffectiveExt(s);
    for (size_t i = 0; i < ext.size(); ++i) o << (i ? "," : "") << int{ext[i]};
    o << "]";
    if (ext.size() != s.ip6_ext.size()) o << "(spec " << s.ip6_ext.size() << ")";
    if (s.routing_segments_left) o << " segleft";
  }
  if (s.fragment_first) o << " frag-first";
  if (s.fragment_nonfirst) o << " frag-nonfirst";
  o << " payload=" << s.payload_len;
  if (s.udp_trailer) o << " udp_trailer=" << s.udp_trailer;
  if (s.l4 == L4Kind::kUdpLite || s.udplite_coverage) o << " cov=" << s.udplite_coverage;
  if (s.eth_padding) o << " pad=" << s.eth_padding;
  o << " csum=" << CsumName(s.csum);
  if (s.csum == CsumState::kCorrupt) {
    char b[16];
    std::snprintf(b, sizeof b, "0x%04x", s.corrupt_mask);
    o << "(mask=" << b << ")";
  }
  if (s.csum_all_ones) o << " all-ones";
  if (s.bad_ip4_hdr_csum) o << " bad-ip4-hdr-csum";
  o << " damage=" << DamageName(s.damage);
  if (s.damage == Damage::kTruncate) o << "(to=" << s.truncate_to << ")";
  if (s.damage == Damage::kBadLength) o << "(variant=" << ResolveVariant(s) << ")";
  char b[32];
  std::snprintf(b, sizeof b, "0x%016llx", static_cast<unsigned long long>(s.payload_seed));
  o << " seed=" << b;
  return o.str();
}

std::string HexDump(std::span<const uint8_t> bytes) {
  std::string out;
  char buf[32];
  for (size_t i = 0; i < bytes.size(); i += 16) {
    std::snprintf(buf, sizeof buf, "%04zx:", i);
    out += buf;
    for (size_t j = i; j < i + 16 && j < bytes.size(); ++j) {
      std::snprintf(buf, sizeof buf, " %02x", bytes[j]);
      out += buf;
    }
    out += '\n';
  }
  return out;
}

bool WritePcap(const std::string& path, const std::vector<std::vector<uint8_t>>& frames) {
  constexpr uint32_t kSnaplen = 262144;
  std::vector<uint8_t> out;
  auto le16 = [&](uint32_t v) {
    out.push_back(static_cast<uint8_t>(v));
    out.push_back(static_cast<uint8_t>(v >> 8));
  };
  auto le32 = [&](uint32_t v) {
    le16(v & 0xffff);
    le16(v >> 16);
  };
  le32(0xa1b2c3d4);  // magic (little endian file, microsecond timestamps)
  le16(2);
  le16(4);
  le32(0);  // thiszone
  le32(0);  // sigfigs
  le32(kSnaplen);
  le32(1);  // LINKTYPE_ETHERNET
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  if (!file) return false;
  file.write(reinterpret_cast<const char*>(out.data()), static_cast<std::streamsize>(out.size()));
  for (size_t i = 0; i < frames.size(); ++i) {
    out.clear();
    const uint32_t incl = static_cast<uint32_t>(std::min<size_t>(frames[i].size(), kSnaplen));
    le32(static_cast<uint32_t>(i / 1000000));  // ts_sec
    le32(static_cast<uint32_t>(i % 1000000));  // ts_usec: increasing
    le32(incl);
    le32(static_cast<uint32_t>(std::min<size_t>(frames[i].size(), 0xffffffffu)));
    file.write(reinterpret_cast<const char*>(out.data()), static_cast<std::streamsize>(out.size()));
    file.write(reinterpret_cast<const char*>(frames[i].data()), incl);
  }
  file.flush();
  return static_cast<bool>(file);
}

}  // namespace csumfix::testing
