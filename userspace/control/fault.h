// Test-only fault injection for attach (SECURITY.md, tests/netns/fault_injection_test.cc).
// When the environment variable CSUMFIX_FAULT_INJECT names a step (secure_getenv: ignored in a
// setuid/file-capability process), Attach fails with "injected fault at step <point>" right after
// that step's side effect, so its rollback has to undo it. A step of a hook is reached once per
// hook; "<step>@<hook>" (hook: ingress, egress, xdp) picks one, the bare name fails at the first.
// CSUMFIX_FAULT_INJECT=list runs attach to its end, then fails naming every point it passed
// ("... (points reached: load, iface-dir, ...)") and rolls back. Any other value is refused
// before anything changes. It can only ever make attach fail.
#ifndef CSUMFIX_USERSPACE_CONTROL_FAULT_H_
#define CSUMFIX_USERSPACE_CONTROL_FAULT_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace csumfix::control {

inline constexpr char kFaultInjectEnv[] = "CSUMFIX_FAULT_INJECT";

// The steps of Attach, in order. A new side effect in attach gets a step here (and a name in
// fault.cc) and a fi.At() right after it; the test iterates AttachFaultSteps().
enum class Step : size_t {
  kPinDirs,              // <bpffs>/csumfix/v1 and v1/maps exist
  kLoad,                 // programs loaded, shared maps created or reused and pinned
  kIfaceDir,             // v1/<ifname>
  kBounceVeth,           // per tc hook, mechanism bounce: the veth pair exists
  kBounceVethSetup,      // ... IPv6 off, tx checksum off, both ends up
  kBounceMap,            // ... csf_bounce entry for the return end
  kBounceReturnProgPin,  // ... csf_bounce_return pinned
  kBounceReturnAttach,   // ... attached to the return end (tcx link not yet pinned, or cls_bpf)
  kBounceReturnLinkPin,  // ... its tcx link pinned
  kIfcfg,                // per hook: csf_ifcfg entry
  kTcProgPin,            // per tc hook: program pinned
  kTcAttach,             // ... attached (tcx link not yet pinned, or cls_bpf filter)
  kTcLinkPin,            // ... tcx link pinned
  kActCsumFilter,        // ... mechanism act-csum: selector + act_csum filter
  kIfbDevice,            // ... mechanism ifb (ingress): the ifb device exists
  kIfbSetup,             // ... IPv6 off, tx checksum off, up
  kIfbFilter,            // ... selector + mirred filter to it
  kXdpProgPin,           // XDP: program pinned
  kXdpAttach,            // ... link attached, not yet pinned
  kXdpLinkPin,           // ... link pinned
  kState,                // v1/<ifname>/state written: the last step before commit
  kCount
};
inline constexpr uint32_t kNoHook = UINT32_MAX;

// Every step Attach can fail at, in the order it passes them.
std::span<const absl::string_view> AttachFaultSteps();

class FaultInjector {
 public:
  FaultInjector();
  // Refuses an unknown step before anything changes.
  absl::Status Check() const;
  // Called right after a step's side effect (and its undo entry): fails when that is the step.
  absl::Status At(Step s, uint32_t hook = kNoHook);
  // list: fails at the very end, naming every point passed.
  absl::Status Finish() const;

 private:
  bool enabled_ = false;
  std::string spec_;
  std::vector<std::string> reached_;
};

}  // namespace csumfix::control

#endif  // CSUMFIX_USERSPACE_CONTROL_FAULT_H_
