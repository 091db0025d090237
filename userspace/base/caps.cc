// Least privilege (see caps.h and SECURITY.md).
#include "base/caps.h"

#include <linux/magic.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/statfs.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status.h"

namespace csumfix::base {
namespace {

std::string CapName(Cap c) {
  char* n = cap_to_name(static_cast<cap_value_t>(c));
  std::string s = n ? n : absl::StrCat("cap_", c);
  cap_free(n);
  return s;
}

bool BpffsMounted(const std::string& path) {
  struct statfs st {};
  return statfs(path.c_str(), &st) == 0 && st.f_type == BPF_FS_MAGIC;
}

std::string FirstLine(const std::string& path) {
  std::ifstream f(path);
  std::string line;
  std::getline(f, line);
  return line;
}

// True when `probe_cache` holds this boot's result (control/probe.cc keys it by boot_id).
bool ProbeCached(const std::string& probe_cache) {
  const std::string boot_id = FirstLine("/proc/sys/kernel/random/boot_id");
  if (boot_id.empty()) return false;
  std::ifstream f(probe_cache);
  const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return text.find(absl::StrCat("\"boot_id\":\"", boot_id, "\"")) != std::string::npos;
}

bool Held(cap_t caps, Cap c, cap_flag_t which) {
  cap_flag_value_t v = CAP_CLEAR;
  return cap_get_flag(caps, static_cast<cap_value_t>(c), which, &v) == 0 && v == CAP_SET;
}

}  // namespace

CapPlan PlanFor(std::string_view command, const std::string& bpffs,
                const std::string& probe_cache) {
  CapPlan p;
  // diagnose only reads a capture file through the reference: no capability at all.
  if (command == "diagnose") return p;
  // Every other command reads or changes BPF objects: CAP_BPF (bpf() map/prog/link commands, pins),
  // CAP_NET_ADMIN (tc and XDP program types, tcx/XDP links, BPF_PROG_QUERY, rtnetlink, ethtool),
  // CAP_PERFMON (the programs read skb fields with bpf_probe_read_kernel / bpf_cast_to_kern_ctx,
  // which the verifier allows only with it).
  p.required = {CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON};
  const bool mounts = !BpffsMounted(bpffs);
  const bool probes =
      command == "probe" ||
      ((command == "attach" || command == "serve") && !ProbeCached(probe_cache));
  if (mounts) {
    p.conditional.push_back(CAP_SYS_ADMIN);
    absl::StrAppend(&p.why, "cap_sys_admin: mount the bpf filesystem on ", bpffs, "\n");
  }
  if (probes) {
    if (!mounts) p.conditional.push_back(CAP_SYS_ADMIN);
    p.conditional.push_back(CAP_SYS_MODULE);
    absl::StrAppend(&p.why,
                    "cap_sys_admin: probe in a throwaway network namespace (unshare)\n"
                    "cap_sys_module: probe runs `modprobe -q act_csum`\n");
  }
  return p;
}

absl::Status ApplyPlan(std::string_view command, const CapPlan& plan) {
  cap_t now = cap_get_proc();
  if (now == nullptr) return ErrnoStatus(errno, "cap_get_proc");
  std::vector<Cap> missing;
  for (Cap c : plan.required)
    if (!Held(now, c, CAP_PERMITTED)) missing.push_back(c);
  std::vector<cap_value_t> keep;
  for (Cap c : plan.required)
    if (Held(now, c, CAP_PERMITTED)) keep.push_back(static_cast<cap_value_t>(c));
  for (Cap c : plan.conditional)
    if (Held(now, c, CAP_PERMITTED)) keep.push_back(static_cast<cap_value_t>(c));
  std::sort(keep.begin(), keep.end());
  keep.erase(std::unique(keep.begin(), keep.end()), keep.end());
  const bool can_drop_bounding = Held(now, CAP_SETPCAP, CAP_EFFECTIVE);
  cap_free(now);
  if (!missing.empty()) {
    std::vector<std::string> names;
    for (Cap c : missing) names.push_back(CapName(c));
    return absl::PermissionDeniedError(absl::StrCat(
        command.empty() ? std::string("this command") : std::string(command), " needs ",
        absl::StrJoin(names, ", "),
        " (csumfix needs cap_bpf, cap_net_admin and cap_perfmon; see SECURITY.md): run it as "
        "root, or grant them, e.g. `setpriv --inh-caps +bpf,+net_admin,+perfmon --ambient-caps "
        "+bpf,+net_admin,+perfmon csumfix ...` or systemd AmbientCapabilities="));
  }

  // Bounding set first (needs CAP_SETPCAP, which is dropped below): nothing executed later can
  // gain what is not kept, not even a root execve.
  if (can_drop_bounding) {
    for (cap_value_t c = 0; c <= CAP_LAST_CAP; ++c) {
      if (std::binary_search(keep.begin(), keep.end(), c)) continue;
      if (prctl(PR_CAPBSET_READ, c, 0, 0, 0) != 1) continue;
      if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0)
        return ErrnoStatus(errno, absl::StrCat("drop ", CapName(c), " from the bounding set"));
    }
  }
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
    return ErrnoStatus(errno, "clear the ambient capability set");
  cap_t want = cap_init();  // all clear
  if (want == nullptr) return ErrnoStatus(errno, "cap_init");
  if (!keep.empty() &&
      (cap_set_flag(want, CAP_PERMITTED, static_cast<int>(keep.size()), keep.data(), CAP_SET) != 0 ||
       cap_set_flag(want, CAP_EFFECTIVE, static_cast<int>(keep.size()), keep.data(), CAP_SET) != 0)) {
    const int e = errno;
    cap_free(want);
    return ErrnoStatus(e, "cap_set_flag");
  }
  const int r = cap_set_proc(want);
  const int e = errno;
  cap_free(want);
  if (r != 0) return ErrnoStatus(e, "cap_set_proc (keep only the capabilities csumfix needs)");
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return ErrnoStatus(errno, "PR_SET_NO_NEW_PRIVS");
  return absl::OkStatus();
}

std::string EffectiveCapNames() {
  cap_t now = cap_get_proc();
  if (now == nullptr) return "?";
  std::vector<std::string> names;
  for (cap_value_t c = 0; c <= CAP_LAST_CAP; ++c)
    if (Held(now, c, CAP_EFFECTIVE)) names.push_back(CapName(c));
  cap_free(now);
  return absl::StrJoin(names, ",");
}

}  // namespace csumfix::base
