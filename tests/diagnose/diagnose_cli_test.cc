// `csumfix diagnose` as a user runs it: the binary over the fixture captures, -j parsed with
// nlohmann::json, exit codes and error messages; the per-packet verdicts cross-checked against
// tshark (an independent dissector) wherever tshark has an opinion.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "expected.h"
#include "nlohmann/json.hpp"

namespace csumfix::diagnose {
namespace {

using json = nlohmann::json;
using testing::FixtureDir;
using testing::LoadExpected;

struct RunResult {
  int rc = -1;
  std::string out, err;
};

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Runs `cmd` through the shell with stdout and stderr captured.
RunResult Shell(const std::string& cmd) {
  char tmpl[] = "/tmp/csumfix-diag-cli-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  const int st = std::system((cmd + " >" + dir + "/out 2>" + dir + "/err").c_str());
  RunResult r;
  r.rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  r.out = Slurp(dir + "/out");
  r.err = Slurp(dir + "/err");
  std::filesystem::remove_all(dir);
  return r;
}

RunResult Csumfix(const std::string& args) { return Shell(std::string(CSUMFIX_BIN) + " " + args); }

json DiagnoseJson(const std::string& file, const std::string& extra = "--all", int want_rc = -1) {
  const RunResult r = Csumfix("diagnose -j " + extra + " " + FixtureDir() + "/" + file);
  if (want_rc >= 0) {
    EXPECT_EQ(r.rc, want_rc) << file << "\n" << r.err;
  }
  try {
    return json::parse(r.out);
  } catch (const json::exception& e) {
    ADD_FAILURE() << file << ": -j output is not JSON: " << e.what() << "\n" << r.out << r.err;
    return json::object();
  }
}

TEST(DiagnoseCli, JsonMatchesTheFixtureExpectations) {
  const auto expected = LoadExpected();
  const std::map<std::string, int> rc = {{"eth.pcap", 3},  {"sll.pcap", 3},   {"sll2.pcap", 0},
                                         {"raw.pcap", 3},  {"trunc.pcap", 0}, {"mixed.pcapng", 3}};
  ASSERT_EQ(expected.size(), rc.size());
  for (const auto& [file, packets] : expected) {
    SCOPED_TRACE(file);
    const json j = DiagnoseJson(file, "--all", rc.at(file));
    ASSERT_TRUE(j.contains("packets"));
    ASSERT_EQ(j["packets"].size(), packets.size());
    for (size_t i = 0; i < packets.size(); ++i) {
      const json& p = j["packets"][i];
      const auto& e = packets[i];
      SCOPED_TRACE(e.desc);
      EXPECT_EQ(p["frame"], e.frame);
      EXPECT_EQ(p["class"], e.cls);
      if (e.found) {
        EXPECT_EQ(p["found"], *e.found);
        EXPECT_EQ(p["correct"], *e.correct);
      } else {
        EXPECT_TRUE(p["found"].is_null()) << p;
      }
      EXPECT_TRUE(p["reason"].is_string());
    }
    EXPECT_EQ(j["totals"]["packets"], packets.size());
    EXPECT_EQ(j["totals"]["exit_code"], rc.at(file));
    uint64_t sum = 0;
    for (const auto& [k, v] : j["totals"]["classes"].items()) sum += v.get<uint64_t>();
    EXPECT_EQ(sum, packets.size());
  }
}

TEST(DiagnoseCli, DefaultListsOnlyPacketsThatAreNotPlainlyValidAndQuietNone) {
  const json some = DiagnoseJson("eth.pcap", "", 3);
  const json all = DiagnoseJson("eth.pcap", "--all", 3);
  ASSERT_EQ(all["packets"].size(), 18u);
  std::set<uint64_t> want;
  for (const json& p : all["packets"])
    if (p["class"] != "valid" || p["ip4_header_ok"] == false) want.insert(p["frame"].get<uint64_t>());
  std::set<uint64_t> got;
  for (const json& p : some["packets"]) got.insert(p["frame"].get<uint64_t>());
  EXPECT_EQ(got, want);
  EXPECT_EQ(some["totals"], all["totals"]);
  const json quiet = DiagnoseJson("eth.pcap", "-q", 3);
  EXPECT_TRUE(quiet["packets"].empty());
  EXPECT_EQ(quiet["flows"], all["flows"]);
}

TEST(DiagnoseCli, FlowsTopAndVerdicts) {
  const json j = DiagnoseJson("sll2.pcap", "--top 0", 0);
  ASSERT_EQ(j["flows"].size(), 4u);
  const json& client = j["flows"][0];  // most affected first: the seeds
  EXPECT_EQ(client["src"], "192.0.2.1");
  EXPECT_EQ(client["sport"], 43210);
  EXPECT_EQ(client["dport"], 443);
  EXPECT_EQ(client["proto"], "tcp");
  EXPECT_EQ(client["classes"]["seed"], 3);
  EXPECT_EQ(client["classes"]["gso"], 1);
  EXPECT_EQ(client["verdict"], "seeds-only");
  EXPECT_NE(client["advice"].get<std::string>().find("--action fill"), std::string::npos);
  EXPECT_EQ(j["totals"]["verdict"], "seeds-only");
  EXPECT_EQ(DiagnoseJson("sll2.pcap", "--top 1", 0)["flows"].size(), 1u);
  const json e = DiagnoseJson("eth.pcap", "--top 1", 3);
  ASSERT_EQ(e["flows"].size(), 1u);
  EXPECT_EQ(e["flows"][0]["verdict"], "bad");
  EXPECT_EQ(e["flows"][0]["sport"], 40000);
}

TEST(DiagnoseCli, MtuOption) {
  const json j = DiagnoseJson("eth.pcap", "--all --mtu 9000", 3);
  EXPECT_EQ(j["capture"]["mtu"], 9000);
  EXPECT_EQ(j["packets"][8]["class"], "seed");
  EXPECT_EQ(j["packets"][9]["class"], "bad");
  const RunResult bad = Csumfix("diagnose --mtu 10 " + FixtureDir() + "/eth.pcap");
  EXPECT_EQ(bad.rc, 2) << bad.err;
}

TEST(DiagnoseCli, HumanOutput) {
  const RunResult r = Csumfix("diagnose " + FixtureDir() + "/sll2.pcap");
  EXPECT_EQ(r.rc, 0) << r.err;
  for (const char* want : {"link type LINUX_SLL2", "out", "seed: the field holds the pseudo-header seed",
                           "gso: IP length 4040 > MTU 1500", "verdict: seeds-only"})
    EXPECT_NE(r.out.find(want), std::string::npos) << want << "\n" << r.out;
  const RunResult h = Csumfix("diagnose --help");
  EXPECT_EQ(h.rc, 0);
  EXPECT_NE(h.out.find("Exit status: 0 nothing bad"), std::string::npos) << h.out;
}

TEST(DiagnoseCli, ErrorsNameTheProblemAndWhatToDo) {
  RunResult r = Csumfix("diagnose /nonexistent/x.pcap");
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("no such file; give a capture written by `tcpdump -w FILE`"),
            std::string::npos)
      << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
  r = Csumfix(std::string("diagnose ") + FixtureDir() + "/expected.txt");
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("not a pcap or pcapng capture"), std::string::npos) << r.err;
  r = Csumfix(std::string("diagnose -j ") + FixtureDir() + "/wifi.pcap");
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("link type 105 (IEEE802_11"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("is not supported"), std::string::npos) << r.err;
  r = Csumfix("diagnose");
  EXPECT_EQ(r.rc, 2);
}

TEST(DiagnoseCli, CutFileStillReportsAndExitsOne) {
  char tmpl[] = "/tmp/csumfix-diag-cut-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  std::string data = Slurp(FixtureDir() + "/mixed.pcapng");
  data.resize(data.size() - 6);
  std::ofstream(dir + "/cut.pcapng", std::ios::binary) << data;
  const RunResult r = Csumfix("diagnose -j " + dir + "/cut.pcapng");
  std::filesystem::remove_all(dir);
  EXPECT_EQ(r.rc, 1);
  const json j = json::parse(r.out);
  EXPECT_EQ(j["totals"]["packets"], 3u);
  EXPECT_EQ(j["totals"]["complete"], false);
  EXPECT_NE(r.err.find("inside packet record 4"), std::string::npos) << r.err;
}

// ---- tshark as an independent oracle ------------------------------------------------------------

// tshark's checksum status per frame: the TCP/UDP/UDP-Lite/ICMP/ICMPv6 *.checksum.status values
// present (0 Bad, 1 Good, 2 Unverified, 3 Not present, 4 Illegal).
std::map<uint64_t, std::vector<int>> Tshark(const std::string& file) {
  const RunResult r = Shell(
      "tshark -r '" + file +
      "' -o tcp.check_checksum:TRUE -o udp.check_checksum:TRUE -o udplite.check_checksum:TRUE "
      "-o udplite.ignore_checksum_coverage:FALSE -T fields -E separator=, -e frame.number "
      "-e tcp.checksum.status -e udp.checksum.status -e icmp.checksum.status "
      "-e icmpv6.checksum.status");
  EXPECT_EQ(r.rc, 0) << "tshark failed (it comes with scripts/deps.sh): " << r.err;
  std::map<uint64_t, std::vector<int>> out;
  std::istringstream in(r.out);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string cell;
    std::getline(ls, cell, ',');
    const uint64_t frame = std::stoull(cell);
    auto& v = out[frame];
    while (std::getline(ls, cell, ','))
      if (!cell.empty()) v.push_back(std::stoi(cell));
  }
  return out;
}

TEST(DiagnoseCli, AgreesWithTshark) {
  ASSERT_EQ(Shell("command -v tshark").rc, 0)
      << "tshark is not installed: run scripts/deps.sh (this test needs it as the oracle)";
  size_t compared = 0;
  for (const std::string file :
       {"eth.pcap", "sll.pcap", "sll2.pcap", "raw.pcap", "trunc.pcap", "mixed.pcapng"}) {
    SCOPED_TRACE(file);
    const json j = DiagnoseJson(file);
    const auto ts = Tshark(FixtureDir() + "/" + file);
    ASSERT_EQ(ts.size(), j["packets"].size());
    for (const json& p : j["packets"]) {
      const uint64_t frame = p["frame"];
      const std::string cls = p["class"];
      const std::vector<int>& st = ts.at(frame);
      SCOPED_TRACE("frame " + std::to_string(frame) + " " + cls);
      auto has = [&](int v) { return std::find(st.begin(), st.end(), v) != st.end(); };
      if (cls == "valid") {
        EXPECT_TRUE(has(1) && !has(0) && !has(4));
      } else if (cls == "seed" || cls == "bad") {
        EXPECT_TRUE(has(0) || has(4));  // tshark calls a seed Bad too: it is not a checksum
      } else if (cls == "zero") {
        EXPECT_TRUE(has(3));  // "Not present"
      } else if (cls == "truncated") {
        EXPECT_FALSE(has(0) || has(4) || has(1));  // nobody can judge a cut packet
        continue;
      } else if (cls == "na" || cls == "malformed") {
        EXPECT_TRUE(st.empty());
        continue;
      } else if (cls == "gso") {
        // tshark judges a super-frame as if it had been on a wire (Bad); diagnose does not.
        continue;
      }
      ++compared;
    }
  }
  EXPECT_GE(compared, 30u);  // 34 packets today: the comparison is not vacuous
}

}  // namespace
}  // namespace csumfix::diagnose
