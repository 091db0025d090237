// The `csumfix serve` daemon: Prometheus metrics over HTTP (cpp-httplib; loopback unless told
// otherwise), the config file applied at start and on SIGHUP, attachments adopted from the pins
// at start and left in place at exit, interfaces deleted while attached cleaned up (rtnetlink
// RTM_DELLINK, control::LinkMonitor). Signals arrive through a signalfd; no work happens in a
// handler. cli/cmd_serve.cc holds the command's options and runs it.
#ifndef CSUMFIX_USERSPACE_DAEMON_DAEMON_H_
#define CSUMFIX_USERSPACE_DAEMON_DAEMON_H_

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "config/config.h"
#include "control/control.h"
#include "control/netlink.h"
#include "control/probe.h"
#include "metrics/exposition.h"

namespace csumfix::daemon {

struct Options {
  std::string listen = "127.0.0.1:9786";  // HOST:PORT or [V6]:PORT of /metrics
  std::string config;                     // the TOML file ("" none)
  std::string state;                      // what serve attached ("": the default,
                                          // /run/csumfix/serve[-NETNS].json)
  std::string bpffs = "/sys/fs/bpf";
  std::string netns;                      // the namespace it runs in ("" the current one)
};

// "HOST:PORT" or "[V6]:PORT", the host an IP address.
absl::Status ParseListen(const std::string& s, std::string* host, int* port);

class Daemon {
 public:
  explicit Daemon(Options o);
  // Runs until SIGTERM or SIGINT (OK), or fails to start or to wait for events.
  absl::Status Run();

 private:
  // Loads, validates and applies the config; on any error the running state is unchanged.
  absl::Status ApplyConfig();
  // Adopts what is pinned at start, cleaning up what was deleted while no serve ran.
  absl::Status AdoptPinned();
  // An interface went away: remove its pins, counters and bounce veths.
  void Forget(const control::LinkEvent& ev);
  // Rules bound to an interface that went away (ifindex; 0: any that is gone) match nothing
  // any more: remove them, in one switch, and say so.
  void DropRules(uint32_t ifindex);
  // Link events: deleted interfaces (all that serve attached and that are gone, on overflow).
  void OnLinkEvents(const control::LinkMonitor::Batch& batch);
  std::string Scrape();

  const Options o_;
  control::Controller c_;
  std::string state_path_;
  std::optional<control::ProbeResult> features_;  // the kernel probe (nullopt: it failed)
  config::Owned owned_;
  std::mutex apply_mu_;  // config applies and interface clean-ups, one at a time
  std::mutex mu_;        // state_
  metrics::DaemonState state_;
};

}  // namespace csumfix::daemon

#endif  // CSUMFIX_USERSPACE_DAEMON_DAEMON_H_
