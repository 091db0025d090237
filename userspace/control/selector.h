// The classic selector filter of the fill mechanisms "act-csum" and "ifb" (docs/MECHANISMS.md):
// right behind csumfix's program, a classic cls_bpf filter whose selector (csf_act_select_*)
// matches what csumfix decided to fill, with the kernel's act_csum (act-csum) or a mirred
// redirect to the interface's ifb device (ifb) as its action. It lives in the clsact qdisc at
// csumfix's handle and priority + 1, also when the main program is a tcx link.
#ifndef CSUMFIX_USERSPACE_CONTROL_SELECTOR_H_
#define CSUMFIX_USERSPACE_CONTROL_SELECTOR_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "bpf/loader.h"
#include "control/hooks.h"
#include "csumfix/abi.h"

namespace csumfix::control {

// Adds the selector filter at `ctx.hook` of `ifindex` (creating the clsact qdisc when needed:
// `made_clsact`) with act_csum as its action (`mirred_to` 0) or a mirred redirect to the device
// `mirred_to`; pins the selector at `base`_act_prog (`base`: the hook's pin base, ActPinBase),
// records its program id in `st` and its undo in ctx.rb.
absl::Status AddSelector(const bpf::Programs& progs, uint32_t ifindex, const std::string& base,
                         const std::string& where, const StepCtx& ctx, uint32_t mirred_to,
                         bool* made_clsact, csf_attach_state* st);
// <base>_act: the pin base of the selector of the hook whose pin base is `base`.
inline std::string ActPinBase(const std::string& base) { return base + "_act"; }

// Removes that filter while it still runs the recorded selector.
void RemoveSelector(const csf_attach_state& st, uint32_t hook, const std::string& dir,
                    std::vector<std::string>* warnings);

}  // namespace csumfix::control

#endif  // CSUMFIX_USERSPACE_CONTROL_SELECTOR_H_
