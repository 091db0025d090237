// config::Plan decides from a config and a Current (what GatherCurrent read) alone, without a
// syscall: so these run unprivileged, on interfaces that need not exist. Adopt what is attached
// as listed, attach what is not, re-attach what differs (hooks, mechanism, redirect target, an
// interface deleted and made again), detach only what serve attached and the file dropped, set
// the action where only it differs, replace the rule set only when it changed.
#include <algorithm>
#include <string>
#include <vector>

#include "config/config.h"
#include "config/reconcile.h"
#include "control/control.h"
#include "control/policy.h"
#include "csumfix/abi.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace csumfix::config {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using Kind = IfaceStep::Kind;

InterfaceSpec Spec(const std::string& name, std::vector<uint32_t> hooks,
                   uint32_t action = CSF_ACT_FILL, const std::string& mechanism = "bpf") {
  InterfaceSpec s;
  s.name = name;
  for (uint32_t h : hooks) {
    s.ingress |= h == CSF_HOOK_TC_INGRESS;
    s.egress |= h == CSF_HOOK_TC_EGRESS;
    s.xdp |= h == CSF_HOOK_XDP;
  }
  s.action = action;
  s.mechanism = mechanism;
  s.where = "test.toml:1:1";
  return s;
}

control::IfaceStatus Attached(const std::string& name, uint32_t ifindex,
                              std::vector<uint32_t> hooks, uint32_t action = CSF_ACT_FILL,
                              uint32_t mechanism = CSF_MECH_BPF) {
  control::IfaceStatus s;
  s.ifname = name;
  s.ifindex = ifindex;
  s.present = true;
  s.mechanism = mechanism;
  for (uint32_t h : hooks) {
    control::HookStatus hs;
    hs.hook = h;
    hs.mode = h == CSF_HOOK_XDP ? "xdp" : "tcx";
    hs.attached = true;
    hs.action = action;
    s.hooks.push_back(hs);
  }
  return s;
}

csf_pol_rule Rule(const std::string& proto, const std::string& dport, uint32_t priority) {
  control::RuleSpec r;
  r.proto = proto;
  r.dport = dport;
  r.action = "fill";
  r.priority = priority;
  auto p = control::ParseRule(r);
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? *p : csf_pol_rule{};
}

class PlanTest : public ::testing::Test {
 protected:
  // `name` listed in the config and attached as `status` (ifindex now = status.ifindex).
  void ListAndAttach(const InterfaceSpec& spec, const control::IfaceStatus& status) {
    cfg_.interfaces.push_back(spec);
    cur_.attached.push_back(status);
    SetLink(spec.name, status.ifindex);
  }
  // The namespace has a link `name` with index `ifindex` (replacing one of that name).
  void SetLink(const std::string& name, uint32_t ifindex) {
    std::erase_if(cur_.links, [&](const control::LinkInfo& l) { return l.name == name; });
    cur_.links.push_back({ifindex, name, "tun", 0, 0});
  }
  Steps MustPlan() {
    auto s = Plan(cfg_, cur_);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? *s : Steps{};
  }

  Config cfg_{"test.toml", {}, {}};
  Current cur_{.probe_mechanism = CSF_MECH_BPF};
};

TEST_F(PlanTest, AdoptsWhatIsAttachedAsListed) {
  ListAndAttach(Spec("tap0", {CSF_HOOK_TC_INGRESS, CSF_HOOK_TC_EGRESS}),
                Attached("tap0", 7, {CSF_HOOK_TC_INGRESS, CSF_HOOK_TC_EGRESS}));
  Steps s = MustPlan();
  ASSERT_EQ(s.interfaces.size(), 1u);
  EXPECT_EQ(s.interfaces[0].kind, Kind::kAdopt);
  EXPECT_THAT(s.interfaces[0].set_action, IsEmpty());
  EXPECT_EQ(s.interfaces[0].old.ifindex, 7u);
  EXPECT_THAT(s.detach, IsEmpty());
  EXPECT_FALSE(s.replace_rules);
  EXPECT_EQ(s.path, "test.toml");
}

TEST_F(PlanTest, AttachesWhatIsNotAttached) {
  cfg_.interfaces.push_back(Spec("tap1", {CSF_HOOK_TC_INGRESS, CSF_HOOK_XDP}, CSF_ACT_VERIFY));
  cfg_.interfaces.back().redirect_to = "vc";
  SetLink("tap1", 9);
  Steps s = MustPlan();
  ASSERT_EQ(s.interfaces.size(), 1u);
  const IfaceStep& st = s.interfaces[0];
  EXPECT_EQ(st.kind, Kind::kAttach);
  EXPECT_EQ(st.req.ifname, "tap1");
  EXPECT_TRUE(st.req.ingress);
  EXPECT_FALSE(st.req.egress);
  EXPECT_TRUE(st.req.xdp);
  EXPECT_EQ(st.req.action, uint32_t{CSF_ACT_VERIFY});
  EXPECT_EQ(st.req.mechanism, uint32_t{CSF_MECH_BPF});
  EXPECT_EQ(st.req.xdp_redirect_to, "vc");
}

TEST_F(PlanTest, ReattachesWhenTheHooksDiffer) {
  control::IfaceStatus now = Attached("tap0", 7, {CSF_HOOK_TC_INGRESS}, CSF_ACT_OBSERVE);
  now.hooks[0].mode = "clsact";
  ListAndAttach(Spec("tap0", {CSF_HOOK_TC_INGRESS, CSF_HOOK_TC_EGRESS}), now);
  Steps s = MustPlan();
  ASSERT_EQ(s.interfaces.size(), 1u);
  const IfaceStep& st = s.interfaces[0];
  EXPECT_EQ(st.kind, Kind::kReattach);
  EXPECT_TRUE(st.req.ingress && st.req.egress);
  // Should the new attach fail, the old one comes back as it was.
  EXPECT_EQ(st.restore.ifname, "tap0");
  EXPECT_TRUE(st.restore.ingress);
  EXPECT_FALSE(st.restore.egress);
  EXPECT_EQ(st.restore.tc_api, control::TcApi::kClsact);
  EXPECT_EQ(st.restore.action, uint32_t{CSF_ACT_OBSERVE});
  EXPECT_EQ(st.old.hooks.size(), 1u);
}

TEST_F(PlanTest, ReattachesWhenTheMechanismDiffers) {
  ListAndAttach(Spec("tap0", {CSF_HOOK_TC_INGRESS}, CSF_ACT_FILL, "bounce"),
                Attached("tap0", 7, {CSF_HOOK_TC_INGRESS}, CSF_ACT_FILL, CSF_MECH_BPF));
  Steps s = MustPlan();
  ASSERT_EQ(s.interfaces.size(), 1u);
  EXPECT_EQ(s.interfaces[0].kind, Kind::kReattach);
  EXPECT_EQ(s.interfaces[0].req.mechanism, uint32_t{CSF_MECH_BOUNCE});
  EXPECT_EQ(s.interfaces[0].restore.mechanism, uint32_t{CSF_MECH_BPF});
}

// A record of another pin ABI (status "unreadable", no hooks) must never become a re-attach:
// its detach would drop the pins and with them the old build's tcx/XDP links.
TEST_F(PlanTest, AnUnreadableRecordRefusesThePlan) {
  control::IfaceStatus other;
  other.ifname = "tap0";
  other.ifindex = 7;
  other.present = true;
  other.state = "unreadable";
  other.problem = "made by a csumfix with pin ABI 2";
  ListAndAttach(Spec("tap0", {CSF_HOOK_TC_INGRESS}), other);
  auto s = Plan(cfg_, cur_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("pin ABI 2"));
}

TEST_F(PlanTest, ReattachesAnInterfaceDeletedAndMadeAgain) {
  ListAndAttach(Spec("tap0", {CSF_HOOK_TC_INGRESS}), Attached("tap0", 7, {CSF_HOOK_TC_INGRESS}));
  SetLink("tap0", 12);  // the name has a new index now
  Steps s = MustPlan();
  ASSERT_EQ(s.interfaces.size(), 1u);
  EXPECT_EQ(s.interfaces[0].kind, Kind::kReattach);

  SetLink("tap0", 7);
  cur_.attached[0].present = false;  // the pins' ifindex is gone
  s = MustPlan();
  ASSERT_EQ(s.interfaces.size(), 1u);
  EXPECT_EQ(s.interfaces[0].kind, Kind::kReattach);
}

TEST_F(PlanTest, ReattachesWhenTheRedirectTargetDiffers) {
  InterfaceSpec spec = Spec("tap0", {CSF_HOOK_XDP});
  spec.redirect_to = "vc";
  ListAndAttach(spec, Attached("tap0", 7, {CSF_HOOK_XDP}));
  cur_.redirect_to["tap0"] = "vd";
  Steps s = MustPlan();
  ASSERT_EQ(s.interfaces.size(), 1u);
  EXPECT_EQ(s.interfaces[0].kind, Kind::kReattach);
  EXPECT_EQ(s.interfaces[0].restore.xdp_redirect_to, "vd");

  cur_.redirect_to["tap0"] = "vc";
  s = MustPlan();
  ASSERT_EQ(s.interfaces.size(), 1u);
  EXPECT_EQ(s.interfaces[0].kind, Kind::kAdopt);
}

TEST_F(PlanTest, DetachesOnlyWhatServeAttachedAndTheFileNoLongerLists) {
  ListAndAttach(Spec("tap0", {CSF_HOOK_TC_INGRESS}), Attached("tap0", 7, {CSF_HOOK_TC_INGRESS}));
  cur_.attached.push_back(Attached("tap1", 8, {CSF_HOOK_TC_INGRESS}));  // serve's, dropped
  cur_.attached.push_back(Attached("d0", 9, {CSF_HOOK_TC_INGRESS}));    // the CLI's
  cur_.owned = {"tap0", "tap1", "gone0"};  // gone0: serve's, no longer attached
  Steps s = MustPlan();
  EXPECT_THAT(s.detach, ElementsAre("tap1"));
  ASSERT_EQ(s.interfaces.size(), 1u);
  EXPECT_EQ(s.interfaces[0].kind, Kind::kAdopt);

  cur_.owned.clear();  // nothing is serve's: nothing is detached
  EXPECT_THAT(MustPlan().detach, IsEmpty());
}

TEST_F(PlanTest, AnActionOnlyChangeAdoptsAndSetsTheAction) {
  control::IfaceStatus now =
      Attached("tap0", 7, {CSF_HOOK_TC_INGRESS, CSF_HOOK_TC_EGRESS}, CSF_ACT_OBSERVE);
  now.hooks[1].action = CSF_ACT_DROP_BAD;
  ListAndAttach(Spec("tap0", {CSF_HOOK_TC_INGRESS, CSF_HOOK_TC_EGRESS}, CSF_ACT_DROP_BAD), now);
  Steps s = MustPlan();
  ASSERT_EQ(s.interfaces.size(), 1u);
  EXPECT_EQ(s.interfaces[0].kind, Kind::kAdopt);
  EXPECT_THAT(s.interfaces[0].set_action, ElementsAre(uint32_t{CSF_HOOK_TC_INGRESS}));
  EXPECT_EQ(s.interfaces[0].req.action, uint32_t{CSF_ACT_DROP_BAD});
}

TEST_F(PlanTest, ARulesOnlyChangeReplacesTheRuleSet) {
  ListAndAttach(Spec("tap0", {CSF_HOOK_TC_INGRESS}), Attached("tap0", 7, {CSF_HOOK_TC_INGRESS}));
  cfg_.rules = {Rule("udp", "67-68", 10), Rule("tcp", "80", 20)};
  Steps s = MustPlan();
  EXPECT_TRUE(s.replace_rules) << "no rule stored yet";
  EXPECT_EQ(s.rules.size(), 2u);
  ASSERT_EQ(s.interfaces.size(), 1u);
  EXPECT_EQ(s.interfaces[0].kind, Kind::kAdopt);
  EXPECT_THAT(s.interfaces[0].set_action, IsEmpty());

  // The same rules as stored (ids given by the store): nothing to do.
  cur_.rules = cfg_.rules;
  cur_.rules[0].id = 1;
  cur_.rules[1].id = 2;
  EXPECT_FALSE(MustPlan().replace_rules);

  cur_.rules[1] = Rule("tcp", "81", 20);
  EXPECT_TRUE(MustPlan().replace_rules);

  cfg_.rules.clear();  // the file drops every rule
  EXPECT_TRUE(MustPlan().replace_rules);
  cur_.rules.clear();  // and none is stored
  EXPECT_FALSE(MustPlan().replace_rules);
}

TEST_F(PlanTest, AutoIsTheProbesMechanismAndRefusedWithoutIt) {
  cfg_.interfaces.push_back(Spec("tap0", {CSF_HOOK_TC_INGRESS}, CSF_ACT_FILL, "auto"));
  SetLink("tap0", 7);
  cur_.probe_mechanism = CSF_MECH_ACT_CSUM;
  Steps s = MustPlan();
  ASSERT_EQ(s.interfaces.size(), 1u);
  EXPECT_EQ(s.interfaces[0].req.mechanism, uint32_t{CSF_MECH_ACT_CSUM});

  cur_.probe_mechanism = CSF_MECH_MAX;  // the probe failed
  auto failed = Plan(cfg_, cur_);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(failed.status().message().rfind("test.toml:1:1: mechanism \"auto\"", 0), 0u)
      << failed.status();
}

TEST_F(PlanTest, StepsFollowTheLinksOrder) {
  cfg_.interfaces.push_back(Spec("b0", {CSF_HOOK_TC_INGRESS}));
  SetLink("b0", 5);
  ListAndAttach(Spec("a0", {CSF_HOOK_TC_INGRESS}), Attached("a0", 3, {CSF_HOOK_TC_INGRESS}));
  cfg_.interfaces.push_back(Spec("c0", {CSF_HOOK_TC_EGRESS}));
  SetLink("c0", 4);
  std::sort(cur_.links.begin(), cur_.links.end(),
            [](const auto& x, const auto& y) { return x.ifindex < y.ifindex; });  // as ListLinks
  Steps s = MustPlan();
  ASSERT_EQ(s.interfaces.size(), 3u);
  EXPECT_EQ(s.interfaces[0].req.ifname, "a0");
  EXPECT_EQ(s.interfaces[0].kind, Kind::kAdopt);
  EXPECT_EQ(s.interfaces[1].req.ifname, "c0");
  EXPECT_EQ(s.interfaces[1].kind, Kind::kAttach);
  EXPECT_EQ(s.interfaces[2].req.ifname, "b0");
  EXPECT_EQ(s.interfaces[2].kind, Kind::kAttach);
}

TEST_F(PlanTest, ANamedInterfaceThatDoesNotExistWaits) {
  cfg_.interfaces.push_back(Spec("tap9", {CSF_HOOK_TC_INGRESS}));
  Steps s = MustPlan();
  EXPECT_THAT(s.interfaces, IsEmpty());
  EXPECT_THAT(s.waiting, ElementsAre("tap9 (test.toml:1:1)"));
  SetLink("tap9", 21);  // it appears
  s = MustPlan();
  ASSERT_EQ(s.interfaces.size(), 1u);
  EXPECT_EQ(s.interfaces[0].kind, Kind::kAttach);
  EXPECT_THAT(s.waiting, IsEmpty());
}

TEST_F(PlanTest, BridgePortsAreAttachedAsTheyJoinAndDetachedAsTheyLeave) {
  InterfaceSpec ports = Spec("", {CSF_HOOK_TC_EGRESS});
  ports.master = "br0";
  cfg_.interfaces.push_back(ports);
  cur_.links = {{2, "br0", "bridge", 0, 0}, {5, "vnet0", "tun", 2, 0}, {6, "vnet1", "tun", 0, 0}};
  Steps s = MustPlan();
  ASSERT_EQ(s.interfaces.size(), 1u);
  EXPECT_EQ(s.interfaces[0].req.ifname, "vnet0");
  EXPECT_EQ(s.interfaces[0].kind, Kind::kAttach);
  EXPECT_TRUE(s.interfaces[0].req.egress);
  EXPECT_FALSE(s.interfaces[0].req.ingress);

  // vnet0 was attached by serve and leaves the bridge; vnet1 joins.
  cur_.attached.push_back(Attached("vnet0", 5, {CSF_HOOK_TC_EGRESS}));
  cur_.owned = {"vnet0"};
  cur_.links[1].master = 0;
  cur_.links[2].master = 2;
  s = MustPlan();
  ASSERT_EQ(s.interfaces.size(), 1u);
  EXPECT_EQ(s.interfaces[0].req.ifname, "vnet1");
  EXPECT_EQ(s.interfaces[0].kind, Kind::kAttach);
  EXPECT_THAT(s.detach, ElementsAre("vnet0"));
}

}  // namespace
}  // namespace csumfix::config
