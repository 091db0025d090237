// Shared helpers of the csumfix command table. Every command lives in its own file
// (cli/cmd_*.cc) and registers itself with an Add*Command(app, globals) function (cli/commands.h).
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <iostream>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "CLI/CLI.hpp"
#include "base/outcome.h"
#include "cli/exit.h"
#include "control/names.h"
#include "csumfix/abi.h"
#include "nlohmann/json.hpp"

namespace csumfix::cli {

// Options every command sees; filled by CLI11 before any command callback runs.
struct Globals {
  std::string bpffs = "/sys/fs/bpf";
  std::string netns;
  bool json = false;    // -j before the command: every command that prints data prints JSON
  bool pretty = false;  // -p: JSON, indented (implies -j), as bpftool's
  int rc = 0;  // the process exit code a callback sets (cli/exit.h)
};

// What `csumfix COMMAND --help` says: the name, the one-line description and the footer
// (details, examples, what to do about errors; "" for none).
struct Help {
  const char* name;
  const char* description;
  const char* footer = "";
};

// Adds the subcommand help.name to `parent`, with its texts.
CLI::App* AddSubcommand(CLI::App& parent, const Help& help);

// AddSubcommand, and the options struct its callback reads (CLI11 writes the parsed values into
// it; shared, so that it lives as long as the callback).
template <typename Opts>
std::pair<CLI::App*, std::shared_ptr<Opts>> NewCommand(CLI::App& parent, const Help& help) {
  return {AddSubcommand(parent, help), std::make_shared<Opts>()};
}

// Makes `body` the callback of `cmd`: what it returns becomes g.rc through Finish (cli/exit.h).
void OnRun(CLI::App* cmd, Globals& g, std::function<Outcome()> body);

// -j/--json of a command. The global -j/-p (before the command) sets every such flag.
void AddJsonFlag(CLI::App* cmd, bool& json, const std::string& what = "JSON output");
// Applies the global -j/-p to the commands' flags; called once the command line is parsed.
void ApplyGlobalJson(const Globals& g);
// `j` as the commands print it: one line, or indented after -p.
std::string JsonText(const nlohmann::json& j);

// The options of a command that shows per-interface records (status, stats): [IFACE], -j and,
// where the command reads other namespaces' pins (stats), -A.
struct ShowOpts {
  std::string ifname;  // "" = every interface
  bool json = false;
  bool all_namespaces = false;
};
using ShowFn = Outcome (*)(const ShowOpts&, const Globals&);
// Adds such a command: `show` runs with what was parsed; `all_namespaces`: it takes -A.
void AddShowCommand(CLI::App& app, Globals& g, const Help& help, ShowFn show,
                    bool all_namespaces = false);
// -A/--all-namespaces.
void AddAllNamespacesFlag(CLI::App* cmd, bool& all);

// The network namespaces a view reads: this process's, or with -A every one with csumfix pins
// (this one first).
std::vector<uint64_t> ViewNamespaces(const std::string& bpffs, bool all);
// How output names a network namespace: its /run/netns name, else "netns:<inode>".
std::string NetnsText(uint64_t ino);
// Adds "netns" (the inode) and "netns_name" (the /run/netns name, null where there is none).
void AddNetnsJson(nlohmann::json& j, uint64_t ino);

// Prints `rows`: with -j one JSON array of to_json(row); else to_text(row) for each, or `none`
// (if not null) when there are none.
template <typename Row, typename ToJson, typename ToText>
void PrintRows(const std::vector<Row>& rows, bool json, ToJson to_json, ToText to_text,
               const char* none) {
  if (json) {
    nlohmann::json out = nlohmann::json::array();
    for (const Row& r : rows) out.push_back(to_json(r));
    std::cout << JsonText(out) << "\n";
    return;
  }
  if (rows.empty() && none != nullptr) std::printf("%s\n", none);
  for (const Row& r : rows) to_text(r);
}

// "pass|observe|..." for help texts and errors.
std::string ActionList();

struct ActionOpt {
  std::string name = "fill";
  uint32_t value() const;
};
CLI::Validator ActionValidator();

// The names of a vocabulary table (control/names.h), in id order, for CLI::IsMember.
std::vector<std::string> NameList(std::span<const names::Name> table);
// Every value --mechanism takes: "auto" then the mechanisms (names::MechanismChoices()).
std::vector<std::string> MechanismList();

// One counter record as JSON (the shape `stats -j` prints).
nlohmann::json CountersJson(const csf_counters& c);

}  // namespace csumfix::cli
