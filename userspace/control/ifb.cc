#include "control/ifb.h"

#include <net/if.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <thread>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "control/netlink.h"

namespace csumfix::control {
namespace {

// Whether the link `ifindex` exists under `name` and is an ifb.
bool IsOurIfb(uint32_t ifindex, const std::string& name) {
  auto links = ListLinks();
  if (!links.ok()) return false;
  return std::any_of(links->begin(), links->end(), [&](const LinkInfo& l) {
    return l.ifindex == ifindex && l.name == name && l.kind == "ifb";
  });
}

}  // namespace

std::string IfbName(uint32_t ifindex) { return absl::StrCat("csfifb", absl::Hex(ifindex)); }

absl::StatusOr<uint32_t> AddIfb(uint32_t ifindex, const StepCtx& ctx, csf_attach_state* st) {
  const std::string name = IfbName(ifindex);
  // No record names this device (the caller cleared stale ones): one of this name is a leftover.
  (void)RemoveStrayIfb(ifindex);
  // A queue per CPU: each CPU redirecting into the ifb takes its own queue lock and tasklet.
  const uint32_t queues = std::clamp(std::thread::hardware_concurrency(), 1u, 64u);
  RETURN_IF_ERROR(CreateIfb(name, queues));
  const uint32_t ifb = if_nametoindex(name.c_str());
  if (ifb == 0) return absl::InternalError("ifb device " + name + " vanished");
  ctx.rb->Add([ifb] { (void)DeleteLink(ifb); });
  RETURN_IF_ERROR(ctx.fi->At(Step::kIfbDevice, ctx.hook));
  RETURN_IF_ERROR(DisableIpv6(name));
  RETURN_IF_ERROR(TxChecksumOff(name));
  RETURN_IF_ERROR(SetUpNoArp(ifb));
  RETURN_IF_ERROR(ctx.fi->At(Step::kIfbSetup, ctx.hook));
  st->ifb_ifindex = ifb;
  return ifb;
}

bool IfbByRedirect(bool probe_ifb_redirect) {
  // secure_getenv: never honoured in a setuid or file-capability process.
  const char* via = secure_getenv("CSUMFIX_IFB_VIA");
  return probe_ifb_redirect && !(via != nullptr && std::string(via) == "mirred");
}

void RemoveIfb(const csf_attach_state& st, std::vector<std::string>* warnings) {
  if (st.mechanism != CSF_MECH_IFB || st.ifb_ifindex == 0) return;
  char buf[IF_NAMESIZE] = {};
  if (if_indextoname(st.ifb_ifindex, buf) == nullptr) return;  // gone already
  if (!IsOurIfb(st.ifb_ifindex, IfbName(st.ifindex))) {
    warnings->push_back(absl::StrCat("ifb ifindex ", st.ifb_ifindex, " is now ", buf,
                                     ", not csumfix's: left alone"));
    return;
  }
  if (auto s = DeleteLink(st.ifb_ifindex); !s.ok()) warnings->push_back(std::string(s.message()));
}

bool RemoveStrayIfb(uint32_t ifindex) {
  const std::string name = IfbName(ifindex);
  const uint32_t i = if_nametoindex(name.c_str());
  if (i == 0 || !IsOurIfb(i, name)) return false;
  return DeleteLink(i).ok();
}

}  // namespace csumfix::control
