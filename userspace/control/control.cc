#include "control/control.h"

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
#include <filesystem>
#include <functional>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "bpf/fd.h"
#include "bpf/loader.h"
#include "bpf/map.h"
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
    case CSF_HOOK_TC_INGRESS: return "tc_ingress";
    case CSF_HOOK_TC_EGRESS: return "tc_egress";
    default: return "xdp";
  }
}

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

absl::Status MakeDir(const std::string& path) {
  if (mkdir(path.c_str(), 0700) == 0 || errno == EEXIST) return absl::OkStatus();
  return ErrnoStatus(errno, "create " + path);
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
      struct stat held {}, now {};
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
  Fd fd(bpf_map_create(BPF_MAP_TYPE_ARRAY, "csf_state", sizeof(uint32_t), sizeof(st), 1,
                       nullptr));
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

// Removes one hook's attachment; only ours (checked by program id for cls_bpf filters).
void DetachHook(const std::string& dir, const csf_attach_state& st, uint32_t hook,
                std::vector<std::string>* warnings) {
  std::string base = absl::StrCat(dir, "/", PinBase(hook));
  if (st.mode[hook] == CSF_TC_MODE_CLSACT) {
    LIBBPF_OPTS(bpf_tc_hook, h, .ifindex = static_cast<int>(st.ifindex),
                .attach_point = TcPoint(hook));
    LIBBPF_OPTS(bpf_tc_opts, o, .handle = st.tc_handle, .priority = st.tc_priority);
    if (bpf_tc_query(&h, &o) == 0) {
      if (o.prog_id == st.prog_id[hook]) {
        LIBBPF_OPTS(bpf_tc_opts, d, .handle = st.tc_handle, .priority = st.tc_priority);
        if (bpf_tc_detach(&h, &d) != 0)
          warnings->push_back(absl::StrCat("detach cls_bpf filter on ", HookName(hook), ": ",
                                           strerror(errno)));
      } else {
        warnings->push_back(absl::StrCat("the ", HookName(hook),
                                         " filter now runs program ", o.prog_id,
                                         ", not csumfix's ", st.prog_id[hook], ": left alone"));
      }
    }
  } else {
    std::string link = base + "_link";
    Fd fd(bpf_obj_get(link.c_str()));
    if (fd.valid()) {
      // ENOLINK/ENOENT: the device is gone and the link already defunct.
      if (bpf_link_detach(fd.get()) != 0 && errno != ENOLINK && errno != ENOENT &&
          errno != EINVAL)
        warnings->push_back(absl::StrCat("detach link ", link, ": ", strerror(errno)));
    }
    unlink(link.c_str());
  }
  unlink((base + "_prog").c_str());
}

}  // namespace

absl::string_view HookName(uint32_t hook) {
  switch (hook) {
    case CSF_HOOK_TC_INGRESS: return "ingress";
    case CSF_HOOK_TC_EGRESS: return "egress";
    case CSF_HOOK_XDP: return "xdp";
  }
  return "?";
}

Controller::Controller(std::string bpffs) : bpffs_(std::move(bpffs)) {}

std::string Controller::root() const { return absl::StrCat(bpffs_, "/", CSF_PIN_ROOT); }

absl::Status Controller::Attach(const AttachRequest& req) {
  if (!req.ingress && !req.egress && !req.xdp)
    return absl::InvalidArgumentError("attach: no hook chosen (use --ingress, --egress, --both "
                                      "or --xdp)");
  if (req.action >= CSF_ACT_MAX)
    return absl::InvalidArgumentError(absl::StrCat("attach: unknown action ", req.action));
  if (req.ifname.empty() || req.ifname.size() >= IFNAMSIZ || req.ifname.find('/') != std::string::npos ||
      req.ifname == "." || req.ifname == ".." || req.ifname == CSF_PIN_MAPS)
    return absl::InvalidArgumentError(absl::StrCat("attach: \"", req.ifname,
                                                   "\" is not a valid interface name"));
  const uint32_t ifindex = if_nametoindex(req.ifname.c_str());
  if (ifindex == 0)
    return absl::NotFoundError(absl::StrCat("attach: no interface named ", req.ifname,
                                            " (see `ip link show`)"));

  RETURN_IF_ERROR(EnsureBpffs(bpffs_));
  const std::string top = absl::StrCat(bpffs_, "/csumfix");
  ASSIGN_OR_RETURN(DirLock lock, DirLock::Acquire(top));
  const std::string v1 = root();
  const std::string dir = absl::StrCat(v1, "/", req.ifname);
  RETURN_IF_ERROR(MakeDir(v1));
  if (access(dir.c_str(), F_OK) == 0)
    return absl::AlreadyExistsError(absl::StrCat(
        "attach: ", req.ifname, " is already attached; run `csumfix detach ", req.ifname,
        "` first (or `csumfix policy` to change what it does)"));

  const std::string maps_dir = absl::StrCat(v1, "/", CSF_PIN_MAPS);
  const bool maps_existed = access(maps_dir.c_str(), F_OK) == 0;
  auto remove_new_maps = [maps_dir, v1, maps_existed] {
    if (maps_existed) return;
    std::error_code ec;
    fs::remove_all(maps_dir, ec);
    rmdir(v1.c_str());
  };
  RETURN_IF_ERROR(MakeDir(maps_dir));
  bpf::LoadOptions lo;
  lo.pin_maps_dir = maps_dir;
  auto loaded = bpf::Programs::Load(lo);
  if (!loaded.ok()) {
    remove_new_maps();
    return loaded.status();
  }
  std::unique_ptr<bpf::Programs> progs = std::move(loaded).value();
  Rollback rb;  // declared after `progs`: runs while its map fds are still open
  rb.Add(remove_new_maps);

  RETURN_IF_ERROR(MakeDir(dir));
  rb.Add([dir] { rmdir(dir.c_str()); });

  csf_attach_state st{};
  st.abi_version = CSF_ABI_VERSION;
  st.ifindex = ifindex;
  st.tc_handle = kTcHandle;
  st.tc_priority = kTcPriority;

  auto ifcfg = progs->ifcfg();
  std::vector<uint32_t> hooks;
  if (req.ingress) hooks.push_back(CSF_HOOK_TC_INGRESS);
  if (req.egress) hooks.push_back(CSF_HOOK_TC_EGRESS);
  if (req.xdp) hooks.push_back(CSF_HOOK_XDP);

  for (uint32_t hook : hooks) {
    const csf_if_key key{ifindex, hook};
    RETURN_IF_ERROR(ifcfg.Update(key, csf_ifcfg{req.action, 0}));
    rb.Add([ifcfg, key]() mutable { (void)ifcfg.Delete(key); });
    // Counters start from zero for a new attachment.
    auto ctr = progs->counters();
    RETURN_IF_ERROR(ctr.Delete(key));

    bpf_program* prog = hook == CSF_HOOK_TC_INGRESS  ? progs->skel()->progs.csf_tc_ingress
                        : hook == CSF_HOOK_TC_EGRESS ? progs->skel()->progs.csf_tc_egress
                                                     : progs->skel()->progs.csf_xdp;
    const int prog_fd = bpf_program__fd(prog);
    ASSIGN_OR_RETURN(st.prog_id[hook], ProgId(prog_fd));
    const std::string base = absl::StrCat(dir, "/", PinBase(hook));
    const std::string where = absl::StrCat(HookName(hook), " of ", req.ifname);

    RETURN_IF_ERROR(PinFd(prog_fd, base + "_prog"));
    rb.Add([base] { unlink((base + "_prog").c_str()); });

    if (hook == CSF_HOOK_XDP) {
      bpf_link* link = bpf_program__attach_xdp(prog, static_cast<int>(ifindex));
      if (link == nullptr)
        return ErrnoStatus(errno, absl::StrCat("attach XDP to ", req.ifname,
                                               " (another XDP program there? see "
                                               "`ip link show ", req.ifname, "`)"));
      std::unique_ptr<bpf_link, int (*)(bpf_link*)> owned(link, bpf_link__destroy);
      RETURN_IF_ERROR(PinFd(bpf_link__fd(link), base + "_link"));
      rb.Add([base] {
        std::string p = base + "_link";
        Fd fd(bpf_obj_get(p.c_str()));
        if (fd.valid()) bpf_link_detach(fd.get());
        unlink(p.c_str());
      });
      st.mode[hook] = CSF_XDP_MODE_LINK;
      continue;
    }

    bool done = false;
    if (req.tc_api != TcApi::kClsact) {
      LIBBPF_OPTS(bpf_tcx_opts, to);
      bpf_link* link = bpf_program__attach_tcx(prog, static_cast<int>(ifindex), &to);
      if (link != nullptr) {
        std::unique_ptr<bpf_link, int (*)(bpf_link*)> owned(link, bpf_link__destroy);
        RETURN_IF_ERROR(PinFd(bpf_link__fd(link), base + "_link"));
        rb.Add([base] {
          std::string p = base + "_link";
          Fd fd(bpf_obj_get(p.c_str()));
          if (fd.valid()) bpf_link_detach(fd.get());
          unlink(p.c_str());
        });
        st.mode[hook] = CSF_TC_MODE_TCX;
        done = true;
      } else if (req.tc_api == TcApi::kTcx) {
        return ErrnoStatus(errno, absl::StrCat("attach tcx ", where,
                                               " (tcx needs Linux 6.6+; omit --tc-api to fall "
                                               "back to clsact)"));
      }
    }
    if (!done) {
      LIBBPF_OPTS(bpf_tc_hook, h, .ifindex = static_cast<int>(ifindex),
                  .attach_point = TcPoint(hook));
      int e = bpf_tc_hook_create(&h);
      if (e != 0 && e != -EEXIST) return ErrnoStatus(e, "create clsact qdisc on " + req.ifname);
      LIBBPF_OPTS(bpf_tc_opts, o, .prog_fd = prog_fd, .handle = kTcHandle,
                  .priority = kTcPriority);
      e = bpf_tc_attach(&h, &o);
      if (e != 0)
        return ErrnoStatus(e, absl::StrCat("attach cls_bpf ", where,
                                           " (a filter with csumfix's handle/priority 0xc5f "
                                           "exists? run `csumfix detach ",
                                           req.ifname, "`)"));
      rb.Add([ifindex, hook] {
        LIBBPF_OPTS(bpf_tc_hook, h2, .ifindex = static_cast<int>(ifindex),
                    .attach_point = TcPoint(hook));
        LIBBPF_OPTS(bpf_tc_opts, d, .handle = kTcHandle, .priority = kTcPriority);
        bpf_tc_detach(&h2, &d);
      });
      st.mode[hook] = CSF_TC_MODE_CLSACT;
    }
  }
  RETURN_IF_ERROR(WriteState(dir, st));
  rb.Commit();
  return absl::OkStatus();
}

absl::Status Controller::Detach(absl::string_view ifname) {
  const std::string top = absl::StrCat(bpffs_, "/csumfix");
  const std::string dir = absl::StrCat(root(), "/", ifname);
  if (ifname.empty() || ifname.find('/') != absl::string_view::npos || ifname == CSF_PIN_MAPS ||
      access(dir.c_str(), F_OK) != 0)
    return absl::NotFoundError(absl::StrCat("detach: ", ifname,
                                            " is not attached (see `csumfix status`)"));
  ASSIGN_OR_RETURN(DirLock lock, DirLock::Acquire(top));
  std::vector<std::string> warnings;
  auto st = ReadState(dir);
  if (st.ok()) {
    for (uint32_t hook = 0; hook < CSF_HOOK_MAX; ++hook) {
      if (st->mode[hook] == CSF_TC_MODE_NONE) continue;
      DetachHook(dir, *st, hook, &warnings);
      const std::string maps = absl::StrCat(root(), "/", CSF_PIN_MAPS);
      const csf_if_key key{st->ifindex, hook};
      for (const char* m : {"csf_ifcfg", "csf_counters"}) {
        Fd fd(bpf_obj_get(absl::StrCat(maps, "/", m).c_str()));
        if (fd.valid()) bpf_map_delete_elem(fd.get(), &key);
      }
    }
  } else {
    warnings.push_back(std::string(st.status().message()));
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("detach: remove ", dir, ": ", ec.message()));
  // Last one out removes the shared maps and the directories.
  bool others = false;
  for (const auto& e : fs::directory_iterator(root(), ec))
    if (e.path().filename() != CSF_PIN_MAPS) others = true;
  if (!others) {
    fs::remove_all(absl::StrCat(root(), "/", CSF_PIN_MAPS), ec);
    rmdir(root().c_str());
    rmdir(top.c_str());  // waiters notice (DirLock::Acquire)
  }
  if (!st.ok()) return Annotate(st.status(), absl::StrCat("detach ", ifname, " (pins removed)"));
  if (!warnings.empty()) {
    std::string msg = absl::StrCat("detach ", ifname, ": done with warnings:");
    for (const auto& w : warnings) absl::StrAppend(&msg, "\n  ", w);
    return absl::DataLossError(msg);
  }
  return absl::OkStatus();
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
    return absl::NotFoundError(absl::StrCat(ifname, " has no ", HookName(hook),
                                            " attachment (see `csumfix status`)"));
  Fd fd(bpf_obj_get(absl::StrCat(root(), "/", CSF_PIN_MAPS, "/csf_ifcfg").c_str()));
  if (!fd.valid()) return ErrnoStatus(errno, "open pinned csf_ifcfg");
  bpf::Map<csf_if_key, csf_ifcfg> m(fd.get(), "csf_ifcfg");
  return m.Update(csf_if_key{st.ifindex, hook}, csf_ifcfg{action, 0});
}

absl::StatusOr<std::vector<IfaceStatus>> Controller::Status() const {
  std::vector<IfaceStatus> out;
  std::error_code ec;
  if (access(root().c_str(), F_OK) != 0) return out;
  Fd cfg_fd(bpf_obj_get(absl::StrCat(root(), "/", CSF_PIN_MAPS, "/csf_ifcfg").c_str()));
  for (const auto& e : fs::directory_iterator(root(), ec)) {
    const std::string name = e.path().filename();
    if (name == CSF_PIN_MAPS) continue;
    IfaceStatus s;
    s.ifname = name;
    auto st = ReadState(e.path());
    if (!st.ok()) return Annotate(st.status(), "status of " + name);
    s.ifindex = st->ifindex;
    char buf[IF_NAMESIZE] = {};
    s.present = if_indextoname(st->ifindex, buf) != nullptr && name == buf;
    for (uint32_t hook = 0; hook < CSF_HOOK_MAX; ++hook) {
      if (st->mode[hook] == CSF_TC_MODE_NONE) continue;
      HookStatus h;
      h.hook = hook;
      h.mode = hook == CSF_HOOK_XDP ? "xdp" : st->mode[hook] == CSF_TC_MODE_TCX ? "tcx" : "clsact";
      h.prog_id = st->prog_id[hook];
      h.attached = s.present && HookAttached(e.path(), *st, hook);
      if (cfg_fd.valid()) {
        csf_if_key k{st->ifindex, hook};
        csf_ifcfg c{};
        if (bpf_map_lookup_elem(cfg_fd.get(), &k, &c) == 0) h.action = c.action;
      }
      s.hooks.push_back(h);
    }
    out.push_back(std::move(s));
  }
  std::sort(out.begin(), out.end(),
            [](const IfaceStatus& a, const IfaceStatus& b) { return a.ifname < b.ifname; });
  return out;
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
