// `csumfix diagnose`: reads a packet capture (libpcap: pcap or pcapng; Ethernet, Linux cooked
// SLL/SLL2, raw IP) and says, per packet and per flow, what its L4 checksums are: valid, the
// seed an offloading sender leaves, really bad, UDP-over-IPv4 zero, a GSO super-frame, not
// applicable, malformed, or cut by the snaplen. Every checksum judgement comes from the
// independent reference (refcsum::Inspect); this library only reads captures and counts.
#ifndef CSUMFIX_USERSPACE_DIAGNOSE_DIAGNOSE_H_
#define CSUMFIX_USERSPACE_DIAGNOSE_DIAGNOSE_H_

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace csumfix::diagnose {

// What a captured packet's checksum is. Names (KindName) are the JSON "class" values.
enum class Kind : uint8_t {
  kValid,      // "valid": the L4 checksum verifies
  kSeed,       // "seed": the field holds the pseudo-header seed (CHECKSUM_PARTIAL, captured
               //   before offload completed it; not corruption)
  kBad,        // "bad": wrong (incl. UDP/UDP-Lite over IPv6 with 0)
  kZero,       // "zero": UDP over IPv4 with checksum 0 (allowed, RFC 768)
  kGso,        // "gso": IP length above the MTU: a GSO/TSO/GRO super-frame, never on a wire
  kNa,         // "na": no L4 checksum to check (non-IP, fragment, other protocol)
  kMalformed,  // "malformed": headers cut short or inconsistent in a fully captured frame
  kTruncated,  // "truncated": the snaplen cut the packet; its checksum cannot be verified
};
inline constexpr size_t kKinds = 8;
std::string_view KindName(Kind k);

struct Options {
  uint32_t mtu = 1500;    // an IP packet longer than this is a super-frame
  bool keep_all = false;  // Report::packets holds every packet (else only the non-valid ones)
};

// Flow key as seen (one direction). ipver 0: every non-IP frame shares one key.
struct FlowKey {
  uint8_t ipver = 0;
  uint8_t proto = 0;
  bool has_proto = false;  // the IP protocol was readable
  bool has_ports = false;  // TCP/UDP/UDP-Lite/SCTP with readable ports (not a later fragment)
  std::array<uint8_t, 16> src{};
  std::array<uint8_t, 16> dst{};
  uint16_t sport = 0;
  uint16_t dport = 0;
  auto operator<=>(const FlowKey&) const = default;
};

struct Packet {
  uint64_t frame = 0;  // 1-based, as tshark numbers frames
  int64_t ts_sec = 0;
  int64_t ts_usec = 0;
  uint32_t caplen = 0;  // bytes captured
  uint32_t len = 0;     // bytes on the wire
  Kind kind = Kind::kNa;
  FlowKey key;
  std::string direction;  // "in" / "out" from the SLL/SLL2 packet type, else empty
  // The checksum field as stored and its correct value; set for valid/seed/bad/zero.
  bool has_field = false;
  uint32_t found = 0;
  uint32_t correct = 0;
  bool has_seed = false;
  uint32_t seed = 0;
  size_t ip_len = 0;         // IP packet length (declared, or on the wire for BIG TCP), 0 if none
  bool ip4_hdr_bad = false;  // IPv4 header checksum wrong (judged unless gso/truncated)
};

// Link types read (pcap DLT_* values as pcap_datalink() returns them).
bool SupportedLinkType(int dlt);
// Classifies one captured frame of link type `dlt` (SupportedLinkType(dlt) must hold).
Packet ClassifyFrame(int dlt, std::span<const uint8_t> data, uint32_t wire_len,
                     const Options& opt);

struct Flow {
  FlowKey key;
  uint64_t first_frame = 0;
  uint64_t packets = 0;
  std::array<uint64_t, kKinds> counts{};
  uint64_t ip4_hdr_bad = 0;
};

// What a flow (or the whole capture) amounts to.
enum class Verdict : uint8_t {
  kBad,           // "bad": real bad checksums (or IPv4 header checksums): a broken device/path
  kSeeds,         // "seeds-only": seeds and no bad: offload on the capture side
  kOk,            // "ok": every verifiable checksum is valid (or an allowed zero)
  kUnverifiable,  // "unverifiable": nothing could be verified (gso/na/malformed/truncated)
};
std::string_view VerdictName(Verdict v);
Verdict FlowVerdict(const std::array<uint64_t, kKinds>& counts, uint64_t ip4_hdr_bad);
std::string Advice(Verdict v);  // one sentence: what it means and what to do

struct Report {
  std::string file;
  int dlt = 0;
  std::string linktype;     // "EN10MB", "LINUX_SLL2", ...
  std::string description;  // "Ethernet", ...
  uint32_t snaplen = 0;
  Options opt;
  uint64_t packets = 0;
  std::array<uint64_t, kKinds> totals{};
  uint64_t ip4_hdr_bad = 0;
  std::vector<Packet> shown;  // per Options::keep_all, in capture order
  std::vector<Flow> flows;    // every flow, most affected first (bad, then seed, then packets)
  std::string read_error;     // set when the file ends inside a record; counts cover what came
                              // before it
  Verdict verdict() const { return FlowVerdict(totals, ip4_hdr_bad); }
};

// Accumulates packets into a Report (DiagnoseFile uses it; tests feed it directly).
class Accumulator {
 public:
  explicit Accumulator(Options opt);
  void Add(Packet p);
  Report Finish() &&;  // sorts the flows

 private:
  Report r_;
  std::map<FlowKey, size_t> index_;  // into r_.flows (kept in first-seen order until Finish)
};

// Reads `path` with libpcap. Errors: kNotFound (no such file), kInvalidArgument (not a
// capture, an unsupported link type), each naming what to do. A record cut short is not an
// error here: Report::read_error says so and the packets before it are counted.
absl::StatusOr<Report> DiagnoseFile(const std::string& path, const Options& opt);

// Exit status of `csumfix diagnose`: 0 nothing bad, 3 bad checksums found, 1 the file could
// not be read to its end.
int ExitCode(const Report& r);

// The -j document: {"capture":{...},"packets":[...],"flows":[...],"totals":{...}}. `top` limits
// the flows (0: all).
nlohmann::json ToJson(const Report& r, size_t top);
// Human-readable report: per-packet lines (Report::shown), the flows, totals and the verdict.
std::string ToText(const Report& r, size_t top);

// "tcp", "udp", "udplite", "icmp", "icmpv6", "sctp", else the protocol number.
std::string ProtoName(uint8_t proto);
// "192.0.2.1:43210 > 198.51.100.7:443" ([v6]:port; no ports when the key has none).
std::string FlowText(const FlowKey& k);
// One line saying what the packet's checksum is and why.
std::string Explain(const Packet& p, const Options& opt);

}  // namespace csumfix::diagnose

#endif  // CSUMFIX_USERSPACE_DIAGNOSE_DIAGNOSE_H_
