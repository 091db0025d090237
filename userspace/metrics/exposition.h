// Prometheus text exposition (format 0.0.4) of csumfix's counters and attachments. The maps are
// read at scrape time (Collect), per-CPU values summed by the control plane; Render is a pure
// function of a Snapshot so it is testable without HTTP or BPF.
#ifndef CSUMFIX_USERSPACE_METRICS_EXPOSITION_H_
#define CSUMFIX_USERSPACE_METRICS_EXPOSITION_H_

#include <cstdint>
#include <optional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "control/control.h"

namespace csumfix::metrics {

// What the daemon adds about itself.
struct DaemonState {
  uint64_t scrape_errors = 0;        // scrapes whose map reads failed (rendered anyway)
  bool has_config = false;           // serve --config given
  uint64_t config_reloads_ok = 0;    // successful applies of the config file
  uint64_t config_reloads_failed = 0;
  bool config_last_ok = false;
  double config_last_ok_time = 0;    // unix seconds of the last successful apply
  uint64_t follow_attached = 0;      // interfaces attached because they appeared or changed
  uint64_t follow_failed = 0;        // ... whose attach failed
  uint64_t link_resyncs = 0;         // full link dumps after an rtnetlink overflow (ENOBUFS)
  uint64_t waiting = 0;              // named interfaces of the config that do not exist now
  std::string probe_mechanism;       // what `csumfix probe` chose on this kernel ("" unknown)
  std::string kernel;                // uname -r
};

struct Snapshot {
  std::vector<control::IfaceStatus> ifaces;   // serve's own namespace
  std::vector<control::CounterRow> counters;  // every namespace's
  std::map<uint64_t, std::string> netns_names;  // inode -> /run/netns name ("" none)
  DaemonState daemon;
};

// Reads status and counters from the pins now. A failure leaves what was read and returns the
// error (the caller counts a scrape error and still renders).
absl::Status Collect(const control::Controller& c, Snapshot* out);

// The exposition text: HELP/TYPE per family, one sample per line, label values escaped.
std::string Render(const Snapshot& s);

// Escapes a label value: backslash, double quote and newline (the only three the format needs).
std::string EscapeLabelValue(absl::string_view v);

// Content-Type of the text format.
inline constexpr const char kContentType[] = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace csumfix::metrics

#endif  // CSUMFIX_USERSPACE_METRICS_EXPOSITION_H_
