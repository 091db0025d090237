// Attach request validation against given kernel features (control::ValidateAttach): the seam
// that lets the refusals be tested without root, without a probe and without any interface.
#include "gtest/gtest.h"
#include "absl/strings/match.h"
#include "control/control.h"

namespace csumfix::control {
namespace {

ProbeResult Kernel(bool change_tail_fix, bool act_csum, bool ifb = true) {
  ProbeResult p;
  p.kernel = "test";
  p.change_tail_clears_partial = change_tail_fix;
  p.change_tail_detail = change_tail_fix ? "fixed" : "the trim keeps CHECKSUM_PARTIAL";
  p.act_csum = act_csum;
  p.act_csum_detail = act_csum ? "present" : "no act_csum";
  p.ifb = ifb;
  p.ifb_detail = ifb ? "works" : "the kernel refused an ifb device";
  return p;
}

AttachRequest Req(uint32_t mechanism, bool ingress = true, bool xdp = false) {
  AttachRequest r;
  r.ifname = "tap0";
  r.ingress = ingress;
  r.xdp = xdp;
  r.mechanism = mechanism;
  return r;
}

TEST(ValidateAttach, EveryMechanismTheKernelHasIsAccepted) {
  const ProbeResult all = Kernel(true, true);
  for (uint32_t m = 0; m < CSF_MECH_MAX; ++m) EXPECT_TRUE(ValidateAttach(Req(m), all).ok()) << m;
}

TEST(ValidateAttach, BpfNeedsTheChangeTailFix) {
  absl::Status s = ValidateAttach(Req(CSF_MECH_BPF), Kernel(false, true));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(s.message(), "the trim keeps CHECKSUM_PARTIAL")) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "--mechanism auto")) << s;
}

TEST(ValidateAttach, ActCsumNeedsActCsum) {
  absl::Status s = ValidateAttach(Req(CSF_MECH_ACT_CSUM), Kernel(true, false));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(s.message(), "CONFIG_NET_ACT_CSUM")) << s;
}

TEST(ValidateAttach, IfbNeedsIfbAndMirredAndWorksAtIngressOnly) {
  absl::Status s = ValidateAttach(Req(CSF_MECH_IFB), Kernel(true, true, false));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(s.message(), "the kernel refused an ifb device")) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "CONFIG_IFB")) << s;
  AttachRequest egress = Req(CSF_MECH_IFB, false);
  egress.egress = true;
  s = ValidateAttach(egress, Kernel(true, true));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(s.message(), "works at tc ingress only")) << s;
  egress.ingress = true;  // --both
  EXPECT_EQ(ValidateAttach(egress, Kernel(true, true)).code(),
            absl::StatusCode::kInvalidArgument);
  // XDP alone needs no tc mechanism, ifb or not.
  EXPECT_TRUE(ValidateAttach(Req(CSF_MECH_IFB, false, true), Kernel(false, false, false)).ok());
}

TEST(ValidateAttach, BounceAndObserveNeedNothing) {
  const ProbeResult none = Kernel(false, false);
  EXPECT_TRUE(ValidateAttach(Req(CSF_MECH_BOUNCE), none).ok());
  EXPECT_TRUE(ValidateAttach(Req(CSF_MECH_OBSERVE), none).ok());
}

TEST(ValidateAttach, XdpAloneDoesNotNeedATcMechanism) {
  // The mechanism only concerns tc hooks: XDP completes seeds in place.
  EXPECT_TRUE(ValidateAttach(Req(CSF_MECH_BPF, false, true), Kernel(false, false)).ok());
}

TEST(ValidateAttach, MalformedRequestsAreRefused) {
  const ProbeResult all = Kernel(true, true);
  AttachRequest r = Req(CSF_MECH_BOUNCE, false);
  EXPECT_EQ(ValidateAttach(r, all).code(), absl::StatusCode::kInvalidArgument) << "no hook";
  r = Req(CSF_MECH_BOUNCE);
  r.action = CSF_ACT_MAX;
  EXPECT_EQ(ValidateAttach(r, all).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateAttach(Req(CSF_MECH_MAX), all).code(), absl::StatusCode::kInvalidArgument);
  for (const char* bad : {"", ".", "..", "a/b", "maps", "sixteen-chars-xx"}) {
    r = Req(CSF_MECH_BOUNCE);
    r.ifname = bad;
    EXPECT_EQ(ValidateAttach(r, all).code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  r = Req(CSF_MECH_BOUNCE);
  r.xdp_redirect_to = "vc";
  absl::Status s = ValidateAttach(r, all);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(s.message(), "--redirect-to needs --xdp")) << s;
  r.xdp = true;
  EXPECT_TRUE(ValidateAttach(r, all).ok());
}

}  // namespace
}  // namespace csumfix::control

namespace csumfix::control {
namespace {

// bpffs refuses '.' in names; interface names never hold ':' (the kernel refuses it there).
TEST(PinName, DotsBecomeColonsAndBack) {
  EXPECT_EQ(PinName("vif1.0"), "vif1:0");
  EXPECT_EQ(PinName("eth0.100"), "eth0:100");
  EXPECT_EQ(PinName("tap0"), "tap0");
  EXPECT_EQ(IfnameOfPin("vif1:0"), "vif1.0");
  for (const char* n : {"a.b.c", "x", "vnet12", "br-lan.7"}) EXPECT_EQ(IfnameOfPin(PinName(n)), n);
}

}  // namespace
}  // namespace csumfix::control
