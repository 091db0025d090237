#include "base/status.h"

namespace csumfix {

absl::StatusCode ErrnoToCode(int err) {
  switch (err < 0 ? -err : err) {
    case 0: return absl::StatusCode::kOk;
    case ENOENT: case ENODEV: case ENXIO: case ESRCH: return absl::StatusCode::kNotFound;
    case EEXIST: case EBUSY: return absl::StatusCode::kAlreadyExists;
    case EPERM: case EACCES: return absl::StatusCode::kPermissionDenied;
    case EINVAL: case E2BIG: case ERANGE: return absl::StatusCode::kInvalidArgument;
    case ENOSPC: case ENOMEM: return absl::StatusCode::kResourceExhausted;
    case EOPNOTSUPP: case ENOSYS:  // ENOTSUP == EOPNOTSUPP on Linux
      return absl::StatusCode::kUnimplemented;
    case EAGAIN: case EINTR: return absl::StatusCode::kUnavailable;
    default: return absl::StatusCode::kInternal;
  }
}

absl::Status ErrnoStatus(int err, absl::string_view what) {
  int e = err < 0 ? -err : err;
  const char* name = strerrorname_np(e);
  return absl::Status(ErrnoToCode(e),
                      absl::StrCat(what, ": ", std::strerror(e), " (", name ? name : "?", ")"));
}

absl::Status Annotate(const absl::Status& s, absl::string_view context) {
  if (s.ok()) return s;
  return absl::Status(s.code(), absl::StrCat(context, ": ", s.message()));
}

}  // namespace csumfix
