#include "base/memlock.h"

#include <sys/resource.h>

namespace csumfix::base {

void RaiseMemlockLimit() {
  rlimit r{};
  if (getrlimit(RLIMIT_MEMLOCK, &r) != 0 || r.rlim_cur == RLIM_INFINITY) return;
  const rlimit all{RLIM_INFINITY, RLIM_INFINITY};
  if (setrlimit(RLIMIT_MEMLOCK, &all) == 0) return;
  r.rlim_cur = r.rlim_max;
  setrlimit(RLIMIT_MEMLOCK, &r);
}

}  // namespace csumfix::base
