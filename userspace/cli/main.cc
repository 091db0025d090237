// csumfix command line: a command table in the style of iproute2 / bpftool / xdp-loader.
// Exit codes: 0 success, 1 operation failed, 2 usage error (CLI11's), 3 partial success
// (done with warnings).
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/caps.h"
#include "base/status.h"
#include "bpf/loader.h"
#include "cli/cmd_diagnose.h"
#include "cli/cmd_serve.h"
#include "cli/common.h"
#include "control/control.h"
#include "control/policy.h"
#include "control/probe.h"
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

}  // namespace

int Main(int argc, char** argv) {
  CLI::App app{
      "csumfix: find and fix partial (offloaded) L4 checksums with eBPF on TAP, bridge and veth\n"
      "ports. Run as root. Attachments are pinned under /sys/fs/bpf/" CSF_PIN_ROOT
      "/ and outlive this command.",
      "csumfix"};
  app.require_subcommand(1);
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
    std::printf("attached %s (%s%s%s) action %s, fill mechanism %s\n", areq.ifname.c_str(),
                areq.ingress ? "ingress " : "", areq.egress ? "egress " : "",
                areq.xdp ? "xdp " : "", aact.name.c_str(), mech.c_str());
  });

  // detach
  auto* detach = app.add_subcommand("detach", "Remove csumfix from an interface, or --all.");
  std::string difname;
  bool dall = false;
  auto* dif = detach->add_option("iface", difname, "interface name");
  detach->add_flag("--all", dall, "detach every interface")->excludes(dif);
  detach->callback([&] {
    control::Controller c(bpffs);
    if (!dall && difname.empty()) {
      rc = Fail(absl::InvalidArgumentError("detach: name an interface or use --all"));
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
              {"present", i.present},
              {"mechanism", std::string(control::MechanismName(i.mechanism))}};
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
      rc = Fail(absl::NotFoundError(sifname + " is not attached"));
      return;
    }
    if (as_json) {
      std::cout << out.dump() << "\n";
      return;
    }
    for (const auto& i : out) {
      std::printf("%s (ifindex %u) fill mechanism %s%s\n", i["ifname"].get<std::string>().c_str(),
                  i["ifindex"].get<uint32_t>(), i["mechanism"].get<std::string>().c_str(),
                  i["present"].get<bool>() ? "" : " GONE");
      std::string off;
      for (const auto& [k, v] : i["offloads"].items())
        absl::StrAppend(&off, " ", k, v.get<bool>() ? " on" : " off", ",");
      if (!off.empty()) std::printf("  offloads:%s\n", off.substr(0, off.size() - 1).c_str());
      for (const auto& h : i["hooks"])
        std::printf("  %-8s %-7s prog %-6u action %-9s %s\n", h["hook"].get<std::string>().c_str(),
                    h["mode"].get<std::string>().c_str(), h["prog_id"].get<uint32_t>(),
                    h["action"].get<std::string>().c_str(),
                    h["attached"].get<bool>() ? "attached" : "NOT ATTACHED");
    }
  });

  // stats
  auto* stats = app.add_subcommand("stats", "Show per-interface, per-hook counters.");
  std::string stifname;
  stats->add_option("iface", stifname, "only this interface");
  stats->add_flag("-j,--json", as_json, "JSON output");
  stats->callback([&] {
    control::Controller c(bpffs);
    auto rows = c.Counters();
    if (!rows.ok()) {
      rc = Fail(rows.status());
      return;
    }
    json out = json::array();
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
    for (const auto& j : out) {
      std::printf("%s %s: %llu packets, %llu bytes\n", j["ifname"].get<std::string>().c_str(),
                  j["hook"].get<std::string>().c_str(), j["packets"].get<unsigned long long>(),
                  j["bytes"].get<unsigned long long>());
      std::string cls;
      for (const auto& [k, v] : j["class"].items())
        if (v.get<uint64_t>() > 0) absl::StrAppend(&cls, " ", k, "=", v.get<uint64_t>());
      std::printf("  class:%s\n", cls.empty() ? " -" : cls.c_str());
      std::printf(
          "  filled=%llu (bounced=%llu returned=%llu) zeroed=%llu dropped=%llu "
          "ip4_hdr_bad=%llu fill_error=%llu\n",
          j["filled"].get<unsigned long long>(), j["bounced"].get<unsigned long long>(),
          j["bounce_returned"].get<unsigned long long>(), j["zeroed"].get<unsigned long long>(),
          j["dropped"].get<unsigned long long>(), j["ip4_hdr_bad"].get<unsigned long long>(),
          j["fill_error"].get<unsigned long long>());
    }
  });

  // policy
  auto* policy = app.add_subcommand(
      "policy", "Per-flow rules: which action a flow gets (the interface's action otherwise).");
  policy->require_subcommand(1);
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
    auto p = control::Policy::Open(bpffs);
    auto rules = p.ok() ? p->List() : absl::StatusOr<std::vector<csf_pol_rule>>(p.status());
    if (!rules.ok()) {
      rc = Fail(rules.status());
      return;
    }
    json out = json::array();
    for (const auto& r : *rules)
      out.push_back({{"id", r.id},
                     {"priority", r.priority},
                     {"action", std::string(ref::ActionName(r.action))},
                     {"rule", control::DescribeRule(r)}});
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
  probe->callback([&] {
    auto p = control::Probe(refresh);
    if (!p.ok()) {
      rc = Fail(p.status());
      return;
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
    std::printf("%-10s %-7s %-5s %-40s %-40s %9s %9s %9s\n", "iface", "hook", "proto", "source",
                "destination", "partial", "bad", "filled");
    for (const auto& r : *rows)
      std::printf("%-10s %-7s %-5u %-40s %-40s %9llu %9llu %9llu\n", r.ifname.c_str(),
                  std::string(control::HookName(r.key.hook)).c_str(), r.key.proto,
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
  check->callback([&] {
    bpf::LoadOptions lo;
    lo.full_verifier_log = full_log;
    std::vector<std::string> stats;
    lo.verifier_stats = vstats;
    lo.stats = &stats;
    auto p = bpf::Programs::Load(lo);
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
