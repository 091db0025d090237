#include "control/control.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <net/if.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status.h"
#include "bpf/fd.h"
#include "bpf/loader.h"
#include "bpf/map.h"
#include "control/netlink.h"
#include "control/probe.h"
#include "csumfix.skel.h"

namespace csumfix::control {
namespace {

namespace fs = std::filesystem;
using bpf::Fd;

// cls_bpf filters csumfix owns, when tcx is not available.
constexpr uint32_t kTcHandle = 0xc5f;
constexpr uint32_t kTcPriority = 0xc5f;

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

std::string BouncePinBase(const std::string& dir, uint32_t hook) {
  return absl::StrCat(dir, "/bounce_", hook == CSF_HOOK_TC_INGRESS ? "ingress" : "egress");
}

// Fault injection (control.h, kFaultInjectEnv): the steps of Attach, in order. A new side effect in
// Attach gets a step here and a fi.At() right after it; the test iterates this table.
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
  kXdpProgPin,           // XDP: program pinned
  kXdpAttach,            // ... link attached, not yet pinned
  kXdpLinkPin,           // ... link pinned
  kState,                // v1/<ifname>/state written: the last step before commit
  kCount
};
constexpr absl::string_view kStepNames[] = {
    "pin-dirs",          "load",
    "iface-dir",         "bounce-veth",
    "bounce-veth-setup", "bounce-map",
    "bounce-return-prog-pin", "bounce-return-attach",
    "bounce-return-link-pin", "ifcfg",
    "tc-prog-pin",       "tc-attach",
    "tc-link-pin",       "act-csum-filter",
    "xdp-prog-pin",      "xdp-attach",
    "xdp-link-pin",      "state"};
static_assert(std::size(kStepNames) == static_cast<size_t>(Step::kCount));
constexpr uint32_t kNoHook = UINT32_MAX;

bool PerHook(size_t i) {
  return i != static_cast<size_t>(Step::kPinDirs) && i != static_cast<size_t>(Step::kLoad) &&
         i != static_cast<size_t>(Step::kIfaceDir) && i != static_cast<size_t>(Step::kState);
}

class FaultInjector {
 public:
  FaultInjector() {
    // secure_getenv: never honoured in a setuid or file-capability process.
    if (const char* e = secure_getenv(kFaultInjectEnv); e != nullptr) {
      enabled_ = true;
      spec_ = e;
    }
  }
  // Refuses an unknown step before anything changes.
  absl::Status Check() const {
    if (!enabled_ || spec_ == "list") return absl::OkStatus();
    const size_t at = spec_.find('@');
    const std::string name = spec_.substr(0, at);
    const std::string hook = at == std::string::npos ? "" : spec_.substr(at + 1);
    for (size_t i = 0; i < std::size(kStepNames); ++i) {
      if (kStepNames[i] != name) continue;
      if (at == std::string::npos) return absl::OkStatus();
      if (PerHook(i) && (hook == "ingress" || hook == "egress" || hook == "xdp"))
        return absl::OkStatus();
    }
    return absl::InvalidArgumentError(absl::StrCat(
        kFaultInjectEnv, "=", spec_,
        ": not a fault-injection step (a test-only hook: unset it for normal use). Use list or "
        "one of ",
        absl::StrJoin(kStepNames, ", "), "; a step of a hook may end in @ingress, @egress or @xdp"));
  }
  // Called right after a step's side effect (and its undo entry): fails when that is the step.
  absl::Status At(Step s, uint32_t hook = kNoHook) {
    if (!enabled_) return absl::OkStatus();
    const absl::string_view name = kStepNames[static_cast<size_t>(s)];
    std::string point(name);
    if (hook != kNoHook) absl::StrAppend(&point, "@", HookName(hook));
    if (spec_ == "list") {
      reached_.push_back(point);
      return absl::OkStatus();
    }
    if (spec_ == point || spec_ == name)
      return absl::InternalError(absl::StrCat("injected fault at step ", point, " (",
                                              kFaultInjectEnv, " is set; a test-only hook)"));
    return absl::OkStatus();
  }
  // list: fails at the very end, naming every point passed.
  absl::Status Finish() const {
    if (!enabled_ || spec_ != "list") return absl::OkStatus();
    return absl::InternalError(absl::StrCat("injected fault at step list (points reached: ",
                                            absl::StrJoin(reached_, ", "), ")"));
  }

 private:
  bool enabled_ = false;
  std::string spec_;
  std::vector<std::string> reached_;
};

// Undo log for all-or-nothing attach: actions run in reverse unless Commit() was called.
class Rollback {
 public:
  ~Rollback() {
    if (committed_) return;
    for (auto it = undo_.rbegin(); it != undo_.rend(); ++it) (*it)();
  }
  void Add(std::function<void()> f) { undo_.push_back(std::move(f)); }
  void Commit() { committed_ = true; }

 private:
  std::vector<std::function<void()>> undo_;
  bool committed_ = false;
};

absl::Status EnsureBpffs(const std::string& path) {
  struct statfs st {};
  if (statfs(path.c_str(), &st) == 0 && st.f_type == BPF_FS_MAGIC) return absl::OkStatus();
  std::error_code ec;
  fs::create_directories(path, ec);
  if (mount("bpf", path.c_str(), "bpf", 0, "mode=0700") != 0) {
    return ErrnoStatus(errno, absl::StrCat("mount bpffs on ", path,
                                           " (csumfix needs root or CAP_SYS_ADMIN the first "
                                           "time; or run `mount -t bpf bpf ",
                                           path, "` as root)"));
  }
  return absl::OkStatus();
}

// Every pin directory is root's alone (SECURITY.md): 0700, also one made earlier with a wider mode.
absl::Status MakeDir(const std::string& path) {
  if (mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) return ErrnoStatus(errno, "create " + path);
  struct stat st {};
  // ENOENT: a concurrent last detach removed it; the caller's open() retries (DirLock).
  if (stat(path.c_str(), &st) != 0)
    return errno == ENOENT ? absl::OkStatus() : ErrnoStatus(errno, "stat " + path);
  if ((st.st_mode & 07777) != 0700 && chmod(path.c_str(), 0700) != 0 && errno != ENOENT)
    return ErrnoStatus(errno, "chmod 0700 " + path);
  return absl::OkStatus();
}

// Exclusive flock on <bpffs>/csumfix for the life of the object.
class DirLock {
 public:
  static absl::StatusOr<DirLock> Acquire(const std::string& dir) {
    // The last detach removes `dir`; a waiter that then gets the lock on the removed directory
    // starts again on the new one.
    for (int attempt = 0; attempt < 100; ++attempt) {
      RETURN_IF_ERROR(MakeDir(dir));
      Fd fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      if (!fd.valid()) {
        if (errno == ENOENT) continue;
        return ErrnoStatus(errno, "open " + dir);
      }
      if (flock(fd.get(), LOCK_EX) != 0) return ErrnoStatus(errno, "flock " + dir);
      struct stat held {
      }, now{};
      if (fstat(fd.get(), &held) == 0 && stat(dir.c_str(), &now) == 0 &&
          held.st_ino == now.st_ino && held.st_dev == now.st_dev)
        return DirLock(std::move(fd));
    }
    return absl::UnavailableError("could not lock " + dir + ": it keeps being removed");
  }

 private:
  explicit DirLock(Fd fd) : fd_(std::move(fd)) {}
  Fd fd_;  // closing the fd releases the lock
};

absl::StatusOr<uint32_t> ProgId(int fd) {
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  if (bpf_prog_get_info_by_fd(fd, &info, &len) != 0) return ErrnoStatus(errno, "prog info");
  return info.id;
}

absl::Status PinFd(int fd, const std::string& path) {
  if (bpf_obj_pin(fd, path.c_str()) != 0) return ErrnoStatus(errno, "pin " + path);
  return absl::OkStatus();
}

absl::StatusOr<csf_attach_state> ReadState(const std::string& dir) {
  std::string path = dir + "/" CSF_PIN_STATE;
  Fd fd(bpf_obj_get(path.c_str()));
  if (!fd.valid()) return ErrnoStatus(errno, "open " + path);
  uint32_t key = 0;
  csf_attach_state st{};
  if (bpf_map_lookup_elem(fd.get(), &key, &st) != 0) return ErrnoStatus(errno, "read " + path);
  if (st.abi_version != CSF_ABI_VERSION) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " was written by csumfix ABI ", st.abi_version, ", this is ",
                     CSF_ABI_VERSION, ": detach with the csumfix that attached it"));
  }
  return st;
}

absl::Status WriteState(const std::string& dir, const csf_attach_state& st) {
  Fd fd(bpf_map_create(BPF_MAP_TYPE_ARRAY, "csf_state", sizeof(uint32_t), sizeof(st), 1, nullptr));
  if (!fd.valid()) return ErrnoStatus(errno, "create state map");
  uint32_t key = 0;
  if (bpf_map_update_elem(fd.get(), &key, &st, BPF_ANY) != 0)
    return ErrnoStatus(errno, "write state map");
  return PinFd(fd.get(), dir + "/" CSF_PIN_STATE);
}

bpf_tc_attach_point TcPoint(uint32_t hook) {
  return hook == CSF_HOOK_TC_INGRESS ? BPF_TC_INGRESS : BPF_TC_EGRESS;
}

// Is our program (prog_id) still what runs at this hook?
bool HookAttached(const std::string& dir, const csf_attach_state& st, uint32_t hook) {
  if (hook != CSF_HOOK_XDP && st.act_prog_id[hook] != 0) {
    // act-csum: the classic selector + act_csum filter must still be there as well.
    LIBBPF_OPTS(bpf_tc_hook, h, .ifindex = static_cast<int>(st.ifindex),
                .attach_point = TcPoint(hook));
    LIBBPF_OPTS(bpf_tc_opts, o, .handle = st.tc_handle, .priority = st.tc_priority + 1);
    if (bpf_tc_query(&h, &o) != 0 || o.prog_id != st.act_prog_id[hook]) return false;
  }
  if (st.mode[hook] == CSF_TC_MODE_CLSACT) {
    LIBBPF_OPTS(bpf_tc_hook, h, .ifindex = static_cast<int>(st.ifindex),
                .attach_point = TcPoint(hook));
    LIBBPF_OPTS(bpf_tc_opts, o, .handle = st.tc_handle, .priority = st.tc_priority);
    return bpf_tc_query(&h, &o) == 0 && o.prog_id == st.prog_id[hook];
  }
  std::string path = absl::StrCat(dir, "/", PinBase(hook), "_link");
  Fd fd(bpf_obj_get(path.c_str()));
  if (!fd.valid()) return false;
  bpf_link_info info{};
  uint32_t len = sizeof(info);
  if (bpf_link_get_info_by_fd(fd.get(), &info, &len) != 0) return false;
  if (info.prog_id != st.prog_id[hook]) return false;
  // A link whose device went away stays pinned but reports ifindex 0.
  if (info.type == BPF_LINK_TYPE_TCX) return info.tcx.ifindex == st.ifindex;
  if (info.type == BPF_LINK_TYPE_XDP) return info.xdp.ifindex == st.ifindex;
  return false;
}

// Removes a tc or XDP attachment recorded as (mode, prog_id) on ifindex, pinned at <base>_link /
// <base>_prog; a cls_bpf filter only while it still runs our program.
void DetachOne(uint32_t ifindex, bpf_tc_attach_point point, uint32_t mode, uint32_t prog_id,
               uint32_t handle, uint32_t priority, const std::string& base, absl::string_view what,
               std::vector<std::string>* warnings) {
  if (mode == CSF_TC_MODE_CLSACT) {
    LIBBPF_OPTS(bpf_tc_hook, h, .ifindex = static_cast<int>(ifindex), .attach_point = point);
    LIBBPF_OPTS(bpf_tc_opts, o, .handle = handle, .priority = priority);
    if (bpf_tc_query(&h, &o) == 0) {
      if (o.prog_id == prog_id) {
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

// Attaches a tc program (tcx where possible, per `api`) and pins it; records undo steps.
// `steps`: the fault-injection steps (prog pinned, attached, link pinned) of this use, for `hook`.
struct TcSteps {
  Step prog_pin, attach, link_pin;
  uint32_t hook;
};

// Deletes the clsact qdisc of `ifindex` (libbpf: destroying both hook points deletes the qdisc)
// when no filter is left in it, i.e. one csumfix created and has emptied; returns whether it did.
// Someone else's filter keeps it; an interface without the qdisc, or gone, is left as it is.
absl::StatusOr<bool> DeleteClsactIfEmpty(uint32_t ifindex) {
  ASSIGN_OR_RETURN(bool busy, ClsactHasFilters(ifindex));
  if (busy) return false;
  LIBBPF_OPTS(bpf_tc_hook, h, .ifindex = static_cast<int>(ifindex),
              .attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS));
  const int e = bpf_tc_hook_destroy(&h);
  if (e == -ENOENT || e == -ENODEV || e == -EINVAL) return false;  // already gone
  if (e != 0) return ErrnoStatus(e, absl::StrCat("delete the clsact qdisc of ifindex ", ifindex));
  return true;
}

// Creates the clsact qdisc of `ifindex` unless it exists. When this call created it, *created is
// set and a rollback deletes the qdisc again once no filter is left in it (rollbacks run in
// reverse: after the filters added later are gone).
absl::Status EnsureClsact(uint32_t ifindex, bpf_tc_attach_point point, const std::string& where,
                          Rollback* rb, bool* created) {
  LIBBPF_OPTS(bpf_tc_hook, h, .ifindex = static_cast<int>(ifindex), .attach_point = point);
  const int e = bpf_tc_hook_create(&h);
  if (e == -EEXIST) return absl::OkStatus();
  if (e != 0) return ErrnoStatus(e, "create clsact qdisc for " + where);
  *created = true;
  rb->Add([ifindex] { (void)DeleteClsactIfEmpty(ifindex); });
  return absl::OkStatus();
}

// `made_clsact` is set when this attach created the interface's clsact qdisc.
absl::StatusOr<uint32_t> AttachTc(bpf_program* prog, uint32_t ifindex, bpf_tc_attach_point point,
                                  TcApi api, const std::string& base, const std::string& where,
                                  Rollback* rb, FaultInjector* fi, const TcSteps& steps,
                                  bool* made_clsact) {
  const int prog_fd = bpf_program__fd(prog);
  RETURN_IF_ERROR(PinFd(prog_fd, base + "_prog"));
  rb->Add([base] { unlink((base + "_prog").c_str()); });
  RETURN_IF_ERROR(fi->At(steps.prog_pin, steps.hook));
  if (api != TcApi::kClsact) {
    LIBBPF_OPTS(bpf_tcx_opts, to);
    // libbpf would print its own "failed to attach to tcx" on kernels before 6.6, where auto
    // falls back to clsact just below; a real failure is reported with errno here.
    libbpf_print_fn_t print = libbpf_set_print(nullptr);
    bpf_link* link = bpf_program__attach_tcx(prog, static_cast<int>(ifindex), &to);
    const int tcx_errno = errno;
    libbpf_set_print(print);
    if (link != nullptr) {
      // Until it is pinned, the link lives only in this fd: destroying it detaches.
      std::unique_ptr<bpf_link, int (*)(bpf_link*)> owned(link, bpf_link__destroy);
      RETURN_IF_ERROR(fi->At(steps.attach, steps.hook));
      RETURN_IF_ERROR(PinFd(bpf_link__fd(link), base + "_link"));
      rb->Add([base] {
        std::string p = base + "_link";
        Fd fd(bpf_obj_get(p.c_str()));
        if (fd.valid()) bpf_link_detach(fd.get());
        unlink(p.c_str());
      });
      RETURN_IF_ERROR(fi->At(steps.link_pin, steps.hook));
      return CSF_TC_MODE_TCX;
    }
    if (api == TcApi::kTcx)
      return ErrnoStatus(tcx_errno, absl::StrCat("attach tcx ", where,
                                             " (tcx needs Linux 6.6+; use --tc-api auto to fall "
                                             "back to clsact)"));
  }
  RETURN_IF_ERROR(EnsureClsact(ifindex, point, where, rb, made_clsact));
  LIBBPF_OPTS(bpf_tc_hook, h, .ifindex = static_cast<int>(ifindex), .attach_point = point);
  LIBBPF_OPTS(bpf_tc_opts, o, .prog_fd = prog_fd, .handle = kTcHandle, .priority = kTcPriority);
  const int e = bpf_tc_attach(&h, &o);
  if (e != 0)
    return ErrnoStatus(e, absl::StrCat("attach cls_bpf ", where,
                                       " (a filter with csumfix's handle/priority 0xc5f exists: "
                                       "run `csumfix detach` on that interface)"));
  rb->Add([ifindex, point] {
    LIBBPF_OPTS(bpf_tc_hook, h2, .ifindex = static_cast<int>(ifindex), .attach_point = point);
    LIBBPF_OPTS(bpf_tc_opts, d, .handle = kTcHandle, .priority = kTcPriority);
    bpf_tc_detach(&h2, &d);
  });
  RETURN_IF_ERROR(fi->At(steps.attach, steps.hook));
  return CSF_TC_MODE_CLSACT;
}

// Names of the bounce veth pair for (ifindex, hook): csf<hex ifindex><i|e><a|b>, <= 13 chars.
std::string BounceName(uint32_t ifindex, uint32_t hook, char end) {
  return absl::StrCat("csf", absl::Hex(ifindex), hook == CSF_HOOK_TC_INGRESS ? "i" : "e",
                      std::string(1, end));
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

absl::StatusOr<std::shared_ptr<void>> LockPins(const std::string& bpffs) {
  RETURN_IF_ERROR(EnsureBpffs(bpffs));
  ASSIGN_OR_RETURN(DirLock lock, DirLock::Acquire(absl::StrCat(bpffs, "/csumfix")));
  return std::static_pointer_cast<void>(std::make_shared<DirLock>(std::move(lock)));
}

absl::string_view HookName(uint32_t hook) {
  switch (hook) {
    case CSF_HOOK_TC_INGRESS:
      return "ingress";
    case CSF_HOOK_TC_EGRESS:
      return "egress";
    case CSF_HOOK_XDP:
      return "xdp";
  }
  return "?";
}

absl::string_view MechanismName(uint32_t mech) {
  switch (mech) {
    case CSF_MECH_OBSERVE:
      return "observe";
    case CSF_MECH_BPF:
      return "bpf";
    case CSF_MECH_ACT_CSUM:
      return "act-csum";
    case CSF_MECH_BOUNCE:
      return "bounce";
  }
  return "unknown";
}

uint32_t MechanismFromName(absl::string_view name) {
  for (uint32_t m = 0; m < CSF_MECH_MAX; ++m)
    if (MechanismName(m) == name) return m;
  return CSF_MECH_MAX;
}

Controller::Controller(std::string bpffs) : bpffs_(std::move(bpffs)) {}

absl::Status Controller::EnsurePinDirs() const {
  RETURN_IF_ERROR(EnsureBpffs(bpffs_));
  RETURN_IF_ERROR(MakeDir(absl::StrCat(bpffs_, "/csumfix")));
  RETURN_IF_ERROR(MakeDir(root()));
  return MakeDir(absl::StrCat(root(), "/", CSF_PIN_MAPS));
}

std::string Controller::root() const { return absl::StrCat(bpffs_, "/", CSF_PIN_ROOT); }

std::span<const absl::string_view> AttachFaultSteps() { return kStepNames; }

absl::Status Controller::Attach(const AttachRequest& req) {
  FaultInjector fi;
  RETURN_IF_ERROR(fi.Check());
  if (!req.ingress && !req.egress && !req.xdp)
    return absl::InvalidArgumentError(
        "attach: no hook chosen (use --ingress, --egress, --both "
        "or --xdp)");
  if (req.action >= CSF_ACT_MAX)
    return absl::InvalidArgumentError(absl::StrCat("attach: unknown action ", req.action));
  if (req.mechanism >= CSF_MECH_MAX)
    return absl::InvalidArgumentError(
        absl::StrCat("attach: unknown fill mechanism ", req.mechanism));
  if ((req.ingress || req.egress) &&
      (req.mechanism == CSF_MECH_BPF || req.mechanism == CSF_MECH_ACT_CSUM)) {
    // Refuse a mechanism this kernel cannot do, rather than count fill errors on every packet.
    ASSIGN_OR_RETURN(ProbeResult pr, Probe());
    if (req.mechanism == CSF_MECH_BPF && !pr.change_tail_clears_partial)
      return absl::FailedPreconditionError(
          absl::StrCat("attach: fill mechanism bpf needs a kernel whose bpf_skb_change_tail clears "
                       "CHECKSUM_PARTIAL (the fix is in 6.1.189+, 6.12.112+); this one (",
                       pr.kernel, "): ", pr.change_tail_detail,
                       ". Use --mechanism auto (`csumfix probe` says why)"));
    if (req.mechanism == CSF_MECH_ACT_CSUM && !pr.act_csum)
      return absl::FailedPreconditionError(absl::StrCat(
          "attach: fill mechanism act-csum needs the act_csum tc action (CONFIG_NET_ACT_CSUM); "
          "this kernel: ",
          pr.act_csum_detail, ". Use --mechanism auto"));
  }
  if (req.ifname.empty() || req.ifname.size() >= IFNAMSIZ ||
      req.ifname.find('/') != std::string::npos || req.ifname == "." || req.ifname == ".." ||
      req.ifname == CSF_PIN_MAPS)
    return absl::InvalidArgumentError(
        absl::StrCat("attach: \"", req.ifname, "\" is not a valid interface name"));
  const uint32_t ifindex = if_nametoindex(req.ifname.c_str());
  if (ifindex == 0)
    return absl::NotFoundError(
        absl::StrCat("attach: no interface named ", req.ifname, " (see `ip link show`)"));
  uint32_t redirect_ifindex = 0;
  if (!req.xdp_redirect_to.empty()) {
    if (!req.xdp) return absl::InvalidArgumentError("attach: --redirect-to needs --xdp");
    redirect_ifindex = if_nametoindex(req.xdp_redirect_to.c_str());
    if (redirect_ifindex == 0)
      return absl::NotFoundError(absl::StrCat("attach: --redirect-to ", req.xdp_redirect_to,
                                              ": no such interface (see `ip link show`)"));
  }

  RETURN_IF_ERROR(EnsureBpffs(bpffs_));
  const std::string top = absl::StrCat(bpffs_, "/csumfix");
  ASSIGN_OR_RETURN(DirLock lock, DirLock::Acquire(top));
  const std::string v1 = root();
  const std::string dir = absl::StrCat(v1, "/", req.ifname);
  if (access(dir.c_str(), F_OK) == 0)
    return absl::AlreadyExistsError(
        absl::StrCat("attach: ", req.ifname, " is already attached; run `csumfix detach ",
                     req.ifname, "` first (or `csumfix policy` to change what it does)"));

  const std::string maps_dir = absl::StrCat(v1, "/", CSF_PIN_MAPS);
  const bool maps_existed = access(maps_dir.c_str(), F_OK) == 0;
  // Undone last, after `progs` has closed its fds (the map pins stay when they were there).
  Rollback dirs;
  dirs.Add([maps_dir, v1, top, maps_existed] {
    if (maps_existed) return;
    std::error_code ec;
    fs::remove_all(maps_dir, ec);
    rmdir(v1.c_str());
    rmdir(top.c_str());  // as Tidy(): only when empty; lock waiters notice (DirLock::Acquire)
  });
  RETURN_IF_ERROR(MakeDir(v1));
  RETURN_IF_ERROR(MakeDir(maps_dir));
  RETURN_IF_ERROR(fi.At(Step::kPinDirs));
  bpf::LoadOptions lo;
  lo.pin_maps_dir = maps_dir;
  ASSIGN_OR_RETURN(std::unique_ptr<bpf::Programs> progs, bpf::Programs::Load(lo));
  Rollback rb;  // declared after `progs`: runs while its map fds are still open
  RETURN_IF_ERROR(fi.At(Step::kLoad));

  RETURN_IF_ERROR(MakeDir(dir));
  rb.Add([dir] { rmdir(dir.c_str()); });
  RETURN_IF_ERROR(fi.At(Step::kIfaceDir));

  csf_attach_state st{};
  st.abi_version = CSF_ABI_VERSION;
  st.ifindex = ifindex;
  st.tc_handle = kTcHandle;
  st.tc_priority = kTcPriority;
  st.mechanism = req.mechanism;

  auto ifcfg = progs->ifcfg();
  bool made_clsact = false;    // this attach created the interface's clsact qdisc
  bool bounce_clsact = false;  // (the bounce veths' own go with them)
  std::vector<uint32_t> hooks;
  if (req.ingress) hooks.push_back(CSF_HOOK_TC_INGRESS);
  if (req.egress) hooks.push_back(CSF_HOOK_TC_EGRESS);
  if (req.xdp) hooks.push_back(CSF_HOOK_XDP);

  for (uint32_t hook : hooks) {
    const csf_if_key key{ifindex, hook};
    csf_ifcfg cfg{req.action, 0, req.mechanism, 0};
    if (hook != CSF_HOOK_XDP && req.mechanism == CSF_MECH_BOUNCE) {
      // A veth pair of our own per (interface, direction): PARTIAL packets leave by end a, whose
      // tx checksum offload is off, so the core completes them; csf_bounce_return on end b sends
      // them back. Being per direction, the return path needs no tag in the packet.
      const std::string a = BounceName(ifindex, hook, 'a'), b = BounceName(ifindex, hook, 'b');
      RETURN_IF_ERROR(CreateVethPair(a, b, 65535));
      const uint32_t ia = if_nametoindex(a.c_str()), ib = if_nametoindex(b.c_str());
      if (ia == 0 || ib == 0) return absl::InternalError("bounce veth " + a + " vanished");
      rb.Add([ia] { (void)DeleteLink(ia); });
      RETURN_IF_ERROR(fi.At(Step::kBounceVeth, hook));
      RETURN_IF_ERROR(DisableIpv6(a));
      RETURN_IF_ERROR(DisableIpv6(b));
      RETURN_IF_ERROR(TxChecksumOff(a));
      RETURN_IF_ERROR(SetUpNoArp(ia));
      RETURN_IF_ERROR(SetUpNoArp(ib));
      RETURN_IF_ERROR(fi.At(Step::kBounceVethSetup, hook));
      auto bounce = progs->bounce();
      RETURN_IF_ERROR(bounce.Update(ib, csf_bounce_ret{ifindex, hook}));
      rb.Add([bounce, ib]() mutable { (void)bounce.Delete(ib); });
      RETURN_IF_ERROR(fi.At(Step::kBounceMap, hook));
      ASSIGN_OR_RETURN(st.bounce_prog_id[hook],
                       ProgId(bpf_program__fd(progs->skel()->progs.csf_bounce_return)));
      ASSIGN_OR_RETURN(st.bounce_mode[hook],
                       AttachTc(progs->skel()->progs.csf_bounce_return, ib, BPF_TC_INGRESS,
                                req.tc_api, BouncePinBase(dir, hook), "ingress of " + b, &rb, &fi,
                                TcSteps{Step::kBounceReturnProgPin, Step::kBounceReturnAttach,
                                        Step::kBounceReturnLinkPin, hook},
                                &bounce_clsact));
      st.bounce_ifindex[hook] = ia;
      st.bounce_peer_ifindex[hook] = ib;
      cfg.target_ifindex = ia;
    }
    if (hook == CSF_HOOK_XDP && redirect_ifindex != 0) {
      cfg.flags |= CSF_IFCFG_F_XDP_REDIRECT;
      cfg.target_ifindex = redirect_ifindex;
    }
    RETURN_IF_ERROR(ifcfg.Update(key, cfg));
    rb.Add([ifcfg, key]() mutable { (void)ifcfg.Delete(key); });
    RETURN_IF_ERROR(fi.At(Step::kIfcfg, hook));
    // Counters start from zero for a new attachment.
    auto ctr = progs->counters();
    RETURN_IF_ERROR(ctr.Delete(key));
    // The program may count packets before a rollback: those counters go too (as in Detach).
    rb.Add([ctr, key]() mutable { (void)ctr.Delete(key); });

    bpf_program* prog = hook == CSF_HOOK_TC_INGRESS  ? progs->skel()->progs.csf_tc_ingress
                        : hook == CSF_HOOK_TC_EGRESS ? progs->skel()->progs.csf_tc_egress
                                                     : progs->skel()->progs.csf_xdp;
    const int prog_fd = bpf_program__fd(prog);
    ASSIGN_OR_RETURN(st.prog_id[hook], ProgId(prog_fd));
    const std::string base = absl::StrCat(dir, "/", PinBase(hook));
    const std::string where = absl::StrCat(HookName(hook), " of ", req.ifname);

    if (hook == CSF_HOOK_XDP) {
      RETURN_IF_ERROR(PinFd(prog_fd, base + "_prog"));
      rb.Add([base] { unlink((base + "_prog").c_str()); });
      RETURN_IF_ERROR(fi.At(Step::kXdpProgPin, hook));
      bpf_link* link = bpf_program__attach_xdp(prog, static_cast<int>(ifindex));
      if (link == nullptr)
        return ErrnoStatus(errno, absl::StrCat("attach XDP to ", req.ifname,
                                               " (another XDP program there? see "
                                               "`ip link show ",
                                               req.ifname, "`)"));
      std::unique_ptr<bpf_link, int (*)(bpf_link*)> owned(link, bpf_link__destroy);
      RETURN_IF_ERROR(fi.At(Step::kXdpAttach, hook));
      RETURN_IF_ERROR(PinFd(bpf_link__fd(link), base + "_link"));
      rb.Add([base] {
        std::string p = base + "_link";
        Fd fd(bpf_obj_get(p.c_str()));
        if (fd.valid()) bpf_link_detach(fd.get());
        unlink(p.c_str());
      });
      RETURN_IF_ERROR(fi.At(Step::kXdpLinkPin, hook));
      st.mode[hook] = CSF_XDP_MODE_LINK;
      continue;
    }

    ASSIGN_OR_RETURN(st.mode[hook],
                     AttachTc(prog, ifindex, TcPoint(hook), req.tc_api, base, where, &rb, &fi,
                              TcSteps{Step::kTcProgPin, Step::kTcAttach, Step::kTcLinkPin, hook},
                              &made_clsact));
    if (req.mechanism == CSF_MECH_ACT_CSUM) {
      // Right behind csumfix's program: a classic cls_bpf filter whose selector matches what
      // csumfix decided to fill, with act_csum as its action (bpf/csumfix.bpf.c csf_act_select).
      bpf_program* sel = hook == CSF_HOOK_TC_INGRESS ? progs->skel()->progs.csf_act_select_ingress
                                                     : progs->skel()->progs.csf_act_select_egress;
      RETURN_IF_ERROR(EnsureClsact(ifindex, TcPoint(hook), where, &rb, &made_clsact));
      RETURN_IF_ERROR(AddActCsumFilter(ifindex, hook == CSF_HOOK_TC_INGRESS, kTcHandle,
                                       kTcPriority + 1, bpf_program__fd(sel),
                                       bpf_program__name(sel)));
      rb.Add([ifindex, hook] {
        LIBBPF_OPTS(bpf_tc_hook, h2, .ifindex = static_cast<int>(ifindex),
                    .attach_point = TcPoint(hook));
        LIBBPF_OPTS(bpf_tc_opts, d, .handle = kTcHandle, .priority = kTcPriority + 1);
        bpf_tc_detach(&h2, &d);
      });
      RETURN_IF_ERROR(fi.At(Step::kActCsumFilter, hook));
      ASSIGN_OR_RETURN(st.act_prog_id[hook], ProgId(bpf_program__fd(sel)));
    }
  }
  if (made_clsact) st.flags |= CSF_STATE_F_CLSACT_CREATED;
  RETURN_IF_ERROR(WriteState(dir, st));
  rb.Add([dir] { unlink((dir + "/" CSF_PIN_STATE).c_str()); });
  RETURN_IF_ERROR(fi.At(Step::kState));
  RETURN_IF_ERROR(fi.Finish());
  rb.Commit();
  dirs.Commit();
  return absl::OkStatus();
}

absl::Status Controller::Detach(absl::string_view ifname) {
  const std::string top = absl::StrCat(bpffs_, "/csumfix");
  const std::string dir = absl::StrCat(root(), "/", ifname);
  if (ifname.empty() || ifname.find('/') != absl::string_view::npos || ifname == CSF_PIN_MAPS ||
      access(dir.c_str(), F_OK) != 0)
    return absl::NotFoundError(
        absl::StrCat("detach: ", ifname, " is not attached (see `csumfix status`)"));
  ASSIGN_OR_RETURN(DirLock lock, DirLock::Acquire(top));
  if (access(dir.c_str(), F_OK) != 0)  // an attach we waited for failed and was undone
    return absl::NotFoundError(
        absl::StrCat("detach: ", ifname, " is not attached (see `csumfix status`)"));
  std::vector<std::string> warnings;
  auto st = ReadState(dir);
  if (st.ok()) {
    for (uint32_t hook = 0; hook < CSF_HOOK_MAX; ++hook) {
      if (st->mode[hook] == CSF_TC_MODE_NONE) continue;
      DetachOne(st->ifindex, TcPoint(hook), st->mode[hook], st->prog_id[hook], st->tc_handle,
                st->tc_priority, absl::StrCat(dir, "/", PinBase(hook)), HookName(hook), &warnings);
      if (st->act_prog_id[hook] != 0)
        DetachOne(st->ifindex, TcPoint(hook), CSF_TC_MODE_CLSACT, st->act_prog_id[hook],
                  st->tc_handle, st->tc_priority + 1, absl::StrCat(dir, "/", PinBase(hook), "_act"),
                  absl::StrCat(HookName(hook), " act_csum"), &warnings);
      if (st->bounce_ifindex[hook] != 0) {
        DetachOne(st->bounce_peer_ifindex[hook], BPF_TC_INGRESS, st->bounce_mode[hook],
                  st->bounce_prog_id[hook], st->tc_handle, st->tc_priority,
                  BouncePinBase(dir, hook), "bounce return", &warnings);
        DeleteBounce(st->ifindex, hook, st->bounce_ifindex[hook], &warnings);
        Fd fd(bpf_obj_get(absl::StrCat(root(), "/", CSF_PIN_MAPS, "/csf_bounce").c_str()));
        if (fd.valid()) bpf_map_delete_elem(fd.get(), &st->bounce_peer_ifindex[hook]);
      }
      const std::string maps = absl::StrCat(root(), "/", CSF_PIN_MAPS);
      const csf_if_key key{st->ifindex, hook};
      for (const char* m : {"csf_ifcfg", "csf_counters"}) {
        Fd fd(bpf_obj_get(absl::StrCat(maps, "/", m).c_str()));
        if (fd.valid()) bpf_map_delete_elem(fd.get(), &key);
      }
    }
    if (st->flags & CSF_STATE_F_CLSACT_CREATED) {
      // The qdisc csumfix created goes with its last filter; one someone else added to it
      // since keeps it.
      if (auto d = DeleteClsactIfEmpty(st->ifindex); !d.ok())
        warnings.push_back(std::string(d.status().message()));
    }
  } else {
    warnings.push_back(std::string(st.status().message()));
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("detach: remove ", dir, ": ", ec.message()));
  Tidy();
  if (!st.ok() && st.status().code() == absl::StatusCode::kNotFound)
    return absl::DataLossError(absl::StrCat(
        "detach ", ifname, ": it had no state record (an attach was interrupted), so only its "
        "pins are removed; check `tc filter show dev ", ifname, " ingress` (and egress) and `ip "
        "link show` for a filter or csf* veth it may have left"));
  if (!st.ok()) return Annotate(st.status(), absl::StrCat("detach ", ifname, " (pins removed)"));
  if (!warnings.empty()) {
    std::string msg = absl::StrCat("detach ", ifname, ": done with warnings:");
    for (const auto& w : warnings) absl::StrAppend(&msg, "\n  ", w);
    return absl::DataLossError(msg);
  }
  return absl::OkStatus();
}

void Controller::Tidy() const {
  const std::string top = absl::StrCat(bpffs_, "/csumfix");
  std::error_code ec;
  // Last one out removes the shared maps and the directories.
  bool others = false;
  for (const auto& e : fs::directory_iterator(root(), ec))
    if (e.path().filename() != CSF_PIN_MAPS) others = true;
  // Policy rules outlive attachments (`csumfix policy flush` removes them).
  bool rules = false;
  {
    Fd store(bpf_obj_get(absl::StrCat(root(), "/", CSF_PIN_MAPS, "/csf_pol_store").c_str()));
    uint32_t key;
    rules = store.valid() && bpf_map_get_next_key(store.get(), nullptr, &key) == 0;
  }
  if (!others && !rules) {
    fs::remove_all(absl::StrCat(root(), "/", CSF_PIN_MAPS), ec);
    rmdir(root().c_str());
    rmdir(top.c_str());  // waiters notice (DirLock::Acquire)
  }
}

absl::Status Controller::DetachAll() {
  std::error_code ec;
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(root(), ec))
    if (e.path().filename() != CSF_PIN_MAPS) names.push_back(e.path().filename());
  absl::Status first = absl::OkStatus();
  for (const auto& n : names) {
    absl::Status s = Detach(n);
    if (!s.ok() && first.ok()) first = s;
  }
  return first;
}

absl::Status Controller::SetAction(absl::string_view ifname, uint32_t hook, uint32_t action) {
  if (action >= CSF_ACT_MAX) return absl::InvalidArgumentError("unknown action");
  const std::string dir = absl::StrCat(root(), "/", ifname);
  ASSIGN_OR_RETURN(csf_attach_state st, ReadState(dir));
  if (hook >= CSF_HOOK_MAX || st.mode[hook] == CSF_TC_MODE_NONE)
    return absl::NotFoundError(
        absl::StrCat(ifname, " has no ", HookName(hook), " attachment (see `csumfix status`)"));
  Fd fd(bpf_obj_get(absl::StrCat(root(), "/", CSF_PIN_MAPS, "/csf_ifcfg").c_str()));
  if (!fd.valid()) return ErrnoStatus(errno, "open pinned csf_ifcfg");
  bpf::Map<csf_if_key, csf_ifcfg> m(fd.get(), "csf_ifcfg");
  const csf_if_key key{st.ifindex, hook};
  ASSIGN_OR_RETURN(std::optional<csf_ifcfg> cur, m.Lookup(key));
  csf_ifcfg cfg = cur.value_or(csf_ifcfg{});
  cfg.action = action;
  return m.Update(key, cfg);  // one map write: packets see the old or the new action
}

namespace {

// Whether another process holds the pin lock on `top` (an attach, detach or policy change in
// progress), after waiting up to `wait_ms` for it to go. Status takes it only for a moment.
bool PinLockHeld(const std::string& top, int wait_ms) {
  Fd fd(open(top.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return false;
  for (int waited = 0;; waited += 50) {
    if (flock(fd.get(), LOCK_SH | LOCK_NB) == 0) {
      flock(fd.get(), LOCK_UN);
      return false;
    }
    if (errno != EWOULDBLOCK) return false;
    if (waited >= wait_ms) return true;
    usleep(50 * 1000);
  }
}

// The device a pinned tcx/XDP link reports (0 once the device is gone); nullopt: no such link.
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

}  // namespace

absl::StatusOr<std::vector<IfaceStatus>> Controller::Status() const {
  std::vector<IfaceStatus> out;
  std::error_code ec;
  if (access(root().c_str(), F_OK) != 0) return out;
  const std::string top = absl::StrCat(bpffs_, "/csumfix");
  Fd cfg_fd(bpf_obj_get(absl::StrCat(root(), "/", CSF_PIN_MAPS, "/csf_ifcfg").c_str()));
  for (const auto& e : fs::directory_iterator(root(), ec)) {
    const std::string name = e.path().filename();
    if (name == CSF_PIN_MAPS) continue;
    IfaceStatus s;
    s.ifname = name;
    auto st = ReadState(e.path());
    if (!st.ok() && st.status().code() == absl::StatusCode::kNotFound) {
      // Attach writes the state last, under the lock: without it this is an attach in progress,
      // or one that was interrupted (killed) before it finished.
      if (PinLockHeld(top, 1000)) {
        s.state = "attaching";
        s.problem = absl::StrCat("another csumfix is changing the attachments (an attach of ", name,
                                 " in progress): run `csumfix status` again");
      } else if (st = ReadState(e.path()); !st.ok()) {
        s.state = "incomplete";
        s.problem = absl::StrCat("no state record: an attach of ", name,
                                 " was interrupted; `csumfix detach ", name,
                                 "` removes what it left");
      }
    } else if (!st.ok()) {
      s.state = "unreadable";
      s.problem = std::string(st.status().message());
    }
    if (!st.ok()) {
      s.ifindex = if_nametoindex(name.c_str());
      s.present = s.ifindex != 0;
      out.push_back(std::move(s));
      continue;
    }
    s.ifindex = st->ifindex;
    s.mechanism = st->mechanism;
    char buf[IF_NAMESIZE] = {};
    s.present = if_indextoname(st->ifindex, buf) != nullptr && name == buf;
    if (s.present) s.offloads = Offloads(name);
    bool all_links_defunct = true;
    for (uint32_t hook = 0; hook < CSF_HOOK_MAX; ++hook) {
      if (st->mode[hook] == CSF_TC_MODE_NONE) continue;
      const bool link = hook == CSF_HOOK_XDP || st->mode[hook] == CSF_TC_MODE_TCX;
      all_links_defunct &= link && LinkIfindex(e.path(), hook) == std::optional<uint32_t>(0);
      HookStatus h;
      h.hook = hook;
      h.mode = hook == CSF_HOOK_XDP ? "xdp" : st->mode[hook] == CSF_TC_MODE_TCX ? "tcx" : "clsact";
      h.prog_id = st->prog_id[hook];
      h.act_prog_id = hook == CSF_HOOK_XDP ? 0 : st->act_prog_id[hook];
      h.attached = s.present && HookAttached(e.path(), *st, hook);
      if (cfg_fd.valid()) {
        csf_if_key k{st->ifindex, hook};
        csf_ifcfg c{};
        if (bpf_map_lookup_elem(cfg_fd.get(), &k, &c) == 0) h.action = c.action;
      }
      s.hooks.push_back(h);
    }
    s.links_defunct = !s.hooks.empty() && all_links_defunct;
    out.push_back(std::move(s));
  }
  std::sort(out.begin(), out.end(),
            [](const IfaceStatus& a, const IfaceStatus& b) { return a.ifname < b.ifname; });
  return out;
}

absl::StatusOr<std::vector<FlowRow>> Controller::Flows(size_t top) const {
  std::vector<FlowRow> rows;
  const std::string path = absl::StrCat(root(), "/", CSF_PIN_MAPS, "/csf_flows");
  if (access(path.c_str(), F_OK) != 0) return rows;
  Fd fd(bpf_obj_get(path.c_str()));
  if (!fd.valid()) return ErrnoStatus(errno, "open " + path);
  bpf::Map<csf_tuple, csf_flow_val> m(fd.get(), "csf_flows");
  ASSIGN_OR_RETURN(std::vector<csf_tuple> keys, m.Keys());
  for (const auto& k : keys) {
    ASSIGN_OR_RETURN(std::optional<csf_flow_val> v, m.Lookup(k));
    if (!v) continue;  // evicted meanwhile
    FlowRow r;
    r.key = k;
    r.val = *v;
    char buf[INET6_ADDRSTRLEN] = {}, name[IF_NAMESIZE] = {};
    if (if_indextoname(k.ifindex, name) != nullptr) r.ifname = name;
    const int af = k.ipver == 4 ? AF_INET : AF_INET6;
    r.src = inet_ntop(af, k.src, buf, sizeof(buf)) ? buf : "?";
    r.dst = inet_ntop(af, k.dst, buf, sizeof(buf)) ? buf : "?";
    rows.push_back(std::move(r));
  }
  std::sort(rows.begin(), rows.end(), [](const FlowRow& a, const FlowRow& b) {
    return a.val.partial + a.val.bad > b.val.partial + b.val.bad;
  });
  if (top && rows.size() > top) rows.resize(top);
  return rows;
}

absl::StatusOr<std::vector<CounterRow>> Controller::Counters() const {
  std::vector<CounterRow> rows;
  const std::string path = absl::StrCat(root(), "/", CSF_PIN_MAPS, "/csf_counters");
  if (access(path.c_str(), F_OK) != 0) return rows;
  Fd fd(bpf_obj_get(path.c_str()));
  if (!fd.valid()) return ErrnoStatus(errno, "open " + path);
  bpf::PerCpuSumMap<csf_if_key, csf_counters> m(fd.get(), "csf_counters");
  ASSIGN_OR_RETURN(std::vector<csf_if_key> keys, m.Keys());
  for (const csf_if_key& k : keys) {
    ASSIGN_OR_RETURN(std::optional<csf_counters> v, m.Lookup(k));
    if (!v) continue;
    CounterRow r;
    r.ifindex = k.ifindex;
    r.hook = k.hook;
    r.counters = *v;
    char buf[IF_NAMESIZE] = {};
    if (if_indextoname(k.ifindex, buf) != nullptr) r.ifname = buf;
    rows.push_back(r);
  }
  std::sort(rows.begin(), rows.end(), [](const CounterRow& a, const CounterRow& b) {
    return std::tie(a.ifindex, a.hook) < std::tie(b.ifindex, b.hook);
  });
  return rows;
}

}  // namespace csumfix::control
