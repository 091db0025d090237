// csumfix serve: the long-running daemon. Prometheus metrics over HTTP (cpp-httplib; loopback
// unless told otherwise), the config file applied at start and on SIGHUP, attachments adopted from
// the pins at start and left in place at exit, interfaces deleted while attached cleaned up
// (rtnetlink RTM_DELLINK). Signals arrive through a signalfd; no work happens in a handler.
#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/rtnetlink.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "bpf/fd.h"
#include "cli/common.h"
#include "config/config.h"
#include "control/control.h"
#include "control/policy.h"
#include "control/probe.h"
#include "httplib.h"
#include "metrics/exposition.h"

namespace csumfix::cli {
namespace {

struct ServeOptions {
  std::string listen = "127.0.0.1:9786";
  std::string config;
  std::string state;
  bool check_config = false;
};

void Log(const std::string& msg) {
  std::fprintf(stderr, "csumfix serve: %s\n", msg.c_str());
  std::fflush(stderr);
}

// "HOST:PORT" or "[V6]:PORT".
absl::Status ParseListen(const std::string& s, std::string* host, int* port) {
  size_t colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0)
    return absl::InvalidArgumentError("--metrics-listen " + s +
                                      ": write HOST:PORT, e.g. 127.0.0.1:9786 or [::1]:9786");
  *host = s.substr(0, colon);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']')
    *host = host->substr(1, host->size() - 2);
  if (!absl::SimpleAtoi(s.substr(colon + 1), port) || *port < 1 || *port > 65535)
    return absl::InvalidArgumentError("--metrics-listen " + s + ": port must be 1-65535");
  in6_addr a6;
  in_addr a4;
  if (inet_pton(AF_INET, host->c_str(), &a4) != 1 && inet_pton(AF_INET6, host->c_str(), &a6) != 1)
    return absl::InvalidArgumentError("--metrics-listen " + s +
                                      ": the host must be an IP address (127.0.0.1, ::1, 0.0.0.0)");
  return absl::OkStatus();
}

bool IsLoopback(const std::string& host) {
  in_addr a4;
  if (inet_pton(AF_INET, host.c_str(), &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
  return host == "::1";
}

struct MnlCloser {
  void operator()(mnl_socket* s) const { mnl_socket_close(s); }
};

struct LinkEvent {
  uint32_t ifindex = 0;
  std::string name;
};

int CollectDelLink(const nlmsghdr* nlh, void* data) {
  if (nlh->nlmsg_type != RTM_DELLINK) return MNL_CB_OK;
  const auto* ifm = static_cast<const ifinfomsg*>(mnl_nlmsg_get_payload(nlh));
  LinkEvent ev;
  ev.ifindex = static_cast<uint32_t>(ifm->ifi_index);
  mnl_attr_parse(
      nlh, sizeof(*ifm),
      [](const nlattr* attr, void* d) -> int {
        if (mnl_attr_get_type(attr) == IFLA_IFNAME && mnl_attr_validate(attr, MNL_TYPE_STRING) >= 0)
          static_cast<LinkEvent*>(d)->name = mnl_attr_get_str(attr);
        return MNL_CB_OK;
      },
      &ev);
  static_cast<std::vector<LinkEvent>*>(data)->push_back(ev);
  return MNL_CB_OK;
}

class Daemon {
 public:
  Daemon(Globals& g, const ServeOptions& o) : g_(g), o_(o), c_(g.bpffs) {
    state_path_ = o.state.empty()
                      ? absl::StrCat("/run/csumfix/serve", g.netns.empty() ? "" : "-", g.netns,
                                     ".json")
                      : o.state;
  }

  int Run() {
    std::string host;
    int port = 0;
    if (auto s = ParseListen(o_.listen, &host, &port); !s.ok()) return Fail(s);

    // Signals first, so every thread started below inherits the mask.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    if (pthread_sigmask(SIG_BLOCK, &set, nullptr) != 0)
      return Fail(ErrnoStatus(errno, "serve: block signals"));
    bpf::Fd sfd(signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
    if (!sfd.valid()) return Fail(ErrnoStatus(errno, "serve: signalfd"));

    // The kernel's fill mechanism, for mechanism = "auto" and the info metric.
    probe_mech_ = CSF_MECH_MAX;
    if (auto p = control::Probe(); p.ok()) {
      probe_mech_ = p->mechanism;
      state_.probe_mechanism = std::string(control::MechanismName(p->mechanism));
      state_.kernel = p->kernel;
      if (!p->complete) Log("warning: kernel probe: " + p->reason);
    } else {
      Log(absl::StrCat("kernel probe failed (mechanism \"auto\" unavailable): ",
                       p.status().message()));
    }

    owned_ = config::Owned::LoadFile(state_path_, c_);
    // Adopt what is pinned: nothing is attached again; the metrics export it from now on.
    if (auto st = c_.Status(); st.ok()) {
      for (const auto& i : *st) {
        Log(absl::StrCat("found ", i.ifname, " (ifindex ", i.ifindex, ", ", i.hooks.size(),
                         " hooks", i.state == "ok" ? "" : ", " + i.state,
                         i.present ? "" : ", interface gone",
                         owned_.names.count(i.ifname) ? ", attached by serve" : "", ")"));
        if (!i.problem.empty()) Log("warning: " + i.ifname + ": " + i.problem);
        // Deleted while no serve ran: clean up as RTM_DELLINK would have. Only when that is
        // certain: its links report no device (whatever namespace it was in), or serve attached
        // it in this namespace. Pins are not per namespace; another one's attachment stays.
        if (i.state == "ok" && !i.present && (i.links_defunct || owned_.names.count(i.ifname)))
          Forget({i.ifindex, i.ifname});
      }
    } else {
      return Fail(Annotate(st.status(), "serve: read the pinned attachments"));
    }
    // Rules bound to an interface that is gone are only reported here: a rule records no
    // namespace, so one added in another namespace would look gone too.
    if (auto rules = control::ReadRules(g_.bpffs); rules.ok()) {
      for (const auto& r : *rules)
        if (control::RuleInterfaceGone(r))
          Log(absl::StrCat("warning: policy rule ", r.id, " (", control::DescribeRule(r),
                           ") names an interface that does not exist here; `csumfix policy del ",
                           r.id, "` if it was deleted"));
    }
    if (!o_.config.empty()) {
      state_.has_config = true;
      if (auto s = ApplyConfig(); !s.ok()) return Fail(s);
    }

    std::unique_ptr<mnl_socket, MnlCloser> nl(mnl_socket_open(NETLINK_ROUTE));
    if (!nl) return Fail(ErrnoStatus(errno, "serve: rtnetlink socket"));
    if (mnl_socket_bind(nl.get(), RTMGRP_LINK, MNL_SOCKET_AUTOPID) < 0)
      return Fail(ErrnoStatus(errno, "serve: subscribe to rtnetlink link events"));

    httplib::Server svr;
    svr.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(Scrape(), metrics::kContentType);
    });
    svr.Get("/", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("csumfix: metrics at /metrics\n", "text/plain");
    });
    if (!svr.bind_to_port(host, port))
      return Fail(ErrnoStatus(errno, absl::StrCat("serve: listen on ", o_.listen,
                                                  " (in use? choose another with "
                                                  "--metrics-listen HOST:PORT)")));
    std::thread http([&svr] { svr.listen_after_bind(); });
    if (!IsLoopback(host))
      Log(absl::StrCat("metrics exposed beyond loopback on ", host, " (--metrics-listen)"));
    Log(absl::StrCat("metrics on http://", o_.listen, "/metrics; ",
                     o_.config.empty() ? "no config file"
                                       : absl::StrCat("config ", o_.config, " (SIGHUP reloads)")));

    int rc = 0;
    std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
    for (bool run = true; run;) {
      pollfd fds[2] = {{sfd.get(), POLLIN, 0}, {mnl_socket_get_fd(nl.get()), POLLIN, 0}};
      if (poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        rc = Fail(ErrnoStatus(errno, "serve: poll"));
        break;
      }
      if (fds[0].revents & POLLIN) {
        signalfd_siginfo si;
        while (read(sfd.get(), &si, sizeof(si)) == sizeof(si)) {
          if (si.ssi_signo == SIGHUP) {
            if (o_.config.empty()) {
              Log("SIGHUP: no --config to reload");
            } else if (auto s = ApplyConfig(); !s.ok()) {
              Log(absl::StrCat("reload failed, running state unchanged: ", s.message()));
            }
          } else {
            Log(absl::StrCat("signal ", strsignal(static_cast<int>(si.ssi_signo)),
                             ": exiting; attachments stay pinned"));
            run = false;
          }
        }
      }
      if (fds[1].revents & POLLIN) {
        ssize_t n = mnl_socket_recvfrom(nl.get(), buf.data(), buf.size());
        std::vector<LinkEvent> gone;
        if (n < 0 && errno == ENOBUFS) {
          // Events were lost: check every interface this daemon attached.
          Log("rtnetlink overflow: checking attached interfaces");
          if (auto st = c_.Status(); st.ok())
            for (const auto& i : *st)
              if (!i.present && owned_.names.count(i.ifname)) gone.push_back({i.ifindex, i.ifname});
          gone.push_back({0, ""});  // ifindex 0: every rule whose interface is gone
        } else if (n > 0) {
          mnl_cb_run(buf.data(), n, 0, 0, CollectDelLink, &gone);
        }
        for (const auto& ev : gone) {
          if (ev.ifindex != 0) Forget(ev);
          DropRules(ev.ifindex);
        }
      }
    }
    svr.stop();
    http.join();
    return rc;
  }

 private:
  // Loads, validates and applies the config; on any error the running state is unchanged.
  absl::Status ApplyConfig() {
    absl::Status result;
    auto cfg = config::Load(o_.config);
    if (!cfg.ok()) {
      result = cfg.status();
    } else {
      std::lock_guard<std::mutex> apply(apply_mu_);
      auto rep = config::Apply(*cfg, c_, probe_mech_, &owned_);
      if (!rep.ok()) {
        result = rep.status();
      } else {
        Log(absl::StrCat("applied ", o_.config, ": ", rep->Summary()));
        for (const auto& w : rep->warnings) Log("warning: " + w);
      }
      if (auto s = owned_.Save(state_path_, c_); !s.ok()) Log("warning: " + std::string(s.message()));
    }
    std::lock_guard<std::mutex> l(mu_);
    if (result.ok()) {
      ++state_.config_reloads_ok;
      state_.config_last_ok = true;
      state_.config_last_ok_time =
          std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
              .count();
    } else {
      ++state_.config_reloads_failed;
      state_.config_last_ok = false;
    }
    return result;
  }

  // An interface went away: remove its pins, counters and bounce veths.
  void Forget(const LinkEvent& ev) {
    auto st = c_.Status();
    if (!st.ok()) {
      Log(absl::StrCat("interface ", ev.name, " deleted; status: ", st.status().message()));
      return;
    }
    for (const auto& i : *st) {
      if (i.ifindex != ev.ifindex || i.ifname != ev.name) continue;
      std::lock_guard<std::mutex> apply(apply_mu_);
      absl::Status s = c_.Detach(i.ifname);
      Log(absl::StrCat("interface ", i.ifname, " (ifindex ", i.ifindex,
                       ") was deleted: its csumfix state is removed",
                       s.ok() ? "" : absl::StrCat(" (", s.message(), ")")));
      owned_.names.erase(i.ifname);
      if (auto sv = owned_.Save(state_path_, c_); !sv.ok())
        Log("warning: " + std::string(sv.message()));
    }
  }

  // Rules bound to an interface that went away (ifindex; 0: any that is gone) match nothing
  // any more: remove them, in one switch, and say so.
  void DropRules(uint32_t ifindex) {
    auto stored = control::ReadRules(g_.bpffs);
    if (!stored.ok()) {
      Log(absl::StrCat("interface deleted; reading the policy rules: ", stored.status().message()));
      return;
    }
    auto stale = [ifindex](const csf_pol_rule& r) {
      return control::RuleInterfaceGone(r) && (ifindex == 0 || r.ifindex == ifindex);
    };
    if (std::none_of(stored->begin(), stored->end(), stale)) return;
    std::lock_guard<std::mutex> apply(apply_mu_);
    absl::StatusOr<std::vector<csf_pol_rule>> dropped;
    {
      auto p = control::Policy::Open(g_.bpffs);  // holds the pin lock while it lives
      dropped = p.ok() ? p->DeleteIf(stale) : p.status();
    }
    if (!dropped.ok()) {
      Log(absl::StrCat("interface deleted; removing its policy rules: ", dropped.status().message()));
      return;
    }
    for (const auto& r : *dropped)
      Log(absl::StrCat("policy rule ", r.id, " (", control::DescribeRule(r),
                       ") removed: its interface was deleted"));
    // The last rule gone and nothing attached: the shared maps go as after `policy flush`.
    if (auto lock = control::LockPins(g_.bpffs); lock.ok()) c_.Tidy();
  }

  std::string Scrape() {
    metrics::Snapshot snap;
    absl::Status s;
    // An attach in progress has its directory before its state map: read again shortly.
    for (int attempt = 0; attempt < 3; ++attempt) {
      snap = metrics::Snapshot();
      s = metrics::Collect(c_, &snap);
      if (s.ok()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(30));
    }
    std::lock_guard<std::mutex> l(mu_);
    if (!s.ok()) {
      ++state_.scrape_errors;
      Log(absl::StrCat("scrape: ", s.message()));
    }
    snap.daemon = state_;
    return metrics::Render(snap);
  }

  Globals& g_;
  const ServeOptions& o_;
  control::Controller c_;
  std::string state_path_;
  uint32_t probe_mech_ = CSF_MECH_MAX;
  config::Owned owned_;
  std::mutex apply_mu_;  // config applies and interface clean-ups, one at a time
  std::mutex mu_;        // state_
  metrics::DaemonState state_;
};

}  // namespace

void AddServeCommand(CLI::App& app, Globals& g) {
  auto o = std::make_shared<ServeOptions>();
  auto* serve = app.add_subcommand(
      "serve",
      "Run as a daemon: Prometheus metrics over HTTP, the config file applied at start and on "
      "SIGHUP, pinned attachments adopted; SIGTERM/SIGINT exit and leave them in place.");
  serve->add_option("--metrics-listen", o->listen,
                    "HOST:PORT of the metrics endpoint (/metrics); loopback unless you give "
                    "another address")
      ->capture_default_str();
  serve->add_option("--config", o->config, "TOML file of interfaces and policy rules")
      ->check(CLI::ExistingFile);
  serve->add_flag("--check-config", o->check_config,
                  "parse and validate --config, print what it holds, apply nothing");
  serve->add_option("--state", o->state,
                    "where serve records the interfaces it attached (default "
                    "/run/csumfix/serve[-NETNS].json)");
  serve->callback([&g, o] {
    if (o->check_config) {
      if (o->config.empty()) {
        g.rc = UsageFail("serve", "--check-config needs --config FILE");
        return;
      }
      auto cfg = config::Load(o->config);
      if (!cfg.ok()) {
        g.rc = Fail(cfg.status());
        return;
      }
      std::printf("%s: ok: %zu interfaces, %zu policy rules\n", o->config.c_str(),
                  cfg->interfaces.size(), cfg->rules.size());
      return;
    }
    g.rc = Daemon(g, *o).Run();
  });
}

}  // namespace csumfix::cli
