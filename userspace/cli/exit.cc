// Outcome -> exit status (see cli/exit.h).
#include "cli/exit.h"

#include <cstdio>
#include <string>

namespace csumfix::cli {

namespace {
std::string& HintNetns() {
  static std::string ns;
  return ns;
}
}  // namespace

void SetNetnsForHints(const std::string& netns) { HintNetns() = netns; }

std::string WithNetns(std::string message) {
  const std::string& ns = HintNetns();
  if (ns.empty()) return message;
  const std::string from = "`csumfix ", to = "`csumfix -n " + ns + " ";
  for (size_t pos = message.find(from); pos != std::string::npos; pos = message.find(from, pos)) {
    if (message.compare(pos + from.size(), 3, "-n ") == 0) {
      pos += from.size();
      continue;
    }
    message.replace(pos, from.size(), to);
    pos += to.size();
  }
  return message;
}

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "csumfix: %s\n", WithNetns(std::string(s.message())).c_str());
  return kExitFailed;
}

int UsageFail(const std::string& command, const std::string& message) {
  std::fprintf(stderr, "csumfix: %s: %s\n%s\n", command.c_str(), WithNetns(message).c_str(),
               WithNetns("Run `csumfix " + command + " --help` for the usage, options and examples.")
                   .c_str());
  return kExitUsage;
}

int Finish(const Outcome& o, Warnings w) {
  if (!o.ok()) return Fail(o.status());
  if (o->clean()) return kExitDone;
  if (w == Warnings::kPrint)
    for (const std::string& warning : o->warnings)
      std::fprintf(stderr, "csumfix: %s\n", WithNetns(warning).c_str());
  return kExitWarnings;
}

}  // namespace csumfix::cli
