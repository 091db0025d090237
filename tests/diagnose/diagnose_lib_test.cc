// The diagnose library (userspace/diagnose) over the fixture captures and hand-made frames.
#include "diagnose/diagnose.h"

#include <gtest/gtest.h>
#include <pcap/pcap.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "expected.h"

namespace csumfix::diagnose {
namespace {

using testing::FixtureDir;
using testing::LoadExpected;
using Bytes = std::vector<uint8_t>;

Report Diagnose(const std::string& file, Options opt = {.mtu = 1500, .keep_all = true}) {
  auto r = DiagnoseFile(FixtureDir() + "/" + file, opt);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *std::move(r) : Report{};
}

const Flow* FindFlow(const Report& r, const std::string& text) {
  for (const Flow& f : r.flows)
    if (FlowText(f.key) == text) return &f;
  return nullptr;
}

// A scratch directory removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/csumfix-diag-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string Write(const std::string& name, const std::string& data) const {
    const std::string p = path_ + "/" + name;
    std::ofstream(p, std::ios::binary) << data;
    return p;
  }

 private:
  std::string path_;
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

TEST(Diagnose, EveryFixturePacketGetsItsExpectedClassAndValues) {
  const auto expected = LoadExpected();
  ASSERT_EQ(expected.size(), 6u);  // eth, sll, sll2, raw, trunc, mixed.pcapng
  size_t checked = 0;
  for (const auto& [file, packets] : expected) {
    SCOPED_TRACE(file);
    const Report r = Diagnose(file);
    ASSERT_EQ(r.packets, packets.size());
    ASSERT_EQ(r.shown.size(), packets.size());  // keep_all
    for (size_t i = 0; i < packets.size(); ++i) {
      const Packet& p = r.shown[i];
      const auto& e = packets[i];
      SCOPED_TRACE(std::to_string(e.frame) + e.desc);
      EXPECT_EQ(p.frame, e.frame);
      EXPECT_EQ(KindName(p.kind), e.cls);
      EXPECT_EQ(p.has_field, e.found.has_value());
      if (e.found) {
        EXPECT_EQ(p.found, *e.found);
        EXPECT_EQ(p.correct, *e.correct);
      }
      if (p.kind == Kind::kSeed) {
        EXPECT_EQ(p.found, p.seed);
      }
      ++checked;
    }
  }
  EXPECT_GE(checked, 40u);
}

TEST(Diagnose, LinkTypesAreRead) {
  EXPECT_EQ(Diagnose("eth.pcap").linktype, "EN10MB");
  EXPECT_EQ(Diagnose("sll.pcap").linktype, "LINUX_SLL");
  EXPECT_EQ(Diagnose("sll2.pcap").linktype, "LINUX_SLL2");
  EXPECT_EQ(Diagnose("raw.pcap").linktype, "RAW");
  EXPECT_EQ(Diagnose("mixed.pcapng").linktype, "EN10MB");
  EXPECT_EQ(Diagnose("trunc.pcap").snaplen, 96u);
}

TEST(Diagnose, CookedCapturesGiveTheDirection) {
  const auto expected = LoadExpected();
  for (const std::string file : {"sll.pcap", "sll2.pcap"}) {
    SCOPED_TRACE(file);
    const Report r = Diagnose(file);
    const auto& e = expected.at(file);
    ASSERT_EQ(r.shown.size(), e.size());
    for (size_t i = 0; i < e.size(); ++i) {
      const bool out = e[i].desc.find("outgoing") != std::string::npos;
      EXPECT_EQ(r.shown[i].direction, out ? "out" : "in") << e[i].desc;
    }
  }
  for (const Packet& p : Diagnose("eth.pcap").shown) EXPECT_EQ(p.direction, "");
}

TEST(Diagnose, FlowsAndVerdicts) {
  const Report r = Diagnose("eth.pcap");
  // The client's flow: three seeds and its TSO super-frame; no bad: offload, not corruption.
  const Flow* client = FindFlow(r, "192.0.2.1:43210 > 198.51.100.7:443");
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(client->packets, 4u);
  EXPECT_EQ(client->counts[static_cast<size_t>(Kind::kSeed)], 3u);
  EXPECT_EQ(client->counts[static_cast<size_t>(Kind::kGso)], 1u);
  EXPECT_EQ(FlowVerdict(client->counts, client->ip4_hdr_bad), Verdict::kSeeds);
  const Flow* server = FindFlow(r, "198.51.100.7:443 > 192.0.2.1:43210");
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(FlowVerdict(server->counts, server->ip4_hdr_bad), Verdict::kOk);
  const Flow* corrupt = FindFlow(r, "192.0.2.1:40000 > 198.51.100.7:53");
  ASSERT_NE(corrupt, nullptr);
  EXPECT_EQ(corrupt->counts[static_cast<size_t>(Kind::kBad)], 2u);
  EXPECT_EQ(FlowVerdict(corrupt->counts, corrupt->ip4_hdr_bad), Verdict::kBad);
  const Flow* hdr = FindFlow(r, "192.0.2.1:40001 > 198.51.100.7:53");
  ASSERT_NE(hdr, nullptr);
  EXPECT_EQ(hdr->ip4_hdr_bad, 1u);
  EXPECT_EQ(FlowVerdict(hdr->counts, hdr->ip4_hdr_bad), Verdict::kBad);
  const Flow* arp = FindFlow(r, "non-IP");
  ASSERT_NE(arp, nullptr);
  EXPECT_EQ(FlowVerdict(arp->counts, 0), Verdict::kUnverifiable);
  // Most affected first: the two bad UDP packets lead.
  EXPECT_EQ(&r.flows.front(), corrupt);
  EXPECT_EQ(r.ip4_hdr_bad, 1u);
  EXPECT_EQ(r.verdict(), Verdict::kBad);
  EXPECT_EQ(ExitCode(r), 3);
}

TEST(Diagnose, ExitCodes) {
  EXPECT_EQ(ExitCode(Diagnose("sll2.pcap")), 0);   // seeds, zero, gso: nothing bad
  EXPECT_EQ(Diagnose("sll2.pcap").verdict(), Verdict::kSeeds);
  EXPECT_EQ(ExitCode(Diagnose("trunc.pcap")), 0);  // cut packets are never bad
  EXPECT_EQ(Diagnose("trunc.pcap").verdict(), Verdict::kOk);
  EXPECT_EQ(ExitCode(Diagnose("sll.pcap")), 3);
  EXPECT_EQ(ExitCode(Diagnose("raw.pcap")), 3);
  EXPECT_EQ(ExitCode(Diagnose("mixed.pcapng")), 3);
}

TEST(Diagnose, ByDefaultOnlyPacketsThatAreNotPlainlyValidAreKept) {
  const Report all = Diagnose("eth.pcap");
  const Report some = Diagnose("eth.pcap", Options{});
  EXPECT_EQ(some.packets, all.packets);
  EXPECT_EQ(some.totals, all.totals);
  size_t want = 0;
  for (const Packet& p : all.shown) want += p.kind != Kind::kValid || p.ip4_hdr_bad;
  ASSERT_EQ(some.shown.size(), want);
  for (const Packet& p : some.shown) EXPECT_TRUE(p.kind != Kind::kValid || p.ip4_hdr_bad);
  EXPECT_LT(want, all.shown.size());
}

TEST(Diagnose, MtuDecidesWhatASuperFrameIs) {
  // With a 9000-byte MTU the two 4 KB / 3 KB frames are judged as wire frames: the TSO frame's
  // field is its seed, the GRO frame's checksum is wrong for the merged packet.
  const Report r = Diagnose("eth.pcap", Options{.mtu = 9000, .keep_all = true});
  EXPECT_EQ(r.shown[8].kind, Kind::kSeed);
  EXPECT_EQ(r.shown[9].kind, Kind::kBad);
  const Report d = Diagnose("eth.pcap");
  EXPECT_EQ(d.shown[8].kind, Kind::kGso);
  EXPECT_EQ(d.shown[8].ip_len, 4040u);
  EXPECT_EQ(d.shown[9].kind, Kind::kGso);
  EXPECT_NE(Explain(d.shown[8], d.opt).find("not a real wire frame"), std::string::npos);
}

TEST(Diagnose, TruncatedPacketsAreNeverBad) {
  const Report r = Diagnose("trunc.pcap");
  EXPECT_EQ(r.totals[static_cast<size_t>(Kind::kBad)], 0u);
  EXPECT_EQ(r.totals[static_cast<size_t>(Kind::kTruncated)], 3u);
  // The cut packets stay in their flows (ports were captured).
  EXPECT_EQ(FlowText(r.shown[0].key), "192.0.2.1:43210 > 198.51.100.7:443");
  EXPECT_EQ(r.shown[0].caplen, 96u);
  EXPECT_NE(Explain(r.shown[0], r.opt).find("cannot be verified"), std::string::npos);
}

// ---- hand-made frames through ClassifyFrame --------------------------------------------------

Bytes Ipv4Tcp(uint16_t tot_len) {
  Bytes ip(40, 0);
  ip[0] = 0x45;
  ip[2] = static_cast<uint8_t>(tot_len >> 8);
  ip[3] = static_cast<uint8_t>(tot_len);
  ip[8] = 64;
  ip[9] = 6;
  ip[20 + 12] = 0x50;
  return ip;
}

TEST(DiagnoseFrame, BigTcpWithZeroTotalLengthIsASuperFrame) {
  Bytes eth(14, 0);
  eth[12] = 0x08;
  const Bytes ip = Ipv4Tcp(0);  // IPv4 BIG TCP: total length 0, 70,000 bytes on the wire
  eth.insert(eth.end(), ip.begin(), ip.end());
  const Packet p = ClassifyFrame(DLT_EN10MB, eth, 70000, Options{});
  EXPECT_EQ(p.kind, Kind::kGso);
  EXPECT_EQ(p.ip_len, 70000u - 14);
}

TEST(DiagnoseFrame, ShortFramesAreTruncatedWhenCutAndMalformedWhenNot) {
  const Bytes tiny(10, 0);
  EXPECT_EQ(ClassifyFrame(DLT_EN10MB, tiny, 10, Options{}).kind, Kind::kMalformed);
  EXPECT_EQ(ClassifyFrame(DLT_EN10MB, tiny, 60, Options{}).kind, Kind::kTruncated);
  EXPECT_EQ(ClassifyFrame(DLT_LINUX_SLL2, tiny, 10, Options{}).kind, Kind::kMalformed);
  EXPECT_EQ(ClassifyFrame(DLT_LINUX_SLL, tiny, 100, Options{}).kind, Kind::kTruncated);
  EXPECT_EQ(ClassifyFrame(DLT_RAW, Bytes{}, 100, Options{}).kind, Kind::kTruncated);
  // Raw IP that is neither version 4 nor 6.
  EXPECT_EQ(ClassifyFrame(DLT_RAW, Bytes(20, 0x50), 20, Options{}).kind, Kind::kNa);
}

TEST(DiagnoseFrame, SupportedLinkTypes) {
  for (int dlt : {DLT_EN10MB, DLT_LINUX_SLL, DLT_LINUX_SLL2, DLT_RAW, DLT_IPV4, DLT_IPV6})
    EXPECT_TRUE(SupportedLinkType(dlt)) << dlt;
  for (int dlt : {DLT_NULL, DLT_IEEE802_11, DLT_IEEE802_11_RADIO, DLT_PPP})
    EXPECT_FALSE(SupportedLinkType(dlt)) << dlt;
}

// ---- errors -------------------------------------------------------------------------------------

TEST(DiagnoseErrors, MissingFile) {
  auto r = DiagnoseFile("/nonexistent/capture.pcap", Options{});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("no such file"), std::string::npos) << r.status();
}

TEST(DiagnoseErrors, NotACapture) {
  TempDir t;
  auto r = DiagnoseFile(t.Write("notes.txt", std::string(200, 'x')), Options{});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("not a pcap or pcapng capture"), std::string::npos)
      << r.status();
  r = DiagnoseFile(t.Write("empty.pcap", ""), Options{});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("empty or cut short"), std::string::npos) << r.status();
  r = DiagnoseFile("/tmp", Options{});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("is a directory"), std::string::npos) << r.status();
}

TEST(DiagnoseErrors, UnsupportedLinkTypeIsNamed) {
  auto r = DiagnoseFile(FixtureDir() + "/wifi.pcap", Options{});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("link type 105 (IEEE802_11"), std::string::npos)
      << r.status();
  EXPECT_NE(r.status().message().find("tcpdump -i"), std::string::npos) << r.status();
}

TEST(DiagnoseErrors, FileCutInsideARecordReportsWhatCameBefore) {
  TempDir t;
  std::string data = ReadFile(FixtureDir() + "/eth.pcap");
  data.resize(data.size() - 10);  // the last record (ICMP echo) loses 10 bytes
  auto r = DiagnoseFile(t.Write("cut.pcap", data), Options{});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->packets, 17u);
  EXPECT_NE(r->read_error.find("inside packet record 18"), std::string::npos) << r->read_error;
  EXPECT_EQ(ExitCode(*r), 1);
  EXPECT_EQ(ToJson(*r, 0)["totals"]["complete"], false);
}

// ---- output -------------------------------------------------------------------------------------

TEST(DiagnoseOutput, JsonSchema) {
  const Report r = Diagnose("eth.pcap");
  const nlohmann::json j = ToJson(r, 2);
  ASSERT_TRUE(j.is_object());
  for (const char* k : {"capture", "packets", "flows", "totals"}) EXPECT_TRUE(j.contains(k)) << k;
  EXPECT_EQ(j["packets"].size(), r.packets);
  EXPECT_EQ(j["flows"].size(), 2u);  // --top 2
  EXPECT_EQ(j["totals"]["flows"], r.flows.size());
  EXPECT_EQ(j["totals"]["packets"], 18u);
  EXPECT_EQ(j["totals"]["verdict"], "bad");
  EXPECT_EQ(j["totals"]["exit_code"], 3);
  const auto& p6 = j["packets"][5];
  EXPECT_EQ(p6["frame"], 6u);
  EXPECT_EQ(p6["class"], "bad");
  EXPECT_EQ(p6["proto"], "udp");
  EXPECT_EQ(p6["src"], "192.0.2.1");
  EXPECT_EQ(p6["dport"], 53);
  EXPECT_EQ(p6["found"], 0xe980);
  EXPECT_EQ(p6["correct"], 0xfbb4);
  EXPECT_EQ(p6["ip4_header_ok"], true);
  const auto& arp = j["packets"][13];
  EXPECT_EQ(arp["class"], "na");
  EXPECT_TRUE(arp["src"].is_null());
  EXPECT_TRUE(arp["found"].is_null());
  EXPECT_EQ(ToJson(r, 0)["flows"].size(), r.flows.size());
}

TEST(DiagnoseOutput, TextNamesTheClassesAndTheVerdicts) {
  const std::string t = ToText(Diagnose("eth.pcap", Options{}), 0);
  for (const char* want :
       {"#1 ", "seed: the field holds the pseudo-header seed 0xec7c (complete: 0xafe5)",
        "not corruption", "bad: found 0xe980, correct 0xfbb4",
        "checksum 0 is not allowed here (udp over IPv6", "zero: UDP over IPv4",
        "IP length 4040 > MTU 1500", "IPv4 header checksum wrong",
        "seeds-only: checksum offload on the capture side", "[seeds-only]",
        "csumfix attach IFACE --action fill", "bad: real bad checksums", "[bad]", "verdict: bad\n"})
    EXPECT_NE(t.find(want), std::string::npos) << want << "\n" << t;
  // Valid packets are not listed by default.
  EXPECT_EQ(t.find("#4 "), std::string::npos) << t;
}

}  // namespace
}  // namespace csumfix::diagnose
