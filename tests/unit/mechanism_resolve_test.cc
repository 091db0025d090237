// Which fill mechanism an attach gets (control::ResolveMechanism): "auto" is the probe's choice
// only for the actions that fill; the others get observe, so no helper (bounce veth, act_csum
// filter) is made for them. A named mechanism is kept. The config takes the same path
// (config::Plan), and `policy add` warns with control::FillRuleWithoutMechanism.
#include <string>
#include <vector>

#include "config/config.h"
#include "config/reconcile.h"
#include "control/control.h"
#include "control/names.h"
#include "csumfix/abi.h"
#include "gtest/gtest.h"

namespace csumfix::control {
namespace {

constexpr uint32_t kNoProbe = CSF_MECH_MAX;  // the probe failed

TEST(ActionCanFill, OnlyFillAndZeroUdp4) {
  for (uint32_t a = 0; a < CSF_ACT_MAX; ++a)
    EXPECT_EQ(ActionCanFill(a), a == CSF_ACT_FILL || a == CSF_ACT_ZERO_UDP4)
        << names::ActionName(a);
}

TEST(ResolveMechanism, AutoIsObserveForActionsThatNeverFill) {
  for (uint32_t a : {CSF_ACT_PASS, CSF_ACT_OBSERVE, CSF_ACT_VERIFY, CSF_ACT_DROP_BAD})
    for (uint32_t probed :
         std::vector<uint32_t>{CSF_MECH_BPF, CSF_MECH_ACT_CSUM, CSF_MECH_BOUNCE, kNoProbe})
      EXPECT_EQ(ResolveMechanism("auto", a, probed), uint32_t{CSF_MECH_OBSERVE})
          << names::ActionName(a) << " probed " << probed;
}

TEST(ResolveMechanism, AutoIsTheProbesChoiceForFillAndZeroUdp4) {
  for (uint32_t a : {CSF_ACT_FILL, CSF_ACT_ZERO_UDP4}) {
    for (uint32_t probed : {CSF_MECH_BPF, CSF_MECH_ACT_CSUM, CSF_MECH_BOUNCE})
      EXPECT_EQ(ResolveMechanism("auto", a, probed), probed) << names::ActionName(a);
    EXPECT_EQ(ResolveMechanism("auto", a, kNoProbe), uint32_t{CSF_MECH_MAX})
        << "no answer without the probe";
  }
}

TEST(ResolveMechanism, ANamedMechanismIsKeptForEveryAction) {
  for (uint32_t a = 0; a < CSF_ACT_MAX; ++a)
    for (uint32_t m = 0; m < CSF_MECH_MAX; ++m)
      EXPECT_EQ(ResolveMechanism(names::MechanismName(m), a, kNoProbe), m)
          << names::ActionName(a) << " " << names::MechanismName(m);
  EXPECT_EQ(ResolveMechanism("bounce", CSF_ACT_VERIFY, CSF_MECH_BPF), uint32_t{CSF_MECH_BOUNCE});
  EXPECT_EQ(ResolveMechanism("observe", CSF_ACT_FILL, CSF_MECH_BPF), uint32_t{CSF_MECH_OBSERVE});
  EXPECT_EQ(ResolveMechanism("trampoline", CSF_ACT_FILL, CSF_MECH_BPF), uint32_t{CSF_MECH_MAX});
  EXPECT_EQ(ResolveMechanism("", CSF_ACT_VERIFY, CSF_MECH_BPF), uint32_t{CSF_MECH_MAX});
}

IfaceStatus Iface(const std::string& name, uint32_t ifindex, uint32_t mechanism,
                  std::vector<uint32_t> hooks) {
  IfaceStatus s;
  s.ifname = name;
  s.ifindex = ifindex;
  s.present = true;
  s.mechanism = mechanism;
  for (uint32_t h : hooks) {
    HookStatus hs;
    hs.hook = h;
    hs.action = CSF_ACT_VERIFY;
    s.hooks.push_back(hs);
  }
  return s;
}

csf_pol_rule FillRule(uint32_t action = CSF_ACT_FILL) {
  csf_pol_rule r{};
  r.id = 1;
  r.action = action;
  return r;
}

std::vector<std::string> Names(const std::vector<const IfaceStatus*>& v) {
  std::vector<std::string> out;
  for (const IfaceStatus* s : v) out.push_back(s->ifname);
  return out;
}

TEST(FillRuleWithoutMechanism, NamesTheObserveInterfacesAFillRuleCanMatch) {
  const std::vector<IfaceStatus> attached = {
      Iface("va", 3, CSF_MECH_OBSERVE, {CSF_HOOK_TC_INGRESS, CSF_HOOK_TC_EGRESS}),
      Iface("vb", 4, CSF_MECH_BOUNCE, {CSF_HOOK_TC_EGRESS}),
      Iface("vc", 5, CSF_MECH_OBSERVE, {CSF_HOOK_TC_EGRESS}),
      Iface("vx", 6, CSF_MECH_OBSERVE, {CSF_HOOK_XDP}),  // XDP never hands over to a mechanism
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(Names(FillRuleWithoutMechanism(FillRule(), attached)), (V{"va", "vc"}));
  EXPECT_EQ(Names(FillRuleWithoutMechanism(FillRule(CSF_ACT_ZERO_UDP4), attached)),
            (V{"va", "vc"}));
  for (uint32_t a : {CSF_ACT_PASS, CSF_ACT_OBSERVE, CSF_ACT_VERIFY, CSF_ACT_DROP_BAD})
    EXPECT_TRUE(FillRuleWithoutMechanism(FillRule(a), attached).empty()) << a;

  csf_pol_rule bound = FillRule();  // --iface vc
  bound.flags |= CSF_POL_F_IFINDEX;
  bound.ifindex = 5;
  EXPECT_EQ(Names(FillRuleWithoutMechanism(bound, attached)), (V{"vc"}));
  bound.ifindex = 4;  // vb has a mechanism
  EXPECT_TRUE(FillRuleWithoutMechanism(bound, attached).empty());

  csf_pol_rule ingress = FillRule();  // --hook ingress: vc has only egress
  ingress.flags |= CSF_POL_F_HOOK;
  ingress.hook = CSF_HOOK_TC_INGRESS;
  EXPECT_EQ(Names(FillRuleWithoutMechanism(ingress, attached)), (V{"va"}));
  ingress.hook = CSF_HOOK_XDP;
  EXPECT_TRUE(FillRuleWithoutMechanism(ingress, attached).empty());

  std::vector<IfaceStatus> odd = attached;
  odd[0].present = false;  // deleted, or another namespace's
  odd[2].state = "incomplete";
  EXPECT_TRUE(FillRuleWithoutMechanism(FillRule(), odd).empty());
}

}  // namespace
}  // namespace csumfix::control

namespace csumfix::config {
namespace {

InterfaceSpec Spec(uint32_t action, const std::string& mechanism) {
  InterfaceSpec s;
  s.name = "tap0";
  s.ingress = s.egress = true;
  s.action = action;
  s.mechanism = mechanism;
  s.where = "test.toml:1:1";
  return s;
}

control::IfaceStatus Attached(uint32_t action, uint32_t mechanism) {
  control::IfaceStatus s;
  s.ifname = "tap0";
  s.ifindex = 7;
  s.present = true;
  s.mechanism = mechanism;
  for (uint32_t h : {CSF_HOOK_TC_INGRESS, CSF_HOOK_TC_EGRESS}) {
    control::HookStatus hs;
    hs.hook = h;
    hs.mode = "tcx";
    hs.attached = true;
    hs.action = action;
    s.hooks.push_back(hs);
  }
  return s;
}

absl::StatusOr<IfaceStep> PlanOne(const InterfaceSpec& spec, uint32_t probed,
                                  const std::vector<control::IfaceStatus>& attached = {},
                                  const std::vector<csf_pol_rule>& rules = {}) {
  Config cfg{"test.toml", {spec}, rules};
  Current cur;
  cur.probe_mechanism = probed;
  cur.attached = attached;
  cur.links = {{7, "tap0", "tun", 0, 0}};
  absl::StatusOr<Steps> s = Plan(cfg, cur);
  if (!s.ok()) return s.status();
  if (s->interfaces.size() != 1) return absl::InternalError("not one step");
  return s->interfaces[0];
}

TEST(ConfigMechanism, AutoWithAnActionThatNeverFillsIsObserveEvenWithoutTheProbe) {
  for (uint32_t a : {CSF_ACT_PASS, CSF_ACT_OBSERVE, CSF_ACT_VERIFY, CSF_ACT_DROP_BAD}) {
    for (uint32_t probed : {uint32_t{CSF_MECH_BOUNCE}, uint32_t{CSF_MECH_MAX}}) {
      auto st = PlanOne(Spec(a, "auto"), probed);
      ASSERT_TRUE(st.ok()) << st.status();
      EXPECT_EQ(st->req.mechanism, uint32_t{CSF_MECH_OBSERVE}) << a;
    }
  }
}

TEST(ConfigMechanism, ANamedMechanismIsKeptAndFillStillTakesTheProbes) {
  auto named = PlanOne(Spec(CSF_ACT_VERIFY, "bounce"), CSF_MECH_BPF);
  ASSERT_TRUE(named.ok()) << named.status();
  EXPECT_EQ(named->req.mechanism, uint32_t{CSF_MECH_BOUNCE});
  auto fill = PlanOne(Spec(CSF_ACT_FILL, "auto"), CSF_MECH_ACT_CSUM);
  ASSERT_TRUE(fill.ok()) << fill.status();
  EXPECT_EQ(fill->req.mechanism, uint32_t{CSF_MECH_ACT_CSUM});
  auto failed = PlanOne(Spec(CSF_ACT_ZERO_UDP4, "auto"), CSF_MECH_MAX);
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kFailedPrecondition) << failed.status();
}

TEST(ConfigMechanism, AVerifyInterfaceIsAdoptedAndReattachedWhenItComesToFill) {
  // Attached for verify with mechanism observe (auto): the same file adopts it as it is ...
  const std::vector<control::IfaceStatus> now = {Attached(CSF_ACT_VERIFY, CSF_MECH_OBSERVE)};
  auto same = PlanOne(Spec(CSF_ACT_VERIFY, "auto"), CSF_MECH_BOUNCE, now);
  ASSERT_TRUE(same.ok()) << same.status();
  EXPECT_EQ(same->kind, IfaceStep::Kind::kAdopt);
  EXPECT_TRUE(same->set_action.empty());
  // ... and action fill re-attaches it with the probe's mechanism (its helpers), rather than only
  // setting the action on an attachment that has none.
  auto fill = PlanOne(Spec(CSF_ACT_FILL, "auto"), CSF_MECH_BOUNCE, now);
  ASSERT_TRUE(fill.ok()) << fill.status();
  EXPECT_EQ(fill->kind, IfaceStep::Kind::kReattach);
  EXPECT_EQ(fill->req.mechanism, uint32_t{CSF_MECH_BOUNCE});
  EXPECT_EQ(fill->restore.mechanism, uint32_t{CSF_MECH_OBSERVE});
}

// The file's own rules that can fill on the interface (bound to it or to none, on one of its
// hooks) give a verify interface the probe's mechanism: the file asks for that fill.
TEST(ConfigMechanism, TheFilesFillRulesGiveAutoTheProbesMechanism) {
  csf_pol_rule fill{};
  fill.action = CSF_ACT_FILL;
  auto st = PlanOne(Spec(CSF_ACT_VERIFY, "auto"), CSF_MECH_BOUNCE, {}, {fill});
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(st->req.mechanism, uint32_t{CSF_MECH_BOUNCE});

  csf_pol_rule other_iface = fill;  // bound to another interface: not here
  other_iface.flags = CSF_POL_F_IFINDEX;
  other_iface.ifindex = 8;
  csf_pol_rule verify{};  // a rule that does not fill
  verify.action = CSF_ACT_VERIFY;
  st = PlanOne(Spec(CSF_ACT_VERIFY, "auto"), CSF_MECH_BOUNCE, {}, {other_iface, verify});
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(st->req.mechanism, uint32_t{CSF_MECH_OBSERVE});

  csf_pol_rule xdp_only = fill;  // a hook the interface has no tc program on
  xdp_only.flags = CSF_POL_F_HOOK;
  xdp_only.hook = CSF_HOOK_XDP;
  st = PlanOne(Spec(CSF_ACT_VERIFY, "auto"), CSF_MECH_BOUNCE, {}, {xdp_only});
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(st->req.mechanism, uint32_t{CSF_MECH_OBSERVE});

  csf_pol_rule here = other_iface;
  here.ifindex = 7;
  st = PlanOne(Spec(CSF_ACT_VERIFY, "bpf"), CSF_MECH_BOUNCE, {}, {here});
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(st->req.mechanism, uint32_t{CSF_MECH_BPF}) << "a named mechanism stays";
}

}  // namespace
}  // namespace csumfix::config
