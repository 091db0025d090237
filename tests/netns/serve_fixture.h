// The fixture of the serve tests (serve_test.cc, serve_follow_test.cc): namespaces A and B joined
// by the veth pair va (10.67.0.1) - vb (10.67.0.2), `csumfix -n A serve` started and stopped,
// its exposition parsed (never grepped), status and rules read as JSON.
#ifndef CSUMFIX_TESTS_NETNS_SERVE_FIXTURE_H_
#define CSUMFIX_TESTS_NETNS_SERVE_FIXTURE_H_

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "netns/lab.h"
#include "nlohmann/json.hpp"

namespace csumfix::testing {

using json = nlohmann::json;
using Labels = std::map<std::string, std::string>;


// The exposition text as {name, labels} -> value; also checks the shape of every line.
struct Scrape {
  std::map<std::pair<std::string, Labels>, double> values;
  std::string error;

  // The sample with exactly labels `l`; the namespace labels every per-interface sample carries
  // (netns, netns_name) are compared only when `l` names netns.
  std::optional<double> Get(const std::string& name, const Labels& l) const {
    for (const auto& [k, v] : values) {
      if (k.first != name) continue;
      Labels got = k.second;
      if (!l.count("netns")) {
        got.erase("netns");
        got.erase("netns_name");
      }
      if (got == l) return v;
    }
    return std::nullopt;
  }
  // Samples of `name` whose labels include `sub`.
  std::vector<std::pair<Labels, double>> All(const std::string& name, const Labels& sub) const {
    std::vector<std::pair<Labels, double>> out;
    for (const auto& [k, v] : values) {
      if (k.first != name) continue;
      bool match = true;
      for (const auto& [lk, lv] : sub)
        if (!k.second.count(lk) || k.second.at(lk) != lv) match = false;
      if (match) out.push_back({k.second, v});
    }
    return out;
  }
};

inline Scrape ParseExposition(const std::string& text) {
  Scrape s;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    std::string name = line.substr(0, i);
    Labels labels;
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        size_t eq = line.find('=', i);
        if (eq == std::string::npos || eq + 1 >= line.size() || line[eq + 1] != '"') {
          s.error = "bad labels: " + line;
          return s;
        }
        std::string key = line.substr(i, eq - i), v;
        size_t j = eq + 2;
        for (; j < line.size() && line[j] != '"'; ++j) {
          if (line[j] == '\\' && j + 1 < line.size()) {
            char n = line[++j];
            v += n == 'n' ? '\n' : n;
          } else {
            v += line[j];
          }
        }
        labels[key] = v;
        i = j + 1;
        if (i < line.size() && line[i] == ',') ++i;
      }
      ++i;
    }
    if (i >= line.size() || line[i] != ' ') {
      s.error = "no value: " + line;
      return s;
    }
    s.values[{name, labels}] = std::stod(line.substr(i + 1));
  }
  return s;
}

class Serve : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0) << "netns tests need root: run scripts/test.sh as root";
    ASSERT_TRUE(a_.Create());
    ASSERT_TRUE(b_.Create());
    ASSERT_TRUE(VethPair({&a_, "va", "10.67.0.1/24"}, {&b_, "vb", "10.67.0.2/24"}));
    tmp_ = "/tmp/csf-serve-" + std::to_string(getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    ASSERT_EQ(csumfix::testing::Run({"mkdir", "-p", tmp_}).rc, 0);
    cfg_ = tmp_ + "/csumfix.toml";
  }
  void TearDown() override {
    for (pid_t* p : {&serve_, &prom_}) {
      if (*p > 0) {
        kill(*p, SIGKILL);
        waitpid(*p, nullptr, 0);
        *p = -1;
      }
    }
    Csumfix({"-n", a_.name(), "policy", "flush"});
    Csumfix({"-n", a_.name(), "detach", "--all"});
    unlink(("/run/csumfix/serve-" + a_.name() + ".json").c_str());
    a_.Destroy();
    b_.Destroy();
    csumfix::testing::Run({"rm", "-rf", tmp_});
    EXPECT_FALSE(PathExists("/sys/fs/bpf/csumfix/v1")) << "pins left behind";
  }

  // Starts `csumfix -n A serve ARGS` (with ip_netns_exec_: `ip netns exec A csumfix serve
  // ARGS`) with its output in tmp_/serve.log; waits until /-/ready answers 200, which serve does
  // once its config is applied. `binary`: another csumfix build (the upgrade tests' variant);
  // default CsumfixPath().
  void StartServe(const std::vector<std::string>& args, const std::string& binary = "") {
    ASSERT_LT(serve_, 0) << "serve already running";
    log_ = tmp_ + "/serve.log";
    const std::string bin = binary.empty() ? CsumfixPath() : binary;
    serve_ = Spawn(ip_netns_exec_
                       ? std::vector<std::string>{"ip", "netns", "exec", a_.name(), bin, "serve"}
                       : std::vector<std::string>{bin, "-n", a_.name(), "serve"},
                   args, log_);
    bool up = WaitFor(
        [&] {
          if (waitpid(serve_, nullptr, WNOHANG) == serve_) {
            serve_ = -1;
            return true;
          }
          return Http("http://127.0.0.1:10786/-/ready").rc == 0;
        },
        30);
    ASSERT_TRUE(up && serve_ > 0) << "serve did not come up:\n" << ReadFile(log_);
  }
  // Starts a real Prometheus in namespace A (its own port 19090, config and storage under
  // tmp_/prom) scraping serve every second, with `rule_files` loaded; waits until it is ready.
  // Its log: tmp_/prom/prometheus.log. Stopped in TearDown (prom_).
  void StartPrometheus(const std::vector<std::string>& rule_files, int timeout_s) {
    const std::string dir = tmp_ + "/prom";
    ASSERT_EQ(csumfix::testing::Run({"mkdir", "-p", dir + "/data"}).rc, 0);
    std::ofstream cfg(dir + "/prometheus.yml");
    cfg << "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n";
    if (!rule_files.empty()) cfg << "rule_files:\n";
    for (const auto& f : rule_files) cfg << "  - '" << f << "'\n";
    cfg << "scrape_configs:\n  - job_name: csumfix\n    static_configs:\n"
           "      - targets: ['127.0.0.1:10786']\n";
    cfg.close();
    prom_ = Spawn({"ip", "netns", "exec", a_.name(), "prometheus",
                   "--config.file=" + dir + "/prometheus.yml", "--storage.tsdb.path=" + dir + "/data",
                   "--web.listen-address=127.0.0.1:19090"},
                  {}, dir + "/prometheus.log");
    ASSERT_TRUE(
        WaitFor([&] { return Http("http://127.0.0.1:19090/-/ready").rc == 0; }, timeout_s))
        << ReadFile(dir + "/prometheus.log");
  }
  // Sends `sig` to serve; returns its exit status as a shell would print it.
  int StopServe(int sig) {
    kill(serve_, sig);
    int st = 0;
    waitpid(serve_, &st, 0);
    serve_ = -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }

  static pid_t Spawn(std::vector<std::string> argv, const std::vector<std::string>& more,
                     const std::string& log) {
    argv.insert(argv.end(), more.begin(), more.end());
    pid_t pid = fork();
    if (pid == 0) {
      FILE* f = fopen(log.c_str(), "a");
      if (f) {
        dup2(fileno(f), 1);
        dup2(fileno(f), 2);
      }
      std::vector<char*> c;
      for (auto& a : argv) c.push_back(a.data());
      c.push_back(nullptr);
      execvp(c[0], c.data());
      _exit(127);
    }
    return pid;
  }

  // GET inside namespace A (where serve and Prometheus listen).
  CmdResult Http(const std::string& url) {
    return csumfix::testing::Run({"ip", "netns", "exec", a_.name(), "python3", "-c",
                "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], "
                "timeout=5).read().decode())",
                url});
  }
  Scrape Metrics() {
    CmdResult r = Http("http://127.0.0.1:10786/metrics");
    EXPECT_EQ(r.rc, 0) << r.err;
    Scrape s = ParseExposition(r.out);
    EXPECT_EQ(s.error, "") << r.out;
    return s;
  }
  json Status() {
    CmdResult r = Csumfix({"-n", a_.name(), "status", "-j"});
    EXPECT_EQ(r.rc, 0) << r.err;
    return json::parse(r.out);
  }
  // Status for polling while serve changes things. An attach in progress has its directory
  // before its state: status must not fail then, it reports the entry as "attaching".
  std::optional<json> TryStatus() {
    CmdResult r = Csumfix({"-n", a_.name(), "status", "-j"});
    EXPECT_EQ(r.rc, 0) << "status failed while serve was changing attachments: " << r.err;
    if (r.rc != 0) return std::nullopt;
    json j = json::parse(r.out);
    for (const auto& i : j)
      EXPECT_TRUE(i["state"] == "ok" || i["state"] == "attaching") << i.dump();
    return j;
  }
  json Rules() {
    CmdResult r = Csumfix({"-n", a_.name(), "policy", "list", "-j"});
    EXPECT_EQ(r.rc, 0) << r.err;
    return json::parse(r.out);
  }
  void WriteConfig(const std::string& text) { std::ofstream(cfg_) << text; }

  // n UDP datagrams from A to 10.67.0.2:port (locally generated over veth: CHECKSUM_PARTIAL).
  void SendUdp(int n, int port) {
    ASSERT_EQ(a_.Exec("python3 -c \"import socket,time; s=socket.socket(socket.AF_INET,"
                      "socket.SOCK_DGRAM); [s.sendto(b'z'*200,('10.67.0.2'," +
                      std::to_string(port) + ")) or time.sleep(0.001) for _ in range(" +
                      std::to_string(n) + ")]\""),
              0);
  }
  // As bounce_veth_test: n datagrams read raw on vb; "got CSUMNOTREADY valid".
  std::string SendAndRead(int n, int port) {
    return RawRead(b_, "vb", port, n, [&] { SendUdp(n, port); });
  }

  Netns a_, b_;
  std::string tmp_, cfg_, log_;
  pid_t serve_ = -1, prom_ = -1;
  bool ip_netns_exec_ = false;
};

}  // namespace csumfix::testing

#endif  // CSUMFIX_TESTS_NETNS_SERVE_FIXTURE_H_
