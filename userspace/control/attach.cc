// Attach: validate the request against the kernel's features, take the pin lock, load the
// programs (the shared maps are created or reused and pinned), then per hook: the fill
// mechanism's helpers (bounce veths), the hook's configuration, the program itself (tcx, clsact
// or XDP) and the act-csum filter; the state record is written last. Every step records its undo
// in one Rollback, so a failure anywhere leaves the host as it was.
#include <net/if.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <memory>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "bpf/loader.h"
#include "control/selector.h"
#include "control/bounce.h"
#include "control/control.h"
#include "control/fault.h"
#include "control/hooks.h"
#include "control/ifb.h"
#include "control/leftovers.h"
#include "control/policy.h"
#include "control/names.h"
#include "control/pins.h"
#include "control/rollback.h"
#include "csumfix.skel.h"

namespace csumfix::control {
namespace {

// The devices a request names, resolved.
struct Target {
  uint32_t ifindex = 0;
  uint32_t redirect_ifindex = 0;  // XDP --redirect-to; 0: none
};

absl::StatusOr<Target> Resolve(const AttachRequest& req) {
  Target t;
  t.ifindex = if_nametoindex(req.ifname.c_str());
  if (t.ifindex == 0)
    return absl::NotFoundError(
        absl::StrCat("attach: no interface named ", req.ifname, " (see `ip link show`)"));
  if (!req.xdp_redirect_to.empty()) {
    t.redirect_ifindex = if_nametoindex(req.xdp_redirect_to.c_str());
    if (t.redirect_ifindex == 0)
      return absl::NotFoundError(absl::StrCat("attach: --redirect-to ", req.xdp_redirect_to,
                                              ": no such interface (see `ip link show`)"));
  }
  return t;
}

std::vector<uint32_t> Hooks(const AttachRequest& req) {
  std::vector<uint32_t> hooks;
  if (req.ingress) hooks.push_back(CSF_HOOK_TC_INGRESS);
  if (req.egress) hooks.push_back(CSF_HOOK_TC_EGRESS);
  if (req.xdp) hooks.push_back(CSF_HOOK_XDP);
  return hooks;
}

// The namespace's directory and its maps/. Their undo goes in `dirs`, which runs last, after the
// programs' fds are closed; the map pins stay when they were there before.
absl::Status MakePinDirs(const PinPaths& paths, Rollback* dirs) {
  const bool maps_existed = access(paths.maps().c_str(), F_OK) == 0;
  dirs->Add([paths, maps_existed] {
    if (maps_existed) return;
    std::error_code ec;
    std::filesystem::remove_all(paths.maps(), ec);
    RemoveEmptyPinDirs(paths);  // as Tidy()
  });
  for (const std::string& d : {paths.base(), paths.namespaces(), paths.root(), paths.maps()})
    RETURN_IF_ERROR(MakeDir(d));
  return WriteMapsAbi(paths);
}

bpf_program* ProgramFor(const bpf::Programs& progs, uint32_t hook) {
  return hook == CSF_HOOK_TC_INGRESS  ? progs.skel()->progs.csf_tc_ingress
         : hook == CSF_HOOK_TC_EGRESS ? progs.skel()->progs.csf_tc_egress
                                      : progs.skel()->progs.csf_xdp;
}

// The hook's csf_ifcfg entry; its counters start from zero for a new attachment (and go on
// rollback: the program may count packets before one).
absl::Status Configure(const bpf::Programs& progs, const csf_if_key& key, const csf_ifcfg& cfg,
                       const StepCtx& ctx) {
  auto ifcfg = progs.ifcfg();
  RETURN_IF_ERROR(ifcfg.Update(key, cfg));
  ctx.rb->Add([ifcfg, key]() mutable { (void)ifcfg.Delete(key); });
  RETURN_IF_ERROR(ctx.fi->At(Step::kIfcfg, ctx.hook));
  auto ctr = progs.counters();
  RETURN_IF_ERROR(ctr.Delete(key));
  ctx.rb->Add([ctr, key]() mutable { (void)ctr.Delete(key); });
  return absl::OkStatus();
}

// One hook: the mechanism's helpers, the configuration, the program, the selector filter
// (act-csum; ifb where the program does not redirect into the ifb itself: `ifb_redirect`).
absl::Status AttachHook(const bpf::Programs& progs, const AttachRequest& req, const Target& t,
                        const std::string& dir, const StepCtx& ctx, bool ifb_redirect,
                        csf_attach_state* st, bool* made_clsact) {
  const uint32_t hook = ctx.hook;
  const bool tc = hook != CSF_HOOK_XDP;
  csf_ifcfg cfg{req.action, 0, req.mechanism, 0};
  if (tc && req.mechanism == CSF_MECH_BOUNCE) {
    ASSIGN_OR_RETURN(cfg.target_ifindex, AddBounce(progs, t.ifindex, req.tc_api, dir, ctx, st));
  }
  if (tc && req.mechanism == CSF_MECH_IFB) {
    ASSIGN_OR_RETURN(const uint32_t ifb, AddIfb(t.ifindex, ctx, st));
    if (ifb_redirect) cfg.target_ifindex = ifb;
  }
  if (!tc && t.redirect_ifindex != 0) {
    cfg.flags |= CSF_IFCFG_F_XDP_REDIRECT;
    cfg.target_ifindex = t.redirect_ifindex;
  }
  RETURN_IF_ERROR(Configure(progs, csf_if_key{t.ifindex, hook}, cfg, ctx));

  bpf_program* prog = ProgramFor(progs, hook);
  ASSIGN_OR_RETURN(st->prog_id[hook], ProgId(bpf_program__fd(prog)));
  const std::string base = absl::StrCat(dir, "/", PinBase(hook));
  const std::string where = absl::StrCat(names::HookName(hook), " of ", req.ifname);
  if (!tc) {
    RETURN_IF_ERROR(AttachXdp(prog, t.ifindex, base, req.ifname, ctx));
    st->mode[hook] = CSF_XDP_MODE_LINK;
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(st->mode[hook],
                   AttachTc(prog, t.ifindex, TcPoint(hook), req.tc_api, base, where, ctx,
                            TcSteps{Step::kTcProgPin, Step::kTcAttach, Step::kTcLinkPin},
                            made_clsact));
  if (req.mechanism == CSF_MECH_ACT_CSUM)
    RETURN_IF_ERROR(AddSelector(progs, t.ifindex, base, where, ctx, /*mirred_to=*/0, made_clsact,
                                st));
  if (req.mechanism == CSF_MECH_IFB && !ifb_redirect)
    RETURN_IF_ERROR(
        AddSelector(progs, t.ifindex, base, where, ctx, st->ifb_ifindex, made_clsact, st));
  return absl::OkStatus();
}

// What an earlier attach of this name left: a record whose interface is gone (a VM restart
// deletes its TAP and creates a new one under the name), or pins without a record (an attach
// that was interrupted; under the lock nobody is attaching now). Removes it, so this attach
// replaces it. The record of the live device itself, or of one renamed since, is refused.
absl::Status ClearStale(const PinPaths& paths, const std::string& ifname, uint32_t ifindex) {
  const std::string dir = paths.iface(ifname);
  if (access(dir.c_str(), F_OK) != 0) return absl::OkStatus();
  auto st = ReadState(dir);
  if (st.ok() && !InterfaceGone(*st)) {
    if (st->ifindex == ifindex)
      return absl::AlreadyExistsError(
          absl::StrCat("attach: ", ifname, " is already attached; run `csumfix detach ", ifname,
                       "` first (or `csumfix policy` to change what it does)"));
    char now[IF_NAMESIZE] = {};
    return absl::AlreadyExistsError(absl::StrCat(
        "attach: the attachment recorded as ", ifname, " belongs to ifindex ", st->ifindex,
        ", now named ", if_indextoname(st->ifindex, now) ? now : "?", "; run `csumfix detach ",
        ifname, "` first"));
  }
  if (!st.ok() && st.status().code() != absl::StatusCode::kNotFound)
    return Annotate(st.status(), absl::StrCat("attach ", ifname));
  std::vector<std::string> ignored;  // the device is gone: what it had went with it
  if (st.ok()) DetachRecorded(*st, dir, PinnedMaps::Open(paths), &ignored);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("attach: remove stale ", dir, ": ", ec.message()));
  return absl::OkStatus();
}

}  // namespace

bool ActionCanFill(uint32_t action) {
  return action == CSF_ACT_FILL || action == CSF_ACT_ZERO_UDP4;
}

uint32_t ResolveMechanism(absl::string_view requested, uint32_t action, uint32_t probed) {
  if (requested != "auto") return names::MechanismFromName(requested).value_or(CSF_MECH_MAX);
  if (!ActionCanFill(action)) return CSF_MECH_OBSERVE;
  return probed < CSF_MECH_MAX ? probed : CSF_MECH_MAX;
}

std::vector<const IfaceStatus*> FillRuleWithoutMechanism(const csf_pol_rule& rule,
                                                         const std::vector<IfaceStatus>& attached) {
  std::vector<const IfaceStatus*> out;
  if (!ActionCanFill(rule.action)) return out;
  for (const IfaceStatus& s : attached) {
    if (s.state != "ok" || !s.present || s.mechanism != CSF_MECH_OBSERVE) continue;
    if ((rule.flags & CSF_POL_F_IFINDEX) && rule.ifindex != s.ifindex) continue;
    // Only tc hooks hand kernel-PARTIAL packets to a mechanism (XDP never sees that state).
    const bool matches = std::any_of(s.hooks.begin(), s.hooks.end(), [&](const HookStatus& h) {
      return h.hook != CSF_HOOK_XDP && (!(rule.flags & CSF_POL_F_HOOK) || rule.hook == h.hook);
    });
    if (matches) out.push_back(&s);
  }
  return out;
}

absl::Status ValidateAttach(const AttachRequest& req, const ProbeResult& pr) {
  if (!req.ingress && !req.egress && !req.xdp)
    return absl::InvalidArgumentError(
        "attach: no hook chosen (use --ingress, --egress, --both or --xdp)");
  if (req.action >= CSF_ACT_MAX)
    return absl::InvalidArgumentError(absl::StrCat("attach: unknown action ", req.action));
  if (req.mechanism >= CSF_MECH_MAX)
    return absl::InvalidArgumentError(
        absl::StrCat("attach: unknown fill mechanism ", req.mechanism));
  // Refuse a mechanism this kernel cannot do, rather than count fill errors on every packet.
  const bool tc = req.ingress || req.egress;
  if (tc && req.mechanism == CSF_MECH_BPF && !pr.change_tail_clears_partial)
    return absl::FailedPreconditionError(
        absl::StrCat("attach: fill mechanism bpf needs a kernel whose bpf_skb_change_tail clears "
                     "CHECKSUM_PARTIAL (the fix is in 6.1.189+, 6.12.112+); this one (",
                     pr.kernel, "): ", pr.change_tail_detail,
                     ". Use --mechanism auto (`csumfix probe` says why)"));
  if (tc && req.mechanism == CSF_MECH_ACT_CSUM && !pr.act_csum)
    return absl::FailedPreconditionError(absl::StrCat(
        "attach: fill mechanism act-csum needs the act_csum tc action (CONFIG_NET_ACT_CSUM); "
        "this kernel: ",
        pr.act_csum_detail, ". Use --mechanism auto"));
  if (req.egress && req.mechanism == CSF_MECH_IFB)
    return absl::InvalidArgumentError(
        "attach: fill mechanism ifb works at tc ingress only (what an ifb returns at egress "
        "keeps a skip-classification mark that hides it from packet taps and tc behind a "
        "veth); use --ingress, or another mechanism for egress (`csumfix probe`)");
  if (req.ingress && req.mechanism == CSF_MECH_IFB && !pr.ifb)
    return absl::FailedPreconditionError(absl::StrCat(
        "attach: fill mechanism ifb needs ifb devices and the mirred action (CONFIG_IFB, "
        "CONFIG_NET_ACT_MIRRED); this kernel: ",
        pr.ifb_detail, ". Use --mechanism auto"));
  if (req.ifname.empty() || req.ifname.size() >= IFNAMSIZ ||
      req.ifname.find('/') != std::string::npos || req.ifname == "." || req.ifname == ".." ||
      req.ifname == CSF_PIN_MAPS)
    return absl::InvalidArgumentError(absl::StrCat(
        "attach: \"", req.ifname, "\" is not a valid interface name (1 to ", IFNAMSIZ - 1,
        " characters, no '/', not \".\", \"..\" or \"", CSF_PIN_MAPS, "\")"));
  if (!req.xdp_redirect_to.empty() && !req.xdp)
    return absl::InvalidArgumentError("attach: --redirect-to needs --xdp");
  return absl::OkStatus();
}

namespace {

// The programs an attach runs: each hook's, and the helpers of its mechanism.
bpf::ProgramSet NeededPrograms(const AttachRequest& req, bool ifb_redirect) {
  bpf::ProgramSet set = 0;
  for (uint32_t hook : Hooks(req)) {
    set |= bpf::HookProgram(hook);
    if (hook == CSF_HOOK_XDP) continue;
    if (req.mechanism == CSF_MECH_BOUNCE) set |= bpf::kProgBounceReturn;
    if (req.mechanism == CSF_MECH_ACT_CSUM || (req.mechanism == CSF_MECH_IFB && !ifb_redirect))
      set |= bpf::ActSelectProgram(hook);
  }
  return set;
}

}  // namespace

absl::StatusOr<std::shared_ptr<bpf::Programs>> Controller::LoadedPrograms(
    bpf::ProgramSet needed) {
  if (programs_ != nullptr && programs_->UsesMapsPinnedAt(paths_.maps()) &&
      programs_->Has(needed))
    return programs_;
  programs_.reset();  // the shared maps were made again since: load for the new ones
  bpf::LoadOptions lo;
  lo.pin_maps_dir = paths_.maps();
  // A CLI attach verifies only what it attaches; serve keeps one full set for every interface.
  lo.programs = keep_programs_ ? bpf::kAllPrograms : needed;
  ASSIGN_OR_RETURN(std::unique_ptr<bpf::Programs> loaded, bpf::Programs::Load(lo));
  std::shared_ptr<bpf::Programs> p = std::move(loaded);
  if (keep_programs_) programs_ = p;
  return p;
}

absl::Status Controller::Attach(const AttachRequest& req, const ProbeResult& features) {
  RETURN_IF_ERROR(AttachLocked(req, features));
  // A policy rule bound to this name follows it to the new interface (a VM restart made a new
  // tap0): looked up without the lock, rebound under Policy's own.
  auto names = ReadRuleIfnames(paths_.bpffs());
  auto rules = ReadRules(paths_.bpffs());
  const uint32_t ifindex = if_nametoindex(req.ifname.c_str());
  bool stale = false;
  if (names.ok() && rules.ok())
    for (const csf_pol_rule& r : *rules)
      if (auto it = names->find(r.id); it != names->end() && it->second == req.ifname)
        stale |= r.ifindex != ifindex;
  if (!stale || ifindex == 0) return absl::OkStatus();
  auto moved = [&]() -> absl::StatusOr<std::vector<csf_pol_rule>> {
    ASSIGN_OR_RETURN(Policy p, Policy::Open(paths_.bpffs()));
    return p.Rebind(req.ifname, ifindex);
  }();
  if (!moved.ok())
    return Annotate(moved.status(),
                    absl::StrCat(req.ifname, " is attached, but the policy rules bound to it "
                                 "still name its old ifindex (`csumfix policy list`)"));
  return absl::OkStatus();
}

absl::Status Controller::AttachLocked(const AttachRequest& req, const ProbeResult& features) {
  FaultInjector fi;
  RETURN_IF_ERROR(fi.Check());
  RETURN_IF_ERROR(ValidateAttach(req, features));
  ASSIGN_OR_RETURN(const Target t, Resolve(req));

  RETURN_IF_ERROR(EnsureBpffs(paths_.bpffs()));
  ASSIGN_OR_RETURN(DirLock lock, DirLock::Acquire(paths_.top()));
  // Another pin ABI's maps or records here: never load against them (mixed), never remove them.
  RETURN_IF_ERROR(CheckPinAbi(paths_));
  RETURN_IF_ERROR(ClearStale(paths_, req.ifname, t.ifindex));
  // No record names this device now: a csumfix filter on it is a leftover (of an attach whose
  // pins vanished with a private bpffs), and would block ours.
  (void)RemoveStrayFilters(t.ifindex, {});
  const std::string dir = paths_.iface(req.ifname);
  Rollback dirs;  // declared before `progs`: undone after the map fds of a fresh load are closed
  RETURN_IF_ERROR(MakePinDirs(paths_, &dirs));
  RETURN_IF_ERROR(fi.At(Step::kPinDirs));
  const bool ifb_redirect = req.mechanism == CSF_MECH_IFB && IfbByRedirect(features.ifb_redirect);
  ASSIGN_OR_RETURN(std::shared_ptr<bpf::Programs> progs,
                   LoadedPrograms(NeededPrograms(req, ifb_redirect)));
  Rollback rb;  // declared after `progs`: runs while its map fds are still open
  RETURN_IF_ERROR(fi.At(Step::kLoad));
  RETURN_IF_ERROR(MakeDir(dir));
  rb.Add([dir] { rmdir(dir.c_str()); });
  RETURN_IF_ERROR(fi.At(Step::kIfaceDir));

  csf_attach_state st{};
  st.abi_version = CSF_ABI_VERSION;
  st.ifindex = t.ifindex;
  st.tc_handle = kTcHandle;
  st.tc_priority = kTcPriority;
  st.mechanism = req.mechanism;
  st.netns_ino = paths_.netns_ino();
  bool made_clsact = false;  // this attach created the interface's clsact qdisc
  for (uint32_t hook : Hooks(req))
    RETURN_IF_ERROR(AttachHook(*progs, req, t, dir, StepCtx{&rb, &fi, hook}, ifb_redirect, &st,
                               &made_clsact));
  if (made_clsact) st.flags |= CSF_STATE_F_CLSACT_CREATED;

  RETURN_IF_ERROR(WriteState(dir, st));
  rb.Add([dir] { unlink((dir + "/" CSF_PIN_STATE).c_str()); });
  RETURN_IF_ERROR(fi.At(Step::kState));
  RETURN_IF_ERROR(fi.Finish());
  rb.Commit();
  dirs.Commit();
  return absl::OkStatus();
}

}  // namespace csumfix::control
