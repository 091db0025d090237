// The per-attachment slot (abi.h struct csf_slot, bpf/lib/pipeline.h csf_slot_get): a packet finds
// its attachment's counters and its CPU's copy of the csf_ifcfg entry with one lookup, and the
// copy is taken again only when csf_cfg_gen changes. These tests keep the slot between packets
// (the differential suite deletes it before each case, so it always starts from a fresh copy):
// - a change made through bpf::IfcfgMap (which writes a new generation) reaches the next packet,
//   and the counters of before the change are kept;
// - a change written into csf_ifcfg behind its back (no new generation) is NOT seen: the programs
//   really use the copy. Then a new generation alone brings it in;
// - deleting the entry through IfcfgMap makes the attachment pass, counted;
// - generation 0 (a csf_cfg_gen just made, e.g. on an upgrade from 0.1 whose csf_ifcfg entries
//   were written without one) means the entry is read for every packet, and every load writes a
//   generation when it finds none.
// The BPF_PROG_TEST_RUN packets run on this CPU, whose copy is the one looked at.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cstdint>
#include <vector>

#include "bpf/loader.h"
#include "bpf/programs_fixture.h"
#include "csumfix.skel.h"
#include "common/pktgen.h"
#include "csumfix/abi.h"
#include "gtest/gtest.h"

namespace csumfix {
namespace {

constexpr uint32_t kLoIfindex = 1;

class Slot : public testing::LoadedPrograms {
 protected:
  // A valid UDP/IPv4 frame: counted under whatever action is in force, never changed.
  static std::vector<uint8_t> Frame() {
    testing::PacketSpec s;
    s.l3 = testing::L3Kind::kIpv4;
    s.l4 = testing::L4Kind::kUdp;
    s.csum = testing::CsumState::kValid;
    return testing::Build(s);
  }
  // Runs n packets through tc ingress; returns the summed counters of the slot.
  static csf_counters Run(int n) {
    const std::vector<uint8_t> f = Frame();
    for (int i = 0; i < n; ++i) {
      auto r = bpf::TestRun(progs_->prog_fd(CSF_HOOK_TC_INGRESS), f);
      EXPECT_TRUE(r.ok()) << r.status();
    }
    auto c = progs_->counters().Lookup(Key());
    EXPECT_TRUE(c.ok() && c->has_value());
    return c.ok() && c->has_value() ? **c : csf_counters{};
  }
  static csf_if_key Key() { return {kLoIfindex, CSF_HOOK_TC_INGRESS}; }
  static uint64_t Applied(const csf_counters& c, uint32_t action) {
    return c.c[CSF_CTR_ACTION_BASE + action];
  }
  void SetUp() override {
    testing::LoadedPrograms::SetUp();
    ASSERT_TRUE(progs_->counters().Delete(Key()).ok());
  }
};

TEST_F(Slot, AChangeThroughIfcfgMapReachesTheNextPacketAndKeepsTheCounters) {
  auto cfg = progs_->ifcfg();
  ASSERT_TRUE(cfg.Update(Key(), csf_ifcfg{CSF_ACT_OBSERVE, 0, 0, 0}).ok());
  csf_counters a = Run(3);
  EXPECT_EQ(a.c[CSF_CTR_PACKETS], 3u);
  EXPECT_EQ(Applied(a, CSF_ACT_OBSERVE), 3u);
  ASSERT_TRUE(cfg.Update(Key(), csf_ifcfg{CSF_ACT_VERIFY, 0, 0, 0}).ok());
  csf_counters b = Run(2);
  EXPECT_EQ(b.c[CSF_CTR_PACKETS], 5u) << "the slot's counters went on";
  EXPECT_EQ(Applied(b, CSF_ACT_OBSERVE), 3u);
  EXPECT_EQ(Applied(b, CSF_ACT_VERIFY), 2u);
  EXPECT_EQ(b.c[CSF_CTR_CLASS_BASE + CSF_CLASS_VALID], 2u) << "verify computed the checksum";
}

TEST_F(Slot, AnEntryWrittenWithoutANewGenerationIsNotSeenUntilOne) {
  auto cfg = progs_->ifcfg();
  ASSERT_TRUE(cfg.Update(Key(), csf_ifcfg{CSF_ACT_OBSERVE, 0, 0, 0}).ok());
  EXPECT_EQ(Applied(Run(1), CSF_ACT_OBSERVE), 1u);
  // Behind IfcfgMap's back: the copy in the slot stays in force.
  const csf_if_key k = Key();
  const csf_ifcfg v{CSF_ACT_VERIFY, 0, 0, 0};
  ASSERT_EQ(bpf_map_update_elem(cfg.fd(), &k, &v, BPF_ANY), 0);
  csf_counters c = Run(2);
  EXPECT_EQ(Applied(c, CSF_ACT_OBSERVE), 3u) << "the program read csf_ifcfg, not its copy";
  EXPECT_EQ(Applied(c, CSF_ACT_VERIFY), 0u);
  // A write through IfcfgMap of the same entry gives a new generation: now it is taken.
  ASSERT_TRUE(cfg.Update(Key(), v).ok());
  c = Run(1);
  EXPECT_EQ(Applied(c, CSF_ACT_VERIFY), 1u);
}

TEST_F(Slot, DeletingTheEntryMakesThePacketsPass) {
  auto cfg = progs_->ifcfg();
  ASSERT_TRUE(cfg.Update(Key(), csf_ifcfg{CSF_ACT_VERIFY, 0, 0, 0}).ok());
  EXPECT_EQ(Applied(Run(1), CSF_ACT_VERIFY), 1u);
  ASSERT_TRUE(cfg.Delete(Key()).ok());
  csf_counters c = Run(2);
  EXPECT_EQ(Applied(c, CSF_ACT_VERIFY), 1u);
  EXPECT_EQ(Applied(c, CSF_ACT_PASS), 2u);
  EXPECT_EQ(c.c[CSF_CTR_PACKETS], 3u);
}

TEST_F(Slot, GenerationZeroReadsTheEntryForEveryPacket) {
  auto cfg = progs_->ifcfg();
  const int gen_fd = bpf_map__fd(progs_->skel()->maps.csf_cfg_gen);
  const uint32_t zero = 0;
  const csf_cfg_gen none{0};
  ASSERT_EQ(bpf_map_update_elem(gen_fd, &zero, &none, BPF_ANY), 0);
  const csf_if_key k = Key();
  const csf_ifcfg observe{CSF_ACT_OBSERVE, 0, 0, 0}, verify{CSF_ACT_VERIFY, 0, 0, 0};
  ASSERT_EQ(bpf_map_update_elem(cfg.fd(), &k, &observe, BPF_ANY), 0);
  EXPECT_EQ(Applied(Run(1), CSF_ACT_OBSERVE), 1u) << "an entry of no generation was not taken";
  ASSERT_EQ(bpf_map_update_elem(cfg.fd(), &k, &verify, BPF_ANY), 0);
  EXPECT_EQ(Applied(Run(1), CSF_ACT_VERIFY), 1u) << "generation 0 must not be cached";
  ASSERT_TRUE(cfg.NewGeneration().ok());
}

TEST_F(Slot, ALoadWritesAGenerationWhenThereIsNone) {
  bpf::LoadOptions lo;
  lo.object = testing::TestObject();
  auto p = bpf::Programs::Load(lo);  // its own maps: csf_cfg_gen made as 0
  ASSERT_TRUE(p.ok()) << p.status();
  const uint32_t zero = 0;
  csf_cfg_gen g{};
  ASSERT_EQ(bpf_map_lookup_elem(bpf_map__fd((*p)->skel()->maps.csf_cfg_gen), &zero, &g), 0);
  EXPECT_NE(g.gen, 0u);
}

}  // namespace
}  // namespace csumfix
