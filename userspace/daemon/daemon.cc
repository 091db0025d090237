#include "daemon/daemon.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <cerrno>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
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
#include "daemon/webconfig.h"
#include "httplib.h"
#include <systemd/sd-daemon.h>

namespace csumfix::daemon {
namespace {

// Under systemd, stderr goes to the journal: a "<N>" prefix (sd-daemon(3)) gives each line its
// priority there. JOURNAL_STREAM names the journal's stream as DEV:INODE; only when stderr is
// that stream (not a terminal, not a file it was redirected to) is the prefix written.
bool StderrIsJournal() {
  static const bool is = [] {
    const char* js = std::getenv("JOURNAL_STREAM");
    struct stat st;
    if (js == nullptr || fstat(STDERR_FILENO, &st) != 0) return false;
    unsigned long long dev = 0, ino = 0;
    return std::sscanf(js, "%llu:%llu", &dev, &ino) == 2 && dev == st.st_dev &&
           ino == st.st_ino;
  }();
  return is;
}

enum Prio { kErr = 3, kWarning = 4, kInfo = 6 };

// One line of the daemon's log. Lines that start "warning: " are warnings.
void Log(const std::string& msg, Prio prio = kInfo) {
  if (prio == kInfo && msg.starts_with("warning: ")) prio = kWarning;
  if (StderrIsJournal())
    std::fprintf(stderr, "<%d>csumfix serve: %s\n", static_cast<int>(prio), msg.c_str());
  else
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
    return absl::InvalidArgumentError("--web.listen-address " + s +
                                      ": write HOST:PORT, e.g. 127.0.0.1:10786 or [::1]:10786");
  *host = s.substr(0, colon);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']')
    *host = host->substr(1, host->size() - 2);
  if (!absl::SimpleAtoi(s.substr(colon + 1), port) || *port < 1 || *port > 65535)
    return absl::InvalidArgumentError("--web.listen-address " + s + ": port must be 1-65535");
  in6_addr a6;
  in_addr a4;
  if (inet_pton(AF_INET, host->c_str(), &a4) != 1 && inet_pton(AF_INET6, host->c_str(), &a6) != 1)
    return absl::InvalidArgumentError("--web.listen-address " + s +
                                      ": the host must be an IP address (127.0.0.1, ::1, 0.0.0.0)");
  return absl::OkStatus();
}

Daemon::Daemon(Options o) : o_(std::move(o)), c_(o_.bpffs) {
  c_.KeepProgramsLoaded(true);  // interfaces come and go: verify the programs once
  // One record per network namespace, named after it: `-n NS` and `ip netns exec NS` (which
  // names no -n) must find the same file, never the host daemon's.
  const std::string ns = o_.netns.empty() ? control::NetnsName(c_.netns_ino()) : o_.netns;
  state_path_ = o_.state.empty()
                    ? absl::StrCat("/run/csumfix/serve", ns.empty() ? "" : "-", ns, ".json")
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

  // The endpoint first: a bad --web.config.file or a port in use fails before anything on the
  // host changes. Until the first reconcile is done /-/ready answers 503 (and systemd is not
  // told READY=1).
  if (utsname u; uname(&u) == 0) state_.kernel = u.release;
  WebConfig web;
  if (!o_.web_config.empty()) {
    ASSIGN_OR_RETURN(web, LoadWebConfig(o_.web_config));
  }
  std::unique_ptr<httplib::Server> svr_ptr;
  if (web.tls()) {
    auto tls = std::make_unique<httplib::SSLServer>(
        web.cert_file.c_str(), web.key_file.c_str(),
        web.client_ca_file.empty() ? nullptr : web.client_ca_file.c_str());
    if (!tls->is_valid())
      return absl::InvalidArgumentError(absl::StrCat(
          "--web.config.file ", o_.web_config, ": TLS: cannot use cert_file ", web.cert_file,
          " with key_file ", web.key_file, " (PEM certificate and its unencrypted private key?)"));
    SSL_CTX_set_min_proto_version(tls->ssl_context(), web.min_version);
    svr_ptr = std::move(tls);
  } else {
    svr_ptr = std::make_unique<httplib::Server>();
  }
  httplib::Server& svr = *svr_ptr;
  if (!web.users.empty()) {
    svr.set_pre_routing_handler([users = web.users, cache = std::make_shared<AuthCache>()](
                                    const httplib::Request& req, httplib::Response& res) {
      if (CheckBasicAuth(users, req.get_header_value("Authorization"), cache.get()))
        return httplib::Server::HandlerResponse::Unhandled;
      res.status = 401;
      res.set_header("WWW-Authenticate", "Basic realm=\"csumfix\"");
      res.set_content("Unauthorized\n", "text/plain");
      return httplib::Server::HandlerResponse::Handled;
    });
  }
  svr.Get(o_.telemetry_path, [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(Scrape(), metrics::kContentType);
  });
  svr.Get("/-/healthy", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("csumfix serve is healthy\n", "text/plain");
  });
  auto ready = [this](const httplib::Request&, httplib::Response& res) {
    if (ready_.load()) {
      res.set_content("csumfix serve is ready\n", "text/plain");
    } else {
      res.status = 503;
      res.set_content("csumfix serve is starting: the config is not applied yet\n", "text/plain");
    }
  };
  svr.Get("/-/ready", ready);
  svr.Get("/healthz", ready);
  const std::string path = o_.telemetry_path;
  svr.Get("/", [path](const httplib::Request&, httplib::Response& res) {
    res.set_content(absl::StrCat("csumfix: metrics at ", path,
                                 ", liveness at /-/healthy, readiness at /-/ready\n"),
                    "text/plain");
  });
  if (!svr.bind_to_port(host, port))
    return ErrnoStatus(errno, absl::StrCat("serve: listen on ", o_.listen,
                                           " (in use? choose another with "
                                           "--web.listen-address HOST:PORT)"));
  std::atomic<bool> http_done{false};
  std::thread http([&svr, &http_done] {
    svr.listen_after_bind();
    http_done = true;
  });
  struct StopHttp {
    httplib::Server& svr;
    std::thread& t;
    std::atomic<bool>& done;
    ~StopHttp() {
      // stop() does nothing until the server thread has started listening (is_running): a serve
      // that fails right after the bind (another pin ABI, a bad config) would wait for ever.
      while (!svr.is_running() && !done) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      svr.stop();
      t.join();
    }
  } stop_http{svr, http, http_done};

  // The kernel's fill mechanism, for mechanism = "auto" and the info metric.
  features_.reset();
  if (auto p = control::Probe(); p.ok()) {
    features_ = *p;
    std::lock_guard<std::mutex> l(mu_);
    state_.probe_mechanism = std::string(names::MechanismName(p->mechanism));
    state_.kernel = p->kernel;
    if (!p->complete) Log("warning: kernel probe: " + p->reason);
  } else {
    Log(absl::StrCat("kernel probe failed (mechanism \"auto\" unavailable): ",
                     p.status().message()),
        kWarning);
  }

  // Subscribed before anything is read, so no link that appears from now on is missed.
  absl::StatusOr<control::LinkMonitor> links = control::LinkMonitor::Open(o_.netlink_rcvbuf);
  if (!links.ok()) return Annotate(links.status(), "serve");
  ReadLinks();
  RETURN_IF_ERROR(AdoptPinned());
  if (!o_.config.empty()) {
    {
      std::lock_guard<std::mutex> l(mu_);
      state_.has_config = true;
    }
    RETURN_IF_ERROR(ApplyConfig());
  }
  ready_ = true;
  if (!IsLoopback(host))
    Log(absl::StrCat("metrics exposed beyond loopback on ", host, " (--web.listen-address)"),
        kWarning);
  Log(absl::StrCat("metrics on ", web.tls() ? "https://" : "http://", o_.listen, o_.telemetry_path,
                   web.users.empty() ? "" : " (basic auth)", "; ",
                   o_.config.empty() ? "no config file"
                                     : absl::StrCat("config ", o_.config, " (SIGHUP reloads)")));
  // systemd (Type=notify): started once the config is applied. No-op outside systemd.
  sd_notify(0, "READY=1\nSTATUS=config applied; following the links");

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
            Log(absl::StrCat("reload failed, running state unchanged: ", s.message()), kErr);
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
  sd_notify(0, "STOPPING=1");
  return result;
}

absl::Status Daemon::AdoptPinned() {
  owned_ = config::Owned::LoadFile(state_path_, c_);
  // A new build (a package upgrade restarted serve): the attachments still run the programs the
  // old build attached. Swap this build's in, in place, before anything else. Pins of another
  // pin ABI stop serve here, before it changed anything.
  auto up = c_.Upgrade();
  if (!up.ok()) return Annotate(up.status(), "serve");
  for (const auto& r : *up) {
    for (const auto& s : r.swapped) Log(absl::StrCat("upgraded ", r.ifname, " ", s));
    if (!r.error.empty())
      Log(absl::StrCat("upgrade of ", r.ifname, " incomplete, it keeps programs of the build "
                       "that attached it: ", r.error),
          kWarning);
  }
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
    Log("rtnetlink overflow (link events lost): reading every link again", kWarning);
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
      Log(absl::StrCat("following the links: ", rep.status().message(), "; trying again"), kWarning);
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
  for (const auto& f : rep->failed) Log("attach failed: " + f, kErr);
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
    Log(absl::StrCat("interface deleted; reading the policy rules: ", stored.status().message()), kErr);
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
    Log(absl::StrCat("interface deleted; removing its policy rules: ", dropped.status().message()), kErr);
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
    Log(absl::StrCat("scrape: ", s.message()), kErr);
  }
  snap.daemon = state_;
  return metrics::Render(snap);
}

}  // namespace csumfix::daemon
