#include "control/selector.h"

#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "control/names.h"
#include "control/netlink.h"
#include "control/pins.h"
#include "csumfix.skel.h"

namespace csumfix::control {

absl::Status AddSelector(const bpf::Programs& progs, uint32_t ifindex, const std::string& base,
                         const std::string& where, const StepCtx& ctx, uint32_t mirred_to,
                         bool* made_clsact, csf_attach_state* st) {
  const uint32_t hook = ctx.hook;
  bpf_program* sel = hook == CSF_HOOK_TC_INGRESS ? progs.skel()->progs.csf_act_select_ingress
                                                 : progs.skel()->progs.csf_act_select_egress;
  RETURN_IF_ERROR(EnsureClsact(ifindex, TcPoint(hook), where, ctx.rb, made_clsact));
  RETURN_IF_ERROR(AddSelectorFilter(ifindex, hook == CSF_HOOK_TC_INGRESS, kTcHandle,
                                    kTcPriority + 1, bpf_program__fd(sel), bpf_program__name(sel),
                                    mirred_to));
  ctx.rb->Add([ifindex, hook] { RemoveFilter(ifindex, TcPoint(hook), kTcPriority + 1); });
  RETURN_IF_ERROR(ctx.fi->At(mirred_to == 0 ? Step::kActCsumFilter : Step::kIfbFilter, hook));
  // Pinned so that an upgrade can tell which build's selector runs there (its tag).
  const std::string pin = ActPinBase(base) + "_prog";
  RETURN_IF_ERROR(PinFd(bpf_program__fd(sel), pin));
  ctx.rb->Add([pin] { unlink(pin.c_str()); });
  ASSIGN_OR_RETURN(st->act_prog_id[hook], ProgId(bpf_program__fd(sel)));
  return absl::OkStatus();
}

void RemoveSelector(const csf_attach_state& st, uint32_t hook, const std::string& dir,
                    std::vector<std::string>* warnings) {
  if (hook == CSF_HOOK_XDP || st.act_prog_id[hook] == 0) return;
  DetachOne(st.ifindex, TcPoint(hook), CSF_TC_MODE_CLSACT, st.act_prog_id[hook], st.tc_handle,
            st.tc_priority + 1, ActPinBase(absl::StrCat(dir, "/", PinBase(hook))),
            absl::StrCat(names::HookName(hook),
                         st.mechanism == CSF_MECH_IFB ? " ifb selector" : " act_csum"),
            warnings);
}

}  // namespace csumfix::control
