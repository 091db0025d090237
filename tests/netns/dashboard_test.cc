// The shipped Grafana dashboard and Prometheus rules against a real scrape: va attached with
// action fill on both hooks, `csumfix -n A serve --config` scraped every second by a real
// Prometheus that loads packaging/prometheus/csumfix.rules.yml, partial UDP traffic sent. Then
// every query of packaging/grafana/csumfix.json (its template variables substituted as Grafana
// would for device va in this test's namespace) must succeed and return at least one series, and
// every rule of the rules file must have loaded and evaluated with health "ok".
// (tests/packaging/ checks the same files offline: promtool unit tests of the rules, the
// dashboard's queries on synthetic series; this test proves them on what serve really exports.)
#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "netns/lab.h"
#include "netns/serve_fixture.h"
#include "nlohmann/json.hpp"

namespace csumfix::testing {
namespace {

using json = nlohmann::json;

// Every panel of a dashboard, the panels nested in rows included.
void CollectPanels(const json& panels, std::vector<json>* out) {
  if (!panels.is_array()) return;
  for (const auto& p : panels) {
    out->push_back(p);
    if (p.contains("panels")) CollectPanels(p["panels"], out);
  }
}

std::string ReplaceAll(std::string s, const std::string& from, const std::string& to) {
  for (size_t pos = 0; (pos = s.find(from, pos)) != std::string::npos; pos += to.size())
    s.replace(pos, from.size(), to);
  return s;
}

// The rules a Prometheus rules file defines: its "- record:" and "- alert:" entries.
size_t CountRules(const std::string& text) {
  std::istringstream in(text);
  std::string line;
  size_t n = 0;
  while (std::getline(in, line)) {
    const size_t i = line.find_first_not_of(' ');
    if (i == std::string::npos) continue;
    if (line.compare(i, 9, "- record:") == 0 || line.compare(i, 8, "- alert:") == 0) ++n;
  }
  return n;
}

TEST_F(Serve, GrafanaDashboardQueriesReturnDataFromARealScrape) {
  const std::string src = CSUMFIX_SOURCE_DIR;
  const std::string rules_file = src + "/packaging/prometheus/csumfix.rules.yml";
  const std::string dashboard_file = src + "/packaging/grafana/csumfix.json";
  const size_t want_rules = CountRules(ReadFile(rules_file));
  ASSERT_GT(want_rules, 10u) << "no rules read from " << rules_file;
  const json dashboard = json::parse(ReadFile(dashboard_file), nullptr, false);
  ASSERT_FALSE(dashboard.is_discarded()) << dashboard_file << " is not valid JSON";
  const int deadline = 60;  // WaitFor scales it by TimeScale()

  // The CLI attaches; serve's config names the same, so serve adopts it and exports the config
  // families (reloads, waiting interfaces) the dashboard shows.
  ASSERT_EQ(Csumfix({"-n", a_.name(), "attach", "va", "--both", "--action", "fill"}).rc, 0);
  WriteConfig("[[interface]]\nname = \"va\"\nhooks = [\"ingress\", \"egress\"]\naction = \"fill\"\n");
  StartServe({"--config", cfg_});

  // Prometheus in namespace A with the shipped rules.
  StartPrometheus({rules_file}, deadline);
  if (HasFatalFailure()) return;
  const std::string dir = tmp_ + "/prom";

  // GET of Prometheus's API in A; the JSON answer (also on an HTTP error: Prometheus says why in
  // it), nullopt when nothing or no JSON came back. `query` is URL-encoded into ?query=.
  std::string last_raw;
  auto api = [&](const std::string& path, const std::string& query) -> std::optional<json> {
    CmdResult r = csumfix::testing::Run(
        {"ip", "netns", "exec", a_.name(), "python3", "-c",
         "import sys, urllib.request, urllib.parse, urllib.error\n"
         "url = 'http://127.0.0.1:19090' + sys.argv[1]\n"
         "if sys.argv[2]:\n"
         "    url += '?query=' + urllib.parse.quote(sys.argv[2])\n"
         "try:\n"
         "    sys.stdout.write(urllib.request.urlopen(url, timeout=5).read().decode())\n"
         "except urllib.error.HTTPError as e:\n"
         "    sys.stdout.write(e.read().decode())\n",
         path, query});
    last_raw = r.out + r.err;
    if (r.rc != 0) return std::nullopt;
    json j = json::parse(r.out, nullptr, false);
    if (j.is_discarded()) return std::nullopt;
    return j;
  };
  auto results = [&](const std::string& q) -> std::optional<json> {
    auto j = api("/api/v1/query", q);
    if (!j || (*j)["status"] != "success") return std::nullopt;
    return (*j)["data"]["result"];
  };
  ASSERT_TRUE(WaitFor(
      [&] {
        auto r = results("up{job=\"csumfix\"}");
        return r && r->size() == 1 && (*r)[0]["value"][1] == "1";
      },
      deadline))
      << "Prometheus never scraped serve:\n" << last_raw << "\n" << ReadFile(dir + "/prometheus.log");

  // Partial traffic (locally generated UDP over the veth), until Prometheus has it.
  constexpr int kN = 50;
  SendUdp(kN, 7105);
  ASSERT_TRUE(WaitFor(
      [&] {
        auto r = results("csumfix_class_packets_total{job=\"csumfix\",device=\"va\","
                         "hook=\"egress\",class=\"partial\"}");
        return r && r->size() == 1 && std::stod((*r)[0]["value"][1].get<std::string>()) >= kN;
      },
      deadline))
      << "the partial packets never reached Prometheus (is the label `device`?):\n" << last_raw;

  // Every panel's queries, the variables as Grafana fills them for device va in namespace A:
  // one device, every hook and instance, this namespace's name; the built-in intervals as
  // Grafana would choose them at a 1 s scrape interval.
  struct Query {
    std::string where, expr, last;
    bool ok = false;
  };
  std::vector<Query> queries;
  std::vector<json> panels;
  CollectPanels(dashboard.value("panels", json::array()), &panels);
  for (const auto& p : panels) {
    if (p.value("type", "") == "row") continue;
    const std::string title = p.value("title", "(untitled)");
    ASSERT_TRUE(p.contains("targets") && p["targets"].is_array() && !p["targets"].empty())
        << "panel " << title << " has no targets";
    for (const auto& t : p["targets"]) {
      const std::string where = "panel \"" + title + "\" target " + t.value("refId", "?");
      std::string e = t.value("expr", "");
      ASSERT_FALSE(e.empty()) << where << " has no expr";
      EXPECT_EQ(e.find("datasource"), std::string::npos) << where << ": " << e;
      for (const auto& [var, value] :
           std::vector<std::pair<std::string, std::string>>{{"$__rate_interval", "30s"},
                                                            {"$__range", "5m"},
                                                            {"$netns_name", a_.name()},
                                                            {"$instance", ".*"},
                                                            {"$device", "va"},
                                                            {"$hook", ".*"}})
        e = ReplaceAll(e, var, value);
      EXPECT_EQ(e.find('$'), std::string::npos) << where << ": a variable the test does not know: "
                                                << e;
      queries.push_back({where, e, "", false});
    }
  }
  ASSERT_GE(queries.size(), 10u) << "too few queries found in " << dashboard_file;
  // Rate windows of 30 s need two scrapes in them: polled until each query has data.
  WaitFor(
      [&] {
        bool all = true;
        for (auto& q : queries) {
          if (q.ok) continue;
          auto j = api("/api/v1/query", q.expr);
          q.last = last_raw;
          q.ok = j && (*j)["status"] == "success" && (*j)["data"]["result"].is_array() &&
                 !(*j)["data"]["result"].empty();
          all &= q.ok;
        }
        return all;
      },
      deadline);
  size_t with_data = 0;
  for (const auto& q : queries) {
    EXPECT_TRUE(q.ok) << q.where << " returned no data or an error\n  query: " << q.expr
                      << "\n  answer: " << q.last;
    with_data += q.ok;
  }
  std::cout << with_data << " of " << queries.size() << " dashboard queries returned data\n";

  // The recording rules run on serve's real labels: the per-device rate of va egress.
  EXPECT_TRUE(WaitFor(
      [&] {
        auto r = results("device_hook:csumfix_packets:rate5m{job=\"csumfix\",device=\"va\","
                         "hook=\"egress\"}");
        return r && r->size() == 1 && std::stod((*r)[0]["value"][1].get<std::string>()) > 0;
      },
      deadline))
      << "device_hook:csumfix_packets:rate5m has no positive value for va egress: " << last_raw;

  // Every rule of the file loaded and evaluated without an error (health "unknown" until its
  // first evaluation: polled).
  std::string bad;
  size_t loaded = 0;
  const bool healthy = WaitFor(
      [&] {
        auto j = api("/api/v1/rules", "");
        if (!j || (*j)["status"] != "success") {
          bad = "no answer: " + last_raw;
          return false;
        }
        bad.clear();
        loaded = 0;
        for (const auto& g : (*j)["data"]["groups"]) {
          if (g.value("file", "") != rules_file) bad += "group from another file: " + g.dump() + "\n";
          for (const auto& r : g.value("rules", json::array())) {
            ++loaded;
            if (r.value("health", "") != "ok")
              bad += r.value("name", "?") + ": health " + r.value("health", "?") + " " +
                     r.value("lastError", "") + "\n";
          }
        }
        return loaded == want_rules && bad.empty();
      },
      deadline);
  EXPECT_TRUE(healthy) << loaded << " rules loaded, want " << want_rules << "\n" << bad
                       << ReadFile(dir + "/prometheus.log");

  // Nothing is wrong here: the alerts whose inputs are exact (no counter race) are inactive.
  auto alerts = api("/api/v1/alerts", "");
  ASSERT_TRUE(alerts && (*alerts)["status"] == "success") << last_raw;
  for (const auto& a : (*alerts)["data"]["alerts"]) {
    const std::string name = a.value("labels", json::object()).value("alertname", "");
    for (const char* quiet : {"CsumfixProgramDetached", "CsumfixInterfaceMissing",
                              "CsumfixConfigReloadFailed", "CsumfixConfigWaitingInterfaces",
                              "CsumfixTargetDown", "CsumfixScrapeErrors"})
      EXPECT_NE(name, quiet) << "active on a healthy setup: " << a.dump();
  }

  kill(prom_, SIGTERM);
  waitpid(prom_, nullptr, 0);
  prom_ = -1;
}

}  // namespace
}  // namespace csumfix::testing
