// csumfix policy add | zone | del | flush | list: the per-flow rules (control/policy.h) that
// give a flow its action instead of its hook's.
#include <net/if.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "control/control.h"
#include "control/names.h"
#include "control/policy.h"
#include "csumfix/abi.h"
#include "nlohmann/json.hpp"

namespace csumfix::cli {
namespace {

using json = nlohmann::json;

constexpr Help kHelp{
    "policy", "Per-flow rules: which action a flow gets (the interface's action otherwise).",
    "A packet gets the action of the matching rule with the lowest --priority (then the\n"
    "oldest); with no match, its hook's action. Changes switch atomically. A rule with --iface\n"
    "is bound to that interface by name: if the interface is deleted the rule matches nothing\n"
    "(flagged by `policy list` and `status`) until an interface of that name is attached, by\n"
    "hand or by `serve`, which rebinds the rule to it. A fill rule warns about\n"
    "attached interfaces with fill mechanism observe (mechanism auto with an action that never\n"
    "fills): there it cannot fill partial packets. docs/POLICY.md.\n"
    "Examples:\n"
    "  csumfix policy add --proto udp --dport 67-68 --action fill --priority 10\n"
    "  csumfix policy add --iface tap3 --src 192.0.2.0/24 --action drop-bad\n"
    "  csumfix policy zone --prefix 10.1.0.0/16\n"
    "  csumfix policy list -j; csumfix policy del 3; csumfix policy flush"};

// A warning in `done` (so the command exits 3, done with warnings) for each attached interface
// where one of `rules` fills but the mechanism is observe (attached with an action that never
// fills and mechanism auto, or --mechanism observe): there kernel-PARTIAL packets are counted
// and left partial. Says how to re-attach it with a mechanism.
void WarnFillWithoutMechanism(const std::vector<csf_pol_rule>& rules, const Globals& g,
                              Done* done) {
  if (std::none_of(rules.begin(), rules.end(),
                   [](const csf_pol_rule& r) { return control::ActionCanFill(r.action); }))
    return;
  auto attached = control::Controller(g.bpffs).Status();
  if (!attached.ok()) return;
  std::set<std::string> warned;
  for (const csf_pol_rule& r : rules) {
    for (const control::IfaceStatus* s : control::FillRuleWithoutMechanism(r, *attached)) {
      if (!warned.insert(s->ifname).second) continue;
      std::string hooks, action = "fill", xdp_note;
      for (const control::HookStatus& h : s->hooks) {
        absl::StrAppend(&hooks, " --", names::HookName(h.hook));
        if (h.hook != CSF_HOOK_XDP) action = std::string(names::ActionName(h.action));
        if (h.hook == CSF_HOOK_XDP) xdp_note = " (with its --redirect-to, if it had one)";
      }
      const std::string ns = g.netns.empty() ? "" : absl::StrCat("-n ", g.netns, " ");
      done->Warn(absl::StrCat(
          "warning: ", s->ifname, " has fill mechanism observe (no fill helpers): rule ", r.id,
          " (", names::ActionName(r.action), ") leaves the packets the kernel holds as partial "
          "there unfilled, only counted. To fill them, re-attach it with a mechanism: `csumfix ",
          ns, "detach ", s->ifname, " && csumfix ", ns, "attach ", s->ifname, hooks, " --action ",
          action, " --mechanism bounce`", xdp_note));
    }
  }
}

void AddRuleCommand(CLI::App& policy, Globals& g) {
  auto [cmd, spec] = NewCommand<control::RuleSpec>(
      policy,
      {"add", "Add a rule. Matching rules: the lowest --priority wins, then the oldest rule."});
  cmd->add_option("--iface", spec->ifname, "only this interface");
  cmd->add_option("--hook", spec->hook, "only this hook")
      ->check(CLI::IsMember(NameList(names::kHooks)));
  cmd->add_option("--ip", spec->ip, "IP version")->check(CLI::IsMember({4, 6}));
  cmd->add_option("--proto", spec->proto, "tcp|udp|udplite|sctp|icmp|icmpv6|number");
  cmd->add_option("--src", spec->src, "source prefix, e.g. 10.0.0.0/8 or fd00::/64");
  cmd->add_option("--dst", spec->dst, "destination prefix");
  cmd->add_option("--sport", spec->sport, "source port or range lo-hi (needs --proto)");
  cmd->add_option("--dport", spec->dport, "destination port or range lo-hi (needs --proto)");
  cmd->add_option("--action", spec->action, "action: " + ActionList())
      ->required()
      ->check(ActionValidator());
  cmd->add_option("--priority", spec->priority, "lower wins")->capture_default_str();
  OnRun(cmd, g, [spec, &g]() -> Outcome {
    ASSIGN_OR_RETURN(csf_pol_rule rule, control::ParseRule(*spec));
    {
      ASSIGN_OR_RETURN(control::Policy p, control::Policy::Open(g.bpffs));
      ASSIGN_OR_RETURN(rule.id, p.Add(rule));
    }
    std::printf("rule %u added\n", rule.id);
    Done done;
    WarnFillWithoutMechanism({rule}, g, &done);
    return done;
  });
}

struct ZoneOpts {
  std::vector<std::string> prefixes;
  uint32_t priority = 50;
  std::string ifname;
};

void AddZoneCommand(CLI::App& policy, Globals& g) {
  auto [cmd, o] = NewCommand<ZoneOpts>(
      policy, {"zone",
               "Xen-style private network with checksums suppressed: leave packets between "
               "members of the prefix set alone (pass), fill those that leave it."});
  cmd->add_option("--prefix", o->prefixes, "member prefix (repeat)")->required();
  cmd->add_option("--iface", o->ifname, "only this interface");
  cmd->add_option("--priority", o->priority, "priority of the pass rules (fill: +1)")
      ->capture_default_str();
  OnRun(cmd, g, [o, &g]() -> Outcome {
    ASSIGN_OR_RETURN(std::vector<csf_pol_rule> rules,
                     control::ZoneRules(o->prefixes, o->ifname, o->priority));
    {
      ASSIGN_OR_RETURN(control::Policy p, control::Policy::Open(g.bpffs));
      ASSIGN_OR_RETURN(const std::vector<uint32_t> ids, p.AddAll(rules));
      for (size_t i = 0; i < rules.size(); ++i) rules[i].id = ids[i];
    }
    std::printf("zone: %zu rules added (ids %u-%u)\n", rules.size(), rules.front().id,
                rules.back().id);
    Done done;
    WarnFillWithoutMechanism(rules, g, &done);
    return done;
  });
}

void AddDelCommand(CLI::App& policy, Globals& g) {
  auto [cmd, id] = NewCommand<uint32_t>(policy, {"del", "Delete a rule by id."});
  cmd->add_option("id", *id, "rule id (see policy list)")->required();
  OnRun(cmd, g, [id, &g]() -> Outcome {
    ASSIGN_OR_RETURN(control::Policy p, control::Policy::Open(g.bpffs));
    RETURN_IF_ERROR(p.Delete(*id));
    return Done{};
  });
}

void AddFlushCommand(CLI::App& policy, Globals& g) {
  CLI::App* cmd = AddSubcommand(policy, {"flush", "Delete every rule."});
  OnRun(cmd, g, [&g]() -> Outcome {
    ASSIGN_OR_RETURN(control::Policy p, control::Policy::Open(g.bpffs));  // holds the pin lock
    RETURN_IF_ERROR(p.Flush());
    control::Controller(g.bpffs).Tidy();
    return Done{};
  });
}

// One rule as `policy list -j` prints it; warns on stderr when its interface is gone.
json RuleJson(const csf_pol_rule& r, const control::RuleIfnames& ifnames) {
  const bool bound = r.flags & CSF_POL_F_IFINDEX;
  char name[IF_NAMESIZE] = {};
  const bool gone = control::RuleInterfaceGone(r);
  const auto recorded = ifnames.find(r.id);
  const bool follows = bound && recorded != ifnames.end();
  if (gone && follows)
    std::fprintf(stderr,
                 "csumfix: note: rule %u is bound to %s, which is gone: it applies again when "
                 "an interface of that name is attached\n",
                 r.id, recorded->second.c_str());
  else if (gone)
    std::fprintf(stderr,
                 "csumfix: warning: rule %u is bound to interface index %u, which no longer "
                 "exists (deleted): it matches nothing, also not a new interface of the same "
                 "name; `csumfix policy del %u` removes it (serve removes such rules itself)\n",
                 r.id, r.ifindex, r.id);
  return {{"id", r.id},
          {"priority", r.priority},
          {"action", std::string(names::ActionName(r.action))},
          // the interface it is bound to: index 0 / "" = any interface
          {"ifindex", bound ? r.ifindex : 0},
          // the name it follows (recorded at `policy add`), else the index's name now
          {"iface", follows ? recorded->second
                    : bound && !gone && if_indextoname(r.ifindex, name) ? name : ""},
          {"iface_gone", gone},
          {"rule", control::DescribeRule(r, &ifnames)}};
}

void AddListCommand(CLI::App& policy, Globals& g) {
  auto [cmd, as_json] = NewCommand<bool>(policy, {"list", "List the rules, in precedence order."});
  AddJsonFlag(cmd, *as_json);
  OnRun(cmd, g, [as_json, &g]() -> Outcome {
    // Under the pin lock (a consistent set), read as stored: nothing is loaded or created.
    ASSIGN_OR_RETURN(const auto lock, control::LockPins(g.bpffs));
    ASSIGN_OR_RETURN(const std::vector<csf_pol_rule> rules, control::ReadRules(g.bpffs));
    ASSIGN_OR_RETURN(const control::RuleIfnames ifnames, control::ReadRuleIfnames(g.bpffs));
    json out = json::array();
    for (const csf_pol_rule& r : rules) out.push_back(RuleJson(r, ifnames));
    if (*as_json) {
      std::cout << JsonText(out) << "\n";
    } else {
      for (const csf_pol_rule& r : rules)
        std::printf("%s\n", control::DescribeRule(r, &ifnames).c_str());
    }
    control::Controller(g.bpffs).Tidy();
    return Done{};
  });
}

}  // namespace

void AddPolicyCommand(CLI::App& app, Globals& g) {
  CLI::App* policy = AddSubcommand(app, kHelp);
  policy->require_subcommand(1);
  AddRuleCommand(*policy, g);
  AddZoneCommand(*policy, g);
  AddDelCommand(*policy, g);
  AddFlushCommand(*policy, g);
  AddListCommand(*policy, g);
}

}  // namespace csumfix::cli
