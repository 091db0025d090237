// The independent reference for csumfix's checksum semantics (docs/SEMANTICS.md).
//
// Structure: checksum primitives (RFC 1071 sum, RFC 1624 update, CRC32c), then the parser
// (SEMANTICS.md §1), then classification (§2) and actions (§3). Every read is bounds-checked
// against the frame's span; nothing past frame.size() is touched.
//
// Readings of SEMANTICS.md where the text leaves room (the BPF side must match them):
//  - Order of §2 rules: is_gso, parse failure, UDP/UDP-Lite field 0, is_partial, then the
//    observe / verify rules. So UDP field 0 with is_partial is still ZERO (IPv4) / BAD (IPv6).
//  - The IPv4 header checksum is judged whenever the IPv4 header passes every §1.4 length and
//    version check, whatever follows (fragment, other protocol, L4 unparsable, GSO); verifying
//    actions then count IP4_HDR_BAD and drop-bad drops, whatever the class.
//  - is_gso: nothing is parsed, not even the IPv4 header (SEMANTICS.md §2).
//  - Under the XDP hook is_partial and is_gso are ignored (XDP cannot know them), and fill /
//    zero-udp4 write nothing; ACTION_BASE + the configured action is still counted.
//  - An IPv6 extension header is bounds-checked (8 bytes, then its full length) before its
//    routing segments-left / fragment fields are looked at: a cut one is UNPARSABLE, not NA.
//  - An action number >= CSF_ACT_MAX behaves as, and is counted as, pass.
#include "refcsum/refcsum.h"

#include <bit>
#include <cstring>

namespace csumfix::ref {
namespace {

// ---- Byte access (callers have bounds-checked `off`) -------------------------------------------
uint16_t Be16(std::span<const uint8_t> b, size_t off) {
  return static_cast<uint16_t>((b[off] << 8) | b[off + 1]);
}
uint32_t Le32(std::span<const uint8_t> b, size_t off) {
  return static_cast<uint32_t>(b[off]) | (static_cast<uint32_t>(b[off + 1]) << 8) |
         (static_cast<uint32_t>(b[off + 2]) << 16) | (static_cast<uint32_t>(b[off + 3]) << 24);
}
void PutBe16(std::span<uint8_t> b, size_t off, uint16_t v) {
  b[off] = static_cast<uint8_t>(v >> 8);
  b[off + 1] = static_cast<uint8_t>(v);
}
void PutLe32(std::span<uint8_t> b, size_t off, uint32_t v) {
  for (int i = 0; i < 4; ++i) b[off + i] = static_cast<uint8_t>(v >> (8 * i));
}

template <typename T>
T LoadNative(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Folds a 64-bit one's-complement accumulator to 16 bits (end-around carries).
uint16_t Fold64(uint64_t acc) {
  acc = (acc & 0xffffffffu) + (acc >> 32);  // <= 0x1_fffffffe
  acc = (acc & 0xffffffffu) + (acc >> 32);  // <= 0xffffffff
  acc = (acc & 0xffffu) + (acc >> 16);      // <= 0x1fffe
  acc = (acc & 0xffffu) + (acc >> 16);      // <= 0xffff
  return static_cast<uint16_t>(acc);
}

// One's-complement sum of `data` in *native* word order: the words are loaded with the host's
// byte order. Since the one's-complement sum commutes with byte swapping (RFC 1071 §2(B)), the
// caller converts the folded result to big-endian word order once, at the end.
uint16_t NativeSum(const uint8_t* p, size_t n, uint64_t acc) {
  // Four independent accumulators of 32-bit words (no 64-bit overflow before 2^32 words).
  uint64_t a0 = acc, a1 = 0, a2 = 0, a3 = 0;
  while (n >= 32) {
    const uint64_t w0 = LoadNative<uint64_t>(p);
    const uint64_t w1 = LoadNative<uint64_t>(p + 8);
    const uint64_t w2 = LoadNative<uint64_t>(p + 16);
    const uint64_t w3 = LoadNative<uint64_t>(p + 24);
    a0 += (w0 & 0xffffffffu) + (w0 >> 32);
    a1 += (w1 & 0xffffffffu) + (w1 >> 32);
    a2 += (w2 & 0xffffffffu) + (w2 >> 32);
    a3 += (w3 & 0xffffffffu) + (w3 >> 32);
    p += 32;
    n -= 32;
  }
  while (n >= 4) {
    a0 += LoadNative<uint32_t>(p);
    p += 4;
    n -= 4;
  }
  if (n >= 2) {
    a1 += LoadNative<uint16_t>(p);
    p += 2;
    n -= 2;
  }
  if (n == 1) {
    // The odd byte is the high byte of a big-endian word padded with zero: as a native load,
    // that is the bytes {b, 0}.
    const uint8_t last[2] = {*p, 0};
    a2 += LoadNative<uint16_t>(last);
  }
  // Each a_i grows by < 2^33 per 32 bytes, so it cannot overflow below 2^36 bytes of input.
  // Adding the 32-bit halves of the four accumulators (eight terms < 2^32) stays below 2^35.
  constexpr uint64_t kLo = 0xffffffffu;
  return Fold64((a0 & kLo) + (a0 >> 32) + (a1 & kLo) + (a1 >> 32) + (a2 & kLo) + (a2 >> 32) +
                (a3 & kLo) + (a3 >> 32));
}

// Converts between a big-endian word value and its native-load representation (an involution).
uint16_t BeToNative(uint16_t v) {
  if constexpr (std::endian::native == std::endian::little) {
    return static_cast<uint16_t>((v >> 8) | (v << 8));
  } else {
    return v;
  }
}

// ---- CRC32c, slicing-by-8 with compile-time tables ---------------------------------------------
constexpr uint32_t kCrc32cPoly = 0x82F63B78u;  // Castagnoli, reflected

using CrcTables = std::array<std::array<uint32_t, 256>, 8>;

constexpr CrcTables MakeCrcTables() {
  CrcTables t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kCrc32cPoly : c >> 1;
    t[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; ++i) {
    for (size_t s = 1; s < 8; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xff];
  }
  return t;
}

constexpr CrcTables kCrcTables = MakeCrcTables();

// Raw CRC update (no init / final xor).
uint32_t Crc32cUpdate(uint32_t crc, const uint8_t* p, size_t n) {
  const auto& t = kCrcTables;
  while (n >= 8) {
    // Byte-wise assembly keeps this independent of host endianness.
    const uint32_t lo = crc ^ (static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
                               (static_cast<uint32_t>(p[2]) << 16) |
                               (static_cast<uint32_t>(p[3]) << 24));
    crc = t[7][lo & 0xff] ^ t[6][(lo >> 8) & 0xff] ^ t[5][(lo >> 16) & 0xff] ^ t[4][lo >> 24] ^
          t[3][p[4]] ^ t[2][p[5]] ^ t[1][p[6]] ^ t[0][p[7]];
    p += 8;
    n -= 8;
  }
  while (n-- > 0) crc = (crc >> 8) ^ t[0][(crc ^ *p++) & 0xff];
  return crc;
}

// ---- Protocol constants ------------------------------------------------------------------------
constexpr size_t kEthHdrLen = 14;
constexpr size_t kVlanTagLen = 4;
constexpr int kMaxVlanTags = 2;
constexpr uint16_t kEthP8021Q = 0x8100;
constexpr uint16_t kEthP8021AD = 0x88a8;
constexpr uint16_t kEthPIpv4 = 0x0800;
constexpr uint16_t kEthPIpv6 = 0x86dd;

constexpr size_t kIpv4MinHdr = 20;
constexpr uint16_t kIpv4Mf = 0x2000;
constexpr uint16_t kIpv4OffsetMask = 0x1fff;
constexpr size_t kIpv6Hdr = 40;
constexpr int kMaxIpv6ExtHeaders = 8;

constexpr uint8_t kProtoHopByHop = 0;
constexpr uint8_t kProtoIcmp4 = 1;
constexpr uint8_t kProtoTcp = 6;
constexpr uint8_t kProtoUdp = 17;
constexpr uint8_t kProtoRouting = 43;
constexpr uint8_t kProtoFragment = 44;
constexpr uint8_t kProtoIcmp6 = 58;
constexpr uint8_t kProtoDstOpts = 60;
constexpr uint8_t kProtoSctp = 132;
constexpr uint8_t kProtoUdpLite = 136;

Parsed Stop(Parsed p, uint32_t cls) {
  p.cls = cls;
  return p;
}

bool IsIpv6ExtHeader(uint8_t nh) {
  return nh == kProtoHopByHop || nh == kProtoDstOpts || nh == kProtoRouting ||
         nh == kProtoFragment;
}

// §1.6: fills in the L4 fields of `p` (l4_off and l4_len already set) or stops.
Parsed ParseL4(std::span<const uint8_t> f, Parsed p) {
  const size_t l4 = p.l4_off;
  const size_t len = p.l4_len;
  switch (p.proto) {
    case kProtoTcp: {
      if (len < 20) return Stop(p, CSF_CLASS_UNPARSABLE);
      const size_t doff = static_cast<size_t>(f[l4 + 12] >> 4) * 4;
      if (doff < 20 || doff > len) return Stop(p, CSF_CLASS_UNPARSABLE);
      p.field_off = l4 + 16;
      p.covered = len;
      p.pseudo_len = len;
      p.has_pseudo = true;
      break;
    }
    case kProtoUdp: {
      if (len < 8) return Stop(p, CSF_CLASS_UNPARSABLE);
      const size_t ulen = Be16(f, l4 + 4);
      if (ulen < 8 || ulen > len) return Stop(p, CSF_CLASS_UNPARSABLE);
      p.field_off = l4 + 6;
      p.covered = ulen;
      p.pseudo_len = ulen;
      p.has_pseudo = true;
      break;
    }
    case kProtoUdpLite: {
      if (len < 8) return Stop(p, CSF_CLASS_UNPARSABLE);
      size_t cov = Be16(f, l4 + 4);
      if (cov == 0) {
        cov = len;
      } else if (cov < 8 || cov > len) {
        return Stop(p, CSF_CLASS_UNPARSABLE);
      }
      p.field_off = l4 + 6;
      p.covered = cov;
      p.pseudo_len = len;
      p.has_pseudo = true;
      break;
    }
    case kProtoIcmp4: {
      if (p.l3 != L3::kIpv4) return Stop(p, CSF_CLASS_NA);
      if (len < 8) return Stop(p, CSF_CLASS_UNPARSABLE);
      p.field_off = l4 + 2;
      p.covered = len;
      p.has_pseudo = false;
      break;
    }
    case kProtoIcmp6: {
      if (p.l3 != L3::kIpv6) return Stop(p, CSF_CLASS_NA);
      if (len < 8) return Stop(p, CSF_CLASS_UNPARSABLE);
      p.field_off = l4 + 2;
      p.covered = len;
      p.pseudo_len = len;
      p.has_pseudo = true;
      break;
    }
    case kProtoSctp: {
      if (len < 12) return Stop(p, CSF_CLASS_UNPARSABLE);
      p.field_off = l4 + 8;
      p.covered = len;
      p.has_pseudo = false;
      break;
    }
    default:
      return Stop(p, CSF_CLASS_NA);
  }
  p.cls = CSF_CLASS_NONE;
  return p;
}

// §1.4.
Parsed ParseIpv4(std::span<const uint8_t> f, Parsed p) {
  const size_t off = p.l3_off;
  const size_t left = f.size() - off;
  if (left < kIpv4MinHdr) return Stop(p, CSF_CLASS_UNPARSABLE);
  if ((f[off] >> 4) != 4) return Stop(p, CSF_CLASS_UNPARSABLE);
  const size_t hlen = static_cast<size_t>(f[off] & 0x0f) * 4;
  if (hlen < kIpv4MinHdr || hlen > left) return Stop(p, CSF_CLASS_UNPARSABLE);
  const size_t tot = Be16(f, off + 2);
  if (tot < hlen || tot > left) return Stop(p, CSF_CLASS_UNPARSABLE);
  // The header is well formed: its checksum can be judged (only verifying actions count it).
  p.ip4_hdr_ok = OnesSum16(f.subspan(off, hlen)) == 0xffff;
  const uint16_t frag = Be16(f, off + 6);
  if ((frag & kIpv4OffsetMask) != 0 || (frag & kIpv4Mf) != 0) return Stop(p, CSF_CLASS_NA);
  p.proto = f[off + 9];
  p.l4_off = off + hlen;
  p.l4_len = tot - hlen;
  return ParseL4(f, p);
}

// §1.5.
Parsed ParseIpv6(std::span<const uint8_t> f, Parsed p) {
  const size_t off = p.l3_off;
  const size_t left = f.size() - off;
  if (left < kIpv6Hdr || (f[off] >> 4) != 6) return Stop(p, CSF_CLASS_UNPARSABLE);
  const size_t plen = Be16(f, off + 4);
  if (plen == 0) return Stop(p, CSF_CLASS_NA);  // jumbogram / BIG TCP
  if (kIpv6Hdr + plen > left) return Stop(p, CSF_CLASS_UNPARSABLE);
  const size_t end = off + kIpv6Hdr + plen;
  size_t pos = off + kIpv6Hdr;
  uint8_t nh = f[off + 6];
  for (int count = 0; IsIpv6ExtHeader(nh); ++count) {
    if (count == kMaxIpv6ExtHeaders) return Stop(p, CSF_CLASS_NA);
    // The header must fit before it is interpreted.
    if (end - pos < 8) return Stop(p, CSF_CLASS_UNPARSABLE);
    const size_t hlen = nh == kProtoFragment ? 8 : (static_cast<size_t>(f[pos + 1]) + 1) * 8;
    if (hlen > end - pos) return Stop(p, CSF_CLASS_UNPARSABLE);
    if (nh == kProtoRouting && f[pos + 3] != 0) return Stop(p, CSF_CLASS_NA);
    if (nh == kProtoFragment) {
      const bool nonfirst = (Be16(f, pos + 2) >> 3) != 0;
      const bool more = (f[pos + 3] & 1) != 0;
      if (nonfirst || more) return Stop(p, CSF_CLASS_NA);
    }
    nh = f[pos];
    pos += hlen;
  }
  p.proto = nh;
  p.l4_off = pos;
  p.l4_len = end - pos;
  return ParseL4(f, p);
}

// Value of the L4 checksum field as stored (SCTP: the little-endian CRC32c).
uint32_t FieldValue(std::span<const uint8_t> f, const Parsed& p) {
  return p.proto == kProtoSctp ? Le32(f, p.field_off) : Be16(f, p.field_off);
}

// Valid iff the sum over the covered bytes and the pseudo-header (`pseudo`, 0 if none), field
// included, folds to 0xffff; SCTP: iff the stored CRC32c is the correct one.
bool IsValid(std::span<const uint8_t> f, const Parsed& p, uint16_t pseudo) {
  if (p.proto == kProtoSctp) return FieldValue(f, p) == CorrectField(f, p);
  return OnesSum16(f.subspan(p.l4_off, p.covered), pseudo) == 0xffff;
}

// The seed an offloading sender leaves in the field; false if the protocol has none (ICMPv4).
bool Seed(const Parsed& p, uint16_t pseudo, uint32_t* seed) {
  if (p.proto == kProtoIcmp4) return false;
  *seed = p.proto == kProtoSctp ? 0 : pseudo;
  return true;
}

bool Verifies(uint32_t action) {
  return action == CSF_ACT_VERIFY || action == CSF_ACT_DROP_BAD || action == CSF_ACT_FILL ||
         action == CSF_ACT_ZERO_UDP4;
}

// Everything Apply needs to know about a frame under an action.
struct Decision {
  uint32_t cls = CSF_CLASS_NONE;
  Parsed parsed;
  bool ip4_hdr_bad = false;  // counted (and dropped by drop-bad) only for verifying actions
};

Decision Decide(std::span<const uint8_t> f, uint32_t action, const Meta& meta) {
  Decision d;
  if (action != CSF_ACT_OBSERVE && !Verifies(action)) return d;  // pass (or unknown): NONE
  // XDP never sees the skb's CHECKSUM_PARTIAL or gso_size.
  const bool tc = meta.hook != CSF_HOOK_XDP;
  const bool is_partial = tc && meta.is_partial;
  const bool is_gso = tc && meta.is_gso;

  if (is_gso) {  // left to segmentation: not parsed at all
    d.cls = CSF_CLASS_GSO;
    return d;
  }
  d.parsed = Parse(f);
  const Parsed& p = d.parsed;
  d.ip4_hdr_bad = Verifies(action) && p.l3 == L3::kIpv4 && !p.ip4_hdr_ok;
  if (p.cls != CSF_CLASS_NONE) {
    d.cls = p.cls;
    return d;
  }
  const uint32_t field = FieldValue(f, p);
  if (p.proto == kProtoUdp && field == 0) {
    d.cls = p.l3 == L3::kIpv4 ? CSF_CLASS_ZERO : CSF_CLASS_BAD;
    return d;
  }
  if (p.proto == kProtoUdpLite && field == 0) {
    d.cls = CSF_CLASS_BAD;
    return d;
  }
  if (is_partial) {
    d.cls = CSF_CLASS_PARTIAL;
    return d;
  }
  const uint16_t pseudo = PseudoSum(f, p);
  uint32_t seed = 0;
  const bool is_seed = Seed(p, pseudo, &seed) && field == seed;
  if (action == CSF_ACT_OBSERVE) {
    d.cls = is_seed ? CSF_CLASS_PARTIAL : CSF_CLASS_UNVERIFIED;
  } else if (IsValid(f, p, pseudo)) {
    d.cls = CSF_CLASS_VALID;
  } else {
    d.cls = is_seed ? CSF_CLASS_PARTIAL : CSF_CLASS_BAD;
  }
  return d;
}

constexpr std::array<std::string_view, CSF_CLASS_MAX> kClassNames = {
    "none", "valid", "partial", "bad", "zero", "na", "unparsable", "gso", "unverified"};
constexpr std::array<std::string_view, CSF_ACT_MAX> kActionNames = {
    "pass", "observe", "verify", "drop-bad", "fill", "zero-udp4"};

}  // namespace

// ---- Checksum primitives -----------------------------------------------------------------------
uint16_t OnesSum16(std::span<const uint8_t> data, uint32_t initial) {
  const uint16_t init_native = BeToNative(Fold64(initial));
  return BeToNative(NativeSum(data.data(), data.size(), init_native));
}

uint16_t InternetChecksum(std::span<const uint8_t> data) {
  return static_cast<uint16_t>(~OnesSum16(data));
}

uint16_t IncrementalUpdate(uint16_t hc, uint16_t old_word, uint16_t new_word) {
  const uint64_t not_hc = static_cast<uint16_t>(~hc);
  const uint64_t not_m = static_cast<uint16_t>(~old_word);
  return static_cast<uint16_t>(~Fold64(not_hc + not_m + new_word));
}

uint32_t Crc32c(std::span<const uint8_t> data) {
  return ~Crc32cUpdate(0xffffffffu, data.data(), data.size());
}

// ---- Parsing -----------------------------------------------------------------------------------
Parsed Parse(std::span<const uint8_t> frame) {
  Parsed p;
  if (frame.size() < kEthHdrLen) return Stop(p, CSF_CLASS_UNPARSABLE);
  uint16_t ethertype = Be16(frame, 12);
  size_t off = kEthHdrLen;
  while (ethertype == kEthP8021Q || ethertype == kEthP8021AD) {
    if (p.vlan_tags == kMaxVlanTags) return Stop(p, CSF_CLASS_NA);  // a third tag
    if (frame.size() - off < kVlanTagLen) return Stop(p, CSF_CLASS_UNPARSABLE);
    ethertype = Be16(frame, off + 2);
    off += kVlanTagLen;
    ++p.vlan_tags;
  }
  p.l3_off = off;
  if (ethertype == kEthPIpv4) {
    p.l3 = L3::kIpv4;
    return ParseIpv4(frame, p);
  }
  if (ethertype == kEthPIpv6) {
    p.l3 = L3::kIpv6;
    return ParseIpv6(frame, p);
  }
  return Stop(p, CSF_CLASS_NA);
}

uint16_t PseudoSum(std::span<const uint8_t> frame, const Parsed& p) {
  if (!p.has_pseudo) return 0;
  if (p.l3 == L3::kIpv4) {
    // source, destination (8 bytes at IP offset 12), zero, protocol, 16-bit length.
    const uint32_t rest = p.proto + static_cast<uint32_t>(p.pseudo_len & 0xffff);
    return OnesSum16(frame.subspan(p.l3_off + 12, 8), rest);
  }
  // source, destination (32 bytes at IP offset 8), 32-bit length, 3 zero bytes, next header.
  const uint32_t len32 = static_cast<uint32_t>(p.pseudo_len);
  const uint32_t rest = (len32 >> 16) + (len32 & 0xffff) + p.proto;
  return OnesSum16(frame.subspan(p.l3_off + 8, 32), rest);
}

uint32_t CorrectField(std::span<const uint8_t> frame, const Parsed& p) {
  if (p.cls != CSF_CLASS_NONE) return 0;  // no L4 checksum was found
  const size_t field_rel = p.field_off - p.l4_off;
  if (p.proto == kProtoSctp) {
    // CRC32c over the L bytes with the 4-byte field taken as zero.
    static constexpr uint8_t kZero[4] = {};
    const uint8_t* l4 = frame.data() + p.l4_off;
    uint32_t crc = Crc32cUpdate(0xffffffffu, l4, field_rel);
    crc = Crc32cUpdate(crc, kZero, sizeof kZero);
    crc = Crc32cUpdate(crc, l4 + field_rel + 4, p.covered - field_rel - 4);
    return ~crc;
  }
  // Sum with the 16-bit field taken as zero: the bytes before it (an even count, so the word
  // grid is preserved) and the bytes after it.
  const auto covered = frame.subspan(p.l4_off, p.covered);
  uint16_t sum = OnesSum16(covered.subspan(field_rel + 2), PseudoSum(frame, p));
  sum = OnesSum16(covered.first(field_rel), sum);
  const uint16_t value = static_cast<uint16_t>(~sum);
  return value == 0 ? 0xffff : value;  // what skb_checksum_help() writes
}

// ---- Policy ------------------------------------------------------------------------------------
uint32_t Classify(std::span<const uint8_t> frame, uint32_t action, const Meta& meta) {
  return Decide(frame, action, meta).cls;
}

Result Apply(uint32_t action, std::span<const uint8_t> frame, const Meta& meta) {
  const Decision d = Decide(frame, action, meta);
  const Parsed& p = d.parsed;
  Result r;
  r.cls = d.cls;
  r.out.assign(frame.begin(), frame.end());
  r.deltas[CSF_CTR_PACKETS] = 1;
  r.deltas[CSF_CTR_BYTES] = frame.size();
  r.deltas[CSF_CTR_CLASS_BASE + d.cls] = 1;
  // An unknown action is treated as pass (Decide returned NONE for it).
  r.deltas[CSF_CTR_ACTION_BASE + (action < CSF_ACT_MAX ? action : CSF_ACT_PASS)] = 1;
  if (d.ip4_hdr_bad) r.deltas[CSF_CTR_IP4_HDR_BAD] = 1;

  if (action == CSF_ACT_DROP_BAD && (d.cls == CSF_CLASS_BAD || d.ip4_hdr_bad)) {
    r.verdict = Verdict::kDrop;
    r.deltas[CSF_CTR_DROPPED] = 1;
    return r;
  }
  // Under XDP a frame not dropped is redirected when the hook is configured so, else passed.
  const bool xdp = meta.hook == CSF_HOOK_XDP;
  if (xdp && meta.xdp_redirect) r.verdict = Verdict::kRedirect;
  // fill / zero-udp4 modify only PARTIAL packets; under XDP only frames that leave by
  // XDP_REDIRECT (on XDP_PASS the kernel still completes them itself: they act as verify).
  const bool modifies = (action == CSF_ACT_FILL || action == CSF_ACT_ZERO_UDP4) &&
                        (!xdp || meta.xdp_redirect) && d.cls == CSF_CLASS_PARTIAL;
  if (!modifies) return r;
  std::span<uint8_t> out(r.out);
  if (action == CSF_ACT_ZERO_UDP4 && p.l3 == L3::kIpv4 && p.proto == kProtoUdp) {
    PutBe16(out, p.field_off, 0);
    r.deltas[CSF_CTR_ZEROED] = 1;
    return r;
  }
  const uint32_t value = CorrectField(frame, p);
  if (p.proto == kProtoSctp) {
    PutLe32(out, p.field_off, value);
  } else {
    PutBe16(out, p.field_off, static_cast<uint16_t>(value));
  }
  r.deltas[CSF_CTR_FILLED] = 1;
  return r;
}

// ---- Captures ----------------------------------------------------------------------------------
Inspection Inspect(std::span<const uint8_t> frame) {
  Inspection in;
  in.cls = Classify(frame, CSF_ACT_VERIFY, Meta{});
  in.parsed = Parse(frame);
  const Parsed& p = in.parsed;
  if (p.l3 == L3::kIpv4 && frame.size() >= p.l3_off + 4) {
    in.ip_len = Be16(frame, p.l3_off + 2);
  } else if (p.l3 == L3::kIpv6 && frame.size() >= p.l3_off + 6) {
    const size_t plen = Be16(frame, p.l3_off + 4);
    in.ip_len = plen == 0 ? 0 : kIpv6Hdr + plen;  // 0: jumbogram / BIG TCP
  }
  if (p.cls != CSF_CLASS_NONE) return in;
  in.has_field = true;
  in.found = FieldValue(frame, p);
  in.correct = CorrectField(frame, p);
  in.has_seed = Seed(p, PseudoSum(frame, p), &in.seed);
  return in;
}

std::string_view ClassName(uint32_t cls) {
  return cls < kClassNames.size() ? kClassNames[cls] : std::string_view("unknown");
}

std::string_view ActionName(uint32_t action) {
  return action < kActionNames.size() ? kActionNames[action] : std::string_view("unknown");
}

uint32_t ActionFromName(std::string_view name) {
  for (uint32_t a = 0; a < kActionNames.size(); ++a) {
    if (kActionNames[a] == name) return a;
  }
  return CSF_ACT_MAX;
}

}  // namespace csumfix::ref
