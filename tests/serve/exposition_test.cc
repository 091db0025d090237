// The Prometheus exposition text of csumfix serve, from a hand-made snapshot: parsed line by line
// (families, HELP/TYPE before samples, label escaping), values checked, and promtool's own check.
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>

#include "csumfix/abi.h"
#include "gtest/gtest.h"
#include "metrics/exposition.h"
#include "base/version.h"

namespace csumfix::metrics {
namespace {

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  std::string value;
};

// A strict reader of the text format, enough for what Render writes.
struct Parsed {
  std::map<std::string, std::string> type, help;
  std::vector<Sample> samples;
  std::string error;
};

Parsed Parse(const std::string& text) {
  Parsed p;
  std::istringstream in(text);
  std::string line;
  std::string current;  // family whose samples may follow
  static const std::regex kName("[a-zA-Z_:][a-zA-Z0-9_:]*");
  while (std::getline(in, line)) {
    if (line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0) {
      std::string rest = line.substr(7);
      size_t sp = rest.find(' ');
      std::string name = rest.substr(0, sp);
      if (line[2] == 'H') {
        p.help[name] = rest.substr(sp + 1);
      } else {
        if (p.type.count(name)) p.error = "second TYPE for " + name;
        p.type[name] = rest.substr(sp + 1);
        current = name;
      }
      continue;
    }
    Sample s;
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    s.name = line.substr(0, i);
    if (!std::regex_match(s.name, kName)) p.error = "bad name in: " + line;
    if (s.name != current) p.error = "sample outside its family: " + line;
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        size_t eq = line.find('=', i);
        std::string key = line.substr(i, eq - i);
        if (line[eq + 1] != '"') p.error = "unquoted label value: " + line;
        std::string v;
        size_t j = eq + 2;
        for (; j < line.size() && line[j] != '"'; ++j) {
          if (line[j] == '\\') {
            char n = line[++j];
            v += n == 'n' ? '\n' : n;
          } else {
            v += line[j];
          }
        }
        s.labels[key] = v;
        i = j + 1;
        if (line[i] == ',') ++i;
      }
      ++i;
    }
    if (i >= line.size() || line[i] != ' ') p.error = "no value: " + line;
    s.value = line.substr(i + 1);
    p.samples.push_back(s);
  }
  return p;
}

Snapshot MakeSnapshot() {
  Snapshot s;
  control::IfaceStatus a;
  a.ifname = "tap0";
  a.ifindex = 7;
  a.present = true;
  a.mechanism = CSF_MECH_BOUNCE;
  auto hook = [](uint32_t h, uint32_t prog, bool attached, uint32_t action) {
    control::HookStatus s;
    s.hook = h;
    s.mode = "tcx";
    s.prog_id = prog;
    s.attached = attached;
    s.action = action;
    return s;
  };
  a.hooks.push_back(hook(CSF_HOOK_TC_INGRESS, 41, true, CSF_ACT_FILL));
  a.hooks.push_back(hook(CSF_HOOK_TC_EGRESS, 42, false, CSF_ACT_VERIFY));
  s.ifaces.push_back(a);
  control::CounterRow r;
  r.ifindex = 7;
  r.ifname = "tap0";  // as Controller::Counters names it: from the attachment's record
  r.hook = CSF_HOOK_TC_INGRESS;
  r.counters.c[CSF_CTR_PACKETS] = 1000;
  r.counters.c[CSF_CTR_BYTES] = 123456789012345ull;
  r.counters.c[CSF_CTR_CLASS_BASE + CSF_CLASS_PARTIAL] = 30;
  r.counters.c[CSF_CTR_ACTION_BASE + CSF_ACT_FILL] = 1000;
  r.counters.c[CSF_CTR_FILLED] = 30;
  r.counters.c[CSF_CTR_BOUNCED] = 29;
  s.counters.push_back(r);
  control::CounterRow odd = r;  // an interface named with every character that needs escaping
  odd.ifindex = 9;
  odd.ifname = "a\"b\\c\nd";
  odd.hook = CSF_HOOK_XDP;
  s.counters.push_back(odd);
  s.daemon.scrape_errors = 2;
  s.daemon.has_config = true;
  s.daemon.config_reloads_ok = 3;
  s.daemon.config_reloads_failed = 1;
  s.daemon.config_last_ok = true;
  s.daemon.config_last_ok_time = 1700000000.5;
  s.daemon.probe_mechanism = "bounce";
  s.daemon.kernel = "6.18.44";
  s.daemon.follow_attached = 5;
  s.daemon.follow_failed = 1;
  s.daemon.link_resyncs = 2;
  s.daemon.waiting = 1;
  return s;
}

// The sample `name` with exactly `labels`; the namespace labels (netns, netns_name) every
// per-interface sample carries are compared only when `labels` names netns.
const Sample* Find(const Parsed& p, const std::string& name,
                   const std::map<std::string, std::string>& labels) {
  for (const auto& s : p.samples) {
    std::map<std::string, std::string> got = s.labels;
    if (!labels.count("netns")) {
      got.erase("netns");
      got.erase("netns_name");
    }
    if (s.name == name && got == labels) return &s;
  }
  return nullptr;
}

TEST(Exposition, EscapesLabelValues) {
  EXPECT_EQ(EscapeLabelValue("plain"), "plain");
  EXPECT_EQ(EscapeLabelValue("a\"b"), "a\\\"b");
  EXPECT_EQ(EscapeLabelValue("a\\b"), "a\\\\b");
  EXPECT_EQ(EscapeLabelValue("a\nb"), "a\\nb");
}

TEST(Exposition, FamiliesValuesAndLabels) {
  const std::string text = Render(MakeSnapshot());
  Parsed p = Parse(text);
  ASSERT_EQ(p.error, "") << text;
  for (const auto& [name, type] : p.type) {
    EXPECT_TRUE(p.help.count(name)) << name << " has no HELP";
    if (type == "counter") {
      EXPECT_TRUE(name.size() > 6 && name.substr(name.size() - 6) == "_total") << name;
    }
  }
  EXPECT_EQ(p.type["csumfix_packets_total"], "counter");
  EXPECT_EQ(p.type["csumfix_attachment_info"], "gauge");
  const Sample* s = Find(p, "csumfix_packets_total", {{"device", "tap0"}, {"hook", "ingress"}});
  ASSERT_NE(s, nullptr) << text;
  EXPECT_EQ(s->value, "1000");
  s = Find(p, "csumfix_bytes_total", {{"device", "tap0"}, {"hook", "ingress"}});
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->value, "123456789012345");
  s = Find(p, "csumfix_class_packets_total",
           {{"device", "tap0"}, {"hook", "ingress"}, {"class", "partial"}});
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->value, "30");
  s = Find(p, "csumfix_action_packets_total",
           {{"device", "tap0"}, {"hook", "ingress"}, {"action", "fill"}});
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->value, "1000");
  s = Find(p, "csumfix_filled_packets_total", {{"device", "tap0"}, {"hook", "ingress"}});
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->value, "30");
  s = Find(p, "csumfix_bounced_packets_total", {{"device", "tap0"}, {"hook", "ingress"}});
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->value, "29");
  // Every class and every action has a sample per row (zeros included): 2 rows.
  int classes = 0, actions = 0;
  for (const auto& x : p.samples) {
    classes += x.name == "csumfix_class_packets_total";
    actions += x.name == "csumfix_action_packets_total";
  }
  EXPECT_EQ(classes, 2 * CSF_CLASS_MAX);
  EXPECT_EQ(actions, 2 * CSF_ACT_MAX);
  // The odd name comes back intact through the escaping.
  s = Find(p, "csumfix_packets_total", {{"device", "a\"b\\c\nd"}, {"hook", "xdp"}});
  ASSERT_NE(s, nullptr) << text;
  s = Find(p, "csumfix_attachment_info",
           {{"device", "tap0"}, {"hook", "egress"}, {"mechanism", "bounce"}, {"mode", "tcx"},
            {"prog_id", "42"}, {"action", "verify"}});
  ASSERT_NE(s, nullptr) << text;
  EXPECT_EQ(s->value, "1");
  for (const auto& x : p.samples) {
    if (x.name == "csumfix_attachment_info") {
      EXPECT_EQ(x.labels.count("act_csum_prog_id"), 0u) << "bounce has no act_csum selector";
    }
  }
  s = Find(p, "csumfix_program_attached", {{"device", "tap0"}, {"hook", "ingress"}});
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->value, "1");
  s = Find(p, "csumfix_program_attached", {{"device", "tap0"}, {"hook", "egress"}});
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->value, "0");
  s = Find(p, "csumfix_scrape_errors_total", {});
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->value, "2");
  s = Find(p, "csumfix_config_reloads_total", {{"result", "failure"}});
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->value, "1");
  s = Find(p, "csumfix_config_last_reload_success_timestamp_seconds", {});
  ASSERT_NE(s, nullptr);
  EXPECT_DOUBLE_EQ(std::stod(s->value), 1700000000.5);
  s = Find(p, "csumfix_fill_mechanism_info", {{"mechanism", "bounce"}, {"kernel", "6.18.44"}});
  ASSERT_NE(s, nullptr);
  s = Find(p, "csumfix_follow_attaches_total", {{"result", "success"}});
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->value, "5");
  s = Find(p, "csumfix_follow_attaches_total", {{"result", "failure"}});
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->value, "1");
  s = Find(p, "csumfix_link_resyncs_total", {});
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->value, "2");
  s = Find(p, "csumfix_config_waiting_interfaces", {});
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->value, "1");
}

// The same interface name in two network namespaces is two series, told apart by netns (the
// inode) and netns_name (the /run/netns name, "" where there is none); a row's ifindex without a
// record is "ifindex:N".
TEST(Exposition, NamespacesAreLabelled) {
  Snapshot s;
  control::CounterRow a;
  a.netns_ino = 4026532100;
  a.ifindex = 2;
  a.ifname = "eth0";
  a.hook = CSF_HOOK_TC_INGRESS;
  a.counters.c[CSF_CTR_PACKETS] = 11;
  control::CounterRow b = a;
  b.netns_ino = 4026532200;
  b.counters.c[CSF_CTR_PACKETS] = 22;
  control::CounterRow c = a;
  c.ifindex = 5;
  c.ifname = "";
  c.counters.c[CSF_CTR_PACKETS] = 33;
  s.counters = {a, b, c};
  s.netns_names = {{4026532100, "pod-a"}, {4026532200, ""}};
  control::IfaceStatus i;
  i.ifname = "eth0";
  i.netns_ino = 4026532100;
  i.present = true;
  s.ifaces.push_back(i);
  const std::string text = Render(s);
  Parsed p = Parse(text);
  ASSERT_EQ(p.error, "") << text;
  const Sample* x = Find(p, "csumfix_packets_total",
                         {{"device", "eth0"}, {"hook", "ingress"}, {"netns", "4026532100"},
                          {"netns_name", "pod-a"}});
  ASSERT_NE(x, nullptr) << text;
  EXPECT_EQ(x->value, "11");
  x = Find(p, "csumfix_packets_total",
           {{"device", "eth0"}, {"hook", "ingress"}, {"netns", "4026532200"}, {"netns_name", ""}});
  ASSERT_NE(x, nullptr) << text;
  EXPECT_EQ(x->value, "22");
  x = Find(p, "csumfix_packets_total",
           {{"device", "ifindex:5"}, {"hook", "ingress"}, {"netns", "4026532100"},
            {"netns_name", "pod-a"}});
  ASSERT_NE(x, nullptr) << text;
  EXPECT_EQ(x->value, "33");
  x = Find(p, "csumfix_interface_present",
           {{"device", "eth0"}, {"netns", "4026532100"}, {"netns_name", "pod-a"}});
  ASSERT_NE(x, nullptr) << text;
  EXPECT_EQ(x->value, "1");
}

// Every counter of the ABI (csf_counters.c[0..CSF_CTR_MAX)) reaches the exposition: a counter
// added to abi.h and not exported fails here. Each gets a value no other counter has.
TEST(Exposition, EveryAbiCounterIsExported) {
  Snapshot s;
  control::CounterRow r;
  r.ifindex = 3;
  r.ifname = "tap3";
  r.hook = CSF_HOOK_TC_EGRESS;
  auto value = [](uint32_t c) { return 1000003ull + 7ull * c; };
  for (uint32_t c = 0; c < CSF_CTR_MAX; ++c) r.counters.c[c] = value(c);
  s.counters.push_back(r);
  const std::string text = Render(s);
  Parsed p = Parse(text);
  ASSERT_EQ(p.error, "") << text;
  for (uint32_t c = 0; c < CSF_CTR_MAX; ++c) {
    int found = 0;
    for (const auto& x : p.samples)
      if (x.labels.count("device") && x.labels.at("device") == "tap3" &&
          x.value == std::to_string(value(c)))
        ++found;
    EXPECT_EQ(found, 1) << "counter id " << c << " (abi.h CSF_CTR_*) appears " << found
                        << " times in the exposition";
  }
}

// An interface with mechanism act-csum: a selector program and its counter.
Snapshot ActCsumSnapshot() {
  Snapshot s;
  control::IfaceStatus a;
  a.ifname = "vnet4";
  a.ifindex = 12;
  a.present = true;
  a.mechanism = CSF_MECH_ACT_CSUM;
  control::HookStatus h;
  h.hook = CSF_HOOK_TC_INGRESS;
  h.mode = "tcx";
  h.prog_id = 310;
  h.act_prog_id = 311;
  h.attached = true;
  h.action = CSF_ACT_FILL;
  a.hooks.push_back(h);
  s.ifaces.push_back(a);
  control::CounterRow r;
  r.ifindex = 12;
  r.ifname = "vnet4";  // Controller::Counters names it from the record
  r.hook = CSF_HOOK_TC_INGRESS;
  r.counters.c[CSF_CTR_ACT_SELECTED] = 77;
  r.counters.c[CSF_CTR_FILLED] = 77;
  s.counters.push_back(r);
  return s;
}

TEST(Exposition, ActCsumSelectorCounterAndProgram) {
  const std::string text = Render(ActCsumSnapshot());
  Parsed p = Parse(text);
  ASSERT_EQ(p.error, "") << text;
  EXPECT_EQ(p.type["csumfix_act_csum_selected_packets_total"], "counter");
  const Sample* x = Find(p, "csumfix_act_csum_selected_packets_total",
                         {{"device", "vnet4"}, {"hook", "ingress"}});
  ASSERT_NE(x, nullptr) << text;
  EXPECT_EQ(x->value, "77");
  x = Find(p, "csumfix_attachment_info",
           {{"device", "vnet4"}, {"hook", "ingress"}, {"mechanism", "act-csum"}, {"mode", "tcx"},
            {"prog_id", "310"}, {"action", "fill"}, {"act_csum_prog_id", "311"}});
  ASSERT_NE(x, nullptr) << text;
  EXPECT_EQ(x->value, "1");
}

TEST(Exposition, BuildInfoNamesVersionRevisionLibbpfAndKernel) {
  Snapshot s;
  s.daemon.kernel = "6.18.44";
  Parsed p = Parse(Render(s));
  ASSERT_EQ(p.error, "");
  EXPECT_EQ(p.type["csumfix_build_info"], "gauge");
  const base::BuildInfo& b = base::Build();
  EXPECT_FALSE(b.version.empty());
  EXPECT_FALSE(b.revision.empty());
  EXPECT_NE(b.libbpf.find('.'), std::string::npos) << b.libbpf;
  const Sample* x = Find(p, "csumfix_build_info",
                         {{"version", b.version}, {"revision", b.revision}, {"libbpf", b.libbpf},
                          {"kernel", "6.18.44"}});
  ASSERT_NE(x, nullptr);
  EXPECT_EQ(x->value, "1");
}

TEST(Exposition, NothingAttachedStillValid) {
  Snapshot s;
  Parsed p = Parse(Render(s));
  ASSERT_EQ(p.error, "");
  EXPECT_NE(Find(p, "csumfix_scrape_errors_total", {}), nullptr);
  EXPECT_EQ(p.type.count("csumfix_config_reloads_total"), 0u) << "no config, no config metrics";
}

TEST(Exposition, PromtoolAccepts) {
  const std::string path = "/tmp/csf-expo-" + std::to_string(getpid()) + ".prom";
  {
    Snapshot s = MakeSnapshot();
    const Snapshot act = ActCsumSnapshot();  // the act_csum_prog_id label and its counter too
    s.ifaces.insert(s.ifaces.end(), act.ifaces.begin(), act.ifaces.end());
    s.counters.insert(s.counters.end(), act.counters.begin(), act.counters.end());
    std::ofstream out(path);
    out << Render(s);
  }
  FILE* f = popen(("promtool check metrics < " + path + " 2>&1; echo rc=$?").c_str(), "r");
  ASSERT_NE(f, nullptr);
  std::string out;
  char buf[512];
  while (fgets(buf, sizeof(buf), f)) out += buf;
  pclose(f);
  unlink(path.c_str());
  EXPECT_EQ(out, "rc=0\n") << "promtool (Debian package prometheus, scripts/deps.sh) said:\n"
                           << out;
}

}  // namespace
}  // namespace csumfix::metrics
