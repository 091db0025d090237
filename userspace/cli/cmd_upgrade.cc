// csumfix upgrade [IFACE]: make the attachments of this network namespace run this build's
// programs, swapped in place (control/upgrade.cc). serve does the same when it starts; this is
// for hosts that attach with the CLI alone.
#include <cstdio>
#include <memory>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "control/control.h"

namespace csumfix::cli {
namespace {

struct UpgradeOpts {
  std::string ifname;
  bool json = false;
};

constexpr Help kHelp{
    "upgrade", "Swap in this build's programs where another build's run (IFACE or all).",
    "After a new csumfix is installed, the interfaces keep the programs the old one attached\n"
    "(they are pinned). upgrade replaces each program whose kernel tag differs from this\n"
    "build's, in place: a tcx or XDP link is updated, a cls_bpf filter replaced on its own\n"
    "handle and priority, so no packet passes while nothing is attached. Counters, flows and\n"
    "rules stay (the maps are shared). serve does this when it starts: a package upgrade needs\n"
    "nothing more. Pins of another pin ABI (`csumfix -V`) are refused and left unchanged.\n"
    "Examples:\n"
    "  csumfix upgrade\n"
    "  csumfix -n labns upgrade va"};

}  // namespace

void AddUpgradeCommand(CLI::App& app, Globals& g) {
  auto [cmd, o] = NewCommand<UpgradeOpts>(app, kHelp);
  cmd->add_option("iface", o->ifname, "only this interface (default: every one here)");
  AddJsonFlag(cmd, o->json, "JSON output: per interface, what was swapped and any error");
  OnRun(cmd, g, [o, &g]() -> Outcome {
    ASSIGN_OR_RETURN(std::vector<control::UpgradeReport> reps,
                     control::Controller(g.bpffs).Upgrade(o->ifname));
    Done done;
    nlohmann::json j = nlohmann::json::array();
    for (const auto& r : reps) {
      if (!r.error.empty()) done.Warn(absl::StrCat("upgrade ", r.ifname, ": ", r.error));
      j.push_back({{"ifname", r.ifname}, {"swapped", r.swapped}, {"error", r.error}});
      if (!o->json)
        for (const auto& s : r.swapped) std::printf("%s %s\n", r.ifname.c_str(), s.c_str());
    }
    if (o->json) std::printf("%s\n", JsonText(j).c_str());
    else if (reps.empty()) std::printf("every attachment runs this build's programs\n");
    return done;
  });
}

}  // namespace csumfix::cli
