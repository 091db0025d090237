// Reconciling the running state with a config (config::Apply) in three parts:
//   GatherCurrent  reads what Plan needs from the system: the only part that does;
//   Plan           decides, without a syscall, what to attach, adopt, re-attach and detach and
//                  whether the rule set changes (tests/unit/plan_test.cc);
//   Execute        does it, all-or-nothing up to the rule set (control::Rollback); detaching
//                  what the file no longer lists comes last and only warns when it fails.
#ifndef CSUMFIX_USERSPACE_CONFIG_RECONCILE_H_
#define CSUMFIX_USERSPACE_CONFIG_RECONCILE_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "config/config.h"
#include "control/control.h"
#include "control/netlink.h"
#include "csumfix/abi.h"

namespace csumfix::config {

// What the system looks like, as far as Plan is concerned.
struct Current {
  std::vector<control::IfaceStatus> attached;      // Controller::Status()
  std::vector<control::LinkInfo> links;            // every link of the namespace (ListLinks;
                                                   // a link without a kind: its driver as kind)
  std::map<std::string, std::string> redirect_to;  // each attachment with an XDP hook: its
                                                   // redirect target ("" none)
  std::set<std::string> owned;                     // what serve attached (Owned::names)
  std::vector<csf_pol_rule> rules;                 // the stored rule set (empty: none)
  uint32_t probe_mechanism = CSF_MECH_MAX;         // what "auto" means; CSF_MECH_MAX: the probe
                                                   // failed
};

// Reads Current. `features` nullptr: the kernel probe failed.
absl::StatusOr<Current> GatherCurrent(const control::Controller& c,
                                      const control::ProbeResult* features, const Owned& owned);

// What to do about one [[interface]].
struct IfaceStep {
  enum class Kind {
    kAttach,    // not attached: attach it
    kReattach,  // attached otherwise (hooks, mechanism, redirect target, or the interface was
                // deleted and made again): detach, attach as the config says
    kAdopt,     // attached as the config says: keep it, setting the action where it differs
  };
  Kind kind = Kind::kAttach;
  control::AttachRequest req;          // the interface as the config wants it
  control::IfaceStatus old;            // kReattach, kAdopt: as it is attached now
  control::AttachRequest restore;      // kReattach: attaches `old` again should `req` fail
  std::vector<uint32_t> set_action;    // kAdopt: the hooks whose action becomes req.action
};

struct Steps {
  std::string path;                    // the config file, for messages
  std::vector<IfaceStep> interfaces;   // in the file's order
  bool replace_rules = false;          // the stored rule set differs from `rules`
  std::vector<csf_pol_rule> rules;     // the config's rule set
  std::vector<std::string> rule_ifnames;  // per rule, the interface name it is bound to
  std::vector<std::string> detach;     // attached by serve earlier, no longer selected
  std::vector<std::string> waiting;    // named interfaces that do not exist: "tap0 (WHERE)"
};

// Decides the steps; pure. The interfaces are the links some [[interface]] selects (select.h).
// FailedPrecondition when a selected block's mechanism is "auto" and the probe failed.
absl::StatusOr<Steps> Plan(const Config& desired, const Current& current);

// Carries the steps out. Mode::kAllOrNothing: attaches, re-attaches, action changes and the rule
// set succeed together or are undone ("apply FILE (everything undone)"). Mode::kFollow: each
// interface on its own (one that fails is undone and reported in `failed`), the rule set is not
// touched. Detaches come last; one that fails is a warning.
absl::StatusOr<ApplyReport> Execute(const Steps& steps, control::Controller& c,
                                    const control::ProbeResult& features,
                                    Mode mode = Mode::kAllOrNothing);

}  // namespace csumfix::config

#endif  // CSUMFIX_USERSPACE_CONFIG_RECONCILE_H_
