#include "config/reconcile.h"

#include <bpf/bpf.h>
#include <net/if.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status.h"
#include "bpf/fd.h"
#include "control/names.h"
#include "control/policy.h"
#include "control/rollback.h"
#include "config/select.h"
#include "control/netlink.h"

namespace csumfix::config {
namespace {

// The bpffs mount point the controller works on.
const std::string& BpffsOf(const control::Controller& c) { return c.paths().bpffs(); }

bool HasHook(const control::IfaceStatus& s, uint32_t hook) {
  return std::any_of(s.hooks.begin(), s.hooks.end(),
                     [hook](const control::HookStatus& h) { return h.hook == hook; });
}

// The XDP redirect target recorded for an attachment ("" when none).
std::string RedirectTarget(const bpf::Fd& ifcfg, uint32_t ifindex) {
  if (!ifcfg.valid()) return "";
  csf_if_key k{ifindex, CSF_HOOK_XDP};
  csf_ifcfg v{};
  if (bpf_map_lookup_elem(ifcfg.get(), &k, &v) != 0 || !(v.flags & CSF_IFCFG_F_XDP_REDIRECT))
    return "";
  char buf[IF_NAMESIZE] = {};
  return if_indextoname(v.target_ifindex, buf) ? buf : absl::StrCat("ifindex:", v.target_ifindex);
}

template <typename V>
V Find(const std::map<std::string, V>& m, const std::string& key) {
  auto it = m.find(key);
  return it == m.end() ? V{} : it->second;
}

// What it would take to attach `s` again as it is now (`redirect_to`: its XDP target).
control::AttachRequest RequestFromStatus(const control::IfaceStatus& s,
                                         const std::string& redirect_to) {
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
  if (r.xdp) r.xdp_redirect_to = redirect_to;
  return r;
}

// The attach request of an [[interface]] for the link `link` it selects. Its mechanism as
// control::ResolveMechanism says ("auto": the probe's for fill and zero-udp4, observe for the
// actions that never fill), except that "auto" also means the probe's mechanism when one of the
// config's own rules can fill on this interface (`rules_fill`): the file says the fill is wanted.
absl::StatusOr<control::AttachRequest> RequestFromSpec(const InterfaceSpec& i,
                                                       const control::LinkInfo& link,
                                                       const std::vector<csf_pol_rule>& rules,
                                                       uint32_t probe_mechanism) {
  control::AttachRequest r;
  r.ifname = link.name;
  r.ingress = i.ingress;
  r.egress = i.egress;
  r.xdp = i.xdp;
  r.action = i.action;
  r.xdp_redirect_to = i.redirect_to;
  const bool rules_fill = std::any_of(rules.begin(), rules.end(), [&](const csf_pol_rule& rule) {
    return control::ActionCanFill(rule.action) &&
           (!(rule.flags & CSF_POL_F_IFINDEX) || rule.ifindex == link.ifindex) &&
           (!(rule.flags & CSF_POL_F_HOOK) || (rule.hook == CSF_HOOK_TC_INGRESS && i.ingress) ||
            (rule.hook == CSF_HOOK_TC_EGRESS && i.egress));
  });
  r.mechanism = control::ResolveMechanism(i.mechanism, rules_fill ? CSF_ACT_FILL : i.action,
                                          probe_mechanism);
  if (r.mechanism < CSF_MECH_MAX) return r;
  if (i.mechanism == "auto")
    return absl::FailedPreconditionError(absl::StrCat(
        i.where, ": mechanism \"auto\" but the kernel probe failed (see `csumfix probe`); "
        "write mechanism = \"bounce\" or \"observe\""));
  return absl::InvalidArgumentError(  // Load refuses it already
      absl::StrCat(i.where, ": unknown mechanism \"", i.mechanism, "\""));
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

// Attaches `step.restore` and gives each hook the action it had (putting an old attachment back).
absl::Status Restore(control::Controller& c, const IfaceStep& step,
                     const control::ProbeResult& features) {
  RETURN_IF_ERROR(c.Attach(step.restore, features));
  for (const auto& h : step.old.hooks)
    RETURN_IF_ERROR(c.SetAction(step.old.ifname, h.hook, h.action));
  return absl::OkStatus();
}

// One interface's step, its undo recorded in `undo`.
absl::Status Change(const IfaceStep& st, control::Controller& c,
                    const control::ProbeResult& features, control::Rollback& undo,
                    ApplyReport* rep) {
  const std::string& name = st.req.ifname;
  switch (st.kind) {
    case IfaceStep::Kind::kAttach:
      RETURN_IF_ERROR(c.Attach(st.req, features));
      undo.Add([&c, name] { (void)c.Detach(name); });
      rep->attached.push_back(name);
      return absl::OkStatus();
    case IfaceStep::Kind::kReattach:
      if (Outcome d = c.Detach(name); !d.ok()) return d.status();
      if (absl::Status s = c.Attach(st.req, features); !s.ok()) {
        (void)Restore(c, st, features);
        return s;
      }
      undo.Add([&c, &st, &features] {
        (void)c.Detach(st.req.ifname);
        (void)Restore(c, st, features);
      });
      rep->reattached.push_back(name);
      return absl::OkStatus();
    case IfaceStep::Kind::kAdopt:
      for (uint32_t hook : st.set_action) {
        uint32_t before = CSF_ACT_PASS;
        for (const auto& h : st.old.hooks)
          if (h.hook == hook) before = h.action;
        RETURN_IF_ERROR(c.SetAction(name, hook, st.req.action));
        undo.Add([&c, name, hook, before] { (void)c.SetAction(name, hook, before); });
      }
      if (!st.set_action.empty()) rep->actions_changed.push_back(name);
      rep->adopted.push_back(name);
      return absl::OkStatus();
  }
  return absl::OkStatus();
}

// Everything that is undone when a later part fails: the interfaces, then the rule set.
absl::Status ChangeAll(const Steps& steps, control::Controller& c,
                       const control::ProbeResult& features, control::Rollback& undo,
                       ApplyReport* rep) {
  for (const auto& st : steps.interfaces) RETURN_IF_ERROR(Change(st, c, features, undo, rep));
  if (!steps.replace_rules) return absl::OkStatus();
  // Policy::Open holds the pin lock: no attach or detach (nor undo) while `p` lives.
  ASSIGN_OR_RETURN(control::Policy p, control::Policy::Open(BpffsOf(c)));
  RETURN_IF_ERROR(p.Replace(steps.rules, steps.rule_ifnames));
  rep->rules_replaced = true;
  return absl::OkStatus();
}

// Mode::kFollow: each interface's step on its own; the rule set stays.
void ChangeEach(const Steps& steps, control::Controller& c, const control::ProbeResult& features,
                ApplyReport* rep) {
  for (const auto& st : steps.interfaces) {
    if (st.kind == IfaceStep::Kind::kAdopt && st.set_action.empty()) {
      rep->adopted.push_back(st.req.ifname);  // nothing to do
      continue;
    }
    ApplyReport one;
    control::Rollback undo;
    if (absl::Status s = Change(st, c, features, undo, &one); !s.ok()) {
      rep->failed.push_back(absl::StrCat(st.req.ifname, ": ", s.message()));
      continue;  // `undo` puts this interface back as it was
    }
    undo.Commit();
    for (auto [from, to] : {std::pair{&one.attached, &rep->attached},
                            {&one.reattached, &rep->reattached},
                            {&one.adopted, &rep->adopted},
                            {&one.actions_changed, &rep->actions_changed}})
      to->insert(to->end(), from->begin(), from->end());
  }
}

}  // namespace

absl::StatusOr<Current> GatherCurrent(const control::Controller& c,
                                      const control::ProbeResult* features, const Owned& owned) {
  Current cur;
  ASSIGN_OR_RETURN(cur.attached, c.Status(control::Controller::Detail::kRecords));
  ASSIGN_OR_RETURN(cur.links, LinksToSelect());
  const bpf::Fd ifcfg(
      bpf_obj_get(c.paths().map(CSF_MAP_IFCFG).c_str()));
  for (const auto& s : cur.attached)
    if (HasHook(s, CSF_HOOK_XDP)) cur.redirect_to[s.ifname] = RedirectTarget(ifcfg, s.ifindex);
  cur.owned = owned.names;
  ASSIGN_OR_RETURN(cur.rules, control::ReadRules(BpffsOf(c)));
  cur.probe_mechanism = features != nullptr ? features->mechanism : CSF_MECH_MAX;
  return cur;
}

absl::StatusOr<Steps> Plan(const Config& desired, const Current& current) {
  Steps out;
  out.path = desired.path;
  out.rules = desired.rules;
  out.rule_ifnames = desired.rule_ifnames;
  out.replace_rules = !SameRules(current.rules, desired.rules);
  std::map<std::string, const control::IfaceStatus*> attached;
  for (const auto& s : current.attached) attached[s.ifname] = &s;
  std::set<std::string> listed;
  for (const Selected& sel : Select(desired, current.links)) {
    const InterfaceSpec& i = desired.interfaces[sel.block];
    listed.insert(sel.link.name);
    IfaceStep st;
    ASSIGN_OR_RETURN(st.req,
                     RequestFromSpec(i, sel.link, desired.rules, current.probe_mechanism));
    auto it = attached.find(sel.link.name);
    if (it == attached.end()) {
      st.kind = IfaceStep::Kind::kAttach;
      out.interfaces.push_back(std::move(st));
      continue;
    }
    // A record this build cannot read (another pin ABI's): re-attaching would remove its pins
    // and orphan its filters. Nothing of the config is applied; the message says what to do.
    if (it->second->state == "unreadable")
      return absl::FailedPreconditionError(it->second->problem);
    st.old = *it->second;
    const std::string redirect_to = Find(current.redirect_to, st.old.ifname);
    const control::AttachRequest& r = st.req;
    const bool same = st.old.present && st.old.ifindex == sel.link.ifindex &&
                      HasHook(st.old, CSF_HOOK_TC_INGRESS) == r.ingress &&
                      HasHook(st.old, CSF_HOOK_TC_EGRESS) == r.egress &&
                      HasHook(st.old, CSF_HOOK_XDP) == r.xdp && st.old.mechanism == r.mechanism &&
                      (!r.xdp || redirect_to == r.xdp_redirect_to);
    if (!same) {
      st.kind = IfaceStep::Kind::kReattach;
      st.restore = RequestFromStatus(st.old, redirect_to);
    } else {
      st.kind = IfaceStep::Kind::kAdopt;
      for (const auto& h : st.old.hooks)
        if (h.action != r.action) st.set_action.push_back(h.hook);
    }
    out.interfaces.push_back(std::move(st));
  }
  for (const auto& n : current.owned)
    if (!listed.count(n) && attached.count(n)) out.detach.push_back(n);
  out.waiting = Waiting(desired, current.links);
  return out;
}

absl::StatusOr<ApplyReport> Execute(const Steps& steps, control::Controller& c,
                                    const control::ProbeResult& features, Mode mode) {
  ApplyReport rep;
  rep.rules = steps.rules.size();
  rep.waiting = steps.waiting;
  for (size_t i = 0; i < steps.rules.size() && i < steps.rule_ifnames.size(); ++i)
    if ((steps.rules[i].flags & CSF_POL_F_IFINDEX) && steps.rules[i].ifindex == 0)
      rep.warnings.push_back(absl::StrCat("rule ", i + 1, " names ", steps.rule_ifnames[i],
                                          ", which does not exist now: it applies once an "
                                          "interface of that name is attached"));
  if (mode == Mode::kFollow) {
    ChangeEach(steps, c, features, &rep);
  } else {
    absl::Status changed;
    {
      control::Rollback undo;  // undoes, in reverse, unless committed
      changed = ChangeAll(steps, c, features, undo, &rep);
      if (changed.ok()) undo.Commit();
    }
    if (!changed.ok())
      return Annotate(changed, absl::StrCat("apply ", steps.path, " (everything undone)"));
  }

  for (const auto& n : steps.detach) {
    Outcome d = c.Detach(n);
    if (!d.ok()) {
      rep.warnings.push_back(std::string(d.status().message()));
      continue;
    }
    rep.warnings.insert(rep.warnings.end(), d->warnings.begin(), d->warnings.end());
    rep.detached.push_back(n);
  }
  if (rep.rules_replaced && steps.rules.empty()) {
    // The last rule went: remove the shared maps if nothing is attached either.
    if (auto lock = control::LockPins(BpffsOf(c)); lock.ok()) c.Tidy();
  }
  return rep;
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
  add("waiting for", waiting);
  add("FAILED", failed);
  parts.push_back(rules_replaced ? absl::StrCat("rule set replaced (", rules, " rules)")
                                 : absl::StrCat("rule set unchanged (", rules, " rules)"));
  return absl::StrJoin(parts, "; ");
}

absl::StatusOr<ApplyReport> Apply(const Config& cfg, control::Controller& c,
                                  const control::ProbeResult* features, Owned* owned, Mode mode) {
  const control::ProbeResult none;  // the probe failed: only bounce and observe
  ASSIGN_OR_RETURN(Current current, GatherCurrent(c, features, *owned));
  ASSIGN_OR_RETURN(Steps steps, Plan(cfg, current));
  ASSIGN_OR_RETURN(ApplyReport rep,
                   Execute(steps, c, features != nullptr ? *features : none, mode));
  for (const auto& n : rep.detached) owned->names.erase(n);
  for (const auto* v : {&rep.attached, &rep.reattached, &rep.adopted})
    for (const auto& n : *v) owned->names.insert(n);
  return rep;
}

}  // namespace csumfix::config
