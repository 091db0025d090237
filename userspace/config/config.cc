#include "config/config.h"

#include <net/if.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status.h"
#include "control/policy.h"
#include "nlohmann/json.hpp"
#include "control/names.h"
#include "toml++/toml.h"

namespace csumfix::config {
namespace {

std::string At(const std::string& path, const toml::source_region& r) {
  return absl::StrCat(path, ":", r.begin.line, ":", r.begin.column);
}

absl::Status ErrorAt(const std::string& path, const toml::source_region& r,
                     absl::string_view msg) {
  return absl::InvalidArgumentError(absl::StrCat(At(path, r), ": ", msg));
}

// Reads the fields of one table, checking types and rejecting keys it does not know.
class Fields {
 public:
  Fields(const std::string& path, const toml::table& t, std::string what,
         std::vector<std::string> known)
      : path_(path), t_(t), what_(std::move(what)), known_(std::move(known)) {}

  absl::Status CheckKeys() const {
    for (auto&& [k, v] : t_) {
      if (std::find(known_.begin(), known_.end(), std::string(k.str())) == known_.end())
        return ErrorAt(path_, k.source(),
                       absl::StrCat("unknown key \"", std::string(k.str()), "\" in ", what_, "; known keys: ",
                                    absl::StrJoin(known_, ", ")));
    }
    return absl::OkStatus();
  }
  const toml::node* Node(const char* key) const { return t_.get(key); }
  toml::source_region Where(const char* key) const {
    const toml::node* n = t_.get(key);
    return n ? n->source() : t_.source();
  }
  // A string field; absent -> `def`.
  absl::Status Str(const char* key, std::string* out) const {
    const toml::node* n = t_.get(key);
    if (n == nullptr) return absl::OkStatus();
    if (!n->is_string())
      return ErrorAt(path_, n->source(), absl::StrCat(what_, " ", key, " must be a string"));
    *out = n->as_string()->get();
    return absl::OkStatus();
  }
  absl::Status Int(const char* key, int64_t lo, int64_t hi, std::optional<int64_t>* out) const {
    const toml::node* n = t_.get(key);
    if (n == nullptr) return absl::OkStatus();
    if (!n->is_integer() || n->as_integer()->get() < lo || n->as_integer()->get() > hi)
      return ErrorAt(path_, n->source(),
                     absl::StrCat(what_, " ", key, " must be an integer ", lo, "-", hi));
    *out = n->as_integer()->get();
    return absl::OkStatus();
  }
  // A string, or an integer written as its decimal text (ports, protocol numbers).
  absl::Status StrOrInt(const char* key, std::string* out) const {
    const toml::node* n = t_.get(key);
    if (n == nullptr) return absl::OkStatus();
    if (n->is_integer()) {
      *out = std::to_string(n->as_integer()->get());
      return absl::OkStatus();
    }
    if (n->is_string()) {
      *out = n->as_string()->get();
      return absl::OkStatus();
    }
    return ErrorAt(path_, n->source(),
                   absl::StrCat(what_, " ", key, " must be a string or an integer"));
  }
  absl::Status StrList(const char* key, std::vector<std::string>* out) const {
    const toml::node* n = t_.get(key);
    if (n == nullptr) return absl::OkStatus();
    const toml::array* a = n->as_array();
    if (a == nullptr)
      return ErrorAt(path_, n->source(), absl::StrCat(what_, " ", key, " must be an array of strings"));
    out->clear();
    for (const toml::node& e : *a) {
      if (!e.is_string())
        return ErrorAt(path_, e.source(), absl::StrCat(what_, " ", key, " must hold strings"));
      out->push_back(e.as_string()->get());
    }
    return absl::OkStatus();
  }

 private:
  const std::string& path_;
  const toml::table& t_;
  std::string what_;
  std::vector<std::string> known_;
};

bool IsInterfaceName(const std::string& n) {
  return !n.empty() && n.size() < IFNAMSIZ && n.find('/') == std::string::npos &&
         n.find_first_of(" \t\n:") == std::string::npos && n != CSF_PIN_MAPS && n != "." &&
         n != "..";
}

absl::StatusOr<InterfaceSpec> ParseInterface(const std::string& path, const toml::table& t,
                                             size_t n) {
  Fields f(path, t, absl::StrCat("[[interface]] #", n),
           {"name", "match", "master", "kind", "hooks", "action", "mechanism", "redirect_to"});
  RETURN_IF_ERROR(f.CheckKeys());
  InterfaceSpec s;
  s.where = At(path, t.source());
  if (!f.Node("name") && !f.Node("match") && !f.Node("master") && !f.Node("kind"))
    return ErrorAt(path, t.source(),
                   absl::StrCat("[[interface]] #", n, " selects nothing: give name = \"tap0\", "
                                "match = \"vnet*\", master = \"virbr0\" and/or kind = \"tun\""));
  RETURN_IF_ERROR(f.Str("name", &s.name));
  RETURN_IF_ERROR(f.Str("match", &s.match));
  RETURN_IF_ERROR(f.Str("master", &s.master));
  RETURN_IF_ERROR(f.Str("kind", &s.kind));
  for (auto [key, v] : {std::pair<const char*, const std::string*>{"name", &s.name},
                        {"master", &s.master}})
    if (f.Node(key) && !IsInterfaceName(*v))
      return ErrorAt(path, f.Where(key), absl::StrCat("\"", *v, "\" is not an interface name"));
  if (f.Node("match") && (s.match.empty() || s.match.size() > 64))
    return ErrorAt(path, f.Where("match"),
                   "match must be a shell glob of 1-64 characters, e.g. \"vnet*\"");
  if (f.Node("kind") && (s.kind.empty() || s.kind.size() >= IFNAMSIZ * 2 ||
                         s.kind != absl::AsciiStrToLower(s.kind)))
    return ErrorAt(path, f.Where("kind"),
                   "kind must be a link kind as `ip -d link` shows it (tun, veth, bridge, vxlan, "
                   "...) or a driver as `ethtool -i` shows it (vif), in lowercase");
  std::vector<std::string> hooks = {"ingress", "egress"};
  RETURN_IF_ERROR(f.StrList("hooks", &hooks));
  if (hooks.empty())
    return ErrorAt(path, f.Where("hooks"), "hooks is empty; list ingress, egress and/or xdp");
  for (const auto& h : hooks) {
    if (h == "ingress") s.ingress = true;
    else if (h == "egress") s.egress = true;
    else if (h == "xdp") s.xdp = true;
    else
      return ErrorAt(path, f.Where("hooks"),
                     absl::StrCat("unknown hook \"", h, "\"; use ingress, egress or xdp"));
  }
  std::string action = "fill";
  RETURN_IF_ERROR(f.Str("action", &action));
  s.action = names::ActionFromName(action).value_or(CSF_ACT_MAX);
  if (s.action >= CSF_ACT_MAX)
    return ErrorAt(path, f.Where("action"),
                   absl::StrCat("unknown action \"", action,
                                "\"; use pass, observe, verify, drop-bad, fill or zero-udp4"));
  RETURN_IF_ERROR(f.Str("mechanism", &s.mechanism));
  if (s.mechanism != "auto" && !names::MechanismFromName(s.mechanism))
    return ErrorAt(path, f.Where("mechanism"),
                   absl::StrCat("unknown mechanism \"", s.mechanism,
                                "\": use auto, bpf, act-csum, bounce, ifb or observe (`csumfix "
                                "probe` says which this kernel has)"));
  if (s.mechanism == "ifb" && s.egress)
    return ErrorAt(path, f.Where("mechanism"),
                   "mechanism \"ifb\" works at tc ingress only: write hooks = [\"ingress\"] "
                   "(hooks defaults to ingress and egress), or another mechanism");
  RETURN_IF_ERROR(f.Str("redirect_to", &s.redirect_to));
  if (!s.redirect_to.empty()) {
    if (!s.xdp)
      return ErrorAt(path, f.Where("redirect_to"), "redirect_to needs \"xdp\" in hooks");
    if (if_nametoindex(s.redirect_to.c_str()) == 0)
      return ErrorAt(path, f.Where("redirect_to"),
                     absl::StrCat("unknown interface ", s.redirect_to,
                                  " in this network namespace (see `ip link show`)"));
  }
  return s;
}

constexpr const char* kRuleKeys[] = {"iface", "hook",  "ip",     "proto",   "src",
                                     "dst",   "sport", "dport", "action", "priority"};

// A ParseRule error (its fields spelled as the keys, control::KeySpelling) at the key it is
// about; an error about the rule as a whole at its action.
absl::Status RuleError(const std::string& path, const Fields& f, const absl::Status& s,
                       const std::string& what) {
  const std::string key = control::KeySpelling(control::RuleErrorField(s));
  return ErrorAt(path, f.Where(key.empty() ? "action" : key.c_str()),
                 absl::StrCat(what, ": ", s.message()));
}

// How a [[zone]]'s messages name the fields of the rules it makes: its members are "prefix".
std::string ZoneSpelling(control::RuleField field) {
  if (field == control::RuleField::kSrc || field == control::RuleField::kDst) return "prefix";
  return control::KeySpelling(field);
}

absl::StatusOr<csf_pol_rule> ParseRuleTable(const std::string& path, const toml::table& t,
                                            size_t n, std::string* ifname) {
  const std::string what = absl::StrCat("[[rule]] #", n);
  Fields f(path, t, what, std::vector<std::string>(std::begin(kRuleKeys), std::end(kRuleKeys)));
  RETURN_IF_ERROR(f.CheckKeys());
  control::RuleSpec r;
  if (f.Node("action") == nullptr)
    return ErrorAt(path, t.source(), what + " needs action = \"...\"");
  RETURN_IF_ERROR(f.Str("action", &r.action));
  RETURN_IF_ERROR(f.Str("iface", &r.ifname));
  RETURN_IF_ERROR(f.Str("hook", &r.hook));
  std::optional<int64_t> ip, prio;
  RETURN_IF_ERROR(f.Int("ip", 4, 6, &ip));
  if (ip && *ip == 5) return ErrorAt(path, f.Where("ip"), what + " ip must be 4 or 6");
  if (ip) r.ip = static_cast<int>(*ip);
  RETURN_IF_ERROR(f.StrOrInt("proto", &r.proto));
  RETURN_IF_ERROR(f.Str("src", &r.src));
  RETURN_IF_ERROR(f.Str("dst", &r.dst));
  RETURN_IF_ERROR(f.StrOrInt("sport", &r.sport));
  RETURN_IF_ERROR(f.StrOrInt("dport", &r.dport));
  RETURN_IF_ERROR(f.Int("priority", 0, 0xffffffffLL, &prio));
  if (prio) r.priority = static_cast<uint32_t>(*prio);
  *ifname = r.ifname;
  auto rule = control::ParseRule(r, control::KeySpelling);
  // What the kernel takes as a device name (dev_valid_name): 1-15 bytes, no '/', ':' or space.
  auto valid_name = [](const std::string& n) {
    return !n.empty() && n.size() < IFNAMSIZ && n != "." && n != ".." &&
           n.find_first_of("/: \t\n") == std::string::npos;
  };
  if (!rule.ok() && rule.status().code() == absl::StatusCode::kNotFound &&
      control::RuleErrorField(rule.status()) == control::RuleField::kIface &&
      valid_name(r.ifname)) {
    // Not there yet (a VM not started): bound to the name, matching nothing until attached.
    r.ifname.clear();
    rule = control::ParseRule(r, control::KeySpelling);
    if (rule.ok()) {
      rule->flags |= CSF_POL_F_IFINDEX;
      rule->ifindex = 0;
    }
  }
  if (!rule.ok()) return RuleError(path, f, rule.status(), what);
  return *rule;
}

absl::Status ParseZone(const std::string& path, const toml::table& t, size_t n,
                       std::vector<csf_pol_rule>* out) {
  const std::string what = absl::StrCat("[[zone]] #", n);
  Fields f(path, t, what, {"prefixes", "iface", "priority"});
  RETURN_IF_ERROR(f.CheckKeys());
  std::vector<std::string> prefixes;
  RETURN_IF_ERROR(f.StrList("prefixes", &prefixes));
  if (prefixes.empty())
    return ErrorAt(path, f.Where("prefixes"), what + " needs prefixes = [\"10.1.0.0/16\", ...]");
  std::string iface;
  RETURN_IF_ERROR(f.Str("iface", &iface));
  std::optional<int64_t> prio;
  RETURN_IF_ERROR(f.Int("priority", 0, 0xfffffffeLL, &prio));
  auto rules = control::ZoneRules(prefixes, iface, prio ? static_cast<uint32_t>(*prio) : 50,
                                  ZoneSpelling);
  if (!rules.ok()) {
    const bool iface_error = control::RuleErrorField(rules.status()) == control::RuleField::kIface;
    return ErrorAt(path, f.Where(iface_error ? "iface" : "prefixes"),
                   absl::StrCat(what, ": ", rules.status().message()));
  }
  out->insert(out->end(), rules->begin(), rules->end());
  return absl::OkStatus();
}

// The array of tables under `key` (absent: empty); anything else is an error.
absl::StatusOr<std::vector<const toml::table*>> Tables(const std::string& path,
                                                       const toml::table& root, const char* key) {
  std::vector<const toml::table*> out;
  const toml::node* n = root.get(key);
  if (n == nullptr) return out;
  const toml::array* a = n->as_array();
  if (a == nullptr)
    return ErrorAt(path, n->source(),
                   absl::StrCat(key, " must be an array of tables: write [[", key, "]]"));
  for (const toml::node& e : *a) {
    if (!e.is_table())
      return ErrorAt(path, e.source(), absl::StrCat("each ", key, " must be a table"));
    out.push_back(e.as_table());
  }
  return out;
}

}  // namespace

absl::StatusOr<Config> Load(const std::string& path) {
  Config cfg;
  cfg.path = path;
  std::ifstream in(path);
  if (!in)
    return absl::NotFoundError(absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
  std::stringstream text;
  text << in.rdbuf();
  toml::table root;
  try {
    root = toml::parse(text.str(), path);
  } catch (const toml::parse_error& e) {
    return ErrorAt(path, e.source(), absl::StrCat("TOML syntax: ", std::string(e.description())));
  }
  // Every table is checked even after an error, so one run reports all of them.
  std::vector<std::string> errors;
  auto note = [&errors](const absl::Status& st) { errors.emplace_back(st.message()); };
  for (auto&& [k, v] : root) {
    if (k != "interface" && k != "rule" && k != "zone")
      note(ErrorAt(path, k.source(),
                   absl::StrCat("unknown key \"", std::string(k.str()),
                                "\"; a config has [[interface]], [[rule]] and [[zone]] tables")));
  }
  auto tables = [&](const char* key) {
    auto t = Tables(path, root, key);
    if (!t.ok()) {
      note(t.status());
      return std::vector<const toml::table*>();
    }
    return *t;
  };
  std::map<std::string, std::string> seen;  // selectors -> where
  const std::vector<const toml::table*> ifs = tables("interface");
  for (size_t i = 0; i < ifs.size(); ++i) {
    absl::StatusOr<InterfaceSpec> s = ParseInterface(path, *ifs[i], i + 1);
    if (!s.ok()) {
      note(s.status());
      continue;
    }
    // The second of two blocks with the same selectors could never apply: a mistake.
    if (auto it = seen.find(s->Selectors()); it != seen.end()) {
      note(absl::InvalidArgumentError(absl::StrCat(s->where, ": ", s->Selectors(),
                                                   " is already listed at ", it->second)));
      continue;
    }
    seen[s->Selectors()] = s->where;
    cfg.interfaces.push_back(*std::move(s));
  }
  const std::vector<const toml::table*> rules = tables("rule");
  for (size_t i = 0; i < rules.size(); ++i) {
    std::string ifname;
    absl::StatusOr<csf_pol_rule> r = ParseRuleTable(path, *rules[i], i + 1, &ifname);
    if (!r.ok()) {
      note(r.status());
      continue;
    }
    cfg.rules.push_back(*r);
    cfg.rule_ifnames.push_back(ifname);
    cfg.rule_sources.push_back(absl::StrCat(At(path, rules[i]->source()), " [[rule]] #", i + 1));
  }
  const std::vector<const toml::table*> zones = tables("zone");
  for (size_t i = 0; i < zones.size(); ++i) {
    if (absl::Status st = ParseZone(path, *zones[i], i + 1, &cfg.rules); !st.ok()) {
      note(st);
      continue;
    }
    cfg.rule_sources.resize(cfg.rules.size(),
                            absl::StrCat(At(path, zones[i]->source()), " [[zone]] #", i + 1));
  }
  // A zone's iface exists (checked by ParseRule): Policy names its rules from the ifindex.
  cfg.rule_ifnames.resize(cfg.rules.size());
  if (cfg.rules.size() > CSF_POL_MAX_RULES)
    note(absl::InvalidArgumentError(absl::StrCat(path, ": ", cfg.rules.size(),
                                                 " rules; at most ", CSF_POL_MAX_RULES)));
  if (!errors.empty()) {
    if (errors.size() > 1)
      errors.push_back(absl::StrCat(path, ": ", errors.size(), " errors; nothing was applied"));
    return absl::InvalidArgumentError(absl::StrJoin(errors, "\n"));
  }
  return cfg;
}

std::string InterfaceSpec::Selectors() const {
  std::vector<std::string> parts;
  for (auto [key, v] : {std::pair<const char*, const std::string*>{"name", &name},
                        {"match", &match}, {"master", &master}, {"kind", &kind}})
    if (!v->empty()) parts.push_back(absl::StrCat(key, " = \"", *v, "\""));
  return absl::StrJoin(parts, ", ");
}

absl::Status Owned::Save(const std::string& path, const control::Controller& c) const {
  auto st = c.Status(control::Controller::Detail::kRecords);
  if (!st.ok()) return Annotate(st.status(), "save " + path);
  nlohmann::json j = {{"netns", c.netns_ino()}, {"interfaces", nlohmann::json::array()}};
  for (const auto& i : *st)
    if (names.count(i.ifname)) j["interfaces"].push_back({{"name", i.ifname}, {"ifindex", i.ifindex}});
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << j.dump() << "\n";
    if (!out) return absl::InternalError(absl::StrCat("write ", tmp, ": ", std::strerror(errno)));
  }
  if (rename(tmp.c_str(), path.c_str()) != 0)
    return ErrnoStatus(errno, absl::StrCat("rename ", tmp, " to ", path));
  return absl::OkStatus();
}

Owned Owned::LoadFile(const std::string& path, const control::Controller& c) {
  Owned o;
  std::ifstream in(path);
  if (!in) return o;
  nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("interfaces") || !j["interfaces"].is_array()) return o;
  // A record of another network namespace (a --state file shared by mistake) owns nothing here:
  // its names would match this namespace's interfaces of the same name and ifindex.
  if (j.contains("netns") && (!j["netns"].is_number_unsigned() ||
                              j["netns"].get<uint64_t>() != c.netns_ino()))
    return o;
  auto st = c.Status(control::Controller::Detail::kRecords);
  if (!st.ok()) return o;
  for (const auto& e : j["interfaces"]) {
    if (!e.is_object() || !e.contains("name") || !e["name"].is_string() ||
        !e.contains("ifindex") || !e["ifindex"].is_number_unsigned())
      continue;
    const std::string name = e["name"];
    for (const auto& i : *st)
      if (i.ifname == name && i.ifindex == e["ifindex"].get<uint32_t>()) o.names.insert(name);
  }
  return o;
}

}  // namespace csumfix::config
