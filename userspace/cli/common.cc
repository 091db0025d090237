// Shared helpers of the csumfix command table (see cli/common.h).
#include "cli/common.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "control/names.h"
#include "control/pins.h"
#include "csumfix/abi.h"

namespace csumfix::cli {

void OnRun(CLI::App* cmd, Globals& g, std::function<Outcome()> body) {
  cmd->callback([&g, body = std::move(body)] { g.rc = Finish(body()); });
}

CLI::App* AddSubcommand(CLI::App& parent, const Help& help) {
  CLI::App* cmd = parent.add_subcommand(help.name, help.description);
  cmd->footer(help.footer);  // never the parent's: each help says only what is its own
  return cmd;
}

namespace {
std::vector<bool*>& JsonFlags() {
  static std::vector<bool*> flags;
  return flags;
}
bool g_pretty = false;
}  // namespace

void AddJsonFlag(CLI::App* cmd, bool& json, const std::string& what) {
  cmd->add_flag("-j,--json", json, what);
  JsonFlags().push_back(&json);
}

void ApplyGlobalJson(const Globals& g) {
  g_pretty = g.pretty;
  if (g.json || g.pretty)
    for (bool* f : JsonFlags()) *f = true;
}

std::string JsonText(const nlohmann::json& j) { return j.dump(g_pretty ? 2 : -1); }

void AddShowCommand(CLI::App& app, Globals& g, const Help& help, ShowFn show,
                    bool all_namespaces) {
  auto [cmd, o] = NewCommand<ShowOpts>(app, help);
  cmd->add_option("iface", o->ifname, "only this interface");
  AddJsonFlag(cmd, o->json);
  if (all_namespaces) AddAllNamespacesFlag(cmd, o->all_namespaces);
  OnRun(cmd, g, [o, &g, show] { return show(*o, g); });
}

void AddAllNamespacesFlag(CLI::App* cmd, bool& all) {
  cmd->add_flag("-A,--all-namespaces", all,
                "every network namespace with csumfix pins, not only this one (-n)");
}

std::vector<uint64_t> ViewNamespaces(const std::string& bpffs, bool all) {
  const uint64_t here = control::CurrentNetnsIno();
  std::vector<uint64_t> out{here};
  if (!all) return out;
  for (uint64_t ino : control::PinPaths(bpffs).Namespaces())
    if (ino != here) out.push_back(ino);
  return out;
}

std::string NetnsText(uint64_t ino) {
  const std::string name = control::NetnsName(ino);
  return name.empty() ? absl::StrCat("netns:", ino) : name;
}

void AddNetnsJson(nlohmann::json& j, uint64_t ino) {
  j["netns"] = ino;
  const std::string name = control::NetnsName(ino);
  j["netns_name"] = name.empty() ? nlohmann::json() : nlohmann::json(name);
}

std::string ActionList() { return names::Choices(names::kActions); }

uint32_t ActionOpt::value() const { return names::ActionFromName(name).value_or(CSF_ACT_MAX); }

CLI::Validator ActionValidator() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        if (names::ActionFromName(s)) return "";
        return absl::StrCat("unknown action \"", s, "\"; choose one of ", ActionList());
      },
      ActionList(), "ACTION");
}

std::vector<std::string> NameList(std::span<const names::Name> table) {
  std::vector<std::string> out;
  for (const names::Name& n : table) out.emplace_back(n.name);
  return out;
}

std::vector<std::string> MechanismList() {
  return absl::StrSplit(names::MechanismChoices(","), ',');
}

nlohmann::json CountersJson(const csf_counters& c) {
  nlohmann::json j;
  j["packets"] = c.c[CSF_CTR_PACKETS];
  j["bytes"] = c.c[CSF_CTR_BYTES];
  nlohmann::json cls = nlohmann::json::object();
  for (uint32_t i = 0; i < CSF_CLASS_MAX; ++i)
    cls[std::string(names::ClassName(i))] = c.c[CSF_CTR_CLASS_BASE + i];
  j["class"] = cls;
  nlohmann::json act = nlohmann::json::object();
  for (uint32_t i = 0; i < CSF_ACT_MAX; ++i)
    act[std::string(names::ActionName(i))] = c.c[CSF_CTR_ACTION_BASE + i];
  j["action"] = act;
  for (const names::Counter& k : names::kCounters) j[std::string(k.json)] = c.c[k.id];
  return j;
}

}  // namespace csumfix::cli
