#include "base/version.h"

#include <bpf/libbpf.h>

#include "absl/strings/str_cat.h"
#include "csumfix/abi.h"
#include "csumfix_revision.h"
#include "csumfix_version.h"

namespace csumfix::base {

const BuildInfo& Build() {
  static const BuildInfo b{CSUMFIX_VERSION, CSUMFIX_REVISION,
                           absl::StrCat(libbpf_major_version(), ".", libbpf_minor_version())};
  return b;
}

std::string VersionText() {
  const BuildInfo& b = Build();
  return absl::StrCat("csumfix ", b.version, " (revision ", b.revision, ", libbpf ", b.libbpf,
                      ", pin ABI ", CSF_ABI_VERSION, ")");
}

}  // namespace csumfix::base
