// LoadOptions::programs: a load verifies only the programs asked for (an attach of one tc hook
// loads one program, a policy change none), and the maps are there whatever the set.
// - each program alone: its fd is valid and runs; every other program has none;
// - the empty set: no program, but every map exists (a rule can be written);
// - a set loaded beside pinned maps shares them with a full load (attach beside serve);
// - kAllPrograms loads every program the object has, so no program of bpf/ lacks a bit.
// Runs for both objects (ctest: bpf and bpf_compat).
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "bpf/loader.h"
#include "bpf/programs_fixture.h"
#include "common/pktgen.h"
#include "csumfix.skel.h"
#include "csumfix/abi.h"
#include "gtest/gtest.h"

namespace csumfix {
namespace {

struct Named {
  const char* name;
  bpf::ProgramSet bit;
};
constexpr Named kEach[] = {
    {"csf_tc_ingress", bpf::kProgTcIngress},
    {"csf_tc_egress", bpf::kProgTcEgress},
    {"csf_xdp", bpf::kProgXdp},
    {"csf_bounce_return", bpf::kProgBounceReturn},
    {"csf_act_select_ingress", bpf::kProgActSelectIngress},
    {"csf_act_select_egress", bpf::kProgActSelectEgress},
    {"csf_probe_tail", bpf::kProgProbeTail},
};

absl::StatusOr<std::unique_ptr<bpf::Programs>> LoadSet(bpf::ProgramSet set,
                                                       const std::string& pin_dir = "") {
  bpf::LoadOptions lo;
  lo.object = testing::TestObject();
  lo.programs = set;
  lo.pin_maps_dir = pin_dir;
  return bpf::Programs::Load(lo);
}

// A valid UDP/IPv4 frame (BPF_PROG_TEST_RUN runs it as if received on lo, ifindex 1).
std::vector<uint8_t> ValidUdp4() {
  testing::PacketSpec s;
  s.l3 = testing::L3Kind::kIpv4;
  s.l4 = testing::L4Kind::kUdp;
  s.csum = testing::CsumState::kValid;
  return testing::Build(s);
}

constexpr int kNoSuchProgram = -100000;

// The program's fd: negative (libbpf's -ENOENT) when it was not loaded.
int FdOf(const bpf::Programs& p, const char* name) {
  const bpf_program* prog = bpf_object__find_program_by_name(p.skel()->obj, name);
  return prog == nullptr ? kNoSuchProgram : bpf_program__fd(prog);
}

bool Unloaded(int fd) { return fd < 0 && fd != kNoSuchProgram; }

class LoadSetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0) << "loading BPF programs needs root: run it through scripts/test.sh";
  }
};

TEST_F(LoadSetTest, EachProgramAloneIsTheOnlyOneLoaded) {
  for (const Named& n : kEach) {
    SCOPED_TRACE(n.name);
    auto p = LoadSet(n.bit);
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_TRUE((*p)->Has(n.bit));
    for (const Named& other : kEach) {
      if (other.bit == n.bit) {
        EXPECT_GE(FdOf(**p, other.name), 0) << other.name << " was asked for";
      } else {
        EXPECT_TRUE(Unloaded(FdOf(**p, other.name))) << other.name << " was loaded unasked";
        EXPECT_FALSE((*p)->Has(other.bit));
      }
    }
  }
}

TEST_F(LoadSetTest, TheLoadedHookProgramRunsAndCounts) {
  auto p = LoadSet(bpf::kProgTcIngress);
  ASSERT_TRUE(p.ok()) << p.status();
  const csf_if_key key{1, CSF_HOOK_TC_INGRESS};
  ASSERT_TRUE((*p)->ifcfg().Update(key, csf_ifcfg{CSF_ACT_PASS, 0, CSF_MECH_OBSERVE, 0}).ok());
  const std::vector<uint8_t> frame = ValidUdp4();
  auto r = bpf::TestRun((*p)->tc_ingress_fd(), frame);
  ASSERT_TRUE(r.ok()) << r.status();
  auto c = (*p)->counters().Lookup(key);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(c->has_value()) << "the program ran but counted nothing";
  EXPECT_EQ((*c)->c[CSF_CTR_PACKETS], 1u);
}

TEST_F(LoadSetTest, TheEmptySetMakesEveryMapAndNoProgram) {
  auto p = LoadSet(0);
  ASSERT_TRUE(p.ok()) << p.status();
  for (const Named& n : kEach) EXPECT_TRUE(Unloaded(FdOf(**p, n.name))) << n.name;
  for (const char* name : CSF_PINNED_MAPS) {
    const bpf_map* m = bpf_object__find_map_by_name((*p)->skel()->obj, name);
    ASSERT_NE(m, nullptr) << name;
    EXPECT_GE(bpf_map__fd(m), 0) << name << " was not made";
  }
  const csf_if_key key{1, CSF_HOOK_TC_INGRESS};
  EXPECT_TRUE((*p)->ifcfg().Update(key, csf_ifcfg{CSF_ACT_PASS, 0, CSF_MECH_OBSERVE, 0}).ok());
}

TEST_F(LoadSetTest, ASubsetBesidePinnedMapsSharesThemWithAFullLoad) {
  char tmpl[] = "/sys/fs/bpf/csf-loadset-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr) << "mkdtemp on bpffs (is /sys/fs/bpf mounted?)";
  const std::string dir = tmpl;
  struct RemovePins {  // also when an assertion below returns early
    std::string dir;
    ~RemovePins() {
      for (const char* name : CSF_PINNED_MAPS) unlink((dir + "/" + name).c_str());
      rmdir(dir.c_str());
    }
  } remove_pins{dir};
  {
    auto full = LoadSet(bpf::kAllPrograms, dir);
    ASSERT_TRUE(full.ok()) << full.status();
    auto one = LoadSet(bpf::kProgTcEgress, dir);
    ASSERT_TRUE(one.ok()) << one.status();
    EXPECT_TRUE((*one)->UsesMapsPinnedAt(dir));
    EXPECT_TRUE((*full)->UsesMapsPinnedAt(dir));
    // An entry written through one is seen by the other's program.
    const csf_if_key key{1, CSF_HOOK_TC_EGRESS};
    ASSERT_TRUE((*full)->ifcfg().Update(key, csf_ifcfg{CSF_ACT_PASS, 0, CSF_MECH_OBSERVE, 0}).ok());
    auto r = bpf::TestRun((*one)->tc_egress_fd(), ValidUdp4());
    ASSERT_TRUE(r.ok()) << r.status();
    auto c = (*full)->counters().Lookup(key);
    ASSERT_TRUE(c.ok()) << c.status();
    ASSERT_TRUE(c->has_value());
    EXPECT_EQ((*c)->c[CSF_CTR_PACKETS], 1u);
  }
}

TEST_F(LoadSetTest, EveryProgramOfTheObjectHasABit) {
  auto p = LoadSet(bpf::kAllPrograms);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE((*p)->Has(bpf::kAllPrograms));
  bpf::ProgramSet seen = 0;
  bpf_program* prog;
  bpf_object__for_each_program(prog, (*p)->skel()->obj) {
    bool named = false;
    for (const Named& n : kEach)
      if (std::string(bpf_program__name(prog)) == n.name) {
        named = true;
        seen |= n.bit;
      }
    EXPECT_TRUE(named) << bpf_program__name(prog)
                       << " has no bit in bpf::ProgramSet: attach would always load it";
    EXPECT_GE(bpf_program__fd(prog), 0) << bpf_program__name(prog);
  }
  EXPECT_EQ(seen, bpf::kAllPrograms);
}

}  // namespace
}  // namespace csumfix
