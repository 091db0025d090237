// Hooks: attaching a program to a tc hook (a tcx link where the kernel has tcx, else the clsact
// qdisc with a cls_bpf filter of csumfix's handle and priority) or to XDP (a link), pinning it,
// and detaching exactly what csumfix attached. Every attach step records its undo in a Rollback.
#ifndef CSUMFIX_USERSPACE_CONTROL_HOOKS_H_
#define CSUMFIX_USERSPACE_CONTROL_HOOKS_H_

#include <bpf/libbpf.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "control/fault.h"
#include "control/rollback.h"
#include "csumfix/abi.h"

namespace csumfix::control {

enum class TcApi { kAuto, kTcx, kClsact };

// cls_bpf filters csumfix owns, when tcx is not available (the act-csum selector uses prio + 1).
inline constexpr uint32_t kTcHandle = 0xc5f;
inline constexpr uint32_t kTcPriority = 0xc5f;

bpf_tc_attach_point TcPoint(uint32_t hook);
// "tc_ingress", "tc_egress", "xdp": <ifname dir>/<base>_prog and <base>_link.
const char* PinBase(uint32_t hook);

// Where an attach is, for fault injection and messages: its undo log, its injector, the hook.
struct StepCtx {
  Rollback* rb;
  FaultInjector* fi;
  uint32_t hook;
};
// The fault-injection steps of one use of AttachTc (prog pinned, attached, link pinned).
struct TcSteps {
  Step prog_pin, attach, link_pin;
};

// Attaches `prog` at `point` of `ifindex` (tcx per `api`, else clsact + cls_bpf) and pins it at
// `base`_prog / `base`_link; returns CSF_TC_MODE_*. `made_clsact` is set when this created the
// interface's clsact qdisc. `where` names the hook in messages ("ingress of tap0").
absl::StatusOr<uint32_t> AttachTc(bpf_program* prog, uint32_t ifindex, bpf_tc_attach_point point,
                                  TcApi api, const std::string& base, const std::string& where,
                                  const StepCtx& ctx, const TcSteps& steps, bool* made_clsact);
// Attaches `prog` as an XDP link on `ifindex` and pins program and link at `base`.
absl::Status AttachXdp(bpf_program* prog, uint32_t ifindex, const std::string& base,
                       absl::string_view ifname, const StepCtx& ctx);

// Creates the clsact qdisc of `ifindex` unless it exists. When this call created it, *created is
// set and the rollback deletes the qdisc again once no filter is left in it.
absl::Status EnsureClsact(uint32_t ifindex, bpf_tc_attach_point point, const std::string& where,
                          Rollback* rb, bool* created);
// Deletes the clsact qdisc of `ifindex` when no filter is left in it; returns whether it did.
// Someone else's filter keeps it; an interface without the qdisc, or gone, is left as it is.
absl::StatusOr<bool> DeleteClsactIfEmpty(uint32_t ifindex);
// Removes csumfix's cls_bpf filter (handle, priority) at `point`, unconditionally (rollback).
void RemoveFilter(uint32_t ifindex, bpf_tc_attach_point point, uint32_t priority);

// Whether `running` (a program id the kernel reports at a hook) is csumfix's: the `recorded` one,
// or the one pinned at `base`_prog (an upgrade swaps the program and its pin before the record).
bool Ours(uint32_t running, uint32_t recorded, const std::string& base);

// Removes a tc or XDP attachment recorded as (mode, prog_id) on ifindex, pinned at <base>_link /
// <base>_prog; a cls_bpf filter only while it still runs our program (Ours).
void DetachOne(uint32_t ifindex, bpf_tc_attach_point point, uint32_t mode, uint32_t prog_id,
               uint32_t handle, uint32_t priority, const std::string& base, absl::string_view what,
               std::vector<std::string>* warnings);

// Is our program (as recorded in `st`) still what runs at this hook?
bool HookAttached(const std::string& dir, const csf_attach_state& st, uint32_t hook);
// The device a pinned tcx/XDP link reports (0 once the device is gone); nullopt: no such link.
std::optional<uint32_t> LinkIfindex(const std::string& dir, uint32_t hook);

}  // namespace csumfix::control

#endif  // CSUMFIX_USERSPACE_CONTROL_HOOKS_H_
