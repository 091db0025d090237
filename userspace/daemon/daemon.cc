#include "daemon/daemon.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status.h"
#include "bpf/fd.h"
#include "control/names.h"
#include "config/select.h"
#include "control/policy.h"
#include "httplib.h"

namespace csumfix::daemon {
namespace {

void Log(const std::string& msg) {
  std::fprintf(stderr, "csumfix serve: %s\n", msg.c_str());
  std::fflush(stderr);
}

bool IsLoopback(const std::string& host) {
  in_addr a4;
  if (inet_pton(AF_INET, host.c_str(), &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
  return host == "::1";
}

}  // namespace

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

Daemon::Daemon(Options o) : o_(std::move(o)), c_(o_.bpffs) {
  c_.KeepProgramsLoaded(true);  // interfaces come and go: verify the programs once
  state_path_ = o_.state.empty()
                    ? absl::StrCat("/run/csumfix/serve", o_.netns.empty() ? "" : "-", o_.netns,
                                   ".json")
                    : o_.state;
}

absl::Status Daemon::Run() {
  std::string host;
  int port = 0;
  RETURN_IF_ERROR(ParseListen(o_.listen, &host, &port));

  // Signals first, so every thread started below inherits the mask.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  if (pthread_sigmask(SIG_BLOCK, &set, nullptr) != 0)
    return ErrnoStatus(errno, "serve: block signals");
  bpf::Fd sfd(signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!sfd.valid()) return ErrnoStatus(errno, "serve: signalfd");

  // The kernel's fill mechanism, for mechanism = "auto" and the info metric.
  features_.reset();
  if (auto p = control::Probe(); p.ok()) {
    features_ = *p;
    state_.probe_mechanism = std::string(names::MechanismName(p->mechanism));
    state_.kernel = p->kernel;
    if (!p->complete) Log("warning: kernel probe: " + p->reason);
  } else {
    Log(absl::StrCat("kernel probe failed (mechanism \"auto\" unavailable): ",
                     p.status().message()));
  }

  // Subscribed before anything is read, so no link that appears from now on is missed.
  absl::StatusOr<control::LinkMonitor> links = control::LinkMonitor::Open(o_.netlink_rcvbuf);
  if (!links.ok()) return Annotate(links.status(), "serve");
  ReadLinks();
  RETURN_IF_ERROR(AdoptPinned());
  if (!o_.config.empty()) {
    state_.has_config = true;
    RETURN_IF_ERROR(ApplyConfig());
  }

  httplib::Server svr;
  svr.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(Scrape(), metrics::kContentType);
  });
  svr.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("csumfix: metrics at /metrics\n", "text/plain");
  });
  if (!svr.bind_to_port(host, port))
    return ErrnoStatus(errno, absl::StrCat("serve: listen on ", o_.listen,
                                           " (in use? choose another with "
                                           "--metrics-listen HOST:PORT)"));
  std::thread http([&svr] { svr.listen_after_bind(); });
  if (!IsLoopback(host))
    Log(absl::StrCat("metrics exposed beyond loopback on ", host, " (--metrics-listen)"));
  Log(absl::StrCat("metrics on http://", o_.listen, "/metrics; ",
                   o_.config.empty() ? "no config file"
                                     : absl::StrCat("config ", o_.config, " (SIGHUP reloads)")));

  absl::Status result;
  for (bool run = true; run;) {
    pollfd fds[2] = {{sfd.get(), POLLIN, 0}, {links->fd(), POLLIN, 0}};
    const int n = poll(fds, 2, follow_again_ ? 200 : -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      result = ErrnoStatus(errno, "serve: poll");
      break;
    }
    if (n == 0 && follow_again_ && cfg_) follow_again_ = !Follow();
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
    if (fds[1].revents & POLLIN) OnLinkEvents(links->Receive());
  }
  svr.stop();
  http.join();
  return result;
}

absl::Status Daemon::AdoptPinned() {
  owned_ = config::Owned::LoadFile(state_path_, c_);
  // Adopt what is pinned: nothing is attached again; the metrics export it from now on.
  auto st = c_.Status();
  if (!st.ok()) return Annotate(st.status(), "serve: read the pinned attachments");
  for (const auto& i : *st) {
    Log(absl::StrCat("found ", i.ifname, " (ifindex ", i.ifindex, ", ", i.hooks.size(), " hooks",
                     i.state == "ok" ? "" : ", " + i.state, i.present ? "" : ", interface gone",
                     owned_.names.count(i.ifname) ? ", attached by serve" : "", ")"));
    if (!i.problem.empty()) Log("warning: " + i.ifname + ": " + i.problem);
    // Deleted while no serve ran: clean up as RTM_DELLINK would have. The records here are
    // this namespace's (one pin directory per namespace): its ifindex gone is certain.
    char now[IF_NAMESIZE] = {};
    if (i.state == "ok" && !i.present &&
        (i.links_defunct || if_indextoname(i.ifindex, now) == nullptr))
      Forget({control::LinkEvent::Kind::kDeleted, i.ifindex, i.ifname});
  }
  // Rules bound to an interface that is gone wait for its name to be attached again; a rule
  // without a recorded name (csumfix 0.1) is only reported.
  auto names = control::ReadRuleIfnames(o_.bpffs);
  if (auto rules = control::ReadRules(o_.bpffs); rules.ok() && names.ok()) {
    for (const auto& r : *rules)
      if (control::RuleInterfaceGone(r) && !names->count(r.id))
        Log(absl::StrCat("warning: policy rule ", r.id, " (", control::DescribeRule(r),
                         ") names an interface that does not exist here; `csumfix policy del ",
                         r.id, "` if it was deleted"));
  }
  return absl::OkStatus();
}

void Daemon::ReadLinks() {
  auto l = control::ListLinks();
  if (!l.ok()) {
    Log(absl::StrCat("warning: ", l.status().message()));
    return;
  }
  links_.clear();
  for (auto& link : *l) links_[link.ifindex] = std::move(link);
}

void Daemon::OnLinkEvents(const control::LinkMonitor::Batch& batch) {
  std::vector<control::LinkEvent> gone;
  bool changed = false;  // a link appeared, or its name, master or kind is new
  if (batch.overflow) {
    // Events were lost: read every link again, check every interface this daemon attached.
    Log("rtnetlink overflow (link events lost): reading every link again");
    {
      std::lock_guard<std::mutex> l(mu_);
      ++state_.link_resyncs;
    }
    ReadLinks();
    changed = true;
    if (auto st = c_.Status(control::Controller::Detail::kRecords); st.ok())
      for (const auto& i : *st)
        if (!i.present && owned_.names.count(i.ifname))
          gone.push_back({control::LinkEvent::Kind::kDeleted, i.ifindex, i.ifname, {}});
    // ifindex 0: every rule whose interface is gone.
    gone.push_back({control::LinkEvent::Kind::kDeleted, 0, "", {}});
  }
  for (const auto& ev : batch.events) {
    if (config::IsHelperLink(ev.link)) continue;  // csumfix's own bounce veths
    if (ev.kind == control::LinkEvent::Kind::kDeleted) {
      gone.push_back(ev);
      changed |= links_.erase(ev.ifindex) > 0;
      continue;
    }
    auto [it, fresh] = links_.try_emplace(ev.ifindex, ev.link);
    const control::LinkInfo& was = it->second;
    if (fresh || was.name != ev.link.name || was.master != ev.link.master ||
        was.kind != ev.link.kind) {
      changed = true;
      it->second = ev.link;
    }
  }
  for (const auto& ev : gone) {
    if (ev.ifindex != 0) Forget(ev);
    DropRules(ev.ifindex);
  }
  if ((changed || follow_again_) && cfg_) follow_again_ = !Follow();
}

bool Daemon::Follow() {
  std::lock_guard<std::mutex> apply(apply_mu_);
  auto rep = config::Apply(*cfg_, c_, features_ ? &*features_ : nullptr, &owned_,
                           config::Mode::kFollow);
  if (!rep.ok()) {
    if (!follow_again_)  // once per spell of failures, not every 200 ms
      Log(absl::StrCat("following the links: ", rep.status().message(), "; trying again"));
    return false;
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    state_.follow_attached += rep->attached.size() + rep->reattached.size();
    state_.follow_failed += rep->failed.size();
    state_.waiting = rep->waiting.size();
  }
  for (const auto& n : rep->attached) Log("attached " + n + " (selected by the config)");
  for (const auto& n : rep->reattached) Log("re-attached " + n + " (changed)");
  for (const auto& n : rep->detached) Log("detached " + n + " (no longer selected)");
  for (const auto& f : rep->failed) Log("attach failed: " + f);
  for (const auto& w : rep->warnings) Log("warning: " + w);
  if (rep->attached.empty() && rep->reattached.empty() && rep->detached.empty() &&
      rep->actions_changed.empty())
    return true;
  if (auto s = owned_.Save(state_path_, c_); !s.ok()) Log("warning: " + std::string(s.message()));
  return true;
}

absl::Status Daemon::ApplyConfig() {
  absl::Status result;
  auto cfg = config::Load(o_.config);
  if (!cfg.ok()) {
    result = cfg.status();
  } else {
    std::lock_guard<std::mutex> apply(apply_mu_);
    auto rep = config::Apply(*cfg, c_, features_ ? &*features_ : nullptr, &owned_);
    if (!rep.ok()) {
      result = rep.status();
    } else {
      Log(absl::StrCat("applied ", o_.config, ": ", rep->Summary()));
      for (const auto& w : rep->warnings) Log("warning: " + w);
      for (const auto& w : rep->waiting)
        Log("waiting for " + w + ": not present; attached when it appears");
      cfg_ = *std::move(cfg);
      std::lock_guard<std::mutex> l(mu_);
      state_.waiting = rep->waiting.size();
    }
    if (auto s = owned_.Save(state_path_, c_); !s.ok()) Log("warning: " + std::string(s.message()));
  }
  std::lock_guard<std::mutex> l(mu_);
  if (result.ok()) {
    ++state_.config_reloads_ok;
    state_.config_last_ok = true;
    state_.config_last_ok_time =
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  } else {
    ++state_.config_reloads_failed;
    state_.config_last_ok = false;
  }
  return result;
}

void Daemon::Forget(const control::LinkEvent& ev) {
  // Only what is really gone: the index names no device, or another one now.
  char now[IF_NAMESIZE] = {};
  if (ev.ifindex != 0 && if_indextoname(ev.ifindex, now) != nullptr && ev.name == now) return;
  // One pin read: is there a record of this name for this index?
  if (!c_.Records(ev.name, ev.ifindex)) return;
  std::lock_guard<std::mutex> apply(apply_mu_);
  Outcome d = c_.Detach(ev.name);
  std::string note = !d.ok() ? std::string(d.status().message()) : absl::StrJoin(d->warnings, "; ");
  Log(absl::StrCat("interface ", ev.name, " (ifindex ", ev.ifindex,
                   ") was deleted: its csumfix state is removed",
                   note.empty() ? "" : absl::StrCat(" (", note, ")")));
  if (owned_.names.erase(ev.name) == 0) return;
  if (auto sv = owned_.Save(state_path_, c_); !sv.ok())
    Log("warning: " + std::string(sv.message()));
}

void Daemon::DropRules(uint32_t ifindex) {
  auto stored = control::ReadRules(o_.bpffs);
  if (!stored.ok()) {
    Log(absl::StrCat("interface deleted; reading the policy rules: ", stored.status().message()));
    return;
  }
  // A rule bound by name (every rule csumfix 0.2 stores) waits for the name to come back: the
  // next attach of it rebinds the rule. Only a nameless one (csumfix 0.1's) is removed.
  const control::RuleIfnames names = control::ReadRuleIfnames(o_.bpffs).value_or(control::RuleIfnames{});
  auto stale = [ifindex, &names](const csf_pol_rule& r) {
    return control::RuleInterfaceGone(r) && (ifindex == 0 || r.ifindex == ifindex) &&
           !names.count(r.id);
  };
  for (const auto& r : *stored)
    if (ifindex != 0 && r.ifindex == ifindex && control::RuleInterfaceGone(r) && names.count(r.id))
      Log(absl::StrCat("policy rule ", r.id, " (", control::DescribeRule(r, &names),
                       ") waits for an interface named ", names.at(r.id), " to be attached"));
  if (std::none_of(stored->begin(), stored->end(), stale)) return;
  std::lock_guard<std::mutex> apply(apply_mu_);
  absl::StatusOr<std::vector<csf_pol_rule>> dropped;
  {
    auto p = control::Policy::Open(o_.bpffs);  // holds the pin lock while it lives
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
  if (auto lock = control::LockPins(o_.bpffs); lock.ok()) c_.Tidy();
}

std::string Daemon::Scrape() {
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

}  // namespace csumfix::daemon
