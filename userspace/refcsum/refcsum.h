// The independent reference for csumfix's checksum semantics (docs/SEMANTICS.md).
// Shares nothing with bpf/ but include/csumfix/abi.h. No libbpf, no kernel headers beyond abi.h.
#ifndef CSUMFIX_USERSPACE_REFCSUM_REFCSUM_H_
#define CSUMFIX_USERSPACE_REFCSUM_REFCSUM_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "csumfix/abi.h"

namespace csumfix::ref {

// ---- Checksum primitives -------------------------------------------------------------------
// RFC 1071 one's-complement sum of `data` (big-endian 16-bit words, odd byte padded with zero)
// added to `initial`, folded to 16 bits. Host-order result.
uint16_t OnesSum16(std::span<const uint8_t> data, uint32_t initial = 0);
// Complement of OnesSum16: the Internet checksum of `data` (host order).
uint16_t InternetChecksum(std::span<const uint8_t> data);
// RFC 1624 eqn. 3: new checksum HC' = ~(~HC + ~m + m') after a 16-bit word changes m -> m'.
uint16_t IncrementalUpdate(uint16_t hc, uint16_t old_word, uint16_t new_word);
// CRC32c (Castagnoli), reflected, init and final xor 0xffffffff (as SCTP uses it).
uint32_t Crc32c(std::span<const uint8_t> data);

// ---- Parsing ---------------------------------------------------------------------------------
enum class L3 : uint8_t { kNone, kIpv4, kIpv6 };

struct Parsed {
  uint32_t cls = CSF_CLASS_NA;  // CSF_CLASS_NA / UNPARSABLE when parsing stopped early,
                                // otherwise CSF_CLASS_NONE meaning "L4 found, not yet classified"
  L3 l3 = L3::kNone;
  size_t l3_off = 0;       // offset of the IP header in the frame
  size_t l4_off = 0;       // offset of the L4 header in the frame
  size_t l4_len = 0;       // L: the L4 segment length
  size_t covered = 0;      // bytes covered by the L4 checksum (ulen / coverage / L)
  size_t pseudo_len = 0;   // length used in the pseudo-header
  size_t field_off = 0;    // offset of the checksum field in the frame
  uint8_t proto = 0;       // L4 protocol
  int vlan_tags = 0;
  bool has_pseudo = false; // L4 checksum includes a pseudo-header
  bool ip4_hdr_ok = true;  // IPv4 header checksum correct (always true for IPv6)
};

// Parses per SEMANTICS.md §1. Never reads past frame.size().
Parsed Parse(std::span<const uint8_t> frame);

// Folded pseudo-header sum for a parsed packet (the "seed", host order). 0 if no pseudo-header.
uint16_t PseudoSum(std::span<const uint8_t> frame, const Parsed& p);
// The correct value of the L4 checksum field (host order; for SCTP the CRC32c value).
uint32_t CorrectField(std::span<const uint8_t> frame, const Parsed& p);

// ---- Policy ----------------------------------------------------------------------------------
struct Meta {
  uint32_t hook = CSF_HOOK_TC_INGRESS;  // CSF_HOOK_*
  bool is_partial = false;              // skb CHECKSUM_PARTIAL (tc only)
  bool is_gso = false;                  // skb gso_size != 0 (tc only)
  bool xdp_redirect = false;            // XDP: the frame leaves by XDP_REDIRECT (fill applies)
};

enum class Verdict : uint8_t { kPass, kDrop, kRedirect };

struct Result {
  Verdict verdict = Verdict::kPass;
  uint32_t cls = CSF_CLASS_NONE;
  std::vector<uint8_t> out;                    // the frame after the action
  std::array<uint64_t, CSF_CTR_MAX> deltas{};  // counter increments for (ifindex, hook)
};

// Classifies `frame` as `action` would (SEMANTICS.md §2).
uint32_t Classify(std::span<const uint8_t> frame, uint32_t action, const Meta& meta);
// Applies `action` (CSF_ACT_*) to `frame` exactly as the BPF programs must (SEMANTICS.md §3).
Result Apply(uint32_t action, std::span<const uint8_t> frame, const Meta& meta);

// ---- Captures (a frame as a packet capture shows it: no skb metadata, no action) ------------
// What a capture can tell about a frame's L4 checksum, for `csumfix diagnose`.
struct Inspection {
  uint32_t cls = CSF_CLASS_NONE;  // Classify(frame, CSF_ACT_VERIFY, Meta{}): no is_partial/is_gso
  Parsed parsed;
  bool has_field = false;  // an L4 checksum field was found (parsed.cls == CSF_CLASS_NONE)
  uint32_t found = 0;      // the field as stored (host order; SCTP: the little-endian CRC32c)
  uint32_t correct = 0;    // CorrectField()
  bool has_seed = false;   // the protocol has a seed (all but ICMPv4)
  uint32_t seed = 0;       // what an offloading sender leaves (SCTP: 0)
  size_t ip_len = 0;       // declared IP packet length (IPv4 total length, IPv6 40 + payload
                           // length); 0 when the field is not in the frame or says 0 (BIG TCP)
};
Inspection Inspect(std::span<const uint8_t> frame);

std::string_view ClassName(uint32_t cls);    // "valid", "partial", ...
std::string_view ActionName(uint32_t action);  // "pass", "observe", "verify", "drop-bad", ...
// Parses an action name; returns CSF_ACT_MAX when unknown.
uint32_t ActionFromName(std::string_view name);

}  // namespace csumfix::ref

#endif  // CSUMFIX_USERSPACE_REFCSUM_REFCSUM_H_
