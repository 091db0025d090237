#include "control/leftovers.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <net/if.h>
#include <sys/socket.h>

#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "control/selector.h"
#include "control/bounce.h"
#include "control/hooks.h"
#include "control/ifb.h"
#include "control/names.h"
#include "control/netlink.h"

namespace csumfix::control {
namespace {

void DetachHook(const csf_attach_state& st, uint32_t hook, const std::string& dir,
                const PinnedMaps& maps, std::vector<std::string>* warnings) {
  DetachOne(st.ifindex, TcPoint(hook), st.mode[hook], st.prog_id[hook], st.tc_handle,
            st.tc_priority, absl::StrCat(dir, "/", PinBase(hook)), names::HookName(hook),
            warnings);
  RemoveSelector(st, hook, dir, warnings);
  RemoveBounce(st, hook, dir, maps, warnings);
  if (hook == CSF_HOOK_TC_INGRESS) RemoveIfb(st, warnings);
  const csf_if_key key{st.ifindex, hook};
  if (maps.ifcfg.valid()) (void)maps.Ifcfg().Delete(key);
  if (maps.slots.valid()) (void)maps.Counters().Delete(key);
  if (maps.legacy_counters.valid()) (void)maps.LegacyCounters().Delete(key);
}

}  // namespace

void DetachRecorded(const csf_attach_state& st, const std::string& dir, const PinnedMaps& maps,
                    std::vector<std::string>* warnings) {
  for (uint32_t hook = 0; hook < CSF_HOOK_MAX; ++hook)
    if (st.mode[hook] != CSF_TC_MODE_NONE) DetachHook(st, hook, dir, maps, warnings);
  if (st.flags & CSF_STATE_F_CLSACT_CREATED) {
    // The qdisc csumfix created goes with its last filter; one someone else added to it since
    // keeps it.
    if (auto d = DeleteClsactIfEmpty(st.ifindex); !d.ok())
      warnings->push_back(std::string(d.status().message()));
  }
}

bool InThisNetns(const csf_attach_state& st) {
  return st.netns_ino == 0 || st.netns_ino == CurrentNetnsIno();
}

bool InterfaceGone(const csf_attach_state& st) {
  char buf[IF_NAMESIZE] = {};
  return InThisNetns(st) && if_indextoname(st.ifindex, buf) == nullptr;
}

std::vector<std::string> RemoveStrayFilters(uint32_t ifindex, const std::set<uint32_t>& keep) {
  std::vector<std::string> removed;
  // Most interfaces have no clsact qdisc: libbpf would print the kernel's "Parent Qdisc doesn't
  // exist" for every query; silent here.
  libbpf_print_fn_t print = libbpf_set_print(nullptr);
  for (uint32_t hook : {CSF_HOOK_TC_INGRESS, CSF_HOOK_TC_EGRESS}) {
    for (uint32_t prio : {kTcPriority, kTcPriority + 1}) {
      LIBBPF_OPTS(bpf_tc_hook, h, .ifindex = static_cast<int>(ifindex),
                  .attach_point = TcPoint(hook));
      LIBBPF_OPTS(bpf_tc_opts, o, .handle = kTcHandle, .priority = prio);
      if (bpf_tc_query(&h, &o) != 0 || keep.count(o.prog_id)) continue;
      const std::string name =
          FilterProgName(ifindex, hook == CSF_HOOK_TC_INGRESS, kTcHandle, prio);
      if (!absl::StartsWith(name, "csf_")) continue;  // not csumfix's: never touched
      RemoveFilter(ifindex, TcPoint(hook), prio);
      removed.push_back(absl::StrCat(names::HookName(hook), " filter of program ", name));
    }
  }
  libbpf_set_print(print);
  return removed;
}

bool RemoveStrayBounce(uint32_t ifindex, uint32_t hook) {
  const std::string name = BounceName(ifindex, hook, 'a');
  const uint32_t a = if_nametoindex(name.c_str());
  if (a == 0 || Driver(name) != "veth") return false;
  return DeleteLink(a).ok();
}

}  // namespace csumfix::control
