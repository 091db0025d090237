// Upgrade: make the attachments run this build's programs without a moment unfixed. A package
// upgrade restarts serve while the interfaces keep the programs the old build attached; the new
// serve (or `csumfix upgrade`) replaces each one whose tag differs, in place:
//   tcx / XDP link   bpf_link_update(BPF_F_REPLACE, old prog): the link's slot takes the new
//                    program (kernel/bpf/tcx.c, bpf_mprog_replace; net/core/dev.c,
//                    bpf_xdp_link_update), its position among other programs unchanged;
//   clsact cls_bpf   the filter of csumfix's handle/priority changed in place (no NLM_F_EXCL):
//                    cls_bpf_change swaps the entry with list_replace_rcu (net/sched/cls_bpf.c);
//   act-csum, ifb    its classic selector filter likewise, with a new act_csum (mirred to the
//                    same ifb) instance;
//   bounce           the return program on the bounce veth, as the hook it is attached to.
// Order per hook: the bounce return program, then the main program, then the selector. Old and
// new bounce return programs are interchangeable (they share the pinned maps, same ABI); a
// selector is not: one of this build reads the decision csumfix's program leaves in the packet's
// control buffer (bpf/lib/pipeline.h, CSF_CB_SELECT), which programs of builds before that never
// write, while an older selector decides by itself. So the new main program goes in first: old
// selector behind new program fills as before, and the new selector then meets a new program.
// The pins follow by rename and the record is replaced last; a crash in between leaves a
// complete old or new program in every slot, and the next upgrade finishes the job.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "bpf/fd.h"
#include "control/selector.h"
#include "control/bounce.h"
#include "control/control.h"
#include "control/leftovers.h"
#include "control/names.h"
#include "control/netlink.h"
#include "csumfix.skel.h"

namespace csumfix::control {
namespace {

using bpf::Fd;

// One program slot of an attachment.
struct Slot {
  std::string what;      // "egress", "egress bounce return", "egress act_csum selector"
  std::string base;      // its pins: <base>_prog (and <base>_link for a link)
  uint32_t mode = 0;     // CSF_TC_MODE_* (CSF_XDP_MODE_LINK has CSF_TC_MODE_TCX's value)
  bool act = false;      // the act-csum / ifb selector: a classic cls_bpf filter with an action
  uint32_t ifindex = 0;  // the device it is attached to
  bpf_tc_attach_point point = BPF_TC_INGRESS;
  uint32_t handle = 0, priority = 0;  // cls_bpf
  uint32_t* recorded = nullptr;       // its program id in the state record
  bpf_program* prog = nullptr;        // this build's program for it
  uint32_t mirred_to = 0;             // the ifb selector's action: mirred to this ifb
};

bool IsLink(const Slot& s) { return !s.act && s.mode != CSF_TC_MODE_CLSACT; }

// The id of the program the kernel runs in the slot now (0: none there).
uint32_t Running(const Slot& s) {
  if (IsLink(s)) {
    Fd fd(bpf_obj_get((s.base + "_link").c_str()));
    bpf_link_info info{};
    uint32_t len = sizeof(info);
    if (!fd.valid() || bpf_link_get_info_by_fd(fd.get(), &info, &len) != 0) return 0;
    return info.prog_id;
  }
  LIBBPF_OPTS(bpf_tc_hook, h, .ifindex = static_cast<int>(s.ifindex), .attach_point = s.point);
  LIBBPF_OPTS(bpf_tc_opts, o, .handle = s.handle, .priority = s.priority);
  return bpf_tc_query(&h, &o) == 0 ? o.prog_id : 0;
}

std::string Short(const std::string& tag) { return tag.empty() ? "?" : tag.substr(0, 8); }

// Puts this build's program in the slot when another one runs there. Returns the line for the
// report, nullopt when the slot already runs a program of this build's tag.
absl::StatusOr<std::optional<std::string>> Swap(const Slot& s) {
  const int new_fd = bpf_program__fd(s.prog);
  ASSIGN_OR_RETURN(const ProgIdent now, Ident(new_fd));
  const std::string pin = s.base + "_prog";
  const auto pinned = PinnedIdent(pin);  // NotFound for a selector pinned by no build before
  const uint32_t running = Running(s);
  if (running == 0)
    return absl::FailedPreconditionError(absl::StrCat(
        s.what, " is not attached any more (`csumfix status`); left as it is"));
  // The recorded program, or the pinned one: a run stopped between a swap and the record.
  if (running != *s.recorded && !(pinned.ok() && running == pinned->id))
    return absl::FailedPreconditionError(absl::StrCat(
        s.what, " runs program ", running, ", not csumfix's ", *s.recorded, ": left alone"));
  const bool same_pin = pinned.ok() && pinned->id == running;
  if (running == now.id || (same_pin && pinned->tag == now.tag)) {
    *s.recorded = running;
    return std::nullopt;  // this build's program already (the same process, or the same tag)
  }
  // The new program is pinned before it runs, under a temporary name, so that a crash leaves
  // it findable; the old one stays pinned (and running) until the swap.
  const std::string tmp = pin + CSF_PIN_TMP_SUFFIX;
  unlink(tmp.c_str());
  RETURN_IF_ERROR(PinFd(new_fd, tmp));
  absl::Status swapped;
  if (s.act) {
    swapped = AddSelectorFilter(s.ifindex, s.point == BPF_TC_INGRESS, s.handle, s.priority,
                                new_fd, bpf_program__name(s.prog), s.mirred_to,
                                /*replace=*/true);
  } else if (IsLink(s)) {
    Fd link(bpf_obj_get((s.base + "_link").c_str()));
    Fd old(same_pin ? bpf_obj_get(pin.c_str()) : -1);
    // BPF_F_REPLACE: only if the link still runs `old` (the kernel compares), else EPERM.
    LIBBPF_OPTS(bpf_link_update_opts, o, .flags = old.valid() ? BPF_F_REPLACE : 0u,
                .old_prog_fd = static_cast<__u32>(old.valid() ? old.get() : 0));
    if (!link.valid() || bpf_link_update(link.get(), new_fd, &o) != 0)
      swapped = ErrnoStatus(errno, absl::StrCat("update the link of ", s.what));
  } else {
    LIBBPF_OPTS(bpf_tc_hook, h, .ifindex = static_cast<int>(s.ifindex), .attach_point = s.point);
    LIBBPF_OPTS(bpf_tc_opts, o, .prog_fd = new_fd, .flags = BPF_TC_F_REPLACE, .handle = s.handle,
                .priority = s.priority);
    if (const int e = bpf_tc_attach(&h, &o); e != 0)
      swapped = ErrnoStatus(e, absl::StrCat("replace the cls_bpf filter of ", s.what));
  }
  if (!swapped.ok()) {
    unlink(tmp.c_str());
    return swapped;
  }
  *s.recorded = now.id;
  if (rename(tmp.c_str(), pin.c_str()) != 0)
    return ErrnoStatus(errno, absl::StrCat("rename ", tmp, " to ", pin, " (", s.what,
                                           " runs the new program already)"));
  return absl::StrCat(s.what, ": prog ", running, " -> ", now.id, " (tag ",
                      Short(same_pin ? pinned->tag : ""), " -> ", Short(now.tag), ")");
}

// The slots of one attachment in upgrade order (above): bounce return, main, selector.
std::vector<Slot> Slots(const bpf::Programs& progs, const std::string& dir,
                        csf_attach_state& st) {
  std::vector<Slot> out;
  for (uint32_t hook = 0; hook < CSF_HOOK_MAX; ++hook) {
    if (st.mode[hook] == CSF_TC_MODE_NONE) continue;
    const std::string name(names::HookName(hook));
    const std::string base = absl::StrCat(dir, "/", PinBase(hook));
    const bool tc = hook != CSF_HOOK_XDP;
    if (tc && st.bounce_ifindex[hook] != 0) {
      out.push_back(Slot{name + " bounce return", BouncePinBase(dir, hook), st.bounce_mode[hook],
                         false, st.bounce_peer_ifindex[hook], BPF_TC_INGRESS, st.tc_handle,
                         st.tc_priority, &st.bounce_prog_id[hook],
                         progs.skel()->progs.csf_bounce_return});
    }
    bpf_program* main = hook == CSF_HOOK_TC_INGRESS  ? progs.skel()->progs.csf_tc_ingress
                        : hook == CSF_HOOK_TC_EGRESS ? progs.skel()->progs.csf_tc_egress
                                                     : progs.skel()->progs.csf_xdp;
    out.push_back(Slot{name, base, st.mode[hook], false, st.ifindex,
                       tc ? TcPoint(hook) : BPF_TC_INGRESS, st.tc_handle, st.tc_priority,
                       &st.prog_id[hook], main});
    if (tc && st.act_prog_id[hook] != 0) {
      const bool ifb = st.mechanism == CSF_MECH_IFB;
      out.push_back(Slot{name + (ifb ? " ifb selector" : " act_csum selector"), ActPinBase(base),
                         CSF_TC_MODE_CLSACT, true, st.ifindex, TcPoint(hook), st.tc_handle,
                         st.tc_priority + 1u, &st.act_prog_id[hook],
                         hook == CSF_HOOK_TC_INGRESS ? progs.skel()->progs.csf_act_select_ingress
                                                     : progs.skel()->progs.csf_act_select_egress,
                         ifb ? st.ifb_ifindex : 0u});
    }
  }
  return out;
}

}  // namespace

absl::StatusOr<std::vector<UpgradeReport>> Controller::Upgrade(absl::string_view only) {
  std::vector<UpgradeReport> out;
  auto not_attached = [&] {
    return absl::NotFoundError(
        absl::StrCat("upgrade: ", only, " is not attached (see `csumfix status`)"));
  };
  if (access(paths_.root().c_str(), F_OK) != 0) {  // nothing pinned here
    if (!only.empty()) return not_attached();
    return out;
  }
  ASSIGN_OR_RETURN(DirLock lock, DirLock::Acquire(paths_.top()));
  RETURN_IF_ERROR(CheckPinAbi(paths_));  // before anything is loaded or changed
  std::vector<std::string> names = paths_.Interfaces();
  if (!only.empty()) {
    if (std::find(names.begin(), names.end(), only) == names.end()) return not_attached();
    names = {std::string(only)};
  }
  std::shared_ptr<bpf::Programs> progs;
  for (const std::string& name : names) {
    const std::string dir = paths_.iface(name);
    auto st = ReadState(dir);
    if (!st.ok()) {
      // No record: an attach in progress elsewhere cannot be (we hold the lock), so it was
      // interrupted; `csumfix detach` removes it. Nothing to swap.
      if (!only.empty()) out.push_back({name, {}, std::string(st.status().message())});
      continue;
    }
    if (InterfaceGone(*st)) continue;  // its programs went with the device
    if (progs == nullptr) {
      auto loaded = LoadedPrograms();
      if (!loaded.ok())
        return Annotate(loaded.status(), "upgrade: load this build's programs for the pinned "
                                         "maps (nothing was changed)");
      progs = *loaded;
    }
    UpgradeReport r{name, {}, ""};
    csf_attach_state next = *st;
    for (const Slot& s : Slots(*progs, dir, next)) {
      auto line = Swap(s);
      if (!line.ok()) {
        r.error = std::string(line.status().message());
        break;  // the main program stays the old build's when a helper could not be swapped
      }
      if (*line) r.swapped.push_back(**line);
    }
    // Also when nothing was swapped now but the record lags (a run that stopped before it).
    if (memcmp(&next, &*st, sizeof(next)) != 0) {
      if (auto w = ReplaceState(dir, next); !w.ok() && r.error.empty())
        r.error = absl::StrCat("the programs run, but the record was not rewritten: ",
                               w.message(), " (run `csumfix upgrade ", name, "` again)");
    }
    if (!r.swapped.empty() || !r.error.empty()) out.push_back(std::move(r));
  }
  return out;
}

}  // namespace csumfix::control
