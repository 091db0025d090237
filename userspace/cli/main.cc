// csumfix command line: a command table in the style of iproute2 / bpftool / xdp-loader.
// Exit codes: 0 success, 1 operation failed, 2 usage error (CLI11's), 3 partial success
// (done with warnings).
#include <fcntl.h>
#include <net/if.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sched.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/caps.h"
#include "base/status.h"
#include "bpf/loader.h"
#include "cli/cmd_diagnose.h"
#include "cli/cmd_serve.h"
#include "cli/common.h"
#include "control/control.h"
#include "control/policy.h"
#include "control/probe.h"
#include "csumfix.skel.h"
#include "csumfix/abi.h"
#include "nlohmann/json.hpp"
#include "refcsum/refcsum.h"

namespace csumfix {
namespace {

using json = nlohmann::json;
using cli::ActionList;
using cli::ActionOpt;
using cli::ActionValidator;
using cli::CountersJson;
using cli::Fail;

// Joins /run/netns/<name> for this process (network namespace only; mounts stay).
absl::Status EnterNetns(const std::string& name) {
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
    return absl::InvalidArgumentError("--netns: \"" + name + "\" is not a namespace name");
  std::string path = "/run/netns/" + name;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return absl::NotFoundError("--netns: no namespace " + path + " (see `ip netns list`)");
  int r = setns(fd, CLONE_NEWNET);
  int e = errno;
  close(fd);
  if (r != 0) return ErrnoStatus(e, "--netns: join " + path);
  return absl::OkStatus();
}

// The commands of `a`, as "attach, detach, ..." (definition order).
std::string CommandNames(const CLI::App* a) {
  std::vector<std::string> names;
  for (const CLI::App* c : a->get_subcommands([](const CLI::App*) { return true; }))
    names.push_back(c->get_name());
  return absl::StrJoin(names, ", ");
}

// Command-line mistakes (exit 2, as iproute2's usage errors): "csumfix: <command>: <what is
// wrong>" and where the help is. An unknown or missing command word names the valid ones.
std::string UsageError(const CLI::App* root, const CLI::Error& e) {
  const CLI::App* cur = root;
  std::string path = "csumfix";
  while (!cur->get_subcommands().empty()) {
    cur = cur->get_subcommands().front();
    path += " " + cur->get_name();
  }
  std::string what = e.what();
  const bool has_commands = !cur->get_subcommands([](const CLI::App*) { return true; }).empty();
  if (has_commands && cur->get_subcommands().empty() && e.get_name() == "RequiredError") {
    // CLI11 reports an unknown command word as a missing subcommand; the word is left over.
    std::vector<std::string> rest = cur->remaining();
    for (const CLI::App* a = cur; rest.empty() && a->get_parent() != nullptr;) {
      a = a->get_parent();
      rest = a->remaining();
    }
    what = rest.empty() ? "no command given"
                        : absl::StrCat("unknown command \"", rest.front(), "\"");
    absl::StrAppend(&what, "; ", path == "csumfix" ? "the commands are: " : "choose one of: ",
                    CommandNames(cur));
  }
  std::string where = path == "csumfix" ? "" : path.substr(std::string("csumfix ").size()) + ": ";
  return absl::StrCat("csumfix: ", where, what, "\nRun `", path,
                      " --help` for the usage, options and examples.\n");
}

}  // namespace

int Main(int argc, char** argv) {
  CLI::App app{
      "csumfix: find and fix partial (offloaded) L4 checksums with eBPF on TAP, bridge and veth\n"
      "ports. Run as root. Attachments are pinned under /sys/fs/bpf/" CSF_PIN_ROOT
      "/ and outlive this command.",
      "csumfix"};
  app.require_subcommand(1);
  app.failure_message(UsageError);
  app.footer(
      "Commands print JSON with -j/--json where they print data (status, stats, flows, policy\n"
      "list, probe, check, diagnose). `csumfix COMMAND --help` describes each command.\n"
      "\n"
      "Exit status: 0 success; 1 the operation failed (the message says what is wrong and what\n"
      "to do); 2 usage error (unknown command or option, missing argument); 3 done with\n"
      "warnings (e.g. detach left a filter that is not csumfix's, probe could not find out\n"
      "everything, diagnose found bad checksums).\n"
      "\n"
      "Files: /sys/fs/bpf/csumfix/v1/IFACE/ (state, programs and links of an attachment),\n"
      "/sys/fs/bpf/csumfix/v1/maps/ (counters, actions, policy, flows), /run/csumfix/probe.json\n"
      "(this boot's probe result), /run/csumfix/serve.json (interfaces serve attached).\n"
      "\n"
      "Examples (as root):\n"
      "  csumfix attach tap0 --both --action fill   # complete partial checksums both ways\n"
      "  csumfix status                             # what is attached, how, offloads, rules\n"
      "  csumfix stats tap0 -j                      # counters per hook, class and action\n"
      "  csumfix policy add --proto udp --dport 67-68 --action fill --priority 10\n"
      "  csumfix -n labns detach --all              # inside network namespace labns\n"
      "Documentation: README.md, docs/SEMANTICS.md (actions, classes), docs/POLICY.md.");
  app.set_version_flag(
      "--version", std::string("csumfix ") + "0.1.0 (ABI " + std::to_string(CSF_ABI_VERSION) + ")");
  cli::Globals g;
  std::string& bpffs = g.bpffs;
  app.add_option("--bpffs", bpffs, "bpf filesystem mount point")->capture_default_str();
  std::string& netns = g.netns;
  app.add_option("-n,--netns", netns,
                 "run in network namespace NAME (/run/netns/NAME, as `ip -n`); unlike "
                 "`ip netns exec` this keeps the host's bpffs, where the pins live");
  bool as_json = false;
  int& rc = g.rc;
  app.parse_complete_callback([&] {
    if (!netns.empty() || app.count("--netns") > 0)  // -n "" is an error, not "no namespace"
      if (auto s = EnterNetns(netns); !s.ok()) throw CLI::RuntimeError(Fail(s));
    // Least privilege (SECURITY.md): keep only what this command needs, for good.
    const std::string cmd = app.get_subcommands().empty() ? "" : app.get_subcommands()[0]->get_name();
    if (auto s = base::ApplyPlan(cmd, base::PlanFor(cmd, bpffs)); !s.ok()) throw CLI::RuntimeError(Fail(s));
  });

  // attach
  auto* attach = app.add_subcommand(
      "attach", "Attach csumfix to an interface (all-or-nothing: on any error nothing stays).");
  control::AttachRequest areq;
  ActionOpt aact;
  bool both = false;
  std::string tc_api = "auto";
  attach->add_option("iface", areq.ifname, "interface name")->required();
  attach->add_flag("--ingress", areq.ingress, "tc ingress hook (the default when no hook given)");
  attach->add_flag("--egress", areq.egress, "tc egress hook");
  attach->add_flag("--both", both, "tc ingress and egress");
  attach->add_flag("--xdp", areq.xdp, "XDP hook (classify and count; drop-bad)");
  attach->add_option("--redirect-to", areq.xdp_redirect_to,
                     "with --xdp: redirect every frame not dropped to this interface "
                     "(XDP_REDIRECT); seeds are completed, since the frame leaves without "
                     "checksum metadata");
  attach->add_option("--action", aact.name, "default action: " + ActionList())
      ->check(ActionValidator())
      ->capture_default_str();
  std::string mech = "auto";
  attach
      ->add_option("--mechanism", mech,
                   "how packets the kernel holds as CHECKSUM_PARTIAL are filled: auto (what "
                   "`csumfix probe` chooses) | bpf (trim below the field and regrow; needs the "
                   "bpf_skb_change_tail fix) | act-csum (classic act_csum behind a csumfix "
                   "selector; needs CONFIG_NET_ACT_CSUM) | bounce (out of a tx-csum-off veth "
                   "and back; any kernel) | observe (never fill them)")
      ->check(CLI::IsMember({"auto", "bounce", "observe", "bpf", "act-csum"}))
      ->capture_default_str();
  attach->add_option("--tc-api", tc_api, "tc attach API")
      ->check(CLI::IsMember({"auto", "tcx", "clsact"}))
      ->capture_default_str();
  attach->footer(
      "Actions: pass (count only), observe (classify by headers, never change), verify (check\n"
      "every checksum), drop-bad (drop bad L4/IPv4-header checksums, never a partial packet),\n"
      "fill (complete partial checksums), zero-udp4 (partial UDP over IPv4 gets checksum 0).\n"
      "A valid packet leaves byte-identical under every action (docs/SEMANTICS.md).\n"
      "Attach is all-or-nothing; the attachment is pinned and outlives this command.\n"
      "Examples:\n"
      "  csumfix attach tap0                          # tc ingress, action fill, mechanism auto\n"
      "  csumfix attach br0p1 --egress --action verify\n"
      "  csumfix attach vb --xdp --action fill --redirect-to vc\n"
      "Errors: 'already attached' -> `csumfix detach IFACE` first; 'no interface' -> see\n"
      "`ip link show`; a mechanism the kernel lacks -> `csumfix probe` says why.");
  attach->callback([&] {
    if (both) areq.ingress = areq.egress = true;
    if (!areq.ingress && !areq.egress && !areq.xdp) areq.ingress = true;
    areq.action = aact.value();
    if (mech == "auto") {
      auto p = control::Probe();
      if (!p.ok()) {
        rc = Fail(p.status());
        return;
      }
      mech = std::string(control::MechanismName(p->mechanism));
      if (!p->complete)
        std::fprintf(stderr, "csumfix: warning: --mechanism auto: %s\n", p->reason.c_str());
    }
    areq.mechanism = control::MechanismFromName(mech);
    areq.tc_api = tc_api == "tcx"      ? control::TcApi::kTcx
                  : tc_api == "clsact" ? control::TcApi::kClsact
                                       : control::TcApi::kAuto;
    control::Controller c(bpffs);
    if (auto s = c.Attach(areq); !s.ok()) {
      rc = Fail(s);
      return;
    }
    std::vector<std::string> hooks;
    if (areq.ingress) hooks.push_back("ingress");
    if (areq.egress) hooks.push_back("egress");
    if (areq.xdp) hooks.push_back("xdp");
    std::printf("attached %s (%s): action %s, fill mechanism %s\n", areq.ifname.c_str(),
                absl::StrJoin(hooks, ", ").c_str(), aact.name.c_str(), mech.c_str());
  });

  // detach
  auto* detach = app.add_subcommand("detach", "Remove csumfix from an interface, or --all.");
  std::string difname;
  bool dall = false;
  auto* dif = detach->add_option("iface", difname, "interface name");
  detach->add_flag("--all", dall, "detach every interface")->excludes(dif);
  detach->footer(
      "Removes only what csumfix attached (cls_bpf filters are checked by program id; another\n"
      "program at the hook is left alone and reported, exit 3), its bounce veths, counters and\n"
      "pins; the directories go with the last interface. Policy rules stay (`policy flush`).\n"
      "Examples:\n"
      "  csumfix detach tap0\n"
      "  csumfix -n labns detach --all");
  detach->callback([&] {
    control::Controller c(bpffs);
    if (!dall && difname.empty()) {
      rc = cli::UsageFail("detach", "name an interface or use --all");
      return;
    }
    absl::Status s = dall ? c.DetachAll() : c.Detach(difname);
    if (!s.ok()) rc = Fail(s);
  });

  // status
  auto* status = app.add_subcommand("status", "Show attachments.");
  std::string sifname;
  status->add_option("iface", sifname, "only this interface");
  status->add_flag("-j,--json", as_json, "JSON output");
  status->footer(
      "Per interface: state (ok; attaching: another csumfix is attaching it right now;\n"
      "incomplete: an attach was interrupted, `csumfix detach IFACE` cleans up), ifindex,\n"
      "present (the device still exists), fill mechanism, policy rules that can match there\n"
      "(rules; rules_iface: bound to it alone), the device's offload switches (tx/rx checksumming,\n"
      "TSO, GSO, GRO as `ethtool -k` shows them) and per hook: mode (tcx, clsact, xdp), program\n"
      "id, act_csum selector program id (mechanism act-csum), attached, default action.\n"
      "Warnings (stderr) name policy rules whose interface is gone.\n"
      "Example: csumfix status tap0 -j");
  status->callback([&] {
    control::Controller c(bpffs);
    auto st = c.Status();
    if (!st.ok()) {
      rc = Fail(st.status());
      return;
    }
    json out = json::array();
    for (const auto& i : *st) {
      if (!sifname.empty() && i.ifname != sifname) continue;
      json ji{{"ifname", i.ifname},
              {"ifindex", i.ifindex},
              {"state", i.state},
              {"present", i.present},
              {"mechanism", std::string(control::MechanismName(i.mechanism))}};
      if (!i.problem.empty()) ji["problem"] = i.problem;
      // Policy rules that can match here: bound to this interface (by its index) or to none.
      ji["rules"] = 0;
      ji["rules_iface"] = 0;
      json hooks = json::array();
      for (const auto& h : i.hooks)
        hooks.push_back({{"hook", control::HookName(h.hook)},
                         {"mode", h.mode},
                         {"prog_id", h.prog_id},
                         {"act_csum_prog_id", h.act_prog_id},
                         {"attached", h.attached},
                         {"action", ref::ActionName(h.action)}});
      ji["hooks"] = hooks;
      json off = json::object();
      for (const auto& [k, v] : i.offloads) off[k] = v;
      ji["offloads"] = off;
      out.push_back(ji);
    }
    if (!sifname.empty() && out.empty()) {
      rc = Fail(absl::NotFoundError(sifname + " is not attached (see `csumfix status`)"));
      return;
    }
    // Per-flow rules: how many name each interface, and warnings for those whose interface is
    // gone (they match nothing). Read without the lock: status never waits for a change.
    auto rules = control::ReadRules(bpffs);
    if (!rules.ok()) {
      std::fprintf(stderr, "csumfix: warning: policy rules not read: %s\n",
                   std::string(rules.status().message()).c_str());
    } else {
      for (const auto& r : *rules) {
        const bool bound = r.flags & CSF_POL_F_IFINDEX;
        for (auto& i : out) {
          if (i["state"] != "ok") continue;
          const bool here = bound && i["ifindex"].get<uint32_t>() == r.ifindex;
          if (!bound || here) i["rules"] = i["rules"].get<int>() + 1;
          if (here) i["rules_iface"] = i["rules_iface"].get<int>() + 1;
        }
        if (control::RuleInterfaceGone(r))
          std::fprintf(stderr,
                       "csumfix: warning: policy rule %u names interface index %u, which no "
                       "longer exists: it matches nothing; remove it with `csumfix policy del "
                       "%u`\n",
                       r.id, r.ifindex, r.id);
      }
    }
    for (const auto& i : out)
      if (i.contains("problem"))
        std::fprintf(stderr, "csumfix: %s %s: %s\n", i["ifname"].get<std::string>().c_str(),
                     i["state"].get<std::string>().c_str(),
                     i["problem"].get<std::string>().c_str());
    if (as_json) {
      std::cout << out.dump() << "\n";
      return;
    }
    if (out.empty()) std::printf("nothing attached\n");
    for (const auto& i : out) {
      if (i["state"] != "ok") {
        std::printf("%s %s\n", i["ifname"].get<std::string>().c_str(),
                    absl::AsciiStrToUpper(i["state"].get<std::string>()).c_str());
        continue;
      }
      std::printf("%s (ifindex %u) fill mechanism %s, policy rules %d (%d for it alone)%s\n",
                  i["ifname"].get<std::string>().c_str(), i["ifindex"].get<uint32_t>(),
                  i["mechanism"].get<std::string>().c_str(), i["rules"].get<int>(),
                  i["rules_iface"].get<int>(), i["present"].get<bool>() ? "" : " GONE");
      std::string off;
      for (const auto& [k, v] : i["offloads"].items())
        absl::StrAppend(&off, " ", k, v.get<bool>() ? " on" : " off", ",");
      if (!off.empty()) std::printf("  offloads:%s\n", off.substr(0, off.size() - 1).c_str());
      for (const auto& h : i["hooks"]) {
        const uint32_t act = h["act_csum_prog_id"].get<uint32_t>();
        std::printf("  %-8s %-7s prog %-6u action %-9s %s%s\n", h["hook"].get<std::string>().c_str(),
                    h["mode"].get<std::string>().c_str(), h["prog_id"].get<uint32_t>(),
                    h["action"].get<std::string>().c_str(),
                    h["attached"].get<bool>() ? "attached" : "NOT ATTACHED",
                    act ? absl::StrCat(" (act_csum selector prog ", act, ")").c_str() : "");
      }
    }
  });

  // stats
  auto* stats = app.add_subcommand("stats", "Show per-interface, per-hook counters.");
  std::string stifname;
  stats->add_option("iface", stifname, "only this interface");
  stats->add_flag("-j,--json", as_json, "JSON output");
  stats->footer(
      "Per interface and hook: packets, bytes, packets per checksum class (valid, partial, bad,\n"
      "zero, na, unparsable, gso, unverified) and per action applied, filled, zeroed, dropped,\n"
      "ip4_hdr_bad, fill_error, bounced / bounce_returned (mechanism bounce), act_selected\n"
      "(mechanism act-csum), policy_hit. Counters start at zero with each attach.\n"
      "Example: csumfix stats tap0 -j");
  stats->callback([&] {
    control::Controller c(bpffs);
    auto rows = c.Counters();
    if (!rows.ok()) {
      rc = Fail(rows.status());
      return;
    }
    json out = json::array();
    if (!stifname.empty()) {
      // Counters start at the first packet: an attached interface may have none yet.
      auto st = c.Status();
      const bool attached =
          st.ok() && std::any_of(st->begin(), st->end(), [&](const control::IfaceStatus& i) {
            return i.ifname == stifname;
          });
      if (!attached) {
        rc = Fail(absl::NotFoundError(
            absl::StrCat(stifname, " is not attached, so it has no counters (see `csumfix "
                                   "status`; attach it with `csumfix attach ", stifname, "`)")));
        return;
      }
    }
    for (const auto& r : *rows) {
      if (!stifname.empty() && r.ifname != stifname) continue;
      json j = CountersJson(r.counters);
      j["ifname"] = r.ifname;
      j["ifindex"] = r.ifindex;
      j["hook"] = control::HookName(r.hook);
      out.push_back(j);
    }
    if (as_json) {
      std::cout << out.dump() << "\n";
      return;
    }
    if (out.empty()) std::printf("no counters (nothing attached, or no packet seen yet)\n");
    for (const auto& j : out) {
      std::printf("%s %s: %llu packets, %llu bytes\n", j["ifname"].get<std::string>().c_str(),
                  j["hook"].get<std::string>().c_str(), j["packets"].get<unsigned long long>(),
                  j["bytes"].get<unsigned long long>());
      std::string cls;
      for (const auto& [k, v] : j["class"].items())
        if (v.get<uint64_t>() > 0) absl::StrAppend(&cls, " ", k, "=", v.get<uint64_t>());
      std::printf("  class:%s\n", cls.empty() ? " -" : cls.c_str());
      std::printf(
          "  filled=%llu (bounced=%llu returned=%llu act_selected=%llu) zeroed=%llu dropped=%llu "
          "ip4_hdr_bad=%llu fill_error=%llu policy_hit=%llu\n",
          j["filled"].get<unsigned long long>(), j["bounced"].get<unsigned long long>(),
          j["bounce_returned"].get<unsigned long long>(),
          j["act_selected"].get<unsigned long long>(), j["zeroed"].get<unsigned long long>(),
          j["dropped"].get<unsigned long long>(), j["ip4_hdr_bad"].get<unsigned long long>(),
          j["fill_error"].get<unsigned long long>(), j["policy_hit"].get<unsigned long long>());
    }
  });

  // policy
  auto* policy = app.add_subcommand(
      "policy", "Per-flow rules: which action a flow gets (the interface's action otherwise).");
  policy->require_subcommand(1);
  policy->footer(
      "A packet gets the action of the matching rule with the lowest --priority (then the\n"
      "oldest); with no match, its hook's action. Changes switch atomically. A rule with --iface\n"
      "is bound to that interface's index: if the interface is deleted the rule matches nothing,\n"
      "is flagged by `policy list` and `status`, and `serve` removes it. docs/POLICY.md.\n"
      "Examples:\n"
      "  csumfix policy add --proto udp --dport 67-68 --action fill --priority 10\n"
      "  csumfix policy add --iface tap3 --src 192.0.2.0/24 --action drop-bad\n"
      "  csumfix policy zone --prefix 10.1.0.0/16\n"
      "  csumfix policy list -j; csumfix policy del 3; csumfix policy flush");
  auto* padd = policy->add_subcommand(
      "add", "Add a rule. Matching rules: the lowest --priority wins, then the oldest rule.");
  control::RuleSpec rs;
  padd->add_option("--iface", rs.ifname, "only this interface");
  padd->add_option("--hook", rs.hook, "only this hook")
      ->check(CLI::IsMember({"ingress", "egress", "xdp"}));
  padd->add_option("--ip", rs.ip, "IP version")->check(CLI::IsMember({4, 6}));
  padd->add_option("--proto", rs.proto, "tcp|udp|udplite|sctp|icmp|icmpv6|number");
  padd->add_option("--src", rs.src, "source prefix, e.g. 10.0.0.0/8 or fd00::/64");
  padd->add_option("--dst", rs.dst, "destination prefix");
  padd->add_option("--sport", rs.sport, "source port or range lo-hi (needs --proto)");
  padd->add_option("--dport", rs.dport, "destination port or range lo-hi (needs --proto)");
  padd->add_option("--action", rs.action, "action: " + ActionList())
      ->required()
      ->check(ActionValidator());
  padd->add_option("--priority", rs.priority, "lower wins")->capture_default_str();
  padd->callback([&] {
    auto r = control::ParseRule(rs);
    if (!r.ok()) {
      rc = Fail(r.status());
      return;
    }
    auto p = control::Policy::Open(bpffs);
    absl::StatusOr<uint32_t> id = p.ok() ? p->Add(*r) : absl::StatusOr<uint32_t>(p.status());
    if (!id.ok()) {
      rc = Fail(id.status());
      return;
    }
    std::printf("rule %u added\n", *id);
  });
  auto* pzone = policy->add_subcommand(
      "zone",
      "Xen-style private network with checksums suppressed: leave packets between "
      "members of the prefix set alone (pass), fill those that leave it.");
  std::vector<std::string> zone_prefixes;
  uint32_t zone_prio = 50;
  std::string zone_if;
  pzone->add_option("--prefix", zone_prefixes, "member prefix (repeat)")->required();
  pzone->add_option("--iface", zone_if, "only this interface");
  pzone->add_option("--priority", zone_prio, "priority of the pass rules (fill: +1)")
      ->capture_default_str();
  pzone->callback([&] {
    std::vector<csf_pol_rule> rules;
    for (const auto& a : zone_prefixes) {
      for (const auto& b : zone_prefixes) {
        control::RuleSpec z;
        z.ifname = zone_if;
        z.src = a;
        z.dst = b;
        z.action = "pass";
        z.priority = zone_prio;
        auto r = control::ParseRule(z);
        if (!r.ok()) {
          if (r.status().code() == absl::StatusCode::kInvalidArgument &&
              absl::StrContains(r.status().message(), "but the rule is IPv"))
            continue;  // an IPv4 and an IPv6 member never talk to each other directly
          rc = Fail(r.status());
          return;
        }
        rules.push_back(*r);
      }
      control::RuleSpec f;
      f.ifname = zone_if;
      f.src = a;
      f.action = "fill";
      f.priority = zone_prio + 1;
      auto r = control::ParseRule(f);
      if (!r.ok()) {
        rc = Fail(r.status());
        return;
      }
      rules.push_back(*r);
    }
    auto p = control::Policy::Open(bpffs);
    auto ids = p.ok() ? p->AddAll(rules) : absl::StatusOr<std::vector<uint32_t>>(p.status());
    if (!ids.ok()) {
      rc = Fail(ids.status());
      return;
    }
    std::printf("zone: %zu rules added (ids %u-%u)\n", ids->size(), ids->front(), ids->back());
  });
  auto* pdel = policy->add_subcommand("del", "Delete a rule by id.");
  uint32_t del_id = 0;
  pdel->add_option("id", del_id, "rule id (see policy list)")->required();
  pdel->callback([&] {
    auto p = control::Policy::Open(bpffs);
    absl::Status st = p.ok() ? p->Delete(del_id) : p.status();
    if (!st.ok()) rc = Fail(st);
  });
  auto* pflush = policy->add_subcommand("flush", "Delete every rule.");
  pflush->callback([&] {
    auto p = control::Policy::Open(bpffs);
    absl::Status st = p.ok() ? p->Flush() : p.status();
    if (!st.ok()) {
      rc = Fail(st);
      return;
    }
    control::Controller(bpffs).Tidy();
  });
  auto* plist = policy->add_subcommand("list", "List the rules, in precedence order.");
  plist->add_flag("-j,--json", as_json, "JSON output");
  plist->callback([&] {
    // Under the pin lock (a consistent set), read as stored: nothing is loaded or created.
    auto lock = control::LockPins(bpffs);
    auto rules = lock.ok() ? control::ReadRules(bpffs)
                           : absl::StatusOr<std::vector<csf_pol_rule>>(lock.status());
    if (!rules.ok()) {
      rc = Fail(rules.status());
      return;
    }
    json out = json::array();
    for (const auto& r : *rules) {
      const bool bound = r.flags & CSF_POL_F_IFINDEX;
      char name[IF_NAMESIZE] = {};
      const bool gone = control::RuleInterfaceGone(r);
      out.push_back({{"id", r.id},
                     {"priority", r.priority},
                     {"action", std::string(ref::ActionName(r.action))},
                     // the interface it is bound to: index 0 / "" = any interface
                     {"ifindex", bound ? r.ifindex : 0},
                     {"iface", bound && !gone && if_indextoname(r.ifindex, name) ? name : ""},
                     {"iface_gone", gone},
                     {"rule", control::DescribeRule(r)}});
      if (gone)
        std::fprintf(stderr,
                     "csumfix: warning: rule %u is bound to interface index %u, which no longer "
                     "exists (deleted): it matches nothing, also not a new interface of the same "
                     "name; `csumfix policy del %u` removes it (serve removes such rules itself)\n",
                     r.id, r.ifindex, r.id);
    }
    if (as_json) {
      std::cout << out.dump() << "\n";
    } else {
      for (const auto& r : *rules) std::printf("%s\n", control::DescribeRule(r).c_str());
    }
    control::Controller(bpffs).Tidy();
  });

  // probe
  auto* probe = app.add_subcommand(
      "probe", "Find out, by trying, which fill mechanism this kernel gets (cached per boot).");
  bool refresh = false;
  probe->add_flag("--refresh", refresh, "ignore this boot's cached result");
  probe->add_flag("-j,--json", as_json, "JSON output");
  probe->footer(
      "Tries, in a throwaway network namespace, whether bpf_skb_change_tail clears\n"
      "CHECKSUM_PARTIAL (mechanism bpf), whether act_csum exists (act-csum), and otherwise picks\n"
      "bounce; never by kernel version. Needs CAP_SYS_ADMIN (the namespace; act_csum is tried\n"
      "there, or loaded with modprobe given CAP_SYS_MODULE): without it the result is\n"
      "incomplete, exit 3, and not cached.\n"
      "Example: csumfix probe --refresh -j");
  probe->callback([&] {
    auto p = control::Probe(refresh);
    if (!p.ok()) {
      rc = Fail(p.status());
      return;
    }
    if (!p->complete) {
      // Exit 3: a result, but not the whole truth; nothing was cached.
      rc = Fail(absl::DataLossError(absl::StrCat(
          "probe incomplete, not cached: ", absl::StrJoin(p->undetermined, "; "),
          ". Run `csumfix probe` as root (it needs CAP_SYS_ADMIN for its throwaway namespace)")));
    }
    if (as_json) {
      std::cout << control::ProbeToJson(*p) << "\n";
      return;
    }
    auto yn = [](bool b) { return b ? "yes" : "no"; };
    std::printf("kernel %s%s\n", p->kernel.c_str(), p->cached ? " (cached for this boot)" : "");
    std::printf("  bpf_cast_to_kern_ctx: %s%s\n", yn(p->kern_ctx_kfunc),
                p->kern_ctx_kfunc ? "" : " (probe-read fallback)");
    std::printf("  tcx links:            %s%s\n", yn(p->tcx), p->tcx ? "" : " (clsact + cls_bpf)");
    std::printf("  change_tail fix:      %s: %s\n", yn(p->change_tail_clears_partial),
                p->change_tail_detail.c_str());
    std::printf("  act_csum:             %s: %s\n", yn(p->act_csum), p->act_csum_detail.c_str());
    std::printf("fill mechanism: %s (%s)\n",
                std::string(control::MechanismName(p->mechanism)).c_str(), p->reason.c_str());
  });

  // flows
  auto* flows = app.add_subcommand(
      "flows", "The flows seen with partial or bad checksums (LRU, most affected first).");
  size_t top = 20;
  flows->add_option("--top", top, "show at most N flows (0: all)")->capture_default_str();
  flows->add_flag("-j,--json", as_json, "JSON output");
  flows->footer(
      "Per flow (interface, hook, protocol, addresses, ports): packets seen partial, with a bad\n"
      "checksum, and filled. The table is an LRU of 65536 flows shared by all interfaces.\n"
      "Example: csumfix flows --top 5 -j");
  flows->callback([&] {
    auto rows = control::Controller(bpffs).Flows(top);
    if (!rows.ok()) {
      rc = Fail(rows.status());
      return;
    }
    json out = json::array();
    for (const auto& r : *rows)
      out.push_back({{"ifname", r.ifname},
                     {"ifindex", r.key.ifindex},
                     {"hook", std::string(control::HookName(r.key.hook))},
                     {"ipver", r.key.ipver},
                     {"proto", r.key.proto},
                     {"src", r.src},
                     {"dst", r.dst},
                     {"sport", r.key.sport},
                     {"dport", r.key.dport},
                     {"partial", r.val.partial},
                     {"bad", r.val.bad},
                     {"filled", r.val.filled}});
    if (as_json) {
      std::cout << out.dump() << "\n";
      return;
    }
    std::printf("%-10s %-7s %-7s %-40s %-40s %9s %9s %9s\n", "iface", "hook", "proto", "source",
                "destination", "partial", "bad", "filled");
    for (const auto& r : *rows)
      std::printf("%-10s %-7s %-7s %-40s %-40s %9llu %9llu %9llu\n", r.ifname.c_str(),
                  std::string(control::HookName(r.key.hook)).c_str(),
                  control::ProtoName(r.key.proto).c_str(),
                  absl::StrCat(r.src, " ", r.key.sport).c_str(),
                  absl::StrCat(r.dst, " ", r.key.dport).c_str(),
                  static_cast<unsigned long long>(r.val.partial),
                  static_cast<unsigned long long>(r.val.bad),
                  static_cast<unsigned long long>(r.val.filled));
  });

  // check
  auto* check = app.add_subcommand(
      "check", "Load and verify every BPF program with this kernel; attach nothing.");
  bool full_log = false;
  check->add_flag("--verifier-log", full_log, "print the whole verifier log on failure");
  bool vstats = false;
  check->add_flag("--stats", vstats, "print the verifier's instruction count per program");
  check->add_flag("-j,--json", as_json,
                  "JSON output: {ok, kernel, programs: [{name, type, prog_id}], error, stats}");
  check->footer(
      "Loads every csumfix BPF program through this kernel's verifier and unloads it again:\n"
      "nothing is attached or pinned. Exit 1 with the verifier's reason when one is refused.\n"
      "Example: csumfix check --stats");
  check->callback([&] {
    bpf::LoadOptions lo;
    lo.full_verifier_log = full_log;
    std::vector<std::string> stats;
    lo.verifier_stats = vstats;
    lo.stats = &stats;
    auto p = bpf::Programs::Load(lo);
    if (as_json) {
      utsname u{};
      uname(&u);
      json j{{"ok", p.ok()}, {"kernel", u.release}, {"stats", stats}};
      json progs = json::array();
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
      std::cout << j.dump() << "\n";
      if (!p.ok()) rc = Fail(p.status());
      return;
    }
    for (const auto& l : stats) std::printf("%s\n", l.c_str());
    if (!p.ok()) {
      rc = Fail(p.status());
      return;
    }
    std::printf("ok: tc ingress, tc egress and XDP programs load on this kernel\n");
  });

  // Command groups that live in their own files (cli/cmd_*.cc) register here.
  cli::AddDiagnoseCommand(app, g);
  cli::AddServeCommand(app, g);

  try {
    app.parse(argc, argv);
  } catch (const CLI::RuntimeError& e) {
    return e.get_exit_code();
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  return rc;
}

}  // namespace csumfix

int main(int argc, char** argv) { return csumfix::Main(argc, argv); }
