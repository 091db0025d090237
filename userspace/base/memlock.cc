#include "base/memlock.h"

#include <sys/resource.h>
#include <sys/utsname.h>

#include <cstdio>
#include <cerrno>
#include <string>

namespace csumfix::base {

void RaiseMemlockLimit() {
  rlimit r{};
  if (getrlimit(RLIMIT_MEMLOCK, &r) != 0 || r.rlim_cur == RLIM_INFINITY) return;
  const rlimit all{RLIM_INFINITY, RLIM_INFINITY};
  if (setrlimit(RLIMIT_MEMLOCK, &all) == 0) return;
  r.rlim_cur = r.rlim_max;
  setrlimit(RLIMIT_MEMLOCK, &r);
}

namespace {

// Whether this kernel charges BPF memory to RLIMIT_MEMLOCK: before 5.11 (memcg accounting came
// with "bpf: switch to memcg-based memory accounting"). Only for the wording of an error.
bool KernelChargesMemlock() {
  utsname u{};
  int major = 0, minor = 0;
  if (uname(&u) != 0 || std::sscanf(u.release, "%d.%d", &major, &minor) != 2) return false;
  return major < 5 || (major == 5 && minor < 11);
}

}  // namespace

std::string MemlockHint(int err) {
  rlimit r{};
  if ((err != -EPERM && err != EPERM) || !KernelChargesMemlock() ||
      getrlimit(RLIMIT_MEMLOCK, &r) != 0 || r.rlim_cur == RLIM_INFINITY)
    return "";
  return ". Kernels before 5.11 charge BPF maps to the locked-memory limit (RLIMIT_MEMLOCK, " +
         std::to_string(r.rlim_cur / 1024) +
         " KiB for this process), which csumfix cannot raise without CAP_SYS_RESOURCE: start "
         "it with the limit lifted (`ulimit -l unlimited` as root, systemd LimitMEMLOCK=infinity, "
         "a container runtime's memlock ulimit; docs/KERNELS.md) or with CAP_SYS_RESOURCE";
}

}  // namespace csumfix::base
