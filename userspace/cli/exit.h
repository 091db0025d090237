// The one place where what a command did becomes the process exit status, with its message on
// stderr: 0 done, 1 failed, 2 usage error (CLI11's, or UsageFail), 3 done with warnings.
// Commands return a csumfix::Outcome (base/outcome.h) and never pick a number themselves.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "base/outcome.h"

namespace csumfix::cli {

inline constexpr int kExitDone = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitWarnings = 3;

// The network namespace named by -n: the commands that messages suggest ("`csumfix detach
// tap0`") then carry it ("`csumfix -n NS detach tap0`"), so they can be pasted as they are.
void SetNetnsForHints(const std::string& netns);
// `message` with -n NS added to every `csumfix ...` it suggests that has none (see above).
std::string WithNetns(std::string message);

// Prints "csumfix: <message>" to stderr (WithNetns); returns kExitFailed.
int Fail(const absl::Status& s);

// A usage mistake the parser cannot see (e.g. neither IFACE nor --all): prints
// "csumfix: <command>: <message>" and where the help is; returns kExitUsage, as the parser's
// errors.
int UsageFail(const std::string& command, const std::string& message);

// Whether Finish prints a Done's warnings: kPrint, each as "csumfix: <warning>" on stderr;
// kInOutput when the command's own output already states them (diagnose's verdict).
enum class Warnings { kPrint, kInOutput };

// Failed: Fail(status), kExitFailed. Done with warnings: kExitWarnings (the warnings printed per
// `w`). Done clean: kExitDone.
int Finish(const Outcome& o, Warnings w = Warnings::kPrint);

}  // namespace csumfix::cli
