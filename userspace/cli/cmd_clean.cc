// csumfix clean [IFACE | --all]: remove what csumfix left in this network namespace that no live
// attachment accounts for (as xdp-loader's clean): records of deleted interfaces, pins of an
// interrupted attach, bounce veth pairs, ifb devices and csumfix filters whose pins vanished. Never anything
// csumfix did not create (control/leftovers.h says how it knows).
#include <cstdio>
#include <memory>
#include <string>

#include "CLI/CLI.hpp"
#include "cli/commands.h"
#include "cli/common.h"
#include "control/control.h"

namespace csumfix::cli {

void AddCleanCommand(CLI::App& app, Globals& g) {
  struct CleanOpts {
    std::string ifname;
    bool all = false;
  };
  auto o = std::make_shared<CleanOpts>();
  auto* cmd = app.add_subcommand(
      "clean", "Remove what csumfix left behind in this network namespace (IFACE or --all).");
  auto* iface = cmd->add_option("iface", o->ifname, "only what was left for this interface");
  cmd->add_flag("--all", o->all, "everything csumfix left in this network namespace")
      ->excludes(iface);
  cmd->footer(
      "Removes: the record of an attached interface that was deleted (a VM or pod that went),\n"
      "the pins of an attach that was interrupted, csumfix's bounce veth pairs (csf*), its ifb\n"
      "devices (csfifb*) and cls_bpf filters (handle 0xc5f, a csf_* program) that no attachment uses any more — e.g.\n"
      "after `ip netns exec NS csumfix attach` on an older csumfix. Live attachments, and\n"
      "anything csumfix did not create, are left alone. `attach` replaces such leftovers itself.\n"
      "--all also removes the pins other network namespaces left when their interfaces went with\n"
      "them (a deleted pod's or VM's namespace; provable where the hooks were tcx or XDP links).\n"
      "Examples:\n"
      "  csumfix clean --all\n"
      "  csumfix -n labns clean va");
  cmd->callback([o, &g] {
    if (!o->all && o->ifname.empty()) {
      g.rc = UsageFail("clean", "name an interface or use --all");
      return;
    }
    auto rep = control::Controller(g.bpffs).Clean(o->all ? "" : o->ifname);
    if (!rep.ok()) {
      g.rc = Fail(rep.status());
      return;
    }
    for (const auto& r : rep->removed) std::printf("removed %s\n", r.c_str());
    if (rep->removed.empty()) std::printf("nothing to clean\n");
    g.rc = Finish(rep->done);
  });
}

}  // namespace csumfix::cli
