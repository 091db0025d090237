// `csumfix diagnose` (see diagnose.h). The checksum verdicts come from refcsum::Inspect; here a
// frame of any supported link type is rewritten as an Ethernet frame (what the reference
// parses), and the capture-only questions are answered: was the packet cut by the snaplen, is
// it longer than the MTU (a super-frame), which flow is it.
#include "diagnose/diagnose.h"

#include <arpa/inet.h>
#include <pcap/pcap.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <tuple>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "refcsum/refcsum.h"

namespace csumfix::diagnose {
namespace {

constexpr size_t kEthLen = 14;
constexpr size_t kSllLen = 16;
constexpr size_t kSll2Len = 20;
constexpr uint16_t kEthPIpv4 = 0x0800;
constexpr uint16_t kEthPIpv6 = 0x86dd;
constexpr uint8_t kPacketOutgoing = 4;  // linux/if_packet.h PACKET_OUTGOING

constexpr std::array<std::string_view, kKinds> kKindNames = {
    "valid", "seed", "bad", "zero", "gso", "na", "malformed", "truncated"};

uint16_t Be16(std::span<const uint8_t> b, size_t off) {
  return static_cast<uint16_t>((b[off] << 8) | b[off + 1]);
}

size_t KindIndex(Kind k) { return static_cast<size_t>(k); }

// The frame as the reference parses it: Ethernet. Returns false when the link header itself
// is not complete. `direction` is set from a cooked header's packet type.
bool ToEthernet(int dlt, std::span<const uint8_t> data, std::vector<uint8_t>* eth,
                size_t* link_len, std::string* direction) {
  auto with_ethertype = [&](uint16_t ethertype, std::span<const uint8_t> l3) {
    eth->assign(kEthLen, 0);
    (*eth)[12] = static_cast<uint8_t>(ethertype >> 8);
    (*eth)[13] = static_cast<uint8_t>(ethertype);
    eth->insert(eth->end(), l3.begin(), l3.end());
  };
  auto dir = [&](uint8_t pkttype) { *direction = pkttype == kPacketOutgoing ? "out" : "in"; };
  switch (dlt) {
    case DLT_EN10MB:
      *link_len = kEthLen;
      eth->assign(data.begin(), data.end());
      return data.size() >= kEthLen;
    case DLT_LINUX_SLL:  // pkttype(2) hatype(2) halen(2) addr(8) protocol(2)
      *link_len = kSllLen;
      if (data.size() < kSllLen) return false;
      dir(static_cast<uint8_t>(Be16(data, 0)));
      with_ethertype(Be16(data, 14), data.subspan(kSllLen));
      return true;
    case DLT_LINUX_SLL2:  // protocol(2) reserved(2) ifindex(4) hatype(2) pkttype(1) halen(1) ...
      *link_len = kSll2Len;
      if (data.size() < kSll2Len) return false;
      dir(data[10]);
      with_ethertype(Be16(data, 0), data.subspan(kSll2Len));
      return true;
    case DLT_RAW:
    case DLT_IPV4:
    case DLT_IPV6: {
      *link_len = 0;
      if (data.empty()) return false;
      const int version = data[0] >> 4;
      // Anything but 4 or 6 is given an ethertype the reference calls "na".
      with_ethertype(version == 4 ? kEthPIpv4 : version == 6 ? kEthPIpv6 : 0, data);
      return true;
    }
    default:
      return false;
  }
}

bool HasPorts(uint8_t proto) {
  return proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == IPPROTO_UDPLITE ||
         proto == IPPROTO_SCTP;
}

// The flow of an Ethernet-form frame. Uses the reference's parse where it got to L4, else
// reads what the captured bytes still show (a truncated packet stays in its flow).
FlowKey KeyOf(std::span<const uint8_t> f, const ref::Parsed& p) {
  FlowKey k;
  const size_t l3 = p.l3_off;
  if (p.l3 == ref::L3::kIpv4 && f.size() >= l3 + 20) {
    k.ipver = 4;
    std::copy_n(f.begin() + l3 + 12, 4, k.src.begin());
    std::copy_n(f.begin() + l3 + 16, 4, k.dst.begin());
    k.proto = f[l3 + 9];
    k.has_proto = true;
    const size_t l4 = l3 + static_cast<size_t>(f[l3] & 0x0f) * 4;
    const bool later_fragment = (Be16(f, l3 + 6) & 0x1fff) != 0;
    if (HasPorts(k.proto) && !later_fragment && f.size() >= l4 + 4) {
      k.has_ports = true;
      k.sport = Be16(f, l4);
      k.dport = Be16(f, l4 + 2);
    }
  } else if (p.l3 == ref::L3::kIpv6 && f.size() >= l3 + 40) {
    k.ipver = 6;
    std::copy_n(f.begin() + l3 + 8, 16, k.src.begin());
    std::copy_n(f.begin() + l3 + 24, 16, k.dst.begin());
    if (p.cls == CSF_CLASS_NONE) {  // parsed past any extension headers
      k.proto = p.proto;
      k.has_proto = true;
      if (HasPorts(k.proto)) {
        k.has_ports = true;
        k.sport = Be16(f, p.l4_off);
        k.dport = Be16(f, p.l4_off + 2);
      }
    } else {  // only the first next header is known for sure
      k.proto = f[l3 + 6];
      k.has_proto = true;
      if (HasPorts(k.proto) && f.size() >= l3 + 44) {
        k.has_ports = true;
        k.sport = Be16(f, l3 + 40);
        k.dport = Be16(f, l3 + 42);
      }
    }
  }
  return k;
}

std::string Hex(uint8_t proto, uint32_t v) {
  return proto == IPPROTO_SCTP ? absl::StrFormat("0x%08x", v) : absl::StrFormat("0x%04x", v);
}

std::string Addr(uint8_t ipver, const std::array<uint8_t, 16>& a) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(ipver == 4 ? AF_INET : AF_INET6, a.data(), buf, sizeof buf);
  return buf;
}

nlohmann::json ClassesJson(const std::array<uint64_t, kKinds>& counts) {
  nlohmann::json j = nlohmann::json::object();
  for (size_t i = 0; i < kKinds; ++i) j[std::string(kKindNames[i])] = counts[i];
  return j;
}

std::string ClassesText(const std::array<uint64_t, kKinds>& counts) {
  std::string out;
  for (size_t i = 0; i < kKinds; ++i) {
    if (counts[i] == 0) continue;
    absl::StrAppend(&out, out.empty() ? "" : ", ", std::string(kKindNames[i]), " ", counts[i]);
  }
  return out.empty() ? "-" : out;
}

struct PcapCloser {
  void operator()(pcap_t* p) const { pcap_close(p); }
};

}  // namespace

std::string_view KindName(Kind k) {
  return KindIndex(k) < kKinds ? kKindNames[KindIndex(k)] : std::string_view("unknown");
}

bool SupportedLinkType(int dlt) {
  return dlt == DLT_EN10MB || dlt == DLT_LINUX_SLL || dlt == DLT_LINUX_SLL2 || dlt == DLT_RAW ||
         dlt == DLT_IPV4 || dlt == DLT_IPV6;
}

Packet ClassifyFrame(int dlt, std::span<const uint8_t> data, uint32_t wire_len,
                     const Options& opt) {
  Packet pk;
  pk.caplen = static_cast<uint32_t>(data.size());
  pk.len = wire_len;
  const bool cut = data.size() < wire_len;
  std::vector<uint8_t> eth;
  size_t link_len = 0;
  if (!ToEthernet(dlt, data, &eth, &link_len, &pk.direction)) {
    pk.kind = cut ? Kind::kTruncated : Kind::kMalformed;
    return pk;
  }
  const ref::Inspection in = ref::Inspect(eth);
  const ref::Parsed& p = in.parsed;
  pk.key = KeyOf(eth, p);

  // A super-frame: the IP length (or, where the header says 0 as BIG TCP does, the length on
  // the wire) exceeds the MTU. Judged before anything else: its checksum is not a wire
  // checksum, and a cut one is still a super-frame.
  if (p.l3 != ref::L3::kNone) {
    size_t ip_len = in.ip_len;
    const size_t l3_on_wire = wire_len >= link_len ? wire_len - link_len + kEthLen : 0;
    if (ip_len == 0 && l3_on_wire > p.l3_off) ip_len = l3_on_wire - p.l3_off;
    pk.ip_len = ip_len;
    if (ip_len > opt.mtu) {
      pk.kind = Kind::kGso;
      return pk;
    }
  }
  // The reference parses only what was captured: a packet cut by the snaplen is unparsable
  // there, unless only bytes after the IP packet (an Ethernet trailer) were cut.
  if (in.cls == CSF_CLASS_UNPARSABLE) {
    pk.kind = cut ? Kind::kTruncated : Kind::kMalformed;
    return pk;
  }
  pk.ip4_hdr_bad = p.l3 == ref::L3::kIpv4 && !p.ip4_hdr_ok;
  switch (in.cls) {
    case CSF_CLASS_VALID:
      pk.kind = Kind::kValid;
      break;
    case CSF_CLASS_PARTIAL:
      pk.kind = Kind::kSeed;
      break;
    case CSF_CLASS_BAD:
      pk.kind = Kind::kBad;
      break;
    case CSF_CLASS_ZERO:
      pk.kind = Kind::kZero;
      break;
    default:
      pk.kind = Kind::kNa;
      break;
  }
  pk.has_field = in.has_field;
  pk.found = in.found;
  pk.correct = in.correct;
  pk.has_seed = in.has_seed;
  pk.seed = in.seed;
  return pk;
}

std::string_view VerdictName(Verdict v) {
  switch (v) {
    case Verdict::kBad:
      return "bad";
    case Verdict::kSeeds:
      return "seeds-only";
    case Verdict::kOk:
      return "ok";
    case Verdict::kUnverifiable:
      return "unverifiable";
  }
  return "unknown";
}

Verdict FlowVerdict(const std::array<uint64_t, kKinds>& c, uint64_t ip4_hdr_bad) {
  if (c[KindIndex(Kind::kBad)] > 0 || ip4_hdr_bad > 0) return Verdict::kBad;
  if (c[KindIndex(Kind::kSeed)] > 0) return Verdict::kSeeds;
  if (c[KindIndex(Kind::kValid)] + c[KindIndex(Kind::kZero)] > 0) return Verdict::kOk;
  return Verdict::kUnverifiable;
}

std::string Advice(Verdict v) {
  switch (v) {
    case Verdict::kBad:
      return "real bad checksums: a broken device or path (NIC, driver, middlebox, a "
             "tunnel) changes packets after their checksum was made; capture at both ends to "
             "find where, `csumfix attach IFACE --action verify` counts them, `--action "
             "drop-bad` drops them";
    case Verdict::kSeeds:
      return "checksum offload on the capture side (the capture was taken before "
             "offload completed the checksums), harmless unless a raw-socket consumer (DHCP "
             "client, IDS, AF_PACKET or XDP reader) reads these packets; fix for it with "
             "`csumfix attach IFACE --action fill`";
    case Verdict::kOk:
      return "checksums complete";
    case Verdict::kUnverifiable:
      return "nothing verifiable (super-frames, cut by the snaplen, or no L4 checksum)";
  }
  return "";
}

Accumulator::Accumulator(Options opt) { r_.opt = opt; }

void Accumulator::Add(Packet p) {
  ++r_.packets;
  p.frame = r_.packets;
  ++r_.totals[KindIndex(p.kind)];
  if (p.ip4_hdr_bad) ++r_.ip4_hdr_bad;
  auto [it, fresh] = index_.try_emplace(p.key, r_.flows.size());
  if (fresh) r_.flows.push_back(Flow{.key = p.key, .first_frame = p.frame});
  Flow* f = &r_.flows[it->second];
  ++f->packets;
  ++f->counts[KindIndex(p.kind)];
  if (p.ip4_hdr_bad) ++f->ip4_hdr_bad;
  if (r_.opt.keep_all || p.kind != Kind::kValid || p.ip4_hdr_bad) r_.shown.push_back(std::move(p));
}

Report Accumulator::Finish() && {
  auto rank = [](const Flow& f) {
    return std::make_tuple(f.counts[KindIndex(Kind::kBad)] + f.ip4_hdr_bad,
                           f.counts[KindIndex(Kind::kSeed)], f.packets);
  };
  std::stable_sort(r_.flows.begin(), r_.flows.end(), [&](const Flow& a, const Flow& b) {
    if (rank(a) != rank(b)) return rank(a) > rank(b);
    return a.first_frame < b.first_frame;
  });
  return std::move(r_);
}

absl::StatusOr<Report> DiagnoseFile(const std::string& path, const Options& opt) {
  // "-" is standard input (libpcap's own convention): `tcpdump -U -w - | csumfix diagnose -`.
  const bool from_stdin = path == "-";
  struct stat st;
  if (from_stdin) {
    if (fstat(STDIN_FILENO, &st) != 0)
      return absl::InvalidArgumentError(absl::StrCat("standard input: ", std::strerror(errno)));
    if (isatty(STDIN_FILENO))
      return absl::InvalidArgumentError(
          "-: standard input is a terminal; pipe a capture into it, e.g. "
          "`tcpdump -U -i tap0 -w - | csumfix diagnose -`");
  } else if (stat(path.c_str(), &st) != 0) {
    const int e = errno;
    if (e == ENOENT)
      return absl::NotFoundError(
          absl::StrCat(path, ": no such file; give a capture written by `tcpdump -w FILE`"));
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", std::strerror(e)));
  }
  if (S_ISDIR(st.st_mode))
    return absl::InvalidArgumentError(absl::StrCat(path, ": is a directory, not a capture file"));
  char err[PCAP_ERRBUF_SIZE] = {};
  std::unique_ptr<pcap_t, PcapCloser> pc(
      pcap_open_offline_with_tstamp_precision(path.c_str(), PCAP_TSTAMP_PRECISION_MICRO, err));
  if (!pc) {
    const std::string msg = err;
    if (absl::StrContains(msg, "unknown file format"))
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": not a pcap or pcapng capture (libpcap: ", msg,
          "); write one with `tcpdump -w FILE`, or convert with `editcap -F pcap IN OUT`"));
    if (absl::StrContains(msg, "truncated") || (!from_stdin && st.st_size < 24))
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": ends inside the capture file header (libpcap: ", msg,
          "); the file is empty or cut short"));
    return absl::InvalidArgumentError(absl::StrCat(path, ": libpcap cannot read it: ", msg));
  }
  const int dlt = pcap_datalink(pc.get());
  const char* name = pcap_datalink_val_to_name(dlt);
  const char* desc = pcap_datalink_val_to_description(dlt);
  if (!SupportedLinkType(dlt))
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": link type ", dlt, " (", name ? name : "unknown", ", ", desc ? desc : "unknown",
        ") is not supported: diagnose reads Ethernet (EN10MB), Linux cooked SLL/SLL2 "
        "(`tcpdump -i any`) and raw IP captures; capture on the Ethernet-like interface, e.g. "
        "`tcpdump -i tap0 -w FILE`"));
  Accumulator acc(opt);
  pcap_pkthdr* hdr = nullptr;
  const u_char* bytes = nullptr;
  std::string read_error;
  uint64_t n = 0;
  for (;;) {
    const int rc = pcap_next_ex(pc.get(), &hdr, &bytes);
    if (rc == PCAP_ERROR_BREAK) break;  // end of file
    if (rc != 1) {
      read_error = absl::StrCat(path, ": the file ends inside packet record ", n + 1,
                                " (libpcap: ", pcap_geterr(pc.get()),
                                "); it was cut short (copied while tcpdump was still writing?); "
                                "the ", n, " packets before it are reported");
      break;
    }
    ++n;
    Packet p = ClassifyFrame(dlt, std::span<const uint8_t>(bytes, hdr->caplen), hdr->len, opt);
    p.ts_sec = hdr->ts.tv_sec;
    p.ts_usec = hdr->ts.tv_usec;
    acc.Add(std::move(p));
  }
  Report r = std::move(acc).Finish();
  r.file = path;
  r.dlt = dlt;
  r.linktype = name ? name : absl::StrCat(dlt);
  r.description = desc ? desc : "";
  r.snaplen = static_cast<uint32_t>(pcap_snapshot(pc.get()));
  r.read_error = read_error;
  return r;
}

int ExitCode(const Report& r) {
  if (!r.read_error.empty()) return 1;
  return r.verdict() == Verdict::kBad ? 3 : 0;
}

std::string ProtoName(uint8_t proto) {
  switch (proto) {
    case IPPROTO_TCP:
      return "tcp";
    case IPPROTO_UDP:
      return "udp";
    case IPPROTO_UDPLITE:
      return "udplite";
    case IPPROTO_ICMP:
      return "icmp";
    case IPPROTO_ICMPV6:
      return "icmpv6";
    case IPPROTO_SCTP:
      return "sctp";
    default:
      return absl::StrCat(proto);
  }
}

std::string FlowText(const FlowKey& k) {
  if (k.ipver == 0) return "non-IP";
  auto end = [&](const std::array<uint8_t, 16>& a, uint16_t port) {
    const std::string addr = Addr(k.ipver, a);
    if (!k.has_ports) return addr;
    return k.ipver == 6 ? absl::StrCat("[", addr, "]:", port) : absl::StrCat(addr, ":", port);
  };
  return absl::StrCat(end(k.src, k.sport), " > ", end(k.dst, k.dport));
}

std::string Explain(const Packet& p, const Options& opt) {
  std::string s;
  const uint8_t proto = p.key.proto;
  switch (p.kind) {
    case Kind::kValid:
      s = absl::StrCat("valid: checksum ", Hex(proto, p.found), " is correct");
      break;
    case Kind::kSeed:
      s = absl::StrCat("seed: the field holds the pseudo-header seed ", Hex(proto, p.found),
                       " (complete: ", Hex(proto, p.correct),
                       "); the capture was taken before checksum offload completed it, not "
                       "corruption");
      break;
    case Kind::kBad:
      if (p.found == 0 && (proto == IPPROTO_UDP || proto == IPPROTO_UDPLITE)) {
        s = absl::StrCat("bad: checksum 0 is not allowed here (", ProtoName(proto),
                         proto == IPPROTO_UDP ? " over IPv6, RFC 8200" : ", RFC 3828",
                         "); correct ", Hex(proto, p.correct));
      } else {
        s = absl::StrCat("bad: found ", Hex(proto, p.found), ", correct ",
                         Hex(proto, p.correct));
      }
      break;
    case Kind::kZero:
      s = "zero: UDP over IPv4 without checksum (0), allowed (RFC 768)";
      break;
    case Kind::kGso:
      s = absl::StrCat("gso: IP length ", p.ip_len, " > MTU ", opt.mtu,
                       ": segmentation offload (GSO/TSO/GRO) super-frame, not a real wire "
                       "frame; its checksum is not judged");
      break;
    case Kind::kNa:
      s = p.key.ipver == 0
              ? "na: not IPv4/IPv6"
              : absl::StrCat("na: no L4 checksum to check (",
                             p.key.has_proto ? ProtoName(proto) : "?",
                             ": a fragment, or a protocol csumfix does not check)");
      break;
    case Kind::kMalformed:
      s = "malformed: headers cut short or inconsistent although the whole frame was captured";
      break;
    case Kind::kTruncated:
      s = absl::StrCat("truncated: captured ", p.caplen, " of ", p.len,
                       " bytes (snaplen); the checksum cannot be verified (capture with "
                       "`tcpdump -s 0`)");
      break;
  }
  if (p.ip4_hdr_bad) absl::StrAppend(&s, "; IPv4 header checksum wrong");
  return s;
}

nlohmann::json ToJson(const Report& r, size_t top) {
  using json = nlohmann::json;
  auto key_json = [](json& j, const FlowKey& k) {
    j["ipver"] = k.ipver == 0 ? json(nullptr) : json(k.ipver);
    j["proto"] = k.has_proto ? json(ProtoName(k.proto)) : json(nullptr);
    j["src"] = k.ipver == 0 ? json(nullptr) : json(Addr(k.ipver, k.src));
    j["dst"] = k.ipver == 0 ? json(nullptr) : json(Addr(k.ipver, k.dst));
    j["sport"] = k.has_ports ? json(k.sport) : json(nullptr);
    j["dport"] = k.has_ports ? json(k.dport) : json(nullptr);
  };
  json packets = json::array();
  for (const Packet& p : r.shown) {
    json j;
    j["frame"] = p.frame;
    j["time"] = static_cast<double>(p.ts_sec) + static_cast<double>(p.ts_usec) / 1e6;
    j["caplen"] = p.caplen;
    j["len"] = p.len;
    j["class"] = std::string(KindName(p.kind));
    key_json(j, p.key);
    j["direction"] = p.direction.empty() ? json(nullptr) : json(p.direction);
    j["found"] = p.has_field ? json(p.found) : json(nullptr);
    j["correct"] = p.has_field ? json(p.correct) : json(nullptr);
    j["seed"] = p.has_field && p.has_seed ? json(p.seed) : json(nullptr);
    j["ip_len"] = p.ip_len == 0 ? json(nullptr) : json(p.ip_len);
    j["ip4_header_ok"] = p.key.ipver == 4 && p.kind != Kind::kGso && p.kind != Kind::kTruncated
                             ? json(!p.ip4_hdr_bad)
                             : json(nullptr);
    j["reason"] = Explain(p, r.opt);
    packets.push_back(std::move(j));
  }
  json flows = json::array();
  for (size_t i = 0; i < r.flows.size() && (top == 0 || i < top); ++i) {
    const Flow& f = r.flows[i];
    json j;
    key_json(j, f.key);
    j["first_frame"] = f.first_frame;
    j["packets"] = f.packets;
    j["classes"] = ClassesJson(f.counts);
    j["ip4_header_bad"] = f.ip4_hdr_bad;
    const Verdict v = FlowVerdict(f.counts, f.ip4_hdr_bad);
    j["verdict"] = std::string(VerdictName(v));
    j["advice"] = Advice(v);
    flows.push_back(std::move(j));
  }
  json totals;
  totals["packets"] = r.packets;
  totals["classes"] = ClassesJson(r.totals);
  totals["ip4_header_bad"] = r.ip4_hdr_bad;
  totals["flows"] = r.flows.size();
  totals["verdict"] = std::string(VerdictName(r.verdict()));
  totals["advice"] = Advice(r.verdict());
  totals["complete"] = r.read_error.empty();
  totals["error"] = r.read_error.empty() ? json(nullptr) : json(r.read_error);
  totals["exit_code"] = ExitCode(r);
  json capture;
  capture["file"] = r.file;
  capture["linktype"] = r.linktype;
  capture["linktype_description"] = r.description;
  capture["snaplen"] = r.snaplen;
  capture["mtu"] = r.opt.mtu;
  capture["all_packets"] = r.opt.keep_all;
  return json{{"capture", capture}, {"packets", packets}, {"flows", flows}, {"totals", totals}};
}

std::string ToText(const Report& r, size_t top) {
  std::string out = absl::StrFormat("%s: %u packets, link type %s (%s), snaplen %u, MTU %u\n",
                                    r.file, r.packets, r.linktype, r.description, r.snaplen,
                                    r.opt.mtu);
  if (!r.shown.empty()) {
    absl::StrAppend(&out, r.opt.keep_all ? "packets:\n" : "packets that are not plainly valid:\n");
    const int64_t t0_sec = r.shown.front().ts_sec, t0_usec = r.shown.front().ts_usec;
    for (const Packet& p : r.shown) {
      const double t = static_cast<double>(p.ts_sec - t0_sec) +
                       static_cast<double>(p.ts_usec - t0_usec) / 1e6;
      const std::string proto = p.key.has_proto ? ProtoName(p.key.proto) : "-";
      absl::StrAppendFormat(&out, "  #%u  %.6f  %s%s  %s\n      %s\n", p.frame, t,
                            p.direction.empty() ? "" : p.direction + " ", proto,
                            FlowText(p.key), Explain(p, r.opt));
    }
  }
  const size_t shown = top == 0 ? r.flows.size() : std::min(top, r.flows.size());
  auto packets = [](uint64_t n) { return absl::StrCat(n, n == 1 ? " packet" : " packets"); };
  absl::StrAppendFormat(&out, "flows (%u of %u, most affected first):\n", shown, r.flows.size());
  std::array<bool, 4> seen{};  // verdicts among the flows shown
  for (size_t i = 0; i < shown; ++i) {
    const Flow& f = r.flows[i];
    const Verdict v = FlowVerdict(f.counts, f.ip4_hdr_bad);
    seen[static_cast<size_t>(v)] = true;
    absl::StrAppendFormat(&out, "  %-7s %s  %s: %s%s  [%s]\n",
                          f.key.has_proto ? ProtoName(f.key.proto) : "-", FlowText(f.key),
                          packets(f.packets), ClassesText(f.counts),
                          f.ip4_hdr_bad ? absl::StrCat(", IPv4 header bad ", f.ip4_hdr_bad) : "",
                          std::string(VerdictName(v)));
  }
  absl::StrAppendFormat(&out, "totals: %s: %s%s\n", packets(r.packets), ClassesText(r.totals),
                        r.ip4_hdr_bad ? absl::StrCat(", IPv4 header bad ", r.ip4_hdr_bad) : "");
  seen[static_cast<size_t>(r.verdict())] = true;
  for (Verdict v : {Verdict::kBad, Verdict::kSeeds}) {
    if (seen[static_cast<size_t>(v)])
      absl::StrAppendFormat(&out, "%s: %s\n", std::string(VerdictName(v)), Advice(v));
  }
  absl::StrAppendFormat(&out, "verdict: %s\n", std::string(VerdictName(r.verdict())));
  return out;
}

}  // namespace csumfix::diagnose
