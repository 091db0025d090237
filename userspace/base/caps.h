// Least privilege: which Linux capabilities each csumfix command keeps, and dropping the rest for
// good (this process and anything it executes). SECURITY.md, "Least privilege", explains each.
#ifndef CSUMFIX_USERSPACE_BASE_CAPS_H_
#define CSUMFIX_USERSPACE_BASE_CAPS_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace csumfix::base {

// A capability number (CAP_* from <linux/capability.h>).
using Cap = int;

struct CapPlan {
  std::vector<Cap> required;     // the command cannot work without these: missing -> error
  std::vector<Cap> conditional;  // kept when held, needed only sometimes (see `why`)
  std::string why;               // one line per conditional capability, for messages
};

// What `command` needs (the top-level word: attach, detach, status, stats, flows, policy, probe,
// check, serve, diagnose, ...). `bpffs` is the --bpffs mount point: while no bpf filesystem is
// mounted there the command keeps CAP_SYS_ADMIN to mount it. `probe_cache` is the per-boot probe
// cache (/run/csumfix/probe.json): attach and serve (which attaches from its config) keep what
// `probe` needs while no result for this boot is cached. Commands this table does not know keep the base set (CAP_BPF, CAP_NET_ADMIN,
// CAP_PERFMON).
CapPlan PlanFor(std::string_view command, const std::string& bpffs,
                const std::string& probe_cache = "/run/csumfix/probe.json");

// Keeps only the plan's capabilities: permitted = effective = (required + conditional) ∩ held,
// inheritable and ambient cleared, every other capability dropped from the bounding set, and
// PR_SET_NO_NEW_PRIVS set, so an execve (csumfix runs `modprobe` in `probe`) cannot regain them.
// Fails with kPermissionDenied naming the missing capability when a required one is not held,
// and with the failing call when the kernel refuses a change.
absl::Status ApplyPlan(std::string_view command, const CapPlan& plan);

// The process's effective capabilities as names ("cap_bpf,cap_net_admin"); for tests and logs.
std::string EffectiveCapNames();

}  // namespace csumfix::base

#endif  // CSUMFIX_USERSPACE_BASE_CAPS_H_
