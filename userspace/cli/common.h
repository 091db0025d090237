// Shared helpers of the csumfix command table. Each command group may live in its own file
// (cli/cmd_*.cc) and register itself from main.cc with an Add*Command(app, globals) function.
#pragma once

#include <cstdint>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "csumfix/abi.h"
#include "nlohmann/json.hpp"

namespace csumfix::cli {

// Options every command sees; filled by CLI11 before any command callback runs.
struct Globals {
  std::string bpffs = "/sys/fs/bpf";
  std::string netns;
  int rc = 0;  // the process exit code a callback sets (0 ok, 1 failed, 3 partial)
};

// Prints "csumfix: <message>" to stderr; returns the exit code for it (3 for kDataLoss, else 1).
int Fail(const absl::Status& s);

// A usage mistake the parser cannot see (e.g. neither IFACE nor --all): prints
// "csumfix: <command>: <message>" and where the help is; returns 2, as the parser's errors.
int UsageFail(const std::string& command, const std::string& message);

// "pass|observe|..." for help texts and errors.
std::string ActionList();

struct ActionOpt {
  std::string name = "fill";
  uint32_t value() const;
};
CLI::Validator ActionValidator();

// One counter record as JSON (the shape `stats -j` prints).
nlohmann::json CountersJson(const csf_counters& c);

}  // namespace csumfix::cli
