// The ABI header compiles to the layout BPF expects; tests/bpf/btf_abi_test.cc checks the same
// numbers against the BTF of the built object.
#include <cstddef>

#include "csumfix/abi.h"
#include "gtest/gtest.h"

static_assert(sizeof(csf_if_key) == 8);
static_assert(offsetof(csf_if_key, ifindex) == 0);
static_assert(offsetof(csf_if_key, hook) == 4);
static_assert(sizeof(csf_ifcfg) == 16);
static_assert(offsetof(csf_ifcfg, action) == 0);
static_assert(offsetof(csf_ifcfg, flags) == 4);
static_assert(offsetof(csf_ifcfg, mechanism) == 8);
static_assert(offsetof(csf_ifcfg, target_ifindex) == 12);
// csf_slot: the counters first (bpf::SlotCounters sums that prefix), 8-byte multiple (per-CPU
// values are laid out without padding only then).
static_assert(offsetof(csf_slot, ctr) == 0);
static_assert(sizeof(csf_slot) == sizeof(csf_counters) + 32);
static_assert(sizeof(csf_slot) % 8 == 0);
static_assert(sizeof(csf_bounce_ret) == 8);
static_assert(sizeof(csf_counters) == CSF_CTR_MAX * 8);
static_assert(CSF_CTR_CLASS_BASE + CSF_CLASS_MAX == CSF_CTR_ACTION_BASE);
static_assert(CSF_CTR_ACTION_BASE + CSF_ACT_MAX == CSF_CTR_FILLED);
static_assert(CSF_CTR_ACT_SELECTED + 1 == CSF_CTR_MAX);
static_assert(sizeof(csf_pol_key) == 48);
static_assert(sizeof(csf_pol_val) == 16);
static_assert(sizeof(csf_pol_mask) == 40);
static_assert(sizeof(csf_pol_rule) == 68);
static_assert(sizeof(csf_tuple) == 44);
static_assert(offsetof(csf_pol_key, t) == 4);
static_assert(sizeof(csf_flow_val) == 32);

TEST(Abi, CounterIdsAreDenseAndDistinct) {
  // Every counter index names exactly one slot.
  bool seen[CSF_CTR_MAX] = {};
  auto mark = [&](int i) {
    ASSERT_GE(i, 0);
    ASSERT_LT(i, CSF_CTR_MAX);
    EXPECT_FALSE(seen[i]) << "counter index " << i << " used twice";
    seen[i] = true;
  };
  mark(CSF_CTR_PACKETS);
  mark(CSF_CTR_BYTES);
  for (int c = 0; c < CSF_CLASS_MAX; ++c) mark(CSF_CTR_CLASS_BASE + c);
  for (int a = 0; a < CSF_ACT_MAX; ++a) mark(CSF_CTR_ACTION_BASE + a);
  mark(CSF_CTR_FILLED);
  mark(CSF_CTR_ZEROED);
  mark(CSF_CTR_DROPPED);
  mark(CSF_CTR_IP4_HDR_BAD);
  mark(CSF_CTR_FILL_ERROR);
  mark(CSF_CTR_BOUNCED);
  mark(CSF_CTR_BOUNCE_RETURNED);
  mark(CSF_CTR_POLICY_HIT);
  mark(CSF_CTR_ACT_SELECTED);
  for (int i = 0; i < CSF_CTR_MAX; ++i) EXPECT_TRUE(seen[i]) << "counter index " << i << " unused";
}
