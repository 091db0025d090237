// csumfix serve: the command's options; the daemon itself is daemon/daemon.h.
#include "cli/cmd_serve.h"

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>

#include "cli/common.h"
#include "absl/strings/str_join.h"
#include "config/config.h"
#include "config/select.h"
#include "control/netlink.h"
#include "daemon/daemon.h"

namespace csumfix::cli {
namespace {

struct ServeOptions {
  std::string listen = "127.0.0.1:9786";
  std::string config;
  std::string state;
  bool check_config = false;
};

// What each [[interface]] block selects on this host now (first block wins), and the named
// interfaces that do not exist yet.
void PrintSelection(const config::Config& cfg) {
  auto links = config::LinksToSelect();
  if (!links.ok()) {
    std::printf("  (cannot list the links: %s)\n", std::string(links.status().message()).c_str());
    return;
  }
  const std::vector<config::Selected> sel = config::Select(cfg, *links);
  for (size_t b = 0; b < cfg.interfaces.size(); ++b) {
    std::vector<std::string> now;
    for (const auto& s : sel)
      if (s.block == b) now.push_back(s.link.name);
    std::printf("  [[interface]] %s (%s): %s\n", cfg.interfaces[b].Selectors().c_str(),
                cfg.interfaces[b].where.c_str(),
                now.empty() ? "selects nothing now" : absl::StrJoin(now, " ").c_str());
  }
  for (const auto& w : config::Waiting(cfg, *links))
    std::printf("  note: %s does not exist now; serve attaches it when it appears\n", w.c_str());
}

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
      std::printf("%s: ok: %zu interface blocks, %zu policy rules\n", o->config.c_str(),
                  cfg->interfaces.size(), cfg->rules.size());
      PrintSelection(*cfg);
      return;
    }
    daemon::Options d;
    d.listen = o->listen;
    d.config = o->config;
    d.state = o->state;
    d.bpffs = g.bpffs;
    d.netns = g.netns;
    // For the tests: a small link-event buffer provokes the overflow (ENOBUFS) resync.
    if (const char* rb = std::getenv("CSUMFIX_NETLINK_RCVBUF")) d.netlink_rcvbuf = std::atoi(rb);
    absl::Status s = daemon::Daemon(std::move(d)).Run();
    g.rc = s.ok() ? kExitDone : Fail(s);
  });
}

}  // namespace csumfix::cli
