// Outcome -> exit status (see cli/exit.h).
#include "cli/exit.h"

#include <cstdio>
#include <string>

namespace csumfix::cli {

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "csumfix: %s\n", std::string(s.message()).c_str());
  return kExitFailed;
}

int UsageFail(const std::string& command, const std::string& message) {
  std::fprintf(stderr,
               "csumfix: %s: %s\nRun `csumfix %s --help` for the usage, options and examples.\n",
               command.c_str(), message.c_str(), command.c_str());
  return kExitUsage;
}

int Finish(const Outcome& o, Warnings w) {
  if (!o.ok()) return Fail(o.status());
  if (o->clean()) return kExitDone;
  if (w == Warnings::kPrint)
    for (const std::string& warning : o->warnings)
      std::fprintf(stderr, "csumfix: %s\n", warning.c_str());
  return kExitWarnings;
}

}  // namespace csumfix::cli
