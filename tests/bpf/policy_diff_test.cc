// Policy precedence, differentially: random rule sets are installed with the real installer
// (control::Policy, the same code as `csumfix policy`), packets run through the tc programs with
// BPF_PROG_TEST_RUN, and the action the program applied (its per-action counter) must be the one an
// independent matcher below picks from the rule *specs*: every field that is set must match; the
// lowest priority wins, then the lowest id; no match means the interface's action.
//
// It exists because a bug here is silent: Debian's 6.1 verifier checks a bpf_loop callback once
// and hard-wired away the "does this match beat the best so far" branch, so the last matching mask
// won (bpf/lib/policy.h, csf_opaque_zero). Single-rule tests cannot see that; overlapping rules of
// different masks and priorities can. Runs in the VM matrix on every kernel.
//
// Environment: CSUMFIX_POLICY_SETS (rule sets, default 150), CSUMFIX_DIFF_SEED (seed, printed).
#include <arpa/inet.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bpf/loader.h"
#include "bpf/programs_fixture.h"
#include "control/pins.h"
#include "control/policy.h"
#include "csumfix/abi.h"
#include "gtest/gtest.h"

namespace csumfix {
namespace {

constexpr uint32_t kLo = 1;  // BPF_PROG_TEST_RUN runs tc programs on the loopback device

const char* const kActions[] = {"pass", "observe", "verify", "drop-bad", "fill", "zero-udp4"};
static_assert(sizeof(kActions) / sizeof(kActions[0]) == CSF_ACT_MAX);

struct Pkt {
  int ip = 4;
  bool tcp = false;
  std::string src, dst;
  uint16_t sport = 0, dport = 0;
};

std::vector<uint8_t> Frame(const Pkt& p) {
  std::vector<uint8_t> f(14, 0);
  f[12] = p.ip == 4 ? 0x08 : 0x86;
  f[13] = p.ip == 4 ? 0x00 : 0xdd;
  const size_t l4 = p.tcp ? 20 : 8, payload = 16;
  if (p.ip == 4) {
    uint8_t h[20] = {0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, uint8_t(p.tcp ? 6 : 17)};
    const uint16_t tot = htons(uint16_t(20 + l4 + payload));
    std::memcpy(&h[2], &tot, 2);
    inet_pton(AF_INET, p.src.c_str(), &h[12]);
    inet_pton(AF_INET, p.dst.c_str(), &h[16]);
    uint32_t sum = 0;  // a correct IPv4 header checksum
    for (int i = 0; i < 20; i += 2) sum += uint32_t(h[i]) << 8 | h[i + 1];
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    h[10] = uint8_t(~sum >> 8);
    h[11] = uint8_t(~sum);
    f.insert(f.end(), h, h + 20);
  } else {
    uint8_t h[40] = {0x60, 0, 0, 0, 0, 0, uint8_t(p.tcp ? 6 : 17), 64};
    const uint16_t plen = htons(uint16_t(l4 + payload));
    std::memcpy(&h[4], &plen, 2);
    inet_pton(AF_INET6, p.src.c_str(), &h[8]);
    inet_pton(AF_INET6, p.dst.c_str(), &h[24]);
    f.insert(f.end(), h, h + 40);
  }
  std::vector<uint8_t> l(l4, 0);
  const uint16_t sp = htons(p.sport), dp = htons(p.dport);
  std::memcpy(&l[0], &sp, 2);
  std::memcpy(&l[2], &dp, 2);
  // A nonzero checksum (it is wrong, which the policy does not care about): a UDP/IPv4 zero is
  // "no checksum" and such a packet is never matched against rules.
  l[p.tcp ? 16 : 6] = 0x12;
  l[p.tcp ? 17 : 7] = 0x34;
  if (p.tcp) {
    l[12] = 5 << 4;
  } else {
    const uint16_t ulen = htons(uint16_t(8 + payload));
    std::memcpy(&l[4], &ulen, 2);
  }
  f.insert(f.end(), l.begin(), l.end());
  f.insert(f.end(), payload, 0x5a);
  return f;
}

// ---- the independent matcher, on the specs as a user wrote them ----
bool InPrefix(const std::string& prefix, int ip, const std::string& addr) {
  if (prefix.empty()) return true;
  const bool v6 = prefix.find(':') != std::string::npos;
  if (v6 != (ip == 6)) return false;
  std::string a = prefix;
  int len = v6 ? 128 : 32;
  if (auto slash = prefix.find('/'); slash != std::string::npos) {
    a = prefix.substr(0, slash);
    len = std::stoi(prefix.substr(slash + 1));
  }
  uint8_t pa[16] = {}, xa[16] = {};
  inet_pton(v6 ? AF_INET6 : AF_INET, a.c_str(), pa);
  inet_pton(v6 ? AF_INET6 : AF_INET, addr.c_str(), xa);
  for (int bit = 0; bit < len; ++bit) {
    const uint8_t m = uint8_t(0x80 >> (bit % 8));
    if ((pa[bit / 8] & m) != (xa[bit / 8] & m)) return false;
  }
  return true;
}

bool InPorts(const std::string& ports, uint16_t port) {
  if (ports.empty()) return true;
  auto dash = ports.find('-');
  const int lo = std::stoi(ports.substr(0, dash));
  const int hi = dash == std::string::npos ? lo : std::stoi(ports.substr(dash + 1));
  return port >= lo && port <= hi;
}

bool Matches(const control::RuleSpec& r, const Pkt& p, const std::string& hook) {
  if (!r.ifname.empty() && r.ifname != "lo") return false;
  if (!r.hook.empty() && r.hook != hook) return false;
  if (r.ip != 0 && r.ip != p.ip) return false;
  if (!r.proto.empty() && r.proto != (p.tcp ? "tcp" : "udp")) return false;
  return InPrefix(r.src, p.ip, p.src) && InPrefix(r.dst, p.ip, p.dst) &&
         InPorts(r.sport, p.sport) && InPorts(r.dport, p.dport);
}

// Index into `rules` of the winner (ids are 1 + index: Replace numbers them in order), or none.
std::optional<size_t> Winner(const std::vector<control::RuleSpec>& rules, const Pkt& p,
                             const std::string& hook) {
  std::optional<size_t> best;
  for (size_t i = 0; i < rules.size(); ++i) {
    if (!Matches(rules[i], p, hook)) continue;
    if (!best || rules[i].priority < rules[*best].priority) best = i;  // ties: lower id stays
  }
  return best;
}

int ActionIndex(const std::string& a) {
  for (int i = 0; i < CSF_ACT_MAX; ++i)
    if (a == kActions[i]) return i;
  return -1;
}

class PolicyDiff : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0) << "the BPF policy test needs root: run scripts/test.sh as root";
    // Its own bpffs directory, so the real /sys/fs/bpf/csumfix is never touched.
    root_ = absl::StrCat("/sys/fs/bpf/csf-policy-test-", getpid());
    maps_ = control::PinPaths(root_).maps();  // where Policy::Open(root_) looks
    std::filesystem::create_directories(maps_);
    bpf::LoadOptions lo;
    lo.pin_maps_dir = maps_;
    lo.object = csumfix::testing::TestObject();
    auto p = bpf::Programs::Load(lo);
    ASSERT_TRUE(p.ok()) << p.status();
    progs_ = std::move(p).value();
  }
  void TearDown() override {
    progs_.reset();
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
    EXPECT_FALSE(std::filesystem::exists(root_)) << "left behind: " << root_;
  }
  std::string root_, maps_;
  std::unique_ptr<bpf::Programs> progs_;
};

TEST_F(PolicyDiff, RandomRuleSetsPickTheRuleOfHighestPrecedence) {
  const char* seed_env = std::getenv("CSUMFIX_DIFF_SEED");
  const uint64_t seed =
      seed_env && *seed_env
          ? std::strtoull(seed_env, nullptr, 0)
          : uint64_t(std::chrono::steady_clock::now().time_since_epoch().count());
  const char* sets_env = std::getenv("CSUMFIX_POLICY_SETS");
  const int sets = sets_env && *sets_env ? std::atoi(sets_env) : 150;
  std::printf("policy differential: seed %llu (replay: CSUMFIX_DIFF_SEED=%llu), %d rule sets\n",
              (unsigned long long)seed, (unsigned long long)seed, sets);
  std::mt19937_64 rng(seed);
  auto pick = [&](const std::vector<std::string>& v) { return v[rng() % v.size()]; };

  const std::vector<std::string> src4 = {"10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.3",
                                         "192.168.0.0/16"};
  const std::vector<std::string> src6 = {"fd00::/16", "fd00:1::/32", "fd00:1:2::/48",
                                         "fd00:1:2::3", "2001:db8::/32"};
  const std::vector<std::string> addr4 = {"10.1.2.3", "10.1.9.9", "10.2.0.1", "192.168.1.1",
                                          "172.16.0.1"};
  const std::vector<std::string> addr6 = {"fd00:1:2::3", "fd00:1:9::9", "fd00:2::1",
                                          "2001:db8::1", "fe80::1"};
  const std::vector<std::string> ports = {"53", "1000-2000", "7000-7010", "1500"};
  const std::vector<uint16_t> pkt_ports = {53, 1500, 7005, 9999, 1000};

  auto policy = control::Policy::Open(root_);
  ASSERT_TRUE(policy.ok()) << policy.status();
  auto cfg = progs_->ifcfg();
  auto ctrs = progs_->counters();

  int checked = 0, hits = 0, installed = 0, multi = 0;
  for (int set = 0; set < sets; ++set) {
    // 2-7 rules of mixed masks and few priorities (ties exercise the id order).
    std::vector<control::RuleSpec> specs;
    std::vector<csf_pol_rule> rules;
    const int n = 2 + int(rng() % 6);
    while (int(specs.size()) < n) {
      control::RuleSpec r;
      const int fam = rng() % 3;  // 0: any, 4, 6
      r.ip = fam == 0 ? 0 : fam == 1 ? 4 : 6;
      const bool v6 = r.ip == 6 || (r.ip == 0 && rng() % 2);
      if (rng() % 2) r.src = pick(v6 ? src6 : src4);
      if (rng() % 2) r.dst = pick(v6 ? src6 : src4);
      if (rng() % 2) r.proto = rng() % 2 ? "tcp" : "udp";
      if (!r.proto.empty() && rng() % 2) r.sport = pick(ports);
      if (!r.proto.empty() && rng() % 2) r.dport = pick(ports);
      if (rng() % 4 == 0) r.hook = rng() % 2 ? "ingress" : "egress";
      if (rng() % 5 == 0) r.ifname = "lo";
      r.action = kActions[rng() % CSF_ACT_MAX];
      r.priority = 1 + rng() % 3;
      auto parsed = control::ParseRule(r);
      if (!parsed.ok()) continue;  // e.g. zero-udp4 on TCP: not a rule a user could add
      specs.push_back(r);
      rules.push_back(*parsed);
    }
    if (auto s = policy->Replace(rules); !s.ok()) {
      // More distinct masks than CSF_POL_MAX_MASKS: refused whole, which is the contract.
      EXPECT_NE(std::string(s.message()).find("distinct shapes"), std::string::npos) << s;
      continue;
    }
    ++installed;
    for (int k = 0; k < 12; ++k) {
      Pkt p;
      p.ip = rng() % 2 ? 4 : 6;
      p.tcp = rng() % 2;
      p.src = pick(p.ip == 4 ? addr4 : addr6);
      p.dst = pick(p.ip == 4 ? addr4 : addr6);
      p.sport = pkt_ports[rng() % pkt_ports.size()];
      p.dport = pkt_ports[rng() % pkt_ports.size()];
      const std::vector<uint8_t> frame = Frame(p);
      for (uint32_t hook : {uint32_t(CSF_HOOK_TC_INGRESS), uint32_t(CSF_HOOK_TC_EGRESS)}) {
        const std::string hook_name = hook == CSF_HOOK_TC_INGRESS ? "ingress" : "egress";
        const csf_if_key key{kLo, hook};
        const uint32_t if_action = CSF_ACT_VERIFY;
        ASSERT_TRUE(cfg.Update(key, csf_ifcfg{if_action, 0, 0, 0}).ok());
        ASSERT_TRUE(ctrs.Delete(key).ok());
        auto run = bpf::TestRun(progs_->prog_fd(hook), frame);
        ASSERT_TRUE(run.ok()) << run.status();
        auto got = ctrs.Lookup(key);
        ASSERT_TRUE(got.ok() && got->has_value()) << "no counters for the run";
        const csf_counters& c = **got;
        std::optional<size_t> w = Winner(specs, p, hook_name);
        int matching = 0;
        for (const auto& r : specs) matching += Matches(r, p, hook_name);
        multi += matching > 1;
        const int want = w ? ActionIndex(specs[*w].action) : int(if_action);
        int applied = -1;
        for (int a = 0; a < CSF_ACT_MAX; ++a)
          if (c.c[CSF_CTR_ACTION_BASE + a] != 0) applied = a;
        std::string desc;
        for (size_t i = 0; i < rules.size(); ++i)
          absl::StrAppend(&desc, "\n  ", control::DescribeRule(rules[i]));
        ASSERT_EQ(applied, want)
            << "packet ipv" << p.ip << (p.tcp ? " tcp " : " udp ") << p.src << ":" << p.sport
            << " -> " << p.dst << ":" << p.dport << " at " << hook_name << "; want "
            << kActions[want] << (w ? absl::StrCat(" from rule id ", *w + 1) : " (no rule)")
            << ", the program applied " << (applied >= 0 ? kActions[applied] : "nothing")
            << "; rules (seed " << seed << ", set " << set << "):" << desc;
        EXPECT_EQ(c.c[CSF_CTR_POLICY_HIT], w ? 1u : 0u);
        hits += w.has_value();
        ++checked;
      }
    }
  }
  ASSERT_TRUE(policy->Flush().ok());
  std::printf("policy differential: %d rule sets installed, %d packet runs, %d matched a rule, "
              "%d matched several\n", installed, checked, hits, multi);
  // The test means something only if it saw the interesting cases.
  EXPECT_GT(installed, sets / 2);
  EXPECT_GT(multi, checked / 20) << "too few packets matched several rules";
  EXPECT_GT(checked - hits, 0) << "no packet fell through to the interface's action";
}

}  // namespace
}  // namespace csumfix
