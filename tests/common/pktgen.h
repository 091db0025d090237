// Packet builder and seeded generator for csumfix tests. Computes its own checksums with a naive
// byte-at-a-time implementation (a third opinion beside refcsum and the BPF code).
#ifndef CSUMFIX_TESTS_COMMON_PKTGEN_H_
#define CSUMFIX_TESTS_COMMON_PKTGEN_H_

#include <cstddef>
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <vector>

namespace csumfix::testing {

enum class L3Kind : uint8_t { kNonIp, kIpv4, kIpv6 };
enum class L4Kind : uint8_t { kTcp, kUdp, kUdpLite, kIcmp4, kIcmp6, kSctp, kOther };
enum class CsumState : uint8_t {
  kValid,    // correct checksum (a computed 0 is written as 0xffff, every Internet checksum)
  kSeed,     // what an offloading sender leaves: folded pseudo sum (SCTP and ICMPv4: 0)
  kCorrupt,  // correct value xor a nonzero mask (never equal to valid, seed or zero)
  kZero,     // field 0
};
// Damage is applied after the L4 checksum is computed (the L4 checksum is not recomputed); the IPv4
// header checksum is rewritten after damage, so it stays correct unless bad_ip4_hdr_csum.
enum class Damage : uint8_t {
  kNone,
  kTruncate,      // cut the frame at a random length (may fall inside any header)
  kBadLength,     // IPv4 total length / IPv6 payload length / UDP length / TCP doff made inconsistent
  kBadVersion,    // IP version nibble wrong
  kBadIhl,        // IPv4 IHL < 5
  kBadExtHeader,  // IPv6 extension header length runs past the payload
};

struct PacketSpec {
  int vlan_tags = 0;                 // 0..3; tags alternate 0x88a8 (outer) / 0x8100
  L3Kind l3 = L3Kind::kIpv4;
  L4Kind l4 = L4Kind::kUdp;
  size_t ip4_option_bytes = 0;       // 0..40, multiple of 4
  // IPv6 extension headers in order, by next-header number: 0 (hop-by-hop), 60 (destination
  // options), 43 (routing type 4 or 2 by seed, segments left 0), 44 (atomic fragment: offset 0,
  // M 0). Build() appends a 44 if an IPv6 fragment is requested and none is listed, a 43 if
  // routing_segments_left and none is listed, and a 60 for kBadExtHeader with an empty list; the
  // first 44 / first 43 carries the fragment / segments-left setting.
  std::vector<uint8_t> ip6_ext;
  bool fragment_first = false;       // IPv4 MF set / IPv6 fragment header with M set, offset 0
  bool fragment_nonfirst = false;    // fragment offset != 0
  bool routing_segments_left = false;// IPv6 routing header with segments left != 0
  // L4 payload bytes after the L4 header. TCP options (0/4/12/20 bytes, from payload_seed) are
  // taken out of it when it is large enough, so L = 20 + payload_len for TCP. kNonIp builds an ARP
  // frame (28 bytes) followed by payload_len bytes; kOther is GRE (protocol 47, 4-byte header).
  size_t payload_len = 0;
  size_t udp_trailer = 0;            // UDP: bytes after ulen inside the IP payload
  size_t udplite_coverage = 0;       // UDP-Lite coverage field (0 = whole)
  size_t eth_padding = 0;            // bytes after the IP packet
  CsumState csum = CsumState::kValid;
  uint16_t corrupt_mask = 0x1234;    // used by kCorrupt (nonzero)
  bool bad_ip4_hdr_csum = false;
  Damage damage = Damage::kNone;
  size_t truncate_to = 0;            // used by kTruncate
  uint64_t payload_seed = 0;         // payload bytes come from this seed
  // Which variant of kBadLength to apply; -1 = derived from payload_seed. 0: IP length past the
  // frame end; 1: IPv4 total length < IHL*4 / IPv6 payload length 0 (jumbogram, NA); 2: IP length
  // leaves fewer L4 bytes than the L4 minimum; 3: L4 length field (UDP ulen < 8 or > L, TCP doff
  // < 5 or doff*4 > L, UDP-Lite coverage 1..7 or > L; other L4 kinds fall back to 0).
  int damage_variant = -1;
  // TCP/UDP/UDP-Lite/ICMP: adjust the source port (ICMP: identifier) so that the correct checksum
  // computes to 0x0000 and is therefore written as 0xffff (the RFC 1071 / skb_checksum_help edge).
  // A 0x0000 field is then valid too (kZero on TCP/ICMP/ICMPv6, and kSeed on ICMPv4).
  bool csum_all_ones = false;
};

// Builds the frame (starting at the Ethernet header).
std::vector<uint8_t> Build(const PacketSpec& spec);

// A random spec covering every combination above with frame sizes from 14 to max_frame bytes.
PacketSpec RandomSpec(std::mt19937_64& rng, size_t max_frame);

// One line describing the spec (for failure messages).
std::string Describe(const PacketSpec& spec);

// Hex dump, 16 bytes a line with offsets.
std::string HexDump(std::span<const uint8_t> bytes);

// Writes frames to a classic pcap file (LINKTYPE_ETHERNET). Returns false on I/O error.
bool WritePcap(const std::string& path, const std::vector<std::vector<uint8_t>>& frames);

}  // namespace csumfix::testing

#endif  // CSUMFIX_TESTS_COMMON_PKTGEN_H_
