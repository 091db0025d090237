// What this binary is: csumfix's version, the git revision it was built from, and the libbpf it
// runs with. `csumfix --version` prints them; serve exports them as csumfix_build_info.
#ifndef CSUMFIX_USERSPACE_BASE_VERSION_H_
#define CSUMFIX_USERSPACE_BASE_VERSION_H_

#include <string>

namespace csumfix::base {

struct BuildInfo {
  std::string version;   // the project's version, e.g. "0.2.0"
  std::string revision;  // git revision, "-dirty" with local changes, "unknown" outside git
  std::string libbpf;    // the libbpf loaded at run time, e.g. "1.4"
};

const BuildInfo& Build();

// "csumfix 0.2.0 (revision 1b99f82abcde, libbpf 1.4, pin ABI 1)".
std::string VersionText();

}  // namespace csumfix::base

#endif  // CSUMFIX_USERSPACE_BASE_VERSION_H_
