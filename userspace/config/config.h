// The `csumfix serve --config FILE` file (TOML): which interfaces csumfix is attached to and the
// per-flow policy rules. Load parses and validates everything (errors carry FILE:LINE:COLUMN);
// Apply reconciles the running state with it: attach what is missing, adopt what already
// matches, re-attach what differs, detach what the daemon attached earlier and the file no
// longer selects, replace the rule set. An error undoes what Apply did.
//
//   [[interface]]                   # selectors: every one given must hold, at least one given
//   name = "tap0"                   #   the exact name
//   match = "vnet*"                 #   a shell glob on the name (fnmatch)
//   master = "virbr0"               #   a port of this bridge (or bond, VRF)
//   kind = "tun"                    #   rtnetlink's link kind (IFLA_INFO_KIND: tun, veth,
//                                   #   vxlan, ...), or the driver (`ethtool -i`) of a link
//                                   #   without one (Xen's vif, a NIC)
//   hooks = ["ingress", "egress"]   # ingress | egress | xdp; default both tc hooks
//   action = "fill"                 # default "fill"
//   mechanism = "auto"              # auto | bpf | act-csum | bounce | ifb | observe; default "auto":
//                                   #   the probe's for fill and zero-udp4, or when a rule of the
//                                   #   file can fill here; observe (no helpers) otherwise
//   redirect_to = "vc"              # only with "xdp" in hooks
//
// An interface that several blocks select gets the first of them in the file's order. A name
// that does not exist (yet) is not an error: serve attaches it when it appears. csumfix's own
// helper links (bounce veths) are never selected.
//
//   [[rule]]                        # the fields of `csumfix policy add`
//   iface = "tap0"  hook = "ingress"  ip = 4  proto = "udp"  src = "10.0.0.0/8"  dst = "..."
//   sport = 68  dport = "67-68"  action = "fill"  priority = 10
//
//   [[zone]]                        # `csumfix policy zone`
//   prefixes = ["10.1.0.0/16"]  iface = "tap0"  priority = 50
#ifndef CSUMFIX_USERSPACE_CONFIG_CONFIG_H_
#define CSUMFIX_USERSPACE_CONFIG_CONFIG_H_

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "control/control.h"
#include "csumfix/abi.h"

namespace csumfix::config {

struct InterfaceSpec {
  // Selectors ("" not given): every one given must hold.
  std::string name;    // exact name
  std::string match;   // shell glob on the name
  std::string master;  // name of the master device (bridge) the interface is a port of
  std::string kind;    // link kind, or the driver of a link without one
  bool ingress = false, egress = false, xdp = false;
  uint32_t action = CSF_ACT_FILL;
  std::string mechanism = "auto";  // auto | bpf | act-csum | bounce | ifb | observe (see above)
  std::string redirect_to;
  std::string where;  // "FILE:LINE:COL" of the [[interface]] table, for messages

  // The selectors as written: `name = "tap0", master = "br0"`.
  std::string Selectors() const;
};

struct Config {
  std::string path;
  std::vector<InterfaceSpec> interfaces;
  std::vector<csf_pol_rule> rules;  // [[rule]] then expanded [[zone]]s, in file order
  // Per rule, the interface name it is bound to ("" none). A [[rule]] whose iface does not exist
  // yet is kept bound to that name with ifindex 0 (it matches nothing) and follows the name: the
  // attach of an interface of that name points it there (control::Policy::Rebind).
  std::vector<std::string> rule_ifnames;
  // Where each rule came from, for --check-config: "FILE:LINE:COL [[rule]] #N" or "... [[zone]] #N".
  std::vector<std::string> rule_sources;
};

// Parses and validates `path`. Interfaces that [[zone]]s and redirect_to name must exist in the
// current network namespace ([[interface]] selectors need not select anything now, and a [[rule]]
// may name an interface that does not exist yet).
// Errors: InvalidArgument "FILE:LINE:COL: what is wrong", one line per error found: every table
// of the file is checked, so one run names every block that is wrong (its first problem each).
absl::StatusOr<Config> Load(const std::string& path);

// Interfaces the daemon attached itself (and may therefore detach), kept across restarts in a
// small JSON file; an entry counts only while the pins still say the same ifindex, and only in
// the network namespace that wrote the file (it records the namespace's inode).
struct Owned {
  std::set<std::string> names;
  absl::Status Save(const std::string& path, const control::Controller& c) const;
  static Owned LoadFile(const std::string& path, const control::Controller& c);
};

struct ApplyReport {
  std::vector<std::string> attached, adopted, reattached, detached, actions_changed;
  std::vector<std::string> waiting;   // named interfaces that do not exist (yet)
  std::vector<std::string> failed;    // Mode::kFollow: interfaces whose attach failed (and why)
  std::vector<std::string> warnings;  // e.g. a detach that left something behind
  bool rules_replaced = false;
  size_t rules = 0;
  std::string Summary() const;
};

// How Apply carries out its steps.
enum class Mode {
  kAllOrNothing,  // the config was (re)loaded: every attach and the rule set, or nothing
  kFollow,        // links came, went or changed: each interface on its own (a failure is reported
                  // in `failed` and leaves the others), the rule set untouched
};

// Reconciles the running state with `cfg` (see the file comment): GatherCurrent, Plan, Execute
// of config/reconcile.h in one call. `owned` is updated.
// `features` is the kernel probe's result (nullptr: the probe failed, so mechanism "auto" is
// refused); it resolves mechanism "auto" and is what Attach checks mechanisms against.
absl::StatusOr<ApplyReport> Apply(const Config& cfg, control::Controller& c,
                                  const control::ProbeResult* features, Owned* owned,
                                  Mode mode = Mode::kAllOrNothing);

}  // namespace csumfix::config

#endif  // CSUMFIX_USERSPACE_CONFIG_CONFIG_H_
