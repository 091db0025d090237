// The `csumfix serve` daemon: Prometheus metrics over HTTP (cpp-httplib; loopback unless told
// otherwise), the config file applied at start and on SIGHUP, attachments adopted from the pins
// at start and left in place at exit. It follows the links of its namespace on one rtnetlink
// socket (control::LinkMonitor, no polling): a link the config selects that appears, joins a
// bridge or is renamed is attached, one that stops being selected is detached (only what serve
// attached), one deleted is cleaned up; after an overflow (ENOBUFS) it reads every link again.
// Signals arrive through a signalfd; no work happens in a handler. cli/cmd_serve.cc holds the
// command's options and runs it.
#ifndef CSUMFIX_USERSPACE_DAEMON_DAEMON_H_
#define CSUMFIX_USERSPACE_DAEMON_DAEMON_H_

#include <atomic>
#include <cstdint>
#include <map>
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
  std::string listen = "127.0.0.1:10786";  // HOST:PORT or [V6]:PORT of the HTTP endpoint
  std::string telemetry_path = "/metrics";  // where the exposition is served
  std::string web_config;  // --web.config.file: TLS and basic auth (daemon/webconfig.h), "" none
  std::string config;                     // the TOML file ("" none)
  std::string state;                      // what serve attached ("": the default,
                                          // /run/csumfix/serve[-NETNS].json)
  std::string bpffs = "/sys/fs/bpf";
  std::string netns;                      // the namespace it runs in ("" the current one)
  int netlink_rcvbuf = 0;                 // receive buffer of the link socket (0: the system's)
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
  // Link events: deleted interfaces are cleaned up (all that serve attached and that are gone,
  // on overflow); when a link appeared or its name, master or kind changed, Follow().
  void OnLinkEvents(const control::LinkMonitor::Batch& batch);
  // Applies the loaded config to the links as they are now, each interface on its own. False
  // when it could not read them (a link dump interrupted again and again by a burst of
  // changes): Run() then tries again shortly, so no link is left unattached for want of an event.
  bool Follow();
  // Re-reads every link into links_ (after an overflow, and at start).
  void ReadLinks();
  std::string Scrape();

  const Options o_;
  control::Controller c_;
  std::string state_path_;
  std::optional<control::ProbeResult> features_;  // the kernel probe (nullopt: it failed)
  config::Owned owned_;
  std::optional<config::Config> cfg_;          // the config last applied (nullopt: none)
  std::map<uint32_t, control::LinkInfo> links_;  // what the link events said, by ifindex
  bool follow_again_ = false;                    // the last Follow() could not read the links
  std::atomic<bool> ready_{false};  // the first reconcile is done (/-/ready, READY=1)
  std::mutex apply_mu_;  // config applies and interface clean-ups, one at a time
  std::mutex mu_;        // state_
  metrics::DaemonState state_;
};

}  // namespace csumfix::daemon

#endif  // CSUMFIX_USERSPACE_DAEMON_DAEMON_H_
