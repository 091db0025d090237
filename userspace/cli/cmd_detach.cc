// csumfix detach IFACE | --all: remove what csumfix attached (its filters, bounce veths,
// counters and pins); another program at the hook is left alone and reported (exit 3).
#include <memory>
#include <string>

#include "CLI/CLI.hpp"
#include "cli/commands.h"
#include "cli/common.h"
#include "control/control.h"

namespace csumfix::cli {
namespace {

struct DetachOpts {
  std::string ifname;
  bool all = false;
};

constexpr Help kHelp{
    "detach", "Remove csumfix from an interface, or --all.",
    "Removes only what csumfix attached (cls_bpf filters are checked by program id; another\n"
    "program at the hook is left alone and reported, exit 3), its bounce veths, counters and\n"
    "pins; the directories go with the last interface. Policy rules stay (`policy flush`).\n"
    "Examples:\n"
    "  csumfix detach tap0\n"
    "  csumfix -n labns detach --all"};

}  // namespace

void AddDetachCommand(CLI::App& app, Globals& g) {
  auto [cmd, o] = NewCommand<DetachOpts>(app, kHelp);
  auto* iface = cmd->add_option("iface", o->ifname, "interface name");
  cmd->add_flag("--all", o->all, "detach every interface")->excludes(iface);
  cmd->callback([o, &g] {
    if (!o->all && o->ifname.empty()) {
      g.rc = UsageFail("detach", "name an interface or use --all");
      return;
    }
    control::Controller c(g.bpffs);
    g.rc = Finish(o->all ? c.DetachAll() : c.Detach(o->ifname));
  });
}

}  // namespace csumfix::cli
