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
#include "control/policy.h"
#include "daemon/daemon.h"

namespace csumfix::cli {
namespace {

struct ServeOptions {
  std::string listen = "127.0.0.1:10786";
  std::string telemetry_path = "/metrics";
  std::string web_config;
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
    const config::InterfaceSpec& spec = cfg.interfaces[b];
    std::vector<std::string> hooks;
    if (spec.ingress) hooks.push_back("ingress");
    if (spec.egress) hooks.push_back("egress");
    if (spec.xdp) hooks.push_back("xdp");
    std::printf("  %s [[interface]] %s: hooks %s, action %s, mechanism %s%s: %s\n",
                spec.where.c_str(), spec.Selectors().c_str(), absl::StrJoin(hooks, "+").c_str(),
                std::string(names::ActionName(spec.action)).c_str(), spec.mechanism.c_str(),
                spec.redirect_to.empty() ? "" : (", redirect to " + spec.redirect_to).c_str(),
                now.empty() ? "selects nothing now" : absl::StrJoin(now, " ").c_str());
  }
  for (const auto& w : config::Waiting(cfg, *links))
    std::printf("  note: %s does not exist now; serve attaches it when it appears\n", w.c_str());
}

// The policy rules the file makes ([[rule]]s, then each [[zone]]'s), as `policy list` words them.
void PrintRules(const config::Config& cfg) {
  for (size_t i = 0; i < cfg.rules.size(); ++i) {
    csf_pol_rule r = cfg.rules[i];
    r.id = static_cast<uint32_t>(i + 1);  // ids are given when applied; number them in order
    control::RuleIfnames names;
    if (i < cfg.rule_ifnames.size() && !cfg.rule_ifnames[i].empty())
      names[r.id] = cfg.rule_ifnames[i];
    std::string d = control::DescribeRule(r, &names);
    if (const size_t p = d.find(" prio "); p != std::string::npos) d.erase(0, p);  // no id yet
    std::printf("  %s:%s\n", i < cfg.rule_sources.size() ? cfg.rule_sources[i].c_str() : "rule",
                d.c_str());
  }
}

}  // namespace

void AddServeCommand(CLI::App& app, Globals& g) {
  auto o = std::make_shared<ServeOptions>();
  auto* serve = app.add_subcommand(
      "serve", "Run as a daemon: apply a config file, follow the links, serve Prometheus metrics.");
  serve->footer(
      "The config file is applied at start and on SIGHUP; interfaces it selects are attached as\n"
      "they appear, join a bridge or are renamed, and detached when they stop being selected\n"
      "(only what serve attached). Pinned attachments are adopted at start; SIGTERM/SIGINT exit\n"
      "and leave them in place. The HTTP endpoint serves the metrics, /-/healthy and /-/ready\n"
      "(200 once the config is applied); --web.config.file adds TLS and basic auth in the\n"
      "Prometheus exporter-toolkit format. Under systemd it reports READY=1 after the first\n"
      "apply (Type=notify). Examples (as root):\n"
      "  csumfix serve --config /etc/csumfix/csumfix.toml\n"
      "  csumfix serve --config /etc/csumfix/csumfix.toml --check-config\n"
      "  csumfix serve --web.listen-address 0.0.0.0:10786 --web.config.file /etc/csumfix/web.yml");
  serve->add_option("--web.listen-address,--metrics-listen", o->listen,
                    "HOST:PORT of the HTTP endpoint (metrics, /-/healthy, /-/ready); loopback "
                    "unless you give another address")
      ->capture_default_str();
  serve->add_option("--web.telemetry-path", o->telemetry_path,
                    "path of the metrics on the endpoint")
      ->capture_default_str()
      ->check([](const std::string& p) -> std::string {
        if (p.empty() || p[0] != '/' || p.find_first_of(" \t?#") != std::string::npos)
          return "the telemetry path must start with / and hold no blanks, ? or #";
        if (p == "/-/healthy" || p == "/-/ready" || p == "/healthz" || p == "/")
          return p + " is taken by the health endpoints; choose another path such as /metrics";
        return "";
      });
  serve->add_option("--web.config.file", o->web_config,
                    "TLS and basic auth for the endpoint, in the Prometheus exporter-toolkit "
                    "format (tls_server_config, basic_auth_users with bcrypt hashes)")
      ->check(CLI::ExistingFile);
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
      // The command line as serve would take it, too: an address serve refuses is no "ok".
      std::string host;
      int port = 0;
      if (auto s = daemon::ParseListen(o->listen, &host, &port); !s.ok()) {
        g.rc = Fail(s);
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
      PrintRules(*cfg);
      return;
    }
    daemon::Options d;
    d.listen = o->listen;
    d.telemetry_path = o->telemetry_path;
    d.web_config = o->web_config;
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
