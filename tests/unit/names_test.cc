// The control plane's vocabulary (control/names.h) against the reference's own names
// (refcsum.h): two tables written independently must agree, id for id.
#include "control/names.h"

#include <set>
#include <string>

#include "absl/strings/match.h"

#include "gtest/gtest.h"
#include "refcsum/refcsum.h"

namespace csumfix {
namespace {

TEST(Names, ActionsAgreeWithTheReference) {
  for (uint32_t a = 0; a < CSF_ACT_MAX; ++a) {
    EXPECT_EQ(names::kActions[a].id, a);
    EXPECT_EQ(std::string(names::ActionName(a)), std::string(ref::ActionName(a))) << a;
    EXPECT_EQ(names::ActionFromName(names::ActionName(a)), a);
    EXPECT_EQ(ref::ActionFromName(std::string(names::ActionName(a))), a);
  }
  EXPECT_FALSE(names::ActionFromName("fil").has_value());
  EXPECT_EQ(names::ActionName(CSF_ACT_MAX), "unknown");
}

TEST(Names, ClassesAgreeWithTheReference) {
  for (uint32_t c = 0; c < CSF_CLASS_MAX; ++c) {
    EXPECT_EQ(names::kClasses[c].id, c);
    EXPECT_EQ(std::string(names::ClassName(c)), std::string(ref::ClassName(c))) << c;
  }
}

TEST(Names, HooksAndMechanismsRoundTrip) {
  for (uint32_t h = 0; h < CSF_HOOK_MAX; ++h) {
    EXPECT_EQ(names::kHooks[h].id, h);
    EXPECT_EQ(names::HookFromName(names::HookName(h)), h);
  }
  for (uint32_t m = 0; m < CSF_MECH_MAX; ++m) {
    EXPECT_EQ(names::kMechanisms[m].id, m);
    EXPECT_EQ(names::MechanismFromName(names::MechanismName(m)), m);
  }
  EXPECT_FALSE(names::MechanismFromName("auto").has_value()) << "auto asks the probe";
  EXPECT_EQ(names::MechanismChoices(), "auto, observe, bpf, act-csum, bounce, ifb");
  EXPECT_EQ(names::Choices(names::kActions), "pass|observe|verify|drop-bad|fill|zero-udp4");
}

TEST(Names, EveryCounterOnceWithDistinctNames) {
  std::set<uint32_t> ids;
  std::set<std::string> json, metric;
  for (const auto& c : names::kCounters) {
    ids.insert(c.id);
    json.insert(std::string(c.json));
    metric.insert(std::string(c.metric));
    EXPECT_TRUE(absl::EndsWith(c.metric, "_total")) << c.metric;
    EXPECT_FALSE(c.help.empty()) << c.json;
  }
  EXPECT_EQ(ids.size(), std::size(names::kCounters));
  EXPECT_EQ(json.size(), ids.size());
  EXPECT_EQ(metric.size(), ids.size());
  // packets, bytes, classes and actions have their own families; the rest is this table.
  for (uint32_t id = CSF_CTR_FILLED; id < CSF_CTR_MAX; ++id) EXPECT_TRUE(ids.count(id)) << id;
}

}  // namespace
}  // namespace csumfix
