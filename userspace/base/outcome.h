// Typed outcomes. An operation either fails (absl::Status, with a message saying what is wrong
// and what to do) or is Done — possibly with warnings: what it could not do cleanly but did not
// stop it (a filter that is no longer csumfix's left alone, a probe that could not find out
// everything). Callers decide by type, never by message text; the CLI maps an Outcome to its
// exit code in one place (cli/exit.h: 0 done, 3 done with warnings, 1 failed).
#ifndef CSUMFIX_USERSPACE_BASE_OUTCOME_H_
#define CSUMFIX_USERSPACE_BASE_OUTCOME_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace csumfix {

struct Done {
  std::vector<std::string> warnings;

  bool clean() const { return warnings.empty(); }
  void Warn(std::string w) { warnings.push_back(std::move(w)); }
  void Merge(const Done& other) {
    warnings.insert(warnings.end(), other.warnings.begin(), other.warnings.end());
  }
};

using Outcome = absl::StatusOr<Done>;

}  // namespace csumfix

#endif  // CSUMFIX_USERSPACE_BASE_OUTCOME_H_
