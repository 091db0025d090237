// Status helpers: Debian's Abseil 20220623 has no RETURN_IF_ERROR / ASSIGN_OR_RETURN.
#ifndef CSUMFIX_USERSPACE_BASE_STATUS_H_
#define CSUMFIX_USERSPACE_BASE_STATUS_H_

#include <cerrno>
#include <cstring>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace csumfix {

// Maps an errno value to the closest absl::StatusCode.
absl::StatusCode ErrnoToCode(int err);

// "<what>: <strerror> (E<NAME>)" with the code mapped from errno. `err` may be negative.
absl::Status ErrnoStatus(int err, absl::string_view what);

// Appends context ("while X") to a status message, keeping the code.
absl::Status Annotate(const absl::Status& s, absl::string_view context);

}  // namespace csumfix

#define CSF_CONCAT_INNER_(a, b) a##b
#define CSF_CONCAT_(a, b) CSF_CONCAT_INNER_(a, b)

#define RETURN_IF_ERROR(expr)                  \
  do {                                         \
    ::absl::Status csf_status_ = (expr);       \
    if (!csf_status_.ok()) return csf_status_; \
  } while (0)

#define CSF_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return tmp.status();              \
  lhs = std::move(tmp).value()

#define ASSIGN_OR_RETURN(lhs, expr) \
  CSF_ASSIGN_OR_RETURN_IMPL_(CSF_CONCAT_(csf_statusor_, __LINE__), lhs, expr)

#endif  // CSUMFIX_USERSPACE_BASE_STATUS_H_
