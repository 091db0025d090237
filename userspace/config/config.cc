#include "config/config.h"

#include <bpf/bpf.h>
#include <net/if.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "base/status.h"
#include "bpf/fd.h"
#include "bpf/map.h"
#include "control/policy.h"
#include "nlohmann/json.hpp"
#include "refcsum/refcsum.h"
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

absl::StatusOr<InterfaceSpec> ParseInterface(const std::string& path, const toml::table& t,
                                             size_t n) {
  Fields f(path, t, absl::StrCat("[[interface]] #", n),
           {"name", "hooks", "action", "mechanism", "redirect_to"});
  RETURN_IF_ERROR(f.CheckKeys());
  InterfaceSpec s;
  s.where = At(path, t.source());
  if (f.Node("name") == nullptr)
    return ErrorAt(path, t.source(), absl::StrCat("[[interface]] #", n, " needs name = \"...\""));
  RETURN_IF_ERROR(f.Str("name", &s.name));
  if (s.name.empty() || s.name.size() >= IFNAMSIZ || s.name.find('/') != std::string::npos ||
      s.name == CSF_PIN_MAPS || s.name == "." || s.name == "..")
    return ErrorAt(path, f.Where("name"), absl::StrCat("\"", s.name, "\" is not an interface name"));
  if (if_nametoindex(s.name.c_str()) == 0)
    return ErrorAt(path, f.Where("name"),
                   absl::StrCat("unknown interface ", s.name,
                                " in this network namespace (see `ip link show`)"));
  std::vector<std::string> hooks = {"ingress"};
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
  s.action = ref::ActionFromName(action);
  if (s.action >= CSF_ACT_MAX)
    return ErrorAt(path, f.Where("action"),
                   absl::StrCat("unknown action \"", action,
                                "\"; use pass, observe, verify, drop-bad, fill or zero-udp4"));
  RETURN_IF_ERROR(f.Str("mechanism", &s.mechanism));
  if (s.mechanism != "auto" && control::MechanismFromName(s.mechanism) >= CSF_MECH_MAX)
    return ErrorAt(path, f.Where("mechanism"),
                   absl::StrCat("unknown mechanism \"", s.mechanism,
                                "\": use auto, bpf, act-csum, bounce or observe (`csumfix probe` "
                                "says which this kernel has)"));
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

// ParseRule's messages name the CLI flag ("--src 10.0.0.300/8: ..."); point at the key instead.
constexpr const char* kRuleKeys[] = {"iface", "hook",  "ip",     "proto",   "src",
                                     "dst",   "sport", "dport", "action", "priority"};

absl::Status RuleError(const std::string& path, const Fields& f, const absl::Status& s,
                       const std::string& what) {
  std::string msg(s.message());
  const char* key = nullptr;
  size_t best = std::string::npos;
  for (const char* k : kRuleKeys) {
    size_t pos = msg.find(absl::StrCat("--", k));
    if (pos != std::string::npos && pos < best) best = pos, key = k;
  }
  for (const char* k : kRuleKeys) msg = absl::StrReplaceAll(msg, {{absl::StrCat("--", k), k}});
  toml::source_region where = key ? f.Where(key) : f.Where("action");
  return ErrorAt(path, where, absl::StrCat(what, ": ", msg));
}

absl::StatusOr<csf_pol_rule> ParseRuleTable(const std::string& path, const toml::table& t,
                                            size_t n) {
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
  auto rule = control::ParseRule(r);
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
  auto rules = control::ZoneRules(prefixes, iface, prio ? static_cast<uint32_t>(*prio) : 50);
  if (!rules.ok()) {
    std::string msg(rules.status().message());
    const char* key = absl::StrContains(msg, "--iface") ? "iface" : "prefixes";
    msg = absl::StrReplaceAll(msg, {{"--iface", "iface"}, {"--src", "prefix"}, {"--dst", "prefix"}});
    return ErrorAt(path, f.Where(key), absl::StrCat(what, ": ", msg));
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

// Reads the XDP redirect target recorded for an attachment ("" when none).
std::string RedirectTarget(const control::Controller& c, uint32_t ifindex) {
  bpf::Fd fd(bpf_obj_get(absl::StrCat(c.root(), "/" CSF_PIN_MAPS "/csf_ifcfg").c_str()));
  if (!fd.valid()) return "";
  csf_if_key k{ifindex, CSF_HOOK_XDP};
  csf_ifcfg v{};
  if (bpf_map_lookup_elem(fd.get(), &k, &v) != 0 || !(v.flags & CSF_IFCFG_F_XDP_REDIRECT))
    return "";
  char buf[IF_NAMESIZE] = {};
  return if_indextoname(v.target_ifindex, buf) ? buf : absl::StrCat("ifindex:", v.target_ifindex);
}

// What it would take to attach `s` again as it is now.
control::AttachRequest RequestFromStatus(const control::Controller& c,
                                         const control::IfaceStatus& s) {
  control::AttachRequest r;
  r.ifname = s.ifname;
  r.mechanism = s.mechanism;
  for (const auto& h : s.hooks) {
    if (h.hook == CSF_HOOK_TC_INGRESS) r.ingress = true;
    if (h.hook == CSF_HOOK_TC_EGRESS) r.egress = true;
    if (h.hook == CSF_HOOK_XDP) r.xdp = true;
    if (h.hook != CSF_HOOK_XDP) r.tc_api = h.mode == "clsact" ? control::TcApi::kClsact
                                                               : control::TcApi::kTcx;
    r.action = h.action;
  }
  if (r.xdp) r.xdp_redirect_to = RedirectTarget(c, s.ifindex);
  return r;
}

// Attaches `r` and gives each hook the action it had in `s` (restoring an old attachment).
absl::Status Restore(control::Controller& c, const control::IfaceStatus& s) {
  RETURN_IF_ERROR(c.Attach(RequestFromStatus(c, s)));
  for (const auto& h : s.hooks) RETURN_IF_ERROR(c.SetAction(s.ifname, h.hook, h.action));
  return absl::OkStatus();
}

// The bpffs mount point the controller works on (root() is <bpffs>/csumfix/v1).
std::string BpffsOf(const control::Controller& c) {
  std::string r = c.root();
  return r.substr(0, r.size() - std::strlen("/" CSF_PIN_ROOT));
}

bool SameRules(std::vector<csf_pol_rule> a, std::vector<csf_pol_rule> b) {
  // Precedence is priority, then age (id): compare in that order, ids aside.
  auto order = [](std::vector<csf_pol_rule>* v) {
    std::stable_sort(v->begin(), v->end(), [](const csf_pol_rule& x, const csf_pol_rule& y) {
      return std::tie(x.priority, x.id) < std::tie(y.priority, y.id);
    });
    for (auto& r : *v) r.id = 0;
  };
  if (a.size() != b.size()) return false;
  order(&a);
  order(&b);
  for (size_t i = 0; i < a.size(); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(csf_pol_rule)) != 0) return false;
  return true;
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
  for (auto&& [k, v] : root) {
    if (k != "interface" && k != "rule" && k != "zone")
      return ErrorAt(path, k.source(),
                     absl::StrCat("unknown key \"", std::string(k.str()),
                                  "\"; a config has [[interface]], [[rule]] and [[zone]] tables"));
  }
  ASSIGN_OR_RETURN(auto ifs, Tables(path, root, "interface"));
  std::map<std::string, std::string> seen;
  for (size_t i = 0; i < ifs.size(); ++i) {
    ASSIGN_OR_RETURN(InterfaceSpec s, ParseInterface(path, *ifs[i], i + 1));
    if (auto it = seen.find(s.name); it != seen.end())
      return absl::InvalidArgumentError(absl::StrCat(s.where, ": interface ", s.name,
                                                     " is already listed at ", it->second));
    seen[s.name] = s.where;
    cfg.interfaces.push_back(std::move(s));
  }
  ASSIGN_OR_RETURN(auto rules, Tables(path, root, "rule"));
  for (size_t i = 0; i < rules.size(); ++i) {
    ASSIGN_OR_RETURN(csf_pol_rule r, ParseRuleTable(path, *rules[i], i + 1));
    cfg.rules.push_back(r);
  }
  ASSIGN_OR_RETURN(auto zones, Tables(path, root, "zone"));
  for (size_t i = 0; i < zones.size(); ++i)
    RETURN_IF_ERROR(ParseZone(path, *zones[i], i + 1, &cfg.rules));
  if (cfg.rules.size() > CSF_POL_MAX_RULES)
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", cfg.rules.size(),
                                                   " rules; at most ", CSF_POL_MAX_RULES));
  return cfg;
}

absl::Status Owned::Save(const std::string& path, const control::Controller& c) const {
  auto st = c.Status();
  if (!st.ok()) return Annotate(st.status(), "save " + path);
  nlohmann::json j = {{"interfaces", nlohmann::json::array()}};
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
  auto st = c.Status();
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

std::string ApplyReport::Summary() const {
  std::vector<std::string> parts;
  auto add = [&](const char* what, const std::vector<std::string>& v) {
    if (!v.empty()) parts.push_back(absl::StrCat(what, " ", absl::StrJoin(v, ",")));
  };
  add("attached", attached);
  add("adopted", adopted);
  add("re-attached", reattached);
  add("action changed", actions_changed);
  add("detached", detached);
  parts.push_back(rules_replaced ? absl::StrCat("rule set replaced (", rules, " rules)")
                                 : absl::StrCat("rule set unchanged (", rules, " rules)"));
  return absl::StrJoin(parts, "; ");
}

absl::StatusOr<ApplyReport> Apply(const Config& cfg, control::Controller& c,
                                  uint32_t probe_mechanism, Owned* owned) {
  ApplyReport rep;
  rep.rules = cfg.rules.size();
  ASSIGN_OR_RETURN(std::vector<control::IfaceStatus> now, c.Status());
  std::map<std::string, control::IfaceStatus> cur;
  for (auto& s : now) cur[s.ifname] = s;

  // Plan.
  struct Step {
    enum Kind { kAttach, kReattach, kAdopt } kind;
    control::AttachRequest req;
    control::IfaceStatus old;
    std::vector<uint32_t> set_action;  // kAdopt: hooks whose action changes
  };
  std::vector<Step> steps;
  std::set<std::string> listed;
  for (const auto& i : cfg.interfaces) {
    listed.insert(i.name);
    control::AttachRequest r;
    r.ifname = i.name;
    r.ingress = i.ingress;
    r.egress = i.egress;
    r.xdp = i.xdp;
    r.action = i.action;
    r.mechanism = i.mechanism == "auto" ? probe_mechanism : control::MechanismFromName(i.mechanism);
    r.xdp_redirect_to = i.redirect_to;
    if (r.mechanism >= CSF_MECH_MAX)
      return absl::FailedPreconditionError(absl::StrCat(
          i.where, ": mechanism \"auto\" but the kernel probe failed (see `csumfix probe`); "
          "write mechanism = \"bounce\" or \"observe\""));
    auto it = cur.find(i.name);
    if (it == cur.end()) {
      steps.push_back({Step::kAttach, r, {}, {}});
      continue;
    }
    const control::IfaceStatus& s = it->second;
    bool in = false, eg = false, xdp = false;
    for (const auto& h : s.hooks) {
      in |= h.hook == CSF_HOOK_TC_INGRESS;
      eg |= h.hook == CSF_HOOK_TC_EGRESS;
      xdp |= h.hook == CSF_HOOK_XDP;
    }
    const bool same = s.present && s.ifindex == if_nametoindex(i.name.c_str()) &&
                      in == r.ingress && eg == r.egress && xdp == r.xdp &&
                      s.mechanism == r.mechanism &&
                      (!r.xdp || RedirectTarget(c, s.ifindex) == r.xdp_redirect_to);
    if (!same) {
      steps.push_back({Step::kReattach, r, s, {}});
      continue;
    }
    Step st{Step::kAdopt, r, s, {}};
    for (const auto& h : s.hooks)
      if (h.action != r.action) st.set_action.push_back(h.hook);
    steps.push_back(st);
  }
  std::vector<std::string> to_detach;
  for (const auto& n : owned->names)
    if (!listed.count(n) && cur.count(n)) to_detach.push_back(n);

  // Execute; undo in reverse on failure.
  std::vector<std::function<void()>> undo;
  auto fail = [&](const absl::Status& s) {
    for (auto it = undo.rbegin(); it != undo.rend(); ++it) (*it)();
    return Annotate(s, absl::StrCat("apply ", cfg.path, " (everything undone)"));
  };
  for (const auto& st : steps) {
    const std::string& name = st.req.ifname;
    if (st.kind == Step::kAttach) {
      if (auto s = c.Attach(st.req); !s.ok()) return fail(s);
      undo.push_back([&c, name] { (void)c.Detach(name); });
      rep.attached.push_back(name);
    } else if (st.kind == Step::kReattach) {
      if (auto s = c.Detach(name); !s.ok() && s.code() != absl::StatusCode::kDataLoss)
        return fail(s);
      if (auto s = c.Attach(st.req); !s.ok()) {
        (void)Restore(c, st.old);
        return fail(s);
      }
      undo.push_back([&c, name, old = st.old] {
        (void)c.Detach(name);
        (void)Restore(c, old);
      });
      rep.reattached.push_back(name);
    } else {
      for (uint32_t hook : st.set_action) {
        uint32_t before = CSF_ACT_PASS;
        for (const auto& h : st.old.hooks)
          if (h.hook == hook) before = h.action;
        if (auto s = c.SetAction(name, hook, st.req.action); !s.ok()) return fail(s);
        undo.push_back([&c, name, hook, before] { (void)c.SetAction(name, hook, before); });
      }
      if (!st.set_action.empty()) rep.actions_changed.push_back(name);
      rep.adopted.push_back(name);
    }
  }

  // The rule set. Policy::Open holds the pin lock: no attach or detach while `p` lives.
  {
    bool have_rules = false;
    {
      bpf::Fd store(bpf_obj_get(absl::StrCat(c.root(), "/" CSF_PIN_MAPS "/csf_pol_store").c_str()));
      uint32_t key;
      have_rules = store.valid() && bpf_map_get_next_key(store.get(), nullptr, &key) == 0;
    }
    if (have_rules || !cfg.rules.empty()) {
      std::vector<csf_pol_rule> old;
      absl::Status s;
      {
        auto p = control::Policy::Open(BpffsOf(c));
        if (!p.ok()) return fail(p.status());
        auto l = p->List();
        if (!l.ok()) return fail(l.status());
        old = *l;
        if (!SameRules(old, cfg.rules)) {
          s = p->Replace(cfg.rules);
          rep.rules_replaced = s.ok();
        }
      }
      if (!s.ok()) return fail(s);
    }
  }

  for (const auto& n : to_detach) {
    absl::Status s = c.Detach(n);
    if (!s.ok()) rep.warnings.push_back(std::string(s.message()));
    if (s.ok() || s.code() == absl::StatusCode::kDataLoss) rep.detached.push_back(n);
  }
  if (rep.rules_replaced && cfg.rules.empty()) {
    // The last rule went: remove the shared maps if nothing is attached either.
    if (auto lock = control::LockPins(BpffsOf(c)); lock.ok()) c.Tidy();
  }

  for (const auto& n : rep.detached) owned->names.erase(n);
  for (const auto* v : {&rep.attached, &rep.reattached, &rep.adopted})
    for (const auto& n : *v) owned->names.insert(n);
  return rep;
}

}  // namespace csumfix::config
