// csumfix flows: the flows seen with partial or bad checksums (an LRU shared by all
// interfaces), most affected first.
#include <cstdio>
#include <iostream>
#include <memory>
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
#include "nlohmann/json.hpp"

namespace csumfix::cli {
namespace {

struct FlowsOpts {
  size_t top = 20;  // 0: all
  bool json = false;
  bool all_namespaces = false;
};

constexpr Help kHelp{
    "flows", "The flows seen with partial or bad checksums (LRU, most affected first).",
    "Per flow (interface, hook, protocol, addresses, ports): packets seen partial, with a bad\n"
    "checksum, and filled. The table is an LRU of 65536 flows shared by the interfaces of one\n"
    "network namespace: this one's (see -n), or with -A every namespace's (--top then counts\n"
    "per namespace; JSON rows carry netns, the inode, and netns_name).\n"
    "Example: csumfix flows --top 5 -j"};

nlohmann::json FlowJson(const control::FlowRow& r) {
  nlohmann::json j = {{"ifname", r.ifname},
          {"ifindex", r.key.ifindex},
          {"hook", std::string(names::HookName(r.key.hook))},
          {"ipver", r.key.ipver},
          {"proto", r.key.proto},
          {"src", r.src},
          {"dst", r.dst},
          {"sport", r.key.sport},
          {"dport", r.key.dport},
          {"partial", r.val.partial},
          {"bad", r.val.bad},
          {"filled", r.val.filled}};
  AddNetnsJson(j, r.netns_ino);
  return j;
}

void PrintFlow(const control::FlowRow& r) {
  const std::string iface = r.netns_ino == control::CurrentNetnsIno()
                                ? r.ifname
                                : absl::StrCat(NetnsText(r.netns_ino), "/", r.ifname);
  std::printf(
      "%-10s %-7s %-7s %-40s %-40s %9llu %9llu %9llu\n", iface.c_str(),
      std::string(names::HookName(r.key.hook)).c_str(), control::ProtoName(r.key.proto).c_str(),
      absl::StrCat(r.src, " ", r.key.sport).c_str(), absl::StrCat(r.dst, " ", r.key.dport).c_str(),
      static_cast<unsigned long long>(r.val.partial), static_cast<unsigned long long>(r.val.bad),
      static_cast<unsigned long long>(r.val.filled));
}

Outcome Flows(const FlowsOpts& o, const Globals& g) {
  std::vector<control::FlowRow> rows;
  for (uint64_t ino : ViewNamespaces(g.bpffs, o.all_namespaces)) {
    ASSIGN_OR_RETURN(const std::vector<control::FlowRow> some,
                     control::Controller(g.bpffs, ino).Flows(o.top));
    rows.insert(rows.end(), some.begin(), some.end());
  }
  if (!o.json)
    std::printf("%-10s %-7s %-7s %-40s %-40s %9s %9s %9s\n", "iface", "hook", "proto", "source",
                "destination", "partial", "bad", "filled");
  PrintRows(rows, o.json, FlowJson, PrintFlow, nullptr);
  return Done{};
}

}  // namespace

void AddFlowsCommand(CLI::App& app, Globals& g) {
  auto [cmd, o] = NewCommand<FlowsOpts>(app, kHelp);
  cmd->add_option("--top", o->top, "show at most N flows (0: all)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000000));
  AddJsonFlag(cmd, o->json);
  AddAllNamespacesFlag(cmd, o->all_namespaces);
  OnRun(cmd, g, [o, &g] { return Flows(*o, g); });
}

}  // namespace csumfix::cli
