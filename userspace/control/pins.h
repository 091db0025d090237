// Pins: everything csumfix keeps in bpffs. The mount check, the directory lock every change
// holds, the per-interface state record, and the shared maps opened by name (PinnedMaps).
//
//   <bpffs>/csumfix/                          flock'd by every attach, detach and policy change
//   <bpffs>/csumfix/v1/netns/<ino>/           one network namespace's state (its inode number):
//   <bpffs>/csumfix/v1/netns/<ino>/maps/<map>   its shared maps, CSF_PINNED_MAPS in abi.h
//   <bpffs>/csumfix/v1/netns/<ino>/<ifname>/    state, <hook>_prog, <hook>_link, bounce_*
// Each namespace has a map set of its own, so ifindex keys (counters, actions, rules, flows)
// never meet another namespace's interfaces: the same name in two namespaces is two attachments.
#ifndef CSUMFIX_USERSPACE_CONTROL_PINS_H_
#define CSUMFIX_USERSPACE_CONTROL_PINS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "bpf/fd.h"
#include "bpf/loader.h"
#include "bpf/map.h"
#include "csumfix/abi.h"

namespace csumfix::control {

// The paths of csumfix's pins under one bpffs mount.
// bpffs refuses '.' in a name (a VLAN's eth0.100, Xen's vif1.0), and ':' is never part of an
// interface name (the kernel's dev_valid_name refuses it): a pin directory writes '.' as ':'.
std::string PinName(absl::string_view ifname);
std::string IfnameOfPin(absl::string_view pin);

// The inode of this process's network namespace (/proc/self/ns/net), 0 if it cannot be read.
uint64_t CurrentNetnsIno();
// The name under /run/netns of the network namespace with inode `ino`, or "" (none: a pod's or
// container's namespace, the host's).
std::string NetnsName(uint64_t ino);

class PinPaths {
 public:
  // The pins of network namespace `netns_ino` (default: this process's).
  explicit PinPaths(std::string bpffs, uint64_t netns_ino = CurrentNetnsIno())
      : bpffs_(std::move(bpffs)), netns_ino_(netns_ino) {}
  const std::string& bpffs() const { return bpffs_; }
  uint64_t netns_ino() const { return netns_ino_; }
  std::string top() const;                           // <bpffs>/csumfix (the lock)
  std::string base() const;                          // <bpffs>/csumfix/v1
  std::string namespaces() const;                    // <bpffs>/csumfix/v1/netns
  std::string root() const;                          // .../v1/netns/<netns_ino>
  std::string maps() const;                          // <root>/maps
  std::string map(absl::string_view name) const;     // <root>/maps/<name>
  std::string iface(absl::string_view ifname) const; // <root>/<PinName(ifname)>
  // The interfaces that have a pin directory (decoded names), in directory order.
  std::vector<std::string> Interfaces() const;
  // The network namespaces (inodes) that have a pin directory, ascending.
  std::vector<uint64_t> Namespaces() const;

 private:
  std::string bpffs_;
  uint64_t netns_ino_;
};

// Moves the pins of csumfix 0.1 (<bpffs>/csumfix/v1/<ifname>/ and v1/maps/, one map set for
// every namespace) into the per-namespace layout, under the pin lock: an interface's directory
// goes to the namespace its state record names (a record without one, or no record: this
// process's namespace), the maps to every namespace that receives an interface (or to this one
// when only rules were left). Attachments keep running: their programs hold the maps. Returns
// one line per thing moved; nothing when there is no 0.1 layout (the common case costs one
// access(2)).
absl::StatusOr<std::vector<std::string>> MigrateLegacyPins(const std::string& bpffs);

// Under `ip netns exec NS` (a mount namespace of its own, in a network namespace named in
// /run/netns, whose /sys hides the host's bpffs): joins the mount namespace it was run from
// (PID 1's; where that cannot be read, the nearest ancestor's that differs), keeping the network
// namespace and the working directory, so csumfix works there as with `-n NS`. Returns whether it
// joined; false without doing anything when `path` is a bpffs, the network namespace has no name
// (a container: CheckHostBpffs then explains) or there is no other mount namespace to join. An
// error when joining fails (no CAP_SYS_ADMIN or CAP_SYS_CHROOT): it names -n NS.
// Call it while the process has one thread (setns(2) refuses a mount namespace change otherwise).
absl::StatusOr<bool> JoinHostMountsUnderIpNetnsExec(const std::string& path);
// Mounts bpffs at `path` unless it is one already.
absl::Status EnsureBpffs(const std::string& path);
// FailedPrecondition when `path` is not a bpffs and this process has mounts of its own (a mount
// namespace other than PID 1's; where that cannot be read: a named network namespace), as under
// `ip netns exec NS`, which remounts /sys: the message names `csumfix -n NS`. OK when `path` is a
// bpffs, or in the host's mount namespace (where csumfix may mount it). The CLI calls it first
// (after JoinHostMountsUnderIpNetnsExec), before it joins a namespace (-n) or drops capabilities.
absl::Status CheckHostBpffs(const std::string& path);
// mkdir 0700 (every pin directory is root's alone), also tightening an existing one.
absl::Status MakeDir(const std::string& path);

// Exclusive flock on a directory for the life of the object. The last detach removes the
// directory; a waiter that then holds a lock on the removed one starts again on the new one.
class DirLock {
 public:
  static absl::StatusOr<DirLock> Acquire(const std::string& dir);

 private:
  explicit DirLock(bpf::Fd fd) : fd_(std::move(fd)) {}
  bpf::Fd fd_;  // closing the fd releases the lock
};

// Holds the exclusive flock on <bpffs>/csumfix (the lock attach and detach take) while alive.
absl::StatusOr<std::shared_ptr<void>> LockPins(const std::string& bpffs);
// Whether another process holds the pin lock on `top`, after waiting up to `wait_ms` for it to
// go. Takes it only for a moment (status never waits for a change).
bool PinLockHeld(const std::string& top, int wait_ms);

absl::Status PinFd(int fd, const std::string& path);
absl::StatusOr<uint32_t> ProgId(int prog_fd);
// A loaded program as the kernel knows it: its id, and its tag (bpf_prog_info.tag, 16 hex
// digits), a digest of the instructions the loader submitted with the map references zeroed.
// The same object loaded twice on one kernel has one tag; any changed instruction changes it.
struct ProgIdent {
  uint32_t id = 0;
  std::string tag;
};
absl::StatusOr<ProgIdent> Ident(int prog_fd);
// The program pinned at `path`; NotFound when nothing is pinned there.
absl::StatusOr<ProgIdent> PinnedIdent(const std::string& path);
// Pins `fd` at `path` in place of what is pinned there (pin under a temporary name, then
// rename(2), which bpffs does atomically): a reader sees the old pin or the new one.
absl::Status RepinFd(int fd, const std::string& path);

// The attachment's record, <ifname dir>/state. NotFound: no record (an attach in progress or
// interrupted); FailedPrecondition: written by another pin ABI (AbiMismatch's message).
absl::StatusOr<csf_attach_state> ReadState(const std::string& dir);
absl::Status WriteState(const std::string& dir, const csf_attach_state& st);
// Writes a new record over the existing one (RepinFd): `status` never sees none.
absl::Status ReplaceState(const std::string& dir, const csf_attach_state& st);

// The pin ABI (CSF_ABI_VERSION) of a namespace's map set, kept in maps/csf_abi (CSF_PIN_ABI).
// WriteMapsAbi records this build's when the map set has no marker yet (a fresh one, or one
// made by a build from before the marker, all of which were ABI 1).
absl::Status WriteMapsAbi(const PinPaths& paths);
// Whether this build may use and change the pins of `paths`' namespace: its map set's marker
// and every state record say CSF_ABI_VERSION. FailedPrecondition naming the version found and
// what to do otherwise; nothing is changed either way. Callers hold the pin lock.
absl::Status CheckPinAbi(const PinPaths& paths);
// The message for pins of ABI `found` at `where`.
absl::Status AbiMismatch(const std::string& where, uint32_t found);

// The shared maps as pinned, each opened by its name in abi.h. A map that is not pinned (nothing
// attached, no rule) has an invalid fd; nothing is created.
struct PinnedMaps {
  static PinnedMaps Open(const PinPaths& paths);

  // legacy_counters: csumfix 0.1's counters map, where its programs left one (abi.h).
  bpf::Fd ifcfg, cfg_gen, slots, legacy_counters, bounce, flows, pol_store;

  bpf::IfcfgMap Ifcfg() const { return {ifcfg.get(), cfg_gen.valid() ? cfg_gen.get() : -1}; }
  bpf::SlotCounters Counters() const { return {slots.get(), CSF_MAP_SLOTS}; }
  bpf::PerCpuSumMap<csf_if_key, csf_counters> LegacyCounters() const {
    return {legacy_counters.get(), CSF_MAP_LEGACY_COUNTERS};
  }
  bpf::Map<uint32_t, csf_bounce_ret> Bounce() const { return {bounce.get(), CSF_MAP_BOUNCE}; }
  bpf::Map<csf_tuple, csf_flow_val> Flows() const { return {flows.get(), CSF_MAP_FLOWS}; }
  // Whether any policy rule is stored (rules outlive attachments).
  bool HasRules() const;
};

}  // namespace csumfix::control

#endif  // CSUMFIX_USERSPACE_CONTROL_PINS_H_
