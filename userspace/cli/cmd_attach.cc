// csumfix attach IFACE: attach csumfix to an interface's hooks, all-or-nothing; the attachment
// is pinned and outlives this command.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "control/control.h"
#include "control/names.h"
#include "control/probe.h"

namespace csumfix::cli {
namespace {

struct AttachOpts {
  control::AttachRequest req;
  ActionOpt action;
  bool both = false;
  std::string mechanism = "auto";  // or a names::kMechanisms name
  std::string tc_api = "auto";
};

constexpr Help kHelp{
    "attach", "Attach csumfix to an interface (all-or-nothing: on any error nothing stays).",
    "Actions: pass (count only), observe (classify by headers, never change), verify (check\n"
    "every checksum), drop-bad (drop bad L4/IPv4-header checksums, never a partial packet),\n"
    "fill (complete partial checksums), zero-udp4 (partial UDP over IPv4 gets checksum 0).\n"
    "A valid packet leaves byte-identical under every action (docs/SEMANTICS.md).\n"
    "Mechanism auto: the probe's choice for fill and zero-udp4; observe (no helper veths or\n"
    "filters) for the other actions, which never fill. Name a mechanism (--mechanism bounce)\n"
    "when policy rules are to fill on an interface whose own action does not.\n"
    "Attach is all-or-nothing; the attachment is pinned and outlives this command.\n"
    "Examples:\n"
    "  csumfix attach tap0                          # both tc hooks (guest->host and host->guest),\n"
    "                                               # action fill, mechanism auto\n"
    "  csumfix attach br0p1 --egress --action verify\n"
    "  csumfix attach vb --xdp --action fill --redirect-to vc\n"
    "Errors: 'already attached' -> `csumfix detach IFACE` first; 'no interface' -> see\n"
    "`ip link show`; a mechanism the kernel lacks -> `csumfix probe` says why."};

control::TcApi TcApiFromName(const std::string& name) {
  if (name == "tcx") return control::TcApi::kTcx;
  if (name == "clsact") return control::TcApi::kClsact;
  return control::TcApi::kAuto;
}

Outcome Attach(AttachOpts& o, const Globals& g) {
  control::AttachRequest& req = o.req;
  if (o.both) req.ingress = req.egress = true;
  if (!req.ingress && !req.egress && !req.xdp) req.ingress = req.egress = true;
  req.action = o.action.value();
  ASSIGN_OR_RETURN(const control::ProbeResult p, control::Probe());
  const bool automatic = o.mechanism == "auto";
  req.mechanism = control::ResolveMechanism(o.mechanism, req.action, p.mechanism);
  // Only a filling action takes the probe's choice; the others get observe and need no probe.
  const bool probed = automatic && control::ActionCanFill(req.action);
  if (probed && !p.complete)
    std::fprintf(stderr, "csumfix: warning: --mechanism auto: %s\n", p.reason.c_str());
  req.tc_api = TcApiFromName(o.tc_api);
  RETURN_IF_ERROR(control::Controller(g.bpffs).Attach(req, p));
  std::vector<std::string> hooks;
  if (req.ingress) hooks.emplace_back(names::HookName(CSF_HOOK_TC_INGRESS));
  if (req.egress) hooks.emplace_back(names::HookName(CSF_HOOK_TC_EGRESS));
  if (req.xdp) hooks.emplace_back(names::HookName(CSF_HOOK_XDP));
  const std::string why =
      automatic && !probed
          ? absl::StrCat(" (action ", o.action.name,
                         " never fills; for policy rules that fill here, name one: "
                         "--mechanism bounce)")
          : "";
  std::printf("attached %s (%s): action %s, fill mechanism %s%s\n", req.ifname.c_str(),
              absl::StrJoin(hooks, ", ").c_str(), o.action.name.c_str(),
              std::string(names::MechanismName(req.mechanism)).c_str(), why.c_str());
  return Done{};
}

}  // namespace

void AddAttachCommand(CLI::App& app, Globals& g) {
  auto [cmd, o] = NewCommand<AttachOpts>(app, kHelp);
  cmd->add_option("iface", o->req.ifname, "interface name")->required();
  cmd->add_flag("--ingress", o->req.ingress, "tc ingress hook (with --egress: the default when no hook is given)");
  cmd->add_flag("--egress", o->req.egress, "tc egress hook");
  cmd->add_flag("--both", o->both, "tc ingress and egress");
  cmd->add_flag("--xdp", o->req.xdp, "XDP hook (classify and count; drop-bad)");
  cmd->add_option("--redirect-to", o->req.xdp_redirect_to,
                  "with --xdp: redirect every frame not dropped to this interface "
                  "(XDP_REDIRECT); seeds are completed, since the frame leaves without "
                  "checksum metadata");
  cmd->add_option("--action", o->action.name, "default action: " + ActionList())
      ->check(ActionValidator())
      ->capture_default_str();
  cmd->add_option("--mechanism", o->mechanism,
                  "how packets the kernel holds as CHECKSUM_PARTIAL are filled: auto (what "
                  "`csumfix probe` chooses for fill and zero-udp4, observe for the actions "
                  "that never fill) | bpf (trim below the field and regrow; needs the "
                  "bpf_skb_change_tail fix) | act-csum (classic act_csum behind a csumfix "
                  "selector; needs CONFIG_NET_ACT_CSUM) | bounce (out of a tx-csum-off veth "
                  "and back; any kernel) | ifb (--ingress only: through a tx-csum-off ifb "
                  "device; needs CONFIG_IFB, and before 6.4 a csumfix selector with "
                  "CONFIG_NET_ACT_MIRRED) | "
                  "observe (never fill them)")
      ->check(CLI::IsMember(MechanismList()))
      ->capture_default_str();
  cmd->add_option("--tc-api", o->tc_api, "tc attach API")
      ->check(CLI::IsMember({"auto", "tcx", "clsact"}))
      ->capture_default_str();
  OnRun(cmd, g, [o, &g] { return Attach(*o, g); });
}

}  // namespace csumfix::cli
