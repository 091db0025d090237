// tests/fixtures/diagnose/expected.txt (written by tests/fixtures/make_fixtures.py): per packet,
// the class `csumfix diagnose` must give at MTU 1500 and the checksum field / correct value.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace csumfix::diagnose::testing {

inline std::string FixtureDir() { return std::string(CSUMFIX_FIXTURE_DIR) + "/diagnose"; }

struct Expected {
  uint64_t frame = 0;
  std::string cls;
  std::optional<uint32_t> found, correct;
  std::string desc;
};

// {file: [expected per packet, in frame order]}
inline std::map<std::string, std::vector<Expected>> LoadExpected() {
  std::map<std::string, std::vector<Expected>> out;
  std::ifstream in(FixtureDir() + "/expected.txt");
  EXPECT_TRUE(in.good()) << FixtureDir() << "/expected.txt";
  std::string line;
  auto hex = [](const std::string& s) -> std::optional<uint32_t> {
    if (s == "-") return std::nullopt;
    return static_cast<uint32_t>(std::stoul(s, nullptr, 16));
  };
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream ls(line);
    std::string file, found, correct;
    Expected e;
    EXPECT_TRUE(ls >> file >> e.frame >> e.cls >> found >> correct) << line;
    std::getline(ls, e.desc);
    e.found = hex(found);
    e.correct = hex(correct);
    EXPECT_EQ(e.frame, out[file].size() + 1) << line;
    out[file].push_back(e);
  }
  return out;
}

}  // namespace csumfix::diagnose::testing
