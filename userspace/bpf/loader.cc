#include "bpf/loader.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/random.h>

#include <cstdarg>
#include <cstdio>
#include <mutex>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "base/memlock.h"
#include "base/status.h"
#include "bpf/fd.h"
#include "csumfix.skel.h"

namespace csumfix::bpf {
namespace {

// libbpf prints verifier logs through a process-wide callback; collect them while loading.
std::mutex g_log_mu;
std::string* g_log = nullptr;

int CollectPrint(enum libbpf_print_level level, const char* fmt, va_list ap) {
  if (level == LIBBPF_DEBUG || g_log == nullptr) return 0;
  char buf[4096];
  int n = vsnprintf(buf, sizeof(buf), fmt, ap);
  if (n > 0) g_log->append(buf, std::min<size_t>(n, sizeof(buf) - 1));
  return n;
}

std::string Tail(const std::string& log, size_t lines) {
  std::vector<absl::string_view> all = absl::StrSplit(log, '\n', absl::SkipEmpty());
  size_t from = all.size() > lines ? all.size() - lines : 0;
  std::string out;
  for (size_t i = from; i < all.size(); ++i) absl::StrAppend(&out, "\n  ", all[i]);
  return out;
}

// The programs of LoadOptions::programs by their names in the object. A program not named here
// (one added to bpf/ without a bit) is always loaded.
constexpr std::pair<const char*, ProgramSet> kProgramBits[] = {
    {"csf_tc_ingress", kProgTcIngress},
    {"csf_tc_egress", kProgTcEgress},
    {"csf_xdp", kProgXdp},
    {"csf_bounce_return", kProgBounceReturn},
    {"csf_act_select_ingress", kProgActSelectIngress},
    {"csf_act_select_egress", kProgActSelectEgress},
    {"csf_probe_tail", kProgProbeTail},
};

ProgramSet BitOf(absl::string_view name) {
  for (const auto& [n, bit] : kProgramBits)
    if (name == n) return bit;
  return 0;
}

}  // namespace

ProgramSet HookProgram(uint32_t hook) {
  return hook == CSF_HOOK_TC_INGRESS  ? kProgTcIngress
         : hook == CSF_HOOK_TC_EGRESS ? kProgTcEgress
                                      : kProgXdp;
}

ProgramSet ActSelectProgram(uint32_t hook) {
  return hook == CSF_HOOK_TC_INGRESS  ? kProgActSelectIngress
         : hook == CSF_HOOK_TC_EGRESS ? kProgActSelectEgress
                                      : 0;
}

const char* ObjectName(Object o) {
  switch (o) {
    case Object::kMain: return "main";
    case Object::kCompat: return "compat";
    default: return "auto";
  }
}

Object ProbeObject() {
  static const Object probed = [] {
    // 1: the kernel knows the helper for that program type; 0: it does not; < 0: the probe
    // itself failed (no privilege): assume the main object, whose load then says why.
    libbpf_print_fn_t old = libbpf_set_print(nullptr);
    const int loop = libbpf_probe_bpf_helper(BPF_PROG_TYPE_SCHED_CLS, BPF_FUNC_loop, nullptr);
    const int xdp = libbpf_probe_bpf_helper(BPF_PROG_TYPE_XDP, BPF_FUNC_xdp_load_bytes, nullptr);
    libbpf_set_print(old);
    return loop == 0 || xdp == 0 ? Object::kCompat : Object::kMain;
  }();
  return probed;
}

absl::StatusOr<std::unique_ptr<Programs>> Programs::Load(const LoadOptions& opts) {
  base::RaiseMemlockLimit();  // pre-5.11 kernels charge the maps to RLIMIT_MEMLOCK
  const Object object = opts.object == Object::kAuto ? ProbeObject() : opts.object;
  std::lock_guard lock(g_log_mu);
  std::string log;
  g_log = &log;
  libbpf_print_fn_t old = libbpf_set_print(CollectPrint);
  auto restore = [&] {
    libbpf_set_print(old);
    g_log = nullptr;
  };

  csumfix_bpf* skel = object == Object::kCompat ? OpenCompatSkeleton() : OpenSkeleton();
  if (skel == nullptr) {
    int e = errno;
    restore();
    return ErrnoStatus(e, absl::StrCat("open csumfix BPF object", Tail(log, 10)));
  }
  if (!opts.pin_maps_dir.empty()) {
    for (const char* name : CSF_PINNED_MAPS) {
      bpf_map* m = bpf_object__find_map_by_name(skel->obj, name);
      if (m == nullptr) {
        restore();
        csumfix_bpf__destroy(skel);
        return absl::InternalError(absl::StrCat("the BPF object has no map ", name,
                                                " (abi.h CSF_PINNED_MAPS and bpf/ disagree)"));
      }
      std::string path = absl::StrCat(opts.pin_maps_dir, "/", bpf_map__name(m));
      if (int e = bpf_map__set_pin_path(m, path.c_str()); e != 0) {
        restore();
        csumfix_bpf__destroy(skel);
        return ErrnoStatus(e, "set pin path " + path);
      }
    }
  }
  ProgramSet loaded = 0;
  {
    bpf_program* prog;
    bpf_object__for_each_program(prog, skel->obj) {
      const ProgramSet bit = BitOf(bpf_program__name(prog));
      if (bit != 0 && (opts.programs & bit) == 0) {
        bpf_program__set_autoload(prog, false);
      } else {
        loaded |= bit;
      }
    }
  }
  std::vector<std::pair<bpf_program*, std::unique_ptr<char[]>>> logs;
  if (opts.verifier_stats) {
    bpf_program* prog;
    bpf_object__for_each_program(prog, skel->obj) {
      if (!bpf_program__autoload(prog)) continue;
      auto buf = std::make_unique<char[]>(4096);
      buf[0] = 0;
      bpf_program__set_log_level(prog, 4);  // BPF_LOG_STATS
      bpf_program__set_log_buf(prog, buf.get(), 4096);
      logs.emplace_back(prog, std::move(buf));
    }
  }
  int err = csumfix_bpf__load(skel);
  if (opts.stats != nullptr) {
    for (auto& [prog, buf] : logs) {
      std::string line;
      for (absl::string_view l : absl::StrSplit(buf.get(), '\n'))
        if (absl::StartsWith(l, "processed ")) line = std::string(l);
      opts.stats->push_back(absl::StrCat(bpf_program__name(prog), ": ", line));
    }
  }
  restore();
  if (err != 0) {
    csumfix_bpf__destroy(skel);
    return ErrnoStatus(err, absl::StrCat("load csumfix BPF programs (", ObjectName(object),
                                         " object; verifier said:",
                                         opts.full_verifier_log ? "\n" + log : Tail(log, 12),
                                         ")", base::MemlockHint(err)));
  }
  std::unique_ptr<Programs> progs(new Programs(skel, object, loaded));
  // A csf_cfg_gen of 0 ("none written"), as libbpf makes it, e.g. beside the csf_ifcfg entries
  // pinned by csumfix 0.1: give it a value, so that slots copy their entries once and stop
  // reading csf_ifcfg for every packet (abi.h struct csf_cfg_gen).
  const uint32_t key = 0;
  csf_cfg_gen g{};
  if (bpf_map_lookup_elem(bpf_map__fd(skel->maps.csf_cfg_gen), &key, &g) != 0)
    return ErrnoStatus(errno, "read map " CSF_MAP_CFG_GEN);
  if (g.gen == 0) RETURN_IF_ERROR(progs->ifcfg().NewGeneration());
  return progs;
}

Programs::~Programs() { csumfix_bpf__destroy(skel_); }

int Programs::tc_ingress_fd() const { return bpf_program__fd(skel_->progs.csf_tc_ingress); }
int Programs::tc_egress_fd() const { return bpf_program__fd(skel_->progs.csf_tc_egress); }
int Programs::xdp_fd() const { return bpf_program__fd(skel_->progs.csf_xdp); }

int Programs::prog_fd(uint32_t hook) const {
  switch (hook) {
    case CSF_HOOK_TC_INGRESS: return tc_ingress_fd();
    case CSF_HOOK_TC_EGRESS: return tc_egress_fd();
    case CSF_HOOK_XDP: return xdp_fd();
  }
  return -1;
}

IfcfgMap Programs::ifcfg() const {
  return {bpf_map__fd(skel_->maps.csf_ifcfg), bpf_map__fd(skel_->maps.csf_cfg_gen)};
}
Map<uint32_t, csf_bounce_ret> Programs::bounce() const {
  return {bpf_map__fd(skel_->maps.csf_bounce), CSF_MAP_BOUNCE};
}
SlotCounters Programs::counters() const {
  return {bpf_map__fd(skel_->maps.csf_slots), CSF_MAP_SLOTS};
}

// A change whose generation could not be written is undone: no CPU may keep the old entry while
// others take the new one.
absl::Status IfcfgMap::Update(const csf_if_key& key, const csf_ifcfg& value) {
  ASSIGN_OR_RETURN(std::optional<csf_ifcfg> before, map_.Lookup(key));
  RETURN_IF_ERROR(map_.Update(key, value));
  absl::Status s = NewGeneration();
  if (!s.ok()) (void)(before ? map_.Update(key, *before) : map_.Delete(key));
  return s;
}

absl::Status IfcfgMap::Delete(const csf_if_key& key) {
  ASSIGN_OR_RETURN(std::optional<csf_ifcfg> before, map_.Lookup(key));
  RETURN_IF_ERROR(map_.Delete(key));
  absl::Status s = NewGeneration();
  if (!s.ok() && before) (void)map_.Update(key, *before);
  return s;
}

absl::Status IfcfgMap::NewGeneration() {
  if (gen_fd_ < 0) return absl::OkStatus();
  csf_cfg_gen g{};
  // Random, non-zero: concurrent writers (the CLI beside serve) need no lock, since a value is
  // never written twice (0 is "never copied" in a slot).
  while (g.gen == 0) {
    const ssize_t n = getrandom(&g.gen, sizeof(g.gen), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n != static_cast<ssize_t>(sizeof(g.gen)))
      return ErrnoStatus(n < 0 ? errno : EIO, "getrandom for " CSF_MAP_CFG_GEN);
  }
  const uint32_t key = 0;
  if (bpf_map_update_elem(gen_fd_, &key, &g, BPF_ANY) != 0)
    return ErrnoStatus(errno, "update of map " CSF_MAP_CFG_GEN);
  return absl::OkStatus();
}

absl::StatusOr<TestRunResult> TestRun(int prog_fd, std::span<const uint8_t> frame,
                                      const TestRunOptions& o) {
  TestRunResult r;
  r.data_out.resize(frame.size() + 256);
  __sk_buff skb{};
  skb.gso_size = o.gso_size;
  skb.gso_segs = o.gso_size ? 2 : 0;
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(),
              .data_out = r.data_out.data(),
              .data_size_in = static_cast<__u32>(frame.size()),
              .data_size_out = static_cast<__u32>(r.data_out.size()),
              .repeat = static_cast<int>(o.repeat));
  if (o.gso_size) {
    opts.ctx_in = &skb;
    opts.ctx_size_in = sizeof(skb);
  }
  if (bpf_prog_test_run_opts(prog_fd, &opts) != 0) {
    return ErrnoStatus(errno, absl::StrCat("BPF_PROG_TEST_RUN on a ", frame.size(),
                                           "-byte frame"));
  }
  r.retval = opts.retval;
  r.data_out.resize(opts.data_size_out);
  r.duration_ns = opts.duration;
  return r;
}

namespace {

// The id of the map behind `fd` (0 when it cannot be read).
uint32_t MapId(int fd) {
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  return fd >= 0 && bpf_obj_get_info_by_fd(fd, &info, &len) == 0 ? info.id : 0;
}

}  // namespace

bool Programs::UsesMapsPinnedAt(const std::string& dir) const {
  for (const char* name : CSF_PINNED_MAPS) {
    const bpf_map* m = bpf_object__find_map_by_name(skel_->obj, name);
    if (m == nullptr) return false;
    const Fd pinned(bpf_obj_get(absl::StrCat(dir, "/", name).c_str()));
    const uint32_t id = MapId(pinned.get());
    if (id == 0 || id != MapId(bpf_map__fd(m))) return false;
  }
  return true;
}

}  // namespace csumfix::bpf
