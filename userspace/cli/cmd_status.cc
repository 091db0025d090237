// csumfix status [IFACE]: the attachments (state, mechanism, hooks, the device's offloads) and
// how many policy rules can match on each. JSON and text are both rendered from one view per
// interface (IfaceView), built from control::IfaceStatus.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "control/control.h"
#include "control/ifb.h"
#include "control/names.h"
#include "control/pins.h"
#include "control/policy.h"
#include "csumfix/abi.h"
#include "nlohmann/json.hpp"

namespace csumfix::cli {
namespace {

using json = nlohmann::json;

constexpr Help kHelp{
    "status", "Show attachments.",
    "Per interface: state (ok; attaching: another csumfix is attaching it right now;\n"
    "incomplete: an attach was interrupted, `csumfix detach IFACE` cleans up), ifindex,\n"
    "present (the device still exists), fill mechanism, policy rules that can match there\n"
    "(rules; rules_iface: bound to it alone), the device's offload switches (tx/rx checksumming,\n"
    "TSO, GSO, GRO as `ethtool -k` shows them) and per hook: mode (tcx, clsact, xdp), program\n"
    "id, selector program id (mechanism act-csum, and ifb where it goes by mirred; ifb: the\n"
    "device, csfifb<hex ifindex>, and ifb_via: redirect or mirred), attached, default action.\n"
    "Warnings (stderr) name policy rules whose interface is gone. Attachments are per network\n"
    "namespace: this one's (-n NS for another; JSON: netns, the inode, and netns_name); a note\n"
    "(stderr) names the other namespaces that have attachments.\n"
    "Example: csumfix status tap0 -j"};

// One interface as status shows it.
struct IfaceView {
  const control::IfaceStatus& s;
  int rules = 0;        // policy rules that can match here: bound to this interface or to none
  int rules_iface = 0;  // of them, bound to this interface (by its index) alone
};

// The offload switches by name, as both outputs list them (a JSON object's key order).
std::map<std::string, bool> SortedOffloads(const control::IfaceStatus& s) {
  std::map<std::string, bool> out;
  for (const auto& [k, v] : s.offloads) out[k] = v;
  return out;
}

json ToJson(const IfaceView& v) {
  const control::IfaceStatus& s = v.s;
  json j{{"ifname", s.ifname},
         {"ifindex", s.ifindex},
         {"state", s.state},
         {"present", s.present},
         {"mechanism", std::string(names::MechanismName(s.mechanism))},
         {"rules", v.rules},
         {"rules_iface", v.rules_iface}};
  AddNetnsJson(j, s.netns_ino);
  if (!s.problem.empty()) j["problem"] = s.problem;
  if (s.mechanism == CSF_MECH_IFB) {
    j["ifb_device"] = control::IfbName(s.ifindex);
    // How packets reach it: csumfix's own redirect, or the selector filter's mirred action.
    const bool selector = std::any_of(s.hooks.begin(), s.hooks.end(),
                                      [](const control::HookStatus& h) { return h.act_prog_id; });
    j["ifb_via"] = selector ? "mirred" : "redirect";
  }
  json hooks = json::array();
  for (const control::HookStatus& h : s.hooks)
    hooks.push_back({{"hook", std::string(names::HookName(h.hook))},
                     {"mode", h.mode},
                     {"prog_id", h.prog_id},
                     {"prog_tag", h.prog_tag},
                     {"act_csum_prog_id", h.act_prog_id},
                     {"attached", h.attached},
                     {"action", std::string(names::ActionName(h.action))}});
  j["hooks"] = hooks;
  j["offloads"] = SortedOffloads(s);
  return j;
}

void PrintText(const IfaceView& v) {
  const control::IfaceStatus& s = v.s;
  if (s.state != "ok") {
    std::printf("%s %s\n", s.ifname.c_str(), absl::AsciiStrToUpper(s.state).c_str());
    return;
  }
  std::printf("%s (ifindex %u, %s) fill mechanism %s, policy rules %d (%d for it alone)%s\n",
              s.ifname.c_str(), s.ifindex, NetnsText(s.netns_ino).c_str(),
              std::string(names::MechanismName(s.mechanism)).c_str(),
              v.rules, v.rules_iface, s.present ? "" : " GONE");
  std::string off;
  for (const auto& [k, on] : SortedOffloads(s))
    absl::StrAppend(&off, " ", k, on ? " on" : " off", ",");
  if (!off.empty()) std::printf("  offloads:%s\n", off.substr(0, off.size() - 1).c_str());
  for (const control::HookStatus& h : s.hooks) {
    const uint32_t act = h.act_prog_id;
    std::printf("  %-8s %-7s prog %-6u action %-9s %s%s\n",
                std::string(names::HookName(h.hook)).c_str(), h.mode.c_str(), h.prog_id,
                std::string(names::ActionName(h.action)).c_str(),
                h.attached ? "attached" : "NOT ATTACHED",
                act ? absl::StrCat(s.mechanism == CSF_MECH_IFB
                                       ? absl::StrCat(" (ifb selector prog ", act, " -> ",
                                                      control::IfbName(s.ifindex))
                                       : absl::StrCat(" (act_csum selector prog ", act),
                                   ")")
                          .c_str()
                : s.mechanism == CSF_MECH_IFB && h.hook == CSF_HOOK_TC_INGRESS
                    ? absl::StrCat(" (redirect -> ", control::IfbName(s.ifindex), ")").c_str()
                    : "");
  }
}

// Counts the per-flow rules that can match on each attached interface, and warns about those
// whose interface is gone (they match nothing). Read without the lock: status never waits for a
// change.
void CountRules(std::vector<IfaceView>& views, const std::string& bpffs) {
  auto rules = control::ReadRules(bpffs);
  const control::RuleIfnames ifnames =
      control::ReadRuleIfnames(bpffs).value_or(control::RuleIfnames{});
  if (!rules.ok()) {
    std::fprintf(stderr, "csumfix: warning: policy rules not read: %s\n",
                 std::string(rules.status().message()).c_str());
    return;
  }
  for (const csf_pol_rule& r : *rules) {
    const bool bound = r.flags & CSF_POL_F_IFINDEX;
    for (IfaceView& v : views) {
      if (v.s.state != "ok") continue;
      const bool here = bound && v.s.ifindex == r.ifindex;
      if (!bound || here) ++v.rules;
      if (here) ++v.rules_iface;
    }
    if (!control::RuleInterfaceGone(r)) continue;
    if (auto it = ifnames.find(r.id); it != ifnames.end())
      std::fprintf(stderr,
                   "csumfix: note: policy rule %u is bound to %s, which is gone: it applies "
                   "again when an interface of that name is attached\n",
                   r.id, it->second.c_str());
    else
      std::fprintf(stderr,
                   "csumfix: warning: policy rule %u names interface index %u, which no "
                   "longer exists: it matches nothing; remove it with `csumfix policy del "
                   "%u`\n",
                   r.id, r.ifindex, r.id);
  }
}

Outcome Status(const ShowOpts& o, const Globals& g) {
  ASSIGN_OR_RETURN(const std::vector<control::IfaceStatus> st,
                   control::Controller(g.bpffs).Status());
  std::vector<IfaceView> views;
  for (const control::IfaceStatus& i : st)
    if (o.ifname.empty() || i.ifname == o.ifname) views.push_back({i});
  if (!o.ifname.empty() && views.empty())
    return absl::NotFoundError(o.ifname + " is not attached (see `csumfix status`)");
  CountRules(views, g.bpffs);
  for (const IfaceView& v : views)
    if (!v.s.problem.empty())
      std::fprintf(stderr, "csumfix: %s %s: %s\n", v.s.ifname.c_str(), v.s.state.c_str(),
                   WithNetns(v.s.problem).c_str());
  PrintRows(views, o.json, ToJson, PrintText, "nothing attached");
  // Attachments of other namespaces are theirs to show (`-n NS`); say that they exist.
  if (o.ifname.empty()) {
    const uint64_t here = control::CurrentNetnsIno();
    for (uint64_t ino : control::PinPaths(g.bpffs).Namespaces()) {
      if (ino == here) continue;
      const size_t n = control::PinPaths(g.bpffs, ino).Interfaces().size();
      if (n == 0) continue;
      const std::string name = control::NetnsName(ino);
      // Every hook a link whose device is gone: the namespace went (a deleted pod or VM).
      auto other = control::Controller(g.bpffs, ino).Status(control::Controller::Detail::kRecords);
      const bool gone = other.ok() && !other->empty() &&
                        std::all_of(other->begin(), other->end(),
                                    [](const control::IfaceStatus& i) { return i.links_defunct; });
      const std::string see =
          gone ? (n == 1 ? "its interface is gone (a deleted namespace); `csumfix clean --all` "
                           "removes it"
                         : "its interfaces are gone (a deleted namespace); `csumfix clean --all` "
                           "removes them")
          : name.empty() ? "`csumfix stats -A` shows its counters"
                         : absl::StrCat("`csumfix -n ", name, " status`");
      std::fprintf(stderr, "csumfix: note: network namespace %s has %zu attachment%s: %s\n",
                   NetnsText(ino).c_str(), n, n == 1 ? "" : "s", WithNetns(see).c_str());
    }
  }
  return Done{};
}

}  // namespace

void AddStatusCommand(CLI::App& app, Globals& g) { AddShowCommand(app, g, kHelp, Status); }

}  // namespace csumfix::cli
