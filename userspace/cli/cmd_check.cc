// csumfix check: load every csumfix BPF program through this kernel's verifier and unload it
// again; nothing is attached or pinned.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/utsname.h>

#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "base/status.h"
#include "bpf/loader.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "csumfix.skel.h"
#include "nlohmann/json.hpp"

namespace csumfix::cli {
namespace {

struct CheckOpts {
  bool full_log = false;
  bool stats = false;
  bool json = false;
};

constexpr Help kHelp{
    "check", "Load and verify every BPF program with this kernel; attach nothing.",
    "Loads every csumfix BPF program through this kernel's verifier and unloads it again:\n"
    "nothing is attached or pinned. Exit 1 with the verifier's reason when one is refused.\n"
    "Example: csumfix check --stats"};

using Loaded = absl::StatusOr<std::unique_ptr<bpf::Programs>>;

// The -j document: {ok, kernel, programs: [{name, type, prog_id}], error, stats}.
nlohmann::json CheckJson(const Loaded& p, const std::vector<std::string>& stats) {
  utsname u{};
  uname(&u);
  nlohmann::json j{{"ok", p.ok()}, {"kernel", u.release}, {"stats", stats}};
  nlohmann::json progs = nlohmann::json::array();
  if (p.ok()) {
    bpf_program* prog;
    bpf_object__for_each_program(prog, (*p)->skel()->obj) {
      bpf_prog_info info{};
      uint32_t len = sizeof(info);
      const bool got = bpf_prog_get_info_by_fd(bpf_program__fd(prog), &info, &len) == 0;
      progs.push_back({{"name", bpf_program__name(prog)},
                       {"type", libbpf_bpf_prog_type_str(bpf_program__type(prog))},
                       {"prog_id", got ? info.id : 0}});
    }
  } else {
    j["error"] = std::string(p.status().message());
  }
  j["programs"] = progs;
  return j;
}

Outcome Check(const CheckOpts& o) {
  bpf::LoadOptions lo;
  lo.full_verifier_log = o.full_log;
  std::vector<std::string> stats;
  lo.verifier_stats = o.stats;
  lo.stats = &stats;
  const Loaded p = bpf::Programs::Load(lo);
  if (o.json) {
    std::cout << JsonText(CheckJson(p, stats)) << "\n";
    RETURN_IF_ERROR(p.status());
    return Done{};
  }
  for (const auto& l : stats) std::printf("%s\n", l.c_str());
  RETURN_IF_ERROR(p.status());
  std::printf("ok: tc ingress, tc egress and XDP programs load on this kernel\n");
  return Done{};
}

}  // namespace

void AddCheckCommand(CLI::App& app, Globals& g) {
  auto [cmd, o] = NewCommand<CheckOpts>(app, kHelp);
  cmd->add_flag("--verifier-log", o->full_log, "print the whole verifier log on failure");
  cmd->add_flag("--stats", o->stats, "print the verifier's instruction count per program");
  AddJsonFlag(cmd, o->json,
              "JSON output: {ok, kernel, programs: [{name, type, prog_id}], error, stats}");
  OnRun(cmd, g, [o] { return Check(*o); });
}

}  // namespace csumfix::cli
