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
#include "control/pins.h"
#include "csumfix.skel.h"
#include "nlohmann/json.hpp"

namespace csumfix::cli {
namespace {

struct CheckOpts {
  std::string object = "auto";
  bool full_log = false;
  bool stats = false;
  bool json = false;
};

constexpr Help kHelp{
    "check", "Load and verify every BPF program with this kernel; attach nothing.",
    "Loads every csumfix BPF program through this kernel's verifier and unloads it again:\n"
    "nothing is attached or pinned. Exit 1 with the verifier's reason when one is refused.\n"
    "csumfix carries two builds of its BPF object: main (bpf_loop, Linux 5.17+; the XDP byte\n"
    "helpers, 5.18+) and compat (bounded loops, for older kernels). auto takes the one this\n"
    "kernel's helpers allow, as attach and serve do; --object names one to try it.\n"
    "Examples:\n"
    "  csumfix check --stats\n"
    "  csumfix check --object compat"};

using Loaded = absl::StatusOr<std::unique_ptr<bpf::Programs>>;

// The -j document: {ok, kernel, object, programs: [{name, type, prog_id, tag}], error, stats}.
nlohmann::json CheckJson(const Loaded& p, bpf::Object object,
                         const std::vector<std::string>& stats) {
  utsname u{};
  uname(&u);
  nlohmann::json j{{"ok", p.ok()},
                   {"kernel", u.release},
                   {"object", bpf::ObjectName(object)},
                   {"stats", stats}};
  nlohmann::json progs = nlohmann::json::array();
  if (p.ok()) {
    bpf_program* prog;
    bpf_object__for_each_program(prog, (*p)->skel()->obj) {
      const auto id = control::Ident(bpf_program__fd(prog));  // as upgrade compares them
      progs.push_back({{"name", bpf_program__name(prog)},
                       {"type", libbpf_bpf_prog_type_str(bpf_program__type(prog))},
                       {"prog_id", id.ok() ? id->id : 0},
                       {"tag", id.ok() ? id->tag : ""}});
    }
  } else {
    j["error"] = std::string(p.status().message());
  }
  j["programs"] = progs;
  return j;
}

Outcome Check(const CheckOpts& o) {
  bpf::LoadOptions lo;
  lo.object = o.object == "main"     ? bpf::Object::kMain
              : o.object == "compat" ? bpf::Object::kCompat
                                     : bpf::Object::kAuto;
  const bpf::Object object = lo.object == bpf::Object::kAuto ? bpf::ProbeObject() : lo.object;
  lo.full_verifier_log = o.full_log;
  std::vector<std::string> stats;
  lo.verifier_stats = o.stats;
  lo.stats = &stats;
  const Loaded p = bpf::Programs::Load(lo);
  if (o.json) {
    std::cout << JsonText(CheckJson(p, object, stats)) << "\n";
    RETURN_IF_ERROR(p.status());
    return Done{};
  }
  for (const auto& l : stats) std::printf("%s\n", l.c_str());
  RETURN_IF_ERROR(p.status());
  std::printf("ok: tc ingress, tc egress and XDP programs (%s object) load on this kernel\n",
              bpf::ObjectName(object));
  return Done{};
}

}  // namespace

void AddCheckCommand(CLI::App& app, Globals& g) {
  auto [cmd, o] = NewCommand<CheckOpts>(app, kHelp);
  cmd->add_option("--object", o->object, "which build of the BPF object: auto, main or compat")
      ->check(CLI::IsMember({"auto", "main", "compat"}));
  cmd->add_flag("--verifier-log", o->full_log, "print the whole verifier log on failure");
  cmd->add_flag("--stats", o->stats, "print the verifier's instruction count per program");
  AddJsonFlag(cmd, o->json,
              "JSON output: {ok, kernel, object, programs: [{name, type, prog_id, tag}], error, "
              "stats}");
  OnRun(cmd, g, [o] { return Check(*o); });
}

}  // namespace csumfix::cli
