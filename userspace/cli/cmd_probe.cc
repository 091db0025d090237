// csumfix probe: which fill mechanism this kernel gets, found out by trying in a throwaway
// network namespace (control/probe.h); a complete result is cached per boot.
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "control/names.h"
#include "control/probe.h"

namespace csumfix::cli {
namespace {

struct ProbeOpts {
  bool refresh = false;
  bool json = false;
};

constexpr Help kHelp{
    "probe", "Find out, by trying, which fill mechanism this kernel gets (cached per boot).",
    "Tries, in a throwaway network namespace, whether bpf_skb_change_tail clears\n"
    "CHECKSUM_PARTIAL (mechanism bpf), whether act_csum exists (act-csum), and otherwise picks\n"
    "bounce; never by kernel version. It also tries the ifb mechanism (an ifb device, reached\n"
    "by csumfix's own redirect where the kernel allows it, else by its selector with mirred;\n"
    "tc ingress only, never chosen by auto: --mechanism ifb).\n"
    "Needs CAP_SYS_ADMIN (the namespace; act_csum is tried\n"
    "there, or loaded with modprobe given CAP_SYS_MODULE): without it the result is\n"
    "incomplete, exit 3, and not cached.\n"
    "Example: csumfix probe --refresh -j"};

// An incomplete probe is done with a warning (exit 3): a result, but not the whole truth, and
// nothing was cached.
Outcome ProbeOutcome(const absl::StatusOr<control::ProbeResult>& p) {
  if (!p.ok()) return p.status();
  Done d;
  if (!p->complete)
    d.Warn(absl::StrCat(
        "probe incomplete, not cached: ", absl::StrJoin(p->undetermined, "; "),
        ". Run `csumfix probe` as root (it needs CAP_SYS_ADMIN for its throwaway namespace)"));
  return d;
}

void PrintProbe(const control::ProbeResult& p, bool json) {
  if (json) {
    std::cout << control::ProbeToJson(p) << "\n";
    return;
  }
  auto yn = [](bool b) { return b ? "yes" : "no"; };
  std::printf("kernel %s%s\n", p.kernel.c_str(), p.cached ? " (cached for this boot)" : "");
  std::printf("  bpf_cast_to_kern_ctx: %s%s\n", yn(p.kern_ctx_kfunc),
              p.kern_ctx_kfunc ? "" : " (probe-read fallback)");
  std::printf("  tcx links:            %s%s\n", yn(p.tcx), p.tcx ? "" : " (clsact + cls_bpf)");
  std::printf("  change_tail fix:      %s: %s\n", yn(p.change_tail_clears_partial),
              p.change_tail_detail.c_str());
  std::printf("  act_csum:             %s: %s\n", yn(p.act_csum), p.act_csum_detail.c_str());
  std::printf("  ifb + mirred:         %s: %s\n", yn(p.ifb), p.ifb_detail.c_str());
  std::printf("  ifb by redirect:      %s: %s\n", yn(p.ifb_redirect), p.ifb_redirect_detail.c_str());
  std::printf("fill mechanism: %s (%s)\n", std::string(names::MechanismName(p.mechanism)).c_str(),
              p.reason.c_str());
}

}  // namespace

void AddProbeCommand(CLI::App& app, Globals& g) {
  auto [cmd, o] = NewCommand<ProbeOpts>(app, kHelp);
  cmd->add_flag("--refresh", o->refresh, "ignore this boot's cached result");
  AddJsonFlag(cmd, o->json);
  cmd->callback([o, &g] {
    const auto p = control::Probe(o->refresh);
    // The verdict (and an incomplete probe's warning) goes to stderr before the result.
    g.rc = Finish(ProbeOutcome(p));
    if (p.ok()) PrintProbe(*p, o->json);
  });
}

}  // namespace csumfix::cli
