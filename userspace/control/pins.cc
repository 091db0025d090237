#include "control/pins.h"

#include <algorithm>

#include <bpf/bpf.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/status.h"

namespace csumfix::control {

using bpf::Fd;

std::string PinPaths::top() const { return absl::StrCat(bpffs_, "/csumfix"); }
std::string PinPaths::base() const { return absl::StrCat(bpffs_, "/", CSF_PIN_ROOT); }
std::string PinPaths::namespaces() const { return absl::StrCat(base(), "/", CSF_PIN_NETNS); }
std::string PinPaths::root() const { return absl::StrCat(namespaces(), "/", netns_ino_); }
std::string PinPaths::maps() const { return absl::StrCat(root(), "/", CSF_PIN_MAPS); }
std::string PinPaths::map(absl::string_view name) const { return absl::StrCat(maps(), "/", name); }
std::string PinName(absl::string_view ifname) {
  std::string out(ifname);
  std::replace(out.begin(), out.end(), '.', ':');
  return out;
}

std::string IfnameOfPin(absl::string_view pin) {
  std::string out(pin);
  std::replace(out.begin(), out.end(), ':', '.');
  return out;
}

std::string PinPaths::iface(absl::string_view ifname) const {
  return absl::StrCat(root(), "/", PinName(ifname));
}

std::vector<std::string> PinPaths::Interfaces() const {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(root(), ec)) {
    const std::string name = e.path().filename();
    if (name != CSF_PIN_MAPS) out.push_back(IfnameOfPin(name));
  }
  return out;
}

std::vector<uint64_t> PinPaths::Namespaces() const {
  std::vector<uint64_t> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(namespaces(), ec)) {
    uint64_t ino = 0;
    if (absl::SimpleAtoi(std::string(e.path().filename()), &ino)) out.push_back(ino);
  }
  std::sort(out.begin(), out.end());
  return out;
}

namespace {

// The inode of one of this process's namespaces, or of PID 1's (0 when it cannot be read, e.g.
// without CAP_SYS_PTRACE).
ino_t NsInode(const char* pid, const char* ns) {
  struct stat st {};
  return stat(absl::StrCat("/proc/", pid, "/ns/", ns).c_str(), &st) == 0 ? st.st_ino : 0;
}

// The parent of process `pid` (0 when it cannot be read), from /proc/PID/stat: the field after
// the state, which follows the last ')' (a command name may hold spaces and parentheses).
int ParentPid(int pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::vector<std::string> f = absl::StrSplit(stat.substr(close + 1), ' ', absl::SkipEmpty());
  int ppid = 0;
  return f.size() > 1 && absl::SimpleAtoi(f[1], &ppid) ? ppid : 0;
}

// The mount namespace `ip netns exec` was run from: PID 1's where it can be read (the host's);
// else (PID 1 out of reach, as in some sandboxes) the nearest ancestor's that differs from this
// process's. Empty when there is none.
std::string OuterMountNamespace(ino_t self) {
  const ino_t init = NsInode("1", "mnt");
  if (init != 0) return init != self ? "/proc/1/ns/mnt" : "";
  for (int pid = ParentPid(getpid()), hops = 0; pid > 1 && hops < 64; pid = ParentPid(pid), ++hops) {
    const std::string p = std::to_string(pid);
    const ino_t ino = NsInode(p.c_str(), "mnt");
    if (ino != 0 && ino != self) return absl::StrCat("/proc/", pid, "/ns/mnt");
  }
  return "";
}

}  // namespace

std::string NetnsName(uint64_t ino) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/run/netns", ec)) {
    struct stat st {};
    if (stat(e.path().c_str(), &st) == 0 && st.st_ino == ino) return e.path().filename();
  }
  return "";
}

absl::Status CheckHostBpffs(const std::string& path) {
  struct statfs st {};
  if (statfs(path.c_str(), &st) == 0 && st.f_type == BPF_FS_MAGIC) return absl::OkStatus();
  // No bpffs here. In PID 1's mount namespace csumfix mounts one; in a mount namespace of its
  // own (`ip netns exec` remounts /sys; a container without the host's /sys/fs/bpf) pins made
  // there would vanish with it. Where PID 1's namespace cannot be read, an ancestor in another
  // mount namespace, or a named network namespace (/run/netns), tells the same.
  const std::string ns = NetnsName(NsInode("self", "net"));
  const bool private_mounts = !OuterMountNamespace(NsInode("self", "mnt")).empty() ||
                              (NsInode("1", "mnt") == 0 && !ns.empty());
  if (!private_mounts) return absl::OkStatus();
  const std::string fix =
      ns.empty() ? "run csumfix in the host's mount namespace (in a container: mount the host's "
                   "/sys/fs/bpf), or as `csumfix -n NETNS ...` for a named network namespace"
                 : absl::StrCat("run `csumfix -n ", ns, " ...` instead of `ip netns exec ", ns,
                                " csumfix ...`");
  return absl::FailedPreconditionError(absl::StrCat(
      path, " is not the host's bpf filesystem: this process has a mount namespace of its own "
      "(as under `ip netns exec`, which remounts /sys), so pins made here would vanish when the "
      "command ends. Nothing was changed; ", fix));
}

absl::StatusOr<bool> JoinHostMountsUnderIpNetnsExec(const std::string& path) {
  struct statfs st {};
  if (statfs(path.c_str(), &st) == 0 && st.f_type == BPF_FS_MAGIC) return false;
  const std::string ns = NetnsName(NsInode("self", "net"));
  if (ns.empty()) return false;
  const std::string outer = OuterMountNamespace(NsInode("self", "mnt"));
  if (outer.empty()) return false;
  // `ip netns exec` unshares the mount namespace only to mount the namespace's own sysfs on /sys
  // (and bind /etc/netns/NS files over /etc): every path csumfix uses means the same in the
  // namespace it was run from, where the host's bpffs is. setns(2) resets the working directory
  // to that namespace's root; csumfix goes back to the same path, so relative paths still resolve.
  std::error_code ec;
  const std::filesystem::path cwd = std::filesystem::current_path(ec);
  const int fd = open(outer.c_str(), O_RDONLY | O_CLOEXEC);
  const int r = fd < 0 ? -1 : setns(fd, CLONE_NEWNS);
  const int e = errno;
  if (fd >= 0) close(fd);
  if (r != 0)
    return absl::FailedPreconditionError(absl::StrCat(
        "under `ip netns exec ", ns, "` ", path, " is not the host's bpf filesystem, and joining "
        "the mount namespace of ", outer, " to reach it failed (", strerror(e), "; it needs "
        "CAP_SYS_ADMIN and CAP_SYS_CHROOT). Nothing was changed; run `csumfix -n ", ns, " ...` instead"));
  if (ec || chdir(cwd.c_str()) != 0) {
    if (chdir("/") != 0) return ErrnoStatus(errno, "chdir /");
  }
  return true;
}

absl::Status EnsureBpffs(const std::string& path) {
  struct statfs st {};
  if (statfs(path.c_str(), &st) == 0 && st.f_type == BPF_FS_MAGIC) return absl::OkStatus();
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (mount("bpf", path.c_str(), "bpf", 0, "mode=0700") != 0) {
    return ErrnoStatus(errno, absl::StrCat("mount bpffs on ", path,
                                           " (csumfix needs root or CAP_SYS_ADMIN the first "
                                           "time; or run `mount -t bpf bpf ",
                                           path, "` as root)"));
  }
  return absl::OkStatus();
}

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

absl::StatusOr<DirLock> DirLock::Acquire(const std::string& dir) {
  for (int attempt = 0; attempt < 100; ++attempt) {
    RETURN_IF_ERROR(MakeDir(dir));
    Fd fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd.valid()) {
      if (errno == ENOENT) continue;
      return ErrnoStatus(errno, "open " + dir);
    }
    if (flock(fd.get(), LOCK_EX) != 0) return ErrnoStatus(errno, "flock " + dir);
    struct stat held {}, now{};
    if (fstat(fd.get(), &held) == 0 && stat(dir.c_str(), &now) == 0 &&
        held.st_ino == now.st_ino && held.st_dev == now.st_dev)
      return DirLock(std::move(fd));
  }
  return absl::UnavailableError("could not lock " + dir + ": it keeps being removed");
}

absl::StatusOr<std::shared_ptr<void>> LockPins(const std::string& bpffs) {
  RETURN_IF_ERROR(EnsureBpffs(bpffs));
  ASSIGN_OR_RETURN(DirLock lock, DirLock::Acquire(PinPaths(bpffs).top()));
  return std::static_pointer_cast<void>(std::make_shared<DirLock>(std::move(lock)));
}

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

uint64_t CurrentNetnsIno() { return NsInode("self", "net"); }

absl::Status PinFd(int fd, const std::string& path) {
  if (bpf_obj_pin(fd, path.c_str()) != 0) return ErrnoStatus(errno, "pin " + path);
  return absl::OkStatus();
}

absl::StatusOr<uint32_t> ProgId(int prog_fd) {
  if (prog_fd < 0)  // a program LoadOptions::programs left out: a bug of the caller's set
    return absl::InternalError("a BPF program this step needs was not loaded");
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  if (bpf_prog_get_info_by_fd(prog_fd, &info, &len) != 0) return ErrnoStatus(errno, "prog info");
  return info.id;
}

absl::StatusOr<ProgIdent> Ident(int prog_fd) {
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  if (bpf_prog_get_info_by_fd(prog_fd, &info, &len) != 0) return ErrnoStatus(errno, "prog info");
  ProgIdent id;
  id.id = info.id;
  for (uint8_t b : info.tag) absl::StrAppend(&id.tag, absl::Hex(b, absl::kZeroPad2));
  return id;
}

absl::StatusOr<ProgIdent> PinnedIdent(const std::string& path) {
  Fd fd(bpf_obj_get(path.c_str()));
  if (!fd.valid()) return ErrnoStatus(errno, "open " + path);
  return Ident(fd.get());
}

absl::Status RepinFd(int fd, const std::string& path) {
  // bpffs refuses '.' in a name: the temporary pin is <path>_new.
  const std::string tmp = path + CSF_PIN_TMP_SUFFIX;
  unlink(tmp.c_str());  // left by an earlier run that stopped between pin and rename
  RETURN_IF_ERROR(PinFd(fd, tmp));
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    unlink(tmp.c_str());
    return ErrnoStatus(e, absl::StrCat("rename ", tmp, " to ", path));
  }
  return absl::OkStatus();
}

absl::Status AbiMismatch(const std::string& where, uint32_t found) {
  return absl::FailedPreconditionError(absl::StrCat(
      where, " was made by a csumfix with pin ABI ", found, "; this csumfix has pin ABI ",
      CSF_ABI_VERSION, " (`csumfix -V`) and does not adopt, upgrade or detach another ABI's "
      "pins. Nothing was changed, and the programs attached there keep running. Detach them "
      "with the csumfix that made them (`csumfix detach --all`, and `csumfix policy flush` for "
      "its rules), then use this one"));
}

absl::StatusOr<csf_attach_state> ReadState(const std::string& dir) {
  std::string path = dir + "/" CSF_PIN_STATE;
  Fd fd(bpf_obj_get(path.c_str()));
  if (!fd.valid()) return ErrnoStatus(errno, "open " + path);
  uint32_t key = 0;
  csf_attach_state st{};
  if (bpf_map_lookup_elem(fd.get(), &key, &st) != 0) return ErrnoStatus(errno, "read " + path);
  if (st.abi_version != CSF_ABI_VERSION) return AbiMismatch(path, st.abi_version);
  return st;
}

namespace {

absl::StatusOr<Fd> StateMap(const csf_attach_state& st) {
  Fd fd(bpf_map_create(BPF_MAP_TYPE_ARRAY, "csf_state", sizeof(uint32_t), sizeof(st), 1, nullptr));
  if (!fd.valid()) return ErrnoStatus(errno, "create state map");
  uint32_t key = 0;
  if (bpf_map_update_elem(fd.get(), &key, &st, BPF_ANY) != 0)
    return ErrnoStatus(errno, "write state map");
  return fd;
}

}  // namespace

absl::Status WriteState(const std::string& dir, const csf_attach_state& st) {
  ASSIGN_OR_RETURN(Fd fd, StateMap(st));
  return PinFd(fd.get(), dir + "/" CSF_PIN_STATE);
}

absl::Status ReplaceState(const std::string& dir, const csf_attach_state& st) {
  ASSIGN_OR_RETURN(Fd fd, StateMap(st));
  return RepinFd(fd.get(), dir + "/" CSF_PIN_STATE);
}

absl::Status WriteMapsAbi(const PinPaths& paths) {
  const std::string path = paths.map(CSF_PIN_ABI);
  if (access(path.c_str(), F_OK) == 0) return absl::OkStatus();
  Fd fd(bpf_map_create(BPF_MAP_TYPE_ARRAY, CSF_PIN_ABI, sizeof(uint32_t), sizeof(uint32_t), 1,
                       nullptr));
  if (!fd.valid()) return ErrnoStatus(errno, "create " + path);
  const uint32_t key = 0, abi = CSF_ABI_VERSION;
  if (bpf_map_update_elem(fd.get(), &key, &abi, BPF_ANY) != 0)
    return ErrnoStatus(errno, "write " + path);
  return PinFd(fd.get(), path);
}

absl::Status CheckPinAbi(const PinPaths& paths) {
  const std::string marker = paths.map(CSF_PIN_ABI);
  if (Fd fd(bpf_obj_get(marker.c_str())); fd.valid()) {
    uint32_t key = 0, abi = 0;
    if (bpf_map_lookup_elem(fd.get(), &key, &abi) != 0) return ErrnoStatus(errno, "read " + marker);
    if (abi != CSF_ABI_VERSION) return AbiMismatch(paths.maps(), abi);
  } else if (errno != ENOENT) {
    return ErrnoStatus(errno, "open " + marker);
  }
  for (const std::string& name : paths.Interfaces()) {
    auto st = ReadState(paths.iface(name));
    if (!st.ok() && st.status().code() == absl::StatusCode::kFailedPrecondition) return st.status();
  }
  return absl::OkStatus();
}

PinnedMaps PinnedMaps::Open(const PinPaths& paths) {
  auto get = [&](const char* name) { return Fd(bpf_obj_get(paths.map(name).c_str())); };
  PinnedMaps m;
  m.ifcfg = get(CSF_MAP_IFCFG);
  m.cfg_gen = get(CSF_MAP_CFG_GEN);
  m.slots = get(CSF_MAP_SLOTS);
  m.legacy_counters = get(CSF_MAP_LEGACY_COUNTERS);
  if (m.legacy_counters.valid()) {
    // Read only if it is what 0.1 made: a per-CPU lookup writes value_size bytes per CPU.
    bpf_map_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(m.legacy_counters.get(), &info, &len) != 0 ||
        info.type != BPF_MAP_TYPE_PERCPU_HASH || info.key_size != sizeof(csf_if_key) ||
        info.value_size != sizeof(csf_counters))
      m.legacy_counters = bpf::Fd();
  }
  m.bounce = get(CSF_MAP_BOUNCE);
  m.flows = get(CSF_MAP_FLOWS);
  m.pol_store = get(CSF_MAP_POL_STORE);
  return m;
}

bool PinnedMaps::HasRules() const {
  uint32_t key;
  return pol_store.valid() && bpf_map_get_next_key(pol_store.get(), nullptr, &key) == 0;
}

absl::StatusOr<std::vector<std::string>> MigrateLegacyPins(const std::string& bpffs) {
  namespace fs = std::filesystem;
  std::vector<std::string> done;
  const PinPaths here(bpffs);
  // The 0.1 layout had its map set and interface directories right under v1/.
  auto legacy = [&] {
    std::vector<std::string> names;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(here.base(), ec))
      if (e.path().filename() != CSF_PIN_NETNS) names.push_back(e.path().filename());
    return names;
  };
  if (access(here.base().c_str(), F_OK) != 0 || legacy().empty()) return done;
  ASSIGN_OR_RETURN(std::shared_ptr<void> lock, LockPins(bpffs));
  const std::vector<std::string> names = legacy();  // again, under the lock
  const std::string old_maps = absl::StrCat(here.base(), "/", CSF_PIN_MAPS);
  RETURN_IF_ERROR(MakeDir(here.namespaces()));
  std::vector<uint64_t> dests;
  for (const std::string& name : names) {
    if (name == CSF_PIN_MAPS) continue;
    const std::string from = absl::StrCat(here.base(), "/", name);
    auto st = ReadState(from);
    const uint64_t ino = st.ok() && st->netns_ino != 0 ? st->netns_ino : here.netns_ino();
    const PinPaths to(bpffs, ino);
    RETURN_IF_ERROR(MakeDir(to.root()));
    if (access(to.iface(IfnameOfPin(name)).c_str(), F_OK) == 0) {
      done.push_back(absl::StrCat("left ", from, ": namespace ", ino,
                                  " has an attachment of that name already; `csumfix clean` "
                                  "there, then remove ", from));
      continue;
    }
    if (rename(from.c_str(), to.iface(IfnameOfPin(name)).c_str()) != 0)
      return ErrnoStatus(errno, absl::StrCat("move ", from, " to ", to.root()));
    done.push_back(absl::StrCat("moved ", IfnameOfPin(name), " to ", to.root()));
    if (std::find(dests.begin(), dests.end(), ino) == dests.end()) dests.push_back(ino);
  }
  if (access(old_maps.c_str(), F_OK) != 0) return done;
  if (dests.empty()) dests.push_back(here.netns_ino());  // only rules were left
  for (uint64_t ino : dests) {
    const PinPaths to(bpffs, ino);
    RETURN_IF_ERROR(MakeDir(to.root()));
    if (access(to.maps().c_str(), F_OK) == 0) {
      done.push_back(absl::StrCat("kept the maps of namespace ", ino, "; 0.1's went"));
      continue;
    }
    // Every namespace pins the same maps: the 0.1 programs there use them.
    RETURN_IF_ERROR(MakeDir(to.maps()));
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(old_maps, ec)) {
      Fd fd(bpf_obj_get(e.path().c_str()));
      if (!fd.valid()) return ErrnoStatus(errno, "open " + e.path().string());
      RETURN_IF_ERROR(PinFd(fd.get(), absl::StrCat(to.maps(), "/", std::string(e.path().filename()))));
    }
    done.push_back(absl::StrCat("pinned the shared maps in ", to.maps()));
  }
  std::error_code ec;
  fs::remove_all(old_maps, ec);
  if (ec) return absl::InternalError(absl::StrCat("remove ", old_maps, ": ", ec.message()));
  return done;
}

}  // namespace csumfix::control
