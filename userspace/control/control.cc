// Detach, the tidy-up of the shared pins, and action changes. Attach is in attach.cc, the
// read-only views (status, counters, flows) in query.cc.
#include "control/control.h"

#include <unistd.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "control/leftovers.h"
#include "control/names.h"

namespace csumfix::control {
namespace {

namespace fs = std::filesystem;

absl::Status NotAttached(absl::string_view ifname) {
  return absl::NotFoundError(
      absl::StrCat("detach: ", ifname, " is not attached (see `csumfix status`)"));
}

}  // namespace

Controller::Controller(std::string bpffs, uint64_t netns_ino)
    : paths_(std::move(bpffs), netns_ino) {}

absl::Status Controller::EnsurePinDirs() const {
  RETURN_IF_ERROR(EnsureBpffs(paths_.bpffs()));
  for (const std::string& d :
       {paths_.top(), paths_.base(), paths_.namespaces(), paths_.root(), paths_.maps()})
    RETURN_IF_ERROR(MakeDir(d));
  return WriteMapsAbi(paths_);
}

void RemoveEmptyPinDirs(const PinPaths& paths) {
  // rmdir removes only what is empty; the last one out takes the lock directory too, and lock
  // waiters notice (DirLock::Acquire).
  for (const std::string& d : {paths.root(), paths.namespaces(), paths.base(), paths.top()})
    rmdir(d.c_str());
}

Outcome Controller::Detach(absl::string_view ifname) {
  const std::string dir = paths_.iface(ifname);
  if (ifname.empty() || ifname.find('/') != absl::string_view::npos || ifname == CSF_PIN_MAPS ||
      access(dir.c_str(), F_OK) != 0)
    return NotAttached(ifname);
  ASSIGN_OR_RETURN(DirLock lock, DirLock::Acquire(paths_.top()));
  if (access(dir.c_str(), F_OK) != 0) return NotAttached(ifname);  // a failed attach we waited for
  std::vector<std::string> warnings;
  auto st = ReadState(dir);
  // Another pin ABI's record: removing its pins would detach its tcx/XDP links and orphan the
  // rest. Leave everything as it is; the message says how to detach it.
  if (!st.ok() && st.status().code() == absl::StatusCode::kFailedPrecondition)
    return Annotate(st.status(), absl::StrCat("detach ", ifname));
  if (st.ok()) DetachRecorded(*st, dir, PinnedMaps::Open(paths_), &warnings);
  std::error_code ec;
  fs::remove_all(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("detach: remove ", dir, ": ", ec.message()));
  Tidy();
  Done done;
  if (!st.ok() && st.status().code() == absl::StatusCode::kNotFound) {
    done.Warn(absl::StrCat(
        "detach ", ifname, ": it had no state record (an attach was interrupted), so only its "
        "pins are removed; `csumfix clean ", ifname, "` removes a csf* veth or filter it may "
        "have left"));
    return done;
  }
  if (!st.ok()) return Annotate(st.status(), absl::StrCat("detach ", ifname, " (pins removed)"));
  for (auto& w : warnings) done.Warn(absl::StrCat("detach ", ifname, ": ", w));
  return done;
}

void Controller::Tidy() const {
  std::error_code ec;
  // Last one out removes the shared maps and the directories; policy rules outlive attachments
  // (`csumfix policy flush` removes them).
  bool others = false;
  for (const auto& e : fs::directory_iterator(paths_.root(), ec))
    if (e.path().filename() != CSF_PIN_MAPS) others = true;
  if (others || PinnedMaps::Open(paths_).HasRules()) return;
  fs::remove_all(paths_.maps(), ec);
  RemoveEmptyPinDirs(paths_);
}

Outcome Controller::DetachAll() {
  const std::vector<std::string> names = paths_.Interfaces();
  Done all;
  absl::Status first = absl::OkStatus();
  for (const auto& n : names) {
    Outcome o = Detach(n);
    if (o.ok()) all.Merge(*o);
    else if (first.ok()) first = o.status();
  }
  if (!first.ok()) return first;
  return all;
}

absl::Status Controller::SetAction(absl::string_view ifname, uint32_t hook, uint32_t action) {
  if (action >= CSF_ACT_MAX) return absl::InvalidArgumentError("unknown action");
  ASSIGN_OR_RETURN(csf_attach_state st, ReadState(paths_.iface(ifname)));
  if (hook >= CSF_HOOK_MAX || st.mode[hook] == CSF_TC_MODE_NONE)
    return absl::NotFoundError(absl::StrCat(ifname, " has no ", names::HookName(hook),
                                            " attachment (see `csumfix status`)"));
  const PinnedMaps maps = PinnedMaps::Open(paths_);
  if (!maps.ifcfg.valid()) return ErrnoStatus(errno, "open pinned " CSF_MAP_IFCFG);
  auto m = maps.Ifcfg();
  const csf_if_key key{st.ifindex, hook};
  ASSIGN_OR_RETURN(std::optional<csf_ifcfg> cur, m.Lookup(key));
  csf_ifcfg cfg = cur.value_or(csf_ifcfg{});
  cfg.action = action;
  return m.Update(key, cfg);  // one map write: packets see the old or the new action
}

}  // namespace csumfix::control
