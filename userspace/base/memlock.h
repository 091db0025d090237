// RLIMIT_MEMLOCK for BPF on kernels before 5.11, which charge maps and programs to it (newer
// kernels charge the memory cgroup and never look at it).
#ifndef CSUMFIX_USERSPACE_BASE_MEMLOCK_H_
#define CSUMFIX_USERSPACE_BASE_MEMLOCK_H_

#include <string>

namespace csumfix::base {

// Lifts RLIMIT_MEMLOCK as far as this process may: unlimited with CAP_SYS_RESOURCE, else the soft
// limit up to the hard one. Its usual 64 KiB refuses csumfix's maps on 5.10 ("Operation not
// permitted"). The CLI calls it before dropping capabilities, the BPF loader before each load.
void RaiseMemlockLimit();

// For a load that failed with `err` (errno or -errno): on a kernel that charges RLIMIT_MEMLOCK
// and a limit this process could not lift, a sentence (starting ". ") saying so and how to lift
// it; "" otherwise.
std::string MemlockHint(int err);

}  // namespace csumfix::base

#endif  // CSUMFIX_USERSPACE_BASE_MEMLOCK_H_
