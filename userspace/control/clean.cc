// `csumfix clean`: what csumfix left behind in this network namespace, removed (leftovers.h).
#include <net/if.h>
#include <unistd.h>

#include <sys/stat.h>

#include <cctype>
#include <filesystem>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "control/bounce.h"
#include "control/control.h"
#include "control/ifb.h"
#include "control/leftovers.h"
#include "control/netlink.h"

namespace csumfix::control {
namespace {

namespace fs = std::filesystem;

// What the live records of this namespace use: programs in filters, bounce veths.
struct InUse {
  std::set<uint32_t> progs;
  std::set<uint32_t> bounce_ifindexes;
  std::set<uint32_t> ifb_ifindexes;
};

void NoteInUse(const csf_attach_state& st, InUse* in) {
  for (uint32_t h = 0; h < CSF_HOOK_MAX; ++h) {
    for (uint32_t id : {st.prog_id[h], st.act_prog_id[h], st.bounce_prog_id[h]})
      if (id) in->progs.insert(id);
    for (uint32_t i : {st.bounce_ifindex[h], st.bounce_peer_ifindex[h]})
      if (i) in->bounce_ifindexes.insert(i);
  }
  if (st.mechanism == CSF_MECH_IFB && st.ifb_ifindex != 0) in->ifb_ifindexes.insert(st.ifb_ifindex);
}

// One pin directory: a record of a deleted interface or one without a record goes.
void CleanRecord(const PinPaths& paths, const std::string& name, InUse* in, CleanReport* rep) {
  const std::string dir = paths.iface(name);
  auto st = ReadState(dir);
  if (st.ok() && !InterfaceGone(*st)) {
    if (InThisNetns(*st)) NoteInUse(*st, in);
    return;
  }
  if (!st.ok() && st.status().code() != absl::StatusCode::kNotFound) {
    rep->done.Warn(absl::StrCat(name, ": ", st.status().message(), ": left alone"));
    return;
  }
  std::vector<std::string> warnings;
  if (st.ok()) DetachRecorded(*st, dir, PinnedMaps::Open(paths), &warnings);
  for (auto& w : warnings) rep->done.Warn(absl::StrCat(name, ": ", w));
  std::error_code ec;
  fs::remove_all(dir, ec);
  if (ec) {
    rep->done.Warn(absl::StrCat("remove ", dir, ": ", ec.message()));
    return;
  }
  rep->removed.push_back(st.ok() ? absl::StrCat("the record of ", name, " (ifindex ", st->ifindex,
                                                ", deleted)")
                                 : absl::StrCat("the pins of an interrupted attach of ", name));
}

// A bounce veth end of csumfix's naming (csf<hex ifindex><i|e>a) that no live record uses.
void CleanBounces(uint32_t only_owner, const InUse& in, CleanReport* rep) {
  struct if_nameindex* all = if_nameindex();
  if (all == nullptr) return;
  for (struct if_nameindex* i = all; i->if_index != 0; ++i) {
    const std::string name = i->if_name;
    if (in.bounce_ifindexes.count(i->if_index) || !absl::StartsWith(name, "csf")) continue;
    for (uint32_t hook : {CSF_HOOK_TC_INGRESS, CSF_HOOK_TC_EGRESS}) {
      const std::string tail = name.substr(3);
      uint32_t owner = 0;
      if (!absl::SimpleHexAtoi(tail.substr(0, tail.size() > 2 ? tail.size() - 2 : 0), &owner))
        continue;
      if (only_owner != 0 && owner != only_owner) continue;
      if (name != BounceName(owner, hook, 'a')) continue;
      if (RemoveStrayBounce(owner, hook))
        rep->removed.push_back(absl::StrCat("bounce veth pair ", name, "/",
                                            BounceName(owner, hook, 'b')));
    }
  }
  if_freenameindex(all);
}

// An ifb device of csumfix's naming (csfifb<hex ifindex>) that no live record uses.
void CleanIfbs(uint32_t only_owner, const InUse& in, CleanReport* rep) {
  struct if_nameindex* all = if_nameindex();
  if (all == nullptr) return;
  for (struct if_nameindex* i = all; i->if_index != 0; ++i) {
    const std::string name = i->if_name;
    uint32_t owner = 0;
    if (in.ifb_ifindexes.count(i->if_index) || !absl::StartsWith(name, "csfifb") ||
        !absl::SimpleHexAtoi(name.substr(6), &owner) || name != IfbName(owner))
      continue;
    if (only_owner != 0 && owner != only_owner) continue;
    if (RemoveStrayIfb(owner)) rep->removed.push_back(absl::StrCat("ifb device ", name));
  }
  if_freenameindex(all);
}

// Whether network namespace `ino` is held by a /run/netns name or by a process this /proc shows.
bool NetnsVisible(uint64_t ino) {
  if (!NetnsName(ino).empty()) return true;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    const std::string pid = e.path().filename();
    if (pid.empty() || !std::isdigit(static_cast<unsigned char>(pid[0]))) continue;
    struct stat st {};
    if (stat((e.path() / "ns/net").c_str(), &st) == 0 && st.st_ino == ino) return true;
  }
  return false;
}

// The pins of other namespaces whose interfaces are certainly gone (a pod or VM namespace
// deleted with its attachments): records whose links all report no device, and the namespace's
// directory once it holds no record and no policy rule. Only pins: the helpers (bounce veths)
// lived in that namespace and went with its devices; nothing is done to interfaces here, whose
// indexes mean something else.
void CleanOtherNamespaces(const PinPaths& here, CleanReport* rep) {
  for (uint64_t ino : here.Namespaces()) {
    if (ino == here.netns_ino()) continue;
    const PinPaths there(here.bpffs(), ino);
    size_t left = 0;
    // links_defunct: every hook is a tcx/XDP link that reports no device (Status()'s proof that
    // the interface was deleted, whatever namespace it lived in; clsact carries none).
    auto records = Controller(here.bpffs(), ino).Status(Controller::Detail::kRecords);
    for (const IfaceStatus& i : records.ok() ? *records : std::vector<IfaceStatus>{}) {
      const std::string dir = there.iface(i.ifname);
      if (i.state != "ok" || !i.links_defunct) {
        ++left;
        continue;
      }
      std::error_code ec;
      fs::remove_all(dir, ec);
      if (ec) {
        rep->done.Warn(absl::StrCat("clean: remove ", dir, ": ", ec.message()));
        ++left;
        continue;
      }
      rep->removed.push_back(absl::StrCat("record of ", i.ifname, " in network namespace ", ino,
                                          " (its interface is gone)"));
    }
    if (!records.ok()) ++left;
    if (left > 0 || PinnedMaps::Open(there).HasRules()) {
      // A namespace that still exists (a process or a /run/netns name holds it) is its own
      // business; one found nowhere from here is named, for its pins to be looked at.
      if (left > 0 && !NetnsVisible(ino))
        rep->done.Warn(absl::StrCat(
            "clean: network namespace ", ino, " has ", left, " attachment(s) csumfix cannot prove "
            "gone from here; run `csumfix -n NS clean --all` in it, or remove ", there.root(),
            " when the namespace no longer exists"));
      continue;
    }
    std::error_code ec;
    fs::remove_all(there.root(), ec);
    if (!ec) rep->removed.push_back(absl::StrCat("pins of network namespace ", ino));
  }
}

}  // namespace

absl::StatusOr<CleanReport> Controller::Clean(absl::string_view ifname) {
  CleanReport rep;
  RETURN_IF_ERROR(EnsureBpffs(paths_.bpffs()));
  ASSIGN_OR_RETURN(DirLock lock, DirLock::Acquire(paths_.top()));
  // Another pin ABI's records cannot be read, so their filters and veths would look stray.
  RETURN_IF_ERROR(CheckPinAbi(paths_));
  InUse in;
  for (const std::string& name : paths_.Interfaces()) {
    if (ifname.empty() || name == ifname) CleanRecord(paths_, name, &in, &rep);
    else if (auto st = ReadState(paths_.iface(name)); st.ok() && InThisNetns(*st)) NoteInUse(*st, &in);
  }
  uint32_t only = 0;
  if (!ifname.empty()) {
    only = if_nametoindex(std::string(ifname).c_str());
    if (only == 0 && rep.removed.empty())
      return absl::NotFoundError(absl::StrCat("clean: no interface named ", ifname,
                                              " and no csumfix record of it (see `ip link show`)"));
  }
  if (ifname.empty() || only != 0) {
    CleanBounces(only, in, &rep);
    CleanIfbs(only, in, &rep);
  }
  struct if_nameindex* all = if_nameindex();
  for (struct if_nameindex* i = all; all != nullptr && i->if_index != 0; ++i) {
    if (only != 0 && i->if_index != only) continue;
    for (auto& f : RemoveStrayFilters(i->if_index, in.progs))
      rep.removed.push_back(absl::StrCat(i->if_name, ": ", f));
  }
  if (all != nullptr) if_freenameindex(all);
  if (ifname.empty()) CleanOtherNamespaces(paths_, &rep);
  Tidy();
  return rep;
}

}  // namespace csumfix::control
