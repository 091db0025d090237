// csumfix stats [IFACE]: the counters per interface and hook (packets, bytes, per checksum
// class, per action applied, and the single counters of names::kCounters).
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "control/control.h"
#include "control/names.h"
#include "csumfix/abi.h"
#include "nlohmann/json.hpp"

namespace csumfix::cli {
namespace {

constexpr Help kHelp{
    "stats", "Show per-interface, per-hook counters.",
    "Per interface and hook: packets, bytes, packets per checksum class (valid, partial, bad,\n"
    "zero, na, unparsable, gso, unverified) and per action applied, filled, zeroed, dropped,\n"
    "ip4_hdr_bad, fill_error, bounced / bounce_returned (mechanism bounce), act_selected\n"
    "(mechanism act-csum), policy_hit. Counters start at zero with each attach, and every\n"
    "attached hook has its row (and metrics) from then on, before its first packet.\n"
    "Each network namespace has its own: this one's (see -n), or with -A every namespace's,\n"
    "each row naming its namespace (JSON: netns, the inode, and netns_name).\n"
    "Example: csumfix stats tap0 -j; csumfix stats -A"};

// Whether IFACE is attached is asked of the attachments: counters of a detached interface may
// linger in another namespace's view, and the message should say what to do.
absl::Status CheckAttached(const control::Controller& c, const std::string& ifname) {
  auto st = c.Status();
  const bool attached =
      st.ok() && std::any_of(st->begin(), st->end(),
                             [&](const control::IfaceStatus& i) { return i.ifname == ifname; });
  if (attached) return absl::OkStatus();
  return absl::NotFoundError(absl::StrCat(
      ifname, " is not attached, so it has no counters (see `csumfix status`; attach it with ",
      "`csumfix attach ", ifname, "`)"));
}

// The checksum classes by name: the text lists them in that order (as `stats -j` keys them).
std::vector<std::pair<std::string, uint32_t>> ClassesByName() {
  std::vector<std::pair<std::string, uint32_t>> out;
  for (const names::Name& n : names::kClasses) out.emplace_back(std::string(n.name), n.id);
  std::sort(out.begin(), out.end());
  return out;
}

nlohmann::json RowJson(const control::CounterRow& r) {
  nlohmann::json j = CountersJson(r.counters);
  j["ifname"] = r.ifname;
  j["ifindex"] = r.ifindex;
  j["hook"] = std::string(names::HookName(r.hook));
  AddNetnsJson(j, r.netns_ino);
  return j;
}

void PrintText(const control::CounterRow& r) {
  auto n = [&r](uint32_t id) { return static_cast<unsigned long long>(r.counters.c[id]); };
  const std::string ns = r.netns_ino == control::CurrentNetnsIno()
                             ? ""
                             : absl::StrCat(" (", NetnsText(r.netns_ino), ")");
  std::printf("%s%s %s: %llu packets, %llu bytes\n", r.ifname.c_str(), ns.c_str(),
              std::string(names::HookName(r.hook)).c_str(), n(CSF_CTR_PACKETS), n(CSF_CTR_BYTES));
  std::string cls;
  for (const auto& [name, id] : ClassesByName())
    if (n(CSF_CTR_CLASS_BASE + id) > 0)
      absl::StrAppend(&cls, " ", name, "=", n(CSF_CTR_CLASS_BASE + id));
  std::printf("  class:%s\n", cls.empty() ? " -" : cls.c_str());
  std::printf(
      "  filled=%llu (bounced=%llu returned=%llu act_selected=%llu) zeroed=%llu dropped=%llu "
      "ip4_hdr_bad=%llu fill_error=%llu policy_hit=%llu\n",
      n(CSF_CTR_FILLED), n(CSF_CTR_BOUNCED), n(CSF_CTR_BOUNCE_RETURNED), n(CSF_CTR_ACT_SELECTED),
      n(CSF_CTR_ZEROED), n(CSF_CTR_DROPPED), n(CSF_CTR_IP4_HDR_BAD), n(CSF_CTR_FILL_ERROR),
      n(CSF_CTR_POLICY_HIT));
}

Outcome Stats(const ShowOpts& o, const Globals& g) {
  control::Controller c(g.bpffs);
  if (!o.ifname.empty() && !o.all_namespaces) RETURN_IF_ERROR(CheckAttached(c, o.ifname));
  std::vector<control::CounterRow> rows;
  for (uint64_t ino : ViewNamespaces(g.bpffs, o.all_namespaces)) {
    ASSIGN_OR_RETURN(const std::vector<control::CounterRow> all,
                     control::Controller(g.bpffs, ino).Counters());
    for (const control::CounterRow& r : all)
      if (o.ifname.empty() || r.ifname == o.ifname) rows.push_back(r);
  }
  PrintRows(rows, o.json, RowJson, PrintText,
            "no counters (nothing attached)");
  return Done{};
}

}  // namespace

void AddStatsCommand(CLI::App& app, Globals& g) {
  AddShowCommand(app, g, kHelp, Stats, /*all_namespaces=*/true);
}

}  // namespace csumfix::cli
