#include "control/bounce.h"

#include <net/if.h>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "control/leftovers.h"
#include "control/netlink.h"
#include "csumfix.skel.h"

namespace csumfix::control {
namespace {

// IPv6 off (no router solicitations of its own), tx checksum off on end a, both ends up.
absl::Status SetUpPair(const std::string& a, const std::string& b, uint32_t ia, uint32_t ib) {
  RETURN_IF_ERROR(DisableIpv6(a));
  RETURN_IF_ERROR(DisableIpv6(b));
  RETURN_IF_ERROR(TxChecksumOff(a));
  RETURN_IF_ERROR(SetUpNoArp(ia));
  return SetUpNoArp(ib);
}

// Deletes our bounce veth if the link at that ifindex is still the one we made.
void DeleteBounce(uint32_t owner, uint32_t hook, uint32_t ifindex,
                  std::vector<std::string>* warnings) {
  char buf[IF_NAMESIZE] = {};
  if (ifindex == 0 || if_indextoname(ifindex, buf) == nullptr) return;
  if (BounceName(owner, hook, 'a') != buf) {
    warnings->push_back(absl::StrCat("bounce veth ifindex ", ifindex, " is now ", buf,
                                     ", not csumfix's: left alone"));
    return;
  }
  if (auto s = DeleteLink(ifindex); !s.ok()) warnings->push_back(std::string(s.message()));
}

}  // namespace

std::string BounceName(uint32_t ifindex, uint32_t hook, char end) {
  return absl::StrCat("csf", absl::Hex(ifindex), hook == CSF_HOOK_TC_INGRESS ? "i" : "e",
                      std::string(1, end));
}

std::string BouncePinBase(const std::string& dir, uint32_t hook) {
  return absl::StrCat(dir, "/bounce_", hook == CSF_HOOK_TC_INGRESS ? "ingress" : "egress");
}

absl::StatusOr<uint32_t> AddBounce(const bpf::Programs& progs, uint32_t ifindex, TcApi api,
                                   const std::string& dir, const StepCtx& ctx,
                                   csf_attach_state* st) {
  const uint32_t hook = ctx.hook;
  const std::string a = BounceName(ifindex, hook, 'a'), b = BounceName(ifindex, hook, 'b');
  // No record names this pair (the caller cleared stale ones): one of this name is a leftover.
  (void)RemoveStrayBounce(ifindex, hook);
  RETURN_IF_ERROR(CreateVethPair(a, b, 65535));
  const uint32_t ia = if_nametoindex(a.c_str()), ib = if_nametoindex(b.c_str());
  if (ia == 0 || ib == 0) return absl::InternalError("bounce veth " + a + " vanished");
  ctx.rb->Add([ia] { (void)DeleteLink(ia); });
  RETURN_IF_ERROR(ctx.fi->At(Step::kBounceVeth, hook));
  RETURN_IF_ERROR(SetUpPair(a, b, ia, ib));
  RETURN_IF_ERROR(ctx.fi->At(Step::kBounceVethSetup, hook));
  auto bounce = progs.bounce();
  RETURN_IF_ERROR(bounce.Update(ib, csf_bounce_ret{ifindex, hook}));
  ctx.rb->Add([bounce, ib]() mutable { (void)bounce.Delete(ib); });
  RETURN_IF_ERROR(ctx.fi->At(Step::kBounceMap, hook));
  bpf_program* ret = progs.skel()->progs.csf_bounce_return;
  ASSIGN_OR_RETURN(st->bounce_prog_id[hook], ProgId(bpf_program__fd(ret)));
  bool own_clsact = false;  // the bounce veths' own qdisc goes with them
  ASSIGN_OR_RETURN(st->bounce_mode[hook],
                   AttachTc(ret, ib, BPF_TC_INGRESS, api, BouncePinBase(dir, hook),
                            "ingress of " + b, ctx,
                            TcSteps{Step::kBounceReturnProgPin, Step::kBounceReturnAttach,
                                    Step::kBounceReturnLinkPin},
                            &own_clsact));
  st->bounce_ifindex[hook] = ia;
  st->bounce_peer_ifindex[hook] = ib;
  return ia;
}

void RemoveBounce(const csf_attach_state& st, uint32_t hook, const std::string& dir,
                  const PinnedMaps& maps, std::vector<std::string>* warnings) {
  if (st.bounce_ifindex[hook] == 0) return;
  DetachOne(st.bounce_peer_ifindex[hook], BPF_TC_INGRESS, st.bounce_mode[hook],
            st.bounce_prog_id[hook], st.tc_handle, st.tc_priority, BouncePinBase(dir, hook),
            "bounce return", warnings);
  DeleteBounce(st.ifindex, hook, st.bounce_ifindex[hook], warnings);
  if (maps.bounce.valid()) (void)maps.Bounce().Delete(st.bounce_peer_ifindex[hook]);
}

}  // namespace csumfix::control
