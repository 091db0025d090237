#include "control/hooks.h"

#include <bpf/bpf.h>
#include <net/if.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "bpf/fd.h"
#include "control/ifb.h"
#include "control/netlink.h"
#include "control/pins.h"

namespace csumfix::control {
namespace {

using bpf::Fd;
using LinkPtr = std::unique_ptr<bpf_link, int (*)(bpf_link*)>;

// Pins a freshly attached link (which lives only in its fd until then) and records its undo.
absl::Status PinLink(bpf_link* link, const std::string& base, Rollback* rb) {
  RETURN_IF_ERROR(PinFd(bpf_link__fd(link), base + "_link"));
  rb->Add([base] {
    std::string p = base + "_link";
    Fd fd(bpf_obj_get(p.c_str()));
    if (fd.valid()) bpf_link_detach(fd.get());
    unlink(p.c_str());
  });
  return absl::OkStatus();
}

absl::Status PinProg(bpf_program* prog, const std::string& base, Rollback* rb) {
  RETURN_IF_ERROR(PinFd(bpf_program__fd(prog), base + "_prog"));
  rb->Add([base] { unlink((base + "_prog").c_str()); });
  return absl::OkStatus();
}

// tcx, silently: libbpf would print its own "failed to attach to tcx" on kernels before 6.6,
// where auto falls back to clsact; the caller reports a real failure with errno.
bpf_link* TryTcx(bpf_program* prog, uint32_t ifindex, int* err) {
  LIBBPF_OPTS(bpf_tcx_opts, to);
  libbpf_print_fn_t print = libbpf_set_print(nullptr);
  bpf_link* link = bpf_program__attach_tcx(prog, static_cast<int>(ifindex), &to);
  *err = errno;
  libbpf_set_print(print);
  return link;
}

}  // namespace

bpf_tc_attach_point TcPoint(uint32_t hook) {
  return hook == CSF_HOOK_TC_INGRESS ? BPF_TC_INGRESS : BPF_TC_EGRESS;
}

const char* PinBase(uint32_t hook) {
  switch (hook) {
    case CSF_HOOK_TC_INGRESS:
      return "tc_ingress";
    case CSF_HOOK_TC_EGRESS:
      return "tc_egress";
    default:
      return "xdp";
  }
}

absl::StatusOr<uint32_t> AttachTc(bpf_program* prog, uint32_t ifindex, bpf_tc_attach_point point,
                                  TcApi api, const std::string& base, const std::string& where,
                                  const StepCtx& ctx, const TcSteps& steps, bool* made_clsact) {
  RETURN_IF_ERROR(PinProg(prog, base, ctx.rb));
  RETURN_IF_ERROR(ctx.fi->At(steps.prog_pin, ctx.hook));
  if (api != TcApi::kClsact) {
    int tcx_errno = 0;
    if (bpf_link* link = TryTcx(prog, ifindex, &tcx_errno); link != nullptr) {
      LinkPtr owned(link, bpf_link__destroy);  // until pinned, destroying it detaches
      RETURN_IF_ERROR(ctx.fi->At(steps.attach, ctx.hook));
      RETURN_IF_ERROR(PinLink(link, base, ctx.rb));
      RETURN_IF_ERROR(ctx.fi->At(steps.link_pin, ctx.hook));
      return CSF_TC_MODE_TCX;
    }
    if (api == TcApi::kTcx)
      return ErrnoStatus(tcx_errno, absl::StrCat("attach tcx ", where,
                                                 " (tcx needs Linux 6.6+; use --tc-api auto to "
                                                 "fall back to clsact)"));
  }
  RETURN_IF_ERROR(EnsureClsact(ifindex, point, where, ctx.rb, made_clsact));
  LIBBPF_OPTS(bpf_tc_hook, h, .ifindex = static_cast<int>(ifindex), .attach_point = point);
  LIBBPF_OPTS(bpf_tc_opts, o, .prog_fd = bpf_program__fd(prog), .handle = kTcHandle,
              .priority = kTcPriority);
  if (const int e = bpf_tc_attach(&h, &o); e != 0)
    return ErrnoStatus(e, absl::StrCat("attach cls_bpf ", where,
                                       " (a filter with csumfix's handle/priority 0xc5f exists: "
                                       "run `csumfix detach` on that interface)"));
  ctx.rb->Add([ifindex, point] { RemoveFilter(ifindex, point, kTcPriority); });
  RETURN_IF_ERROR(ctx.fi->At(steps.attach, ctx.hook));
  return CSF_TC_MODE_CLSACT;
}

absl::Status AttachXdp(bpf_program* prog, uint32_t ifindex, const std::string& base,
                       absl::string_view ifname, const StepCtx& ctx) {
  RETURN_IF_ERROR(PinProg(prog, base, ctx.rb));
  RETURN_IF_ERROR(ctx.fi->At(Step::kXdpProgPin, ctx.hook));
  bpf_link* link = bpf_program__attach_xdp(prog, static_cast<int>(ifindex));
  if (link == nullptr)
    return ErrnoStatus(errno, absl::StrCat("attach XDP to ", ifname,
                                           " (another XDP program there? see `ip link show ",
                                           ifname, "`)"));
  LinkPtr owned(link, bpf_link__destroy);
  RETURN_IF_ERROR(ctx.fi->At(Step::kXdpAttach, ctx.hook));
  RETURN_IF_ERROR(PinLink(link, base, ctx.rb));
  return ctx.fi->At(Step::kXdpLinkPin, ctx.hook);
}

absl::Status EnsureClsact(uint32_t ifindex, bpf_tc_attach_point point, const std::string& where,
                          Rollback* rb, bool* created) {
  LIBBPF_OPTS(bpf_tc_hook, h, .ifindex = static_cast<int>(ifindex), .attach_point = point);
  const int e = bpf_tc_hook_create(&h);
  if (e == -EEXIST) return absl::OkStatus();
  if (e != 0) return ErrnoStatus(e, "create clsact qdisc for " + where);
  *created = true;
  // Rollbacks run in reverse: this runs after the filters added later are gone.
  rb->Add([ifindex] { (void)DeleteClsactIfEmpty(ifindex); });
  return absl::OkStatus();
}

absl::StatusOr<bool> DeleteClsactIfEmpty(uint32_t ifindex) {
  ASSIGN_OR_RETURN(bool busy, ClsactHasFilters(ifindex));
  if (busy) return false;
  // libbpf: destroying both hook points deletes the qdisc.
  LIBBPF_OPTS(bpf_tc_hook, h, .ifindex = static_cast<int>(ifindex),
              .attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS));
  const int e = bpf_tc_hook_destroy(&h);
  if (e == -ENOENT || e == -ENODEV || e == -EINVAL) return false;  // already gone
  if (e != 0) return ErrnoStatus(e, absl::StrCat("delete the clsact qdisc of ifindex ", ifindex));
  return true;
}

void RemoveFilter(uint32_t ifindex, bpf_tc_attach_point point, uint32_t priority) {
  LIBBPF_OPTS(bpf_tc_hook, h, .ifindex = static_cast<int>(ifindex), .attach_point = point);
  LIBBPF_OPTS(bpf_tc_opts, d, .handle = kTcHandle, .priority = priority);
  bpf_tc_detach(&h, &d);
}

bool Ours(uint32_t running, uint32_t recorded, const std::string& base) {
  if (running == 0) return false;
  if (running == recorded) return true;
  auto pinned = PinnedIdent(base + "_prog");
  return pinned.ok() && pinned->id == running;
}

void DetachOne(uint32_t ifindex, bpf_tc_attach_point point, uint32_t mode, uint32_t prog_id,
               uint32_t handle, uint32_t priority, const std::string& base, absl::string_view what,
               std::vector<std::string>* warnings) {
  if (mode == CSF_TC_MODE_CLSACT) {
    LIBBPF_OPTS(bpf_tc_hook, h, .ifindex = static_cast<int>(ifindex), .attach_point = point);
    LIBBPF_OPTS(bpf_tc_opts, o, .handle = handle, .priority = priority);
    if (bpf_tc_query(&h, &o) == 0) {
      if (Ours(o.prog_id, prog_id, base)) {
        LIBBPF_OPTS(bpf_tc_opts, d, .handle = handle, .priority = priority);
        if (bpf_tc_detach(&h, &d) != 0)
          warnings->push_back(
              absl::StrCat("detach cls_bpf filter on ", what, ": ", strerror(errno)));
      } else {
        warnings->push_back(absl::StrCat("the ", what, " filter now runs program ", o.prog_id,
                                         ", not csumfix's ", prog_id, ": left alone"));
      }
    }
  } else if (mode != CSF_TC_MODE_NONE) {
    std::string link = base + "_link";
    Fd fd(bpf_obj_get(link.c_str()));
    if (fd.valid()) {
      // ENOLINK/ENOENT/EINVAL: the device is gone and the link already defunct.
      if (bpf_link_detach(fd.get()) != 0 && errno != ENOLINK && errno != ENOENT && errno != EINVAL)
        warnings->push_back(absl::StrCat("detach link ", link, ": ", strerror(errno)));
    }
    unlink(link.c_str());
  }
  unlink((base + "_prog").c_str());
}

namespace {

// Whether the cls_bpf filter (handle, priority) at the hook runs `prog_id` (or the program
// pinned at `base`_prog).
bool FilterRuns(const csf_attach_state& st, uint32_t hook, uint32_t priority, uint32_t prog_id,
                const std::string& base) {
  LIBBPF_OPTS(bpf_tc_hook, h, .ifindex = static_cast<int>(st.ifindex),
              .attach_point = TcPoint(hook));
  LIBBPF_OPTS(bpf_tc_opts, o, .handle = st.tc_handle, .priority = priority);
  return bpf_tc_query(&h, &o) == 0 && Ours(o.prog_id, prog_id, base);
}

}  // namespace

bool HookAttached(const std::string& dir, const csf_attach_state& st, uint32_t hook) {
  // act-csum, ifb: the classic selector filter must still be there as well; ifb: and the ifb
  // device it redirects to (without it, mirred would drop what the selector hands it).
  const std::string base = absl::StrCat(dir, "/", PinBase(hook));
  if (hook == CSF_HOOK_TC_INGRESS && st.mechanism == CSF_MECH_IFB) {
    char name[IF_NAMESIZE] = {};
    if (st.ifb_ifindex == 0 || if_indextoname(st.ifb_ifindex, name) == nullptr ||
        IfbName(st.ifindex) != name)
      return false;
  }
  if (hook != CSF_HOOK_XDP && st.act_prog_id[hook] != 0 &&
      !FilterRuns(st, hook, st.tc_priority + 1, st.act_prog_id[hook], base + "_act"))
    return false;
  if (st.mode[hook] == CSF_TC_MODE_CLSACT)
    return FilterRuns(st, hook, st.tc_priority, st.prog_id[hook], base);
  Fd fd(bpf_obj_get((base + "_link").c_str()));
  if (!fd.valid()) return false;
  bpf_link_info info{};
  uint32_t len = sizeof(info);
  if (bpf_link_get_info_by_fd(fd.get(), &info, &len) != 0) return false;
  if (!Ours(info.prog_id, st.prog_id[hook], base)) return false;
  // A link whose device went away stays pinned but reports ifindex 0.
  if (info.type == BPF_LINK_TYPE_TCX) return info.tcx.ifindex == st.ifindex;
  if (info.type == BPF_LINK_TYPE_XDP) return info.xdp.ifindex == st.ifindex;
  return false;
}

std::optional<uint32_t> LinkIfindex(const std::string& dir, uint32_t hook) {
  Fd fd(bpf_obj_get(absl::StrCat(dir, "/", PinBase(hook), "_link").c_str()));
  if (!fd.valid()) return std::nullopt;
  bpf_link_info info{};
  uint32_t len = sizeof(info);
  if (bpf_link_get_info_by_fd(fd.get(), &info, &len) != 0) return std::nullopt;
  if (info.type == BPF_LINK_TYPE_TCX) return info.tcx.ifindex;
  if (info.type == BPF_LINK_TYPE_XDP) return info.xdp.ifindex;
  return std::nullopt;
}

}  // namespace csumfix::control
