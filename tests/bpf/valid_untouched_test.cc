// The first promise of SECURITY.md, asserted on the BPF programs themselves: a packet that arrives
// with a valid checksum leaves byte-identical, is not dropped and is never counted as filled,
// zeroed or dropped — under EVERY action (pass, observe, verify, drop-bad, fill, zero-udp4) on
// EVERY hook (tc ingress, tc egress, XDP with XDP_PASS and with XDP_REDIRECT).
//
// docs/SEMANTICS.md §3: "A packet whose class is not PARTIAL leaves byte-identical under every
// action", and a valid packet is never called partial (§2). zero-udp4 therefore leaves a *valid*
// UDP/IPv4 checksum alone: it writes 0 only into PARTIAL ones. The one exception the contract
// names is a packet the kernel holds as CHECKSUM_PARTIAL (tc `is_partial`): it is PARTIAL whatever
// its bytes say, so fill rewrites its field (with the correct value, which may turn a valid 0x0000
// into 0xffff) and zero-udp4 zeroes a UDP/IPv4 one. BPF_PROG_TEST_RUN cannot make such an skb; the
// exception is pinned down on the reference (KernelPartialExceptionInReference) and on real
// traffic by tests/netns/partial_fill_test.cc.
//
// Environment: CSUMFIX_VALID_CASES (default 20000) random valid packets, CSUMFIX_VALID_SEED
// (default 1).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bpf/loader.h"
#include "bpf/programs_fixture.h"
#include "common/pktgen.h"
#include "csumfix/abi.h"
#include "gtest/gtest.h"
#include "refcsum/refcsum.h"

namespace csumfix {
namespace {

using testing::CsumState;
using testing::L3Kind;
using testing::L4Kind;
using testing::PacketSpec;

constexpr uint32_t kLoIfindex = 1;
// tc lets a packet go with TC_ACT_OK (0) or TC_ACT_UNSPEC (-1, so later tc programs still run);
// both mean "not dropped". TC_ACT_SHOT (2) would be a drop.
constexpr uint32_t kTcActOk = 0, kTcActUnspec = 0xffffffffu, kXdpPass = 2, kXdpRedirect = 4;
constexpr size_t kMaxFrameXdp = 3400;

uint64_t EnvU64(const char* name, uint64_t dflt) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 0) : dflt;
}

const char* HookLabel(uint32_t hook, bool redirect) {
  switch (hook) {
    case CSF_HOOK_TC_INGRESS: return "tc ingress";
    case CSF_HOOK_TC_EGRESS: return "tc egress";
    default: return redirect ? "xdp (redirect)" : "xdp (pass)";
  }
}

class ValidUntouched : public testing::LoadedPrograms {
 protected:
  // Runs `frame` through the BPF program of `hook` under `action`; "" when it left untouched,
  // not dropped and with no fill/zero/drop counted, else what happened.
  static std::string RunUntouched(const std::vector<uint8_t>& frame, uint32_t action,
                                  uint32_t hook, bool redirect) {
    const csf_if_key key{kLoIfindex, hook};
    auto cfg = progs_->ifcfg();
    auto ctrs = progs_->counters();
    const csf_ifcfg c{action, redirect ? CSF_IFCFG_F_XDP_REDIRECT : 0u, 0,
                      redirect ? kLoIfindex : 0u};
    if (auto s = cfg.Update(key, c); !s.ok()) return s.ToString();
    if (auto s = ctrs.Delete(key); !s.ok()) return s.ToString();
    auto run = bpf::TestRun(progs_->prog_fd(hook), frame);
    if (!run.ok()) return run.status().ToString();
    auto got = ctrs.Lookup(key);
    if (!got.ok()) return got.status().ToString();
    const csf_counters ctr = got->value_or(csf_counters{});
    std::string err;
    if (hook == CSF_HOOK_XDP) {
      const uint32_t want_ret = redirect ? kXdpRedirect : kXdpPass;
      if (run->retval != want_ret)
        absl::StrAppend(&err, "XDP verdict ", run->retval, " (want ", want_ret, "); ");
    } else if (run->retval != kTcActOk && run->retval != kTcActUnspec) {
      absl::StrAppend(&err, "tc verdict ", run->retval, " (want TC_ACT_OK or TC_ACT_UNSPEC); ");
    }
    if (run->data_out != frame) {
      size_t i = 0;
      while (i < frame.size() && i < run->data_out.size() && frame[i] == run->data_out[i]) ++i;
      absl::StrAppend(&err, "bytes changed (", run->data_out.size(), " out, ", frame.size(),
                      " in; first difference at offset ", i, "); ");
    }
    if (ctr.c[CSF_CTR_PACKETS] != 1) absl::StrAppend(&err, "PACKETS ", ctr.c[CSF_CTR_PACKETS], "; ");
    for (int i : {CSF_CTR_FILLED, CSF_CTR_ZEROED, CSF_CTR_DROPPED, CSF_CTR_FILL_ERROR,
                  CSF_CTR_BOUNCED, CSF_CTR_IP4_HDR_BAD})
      if (ctr.c[i] != 0) absl::StrAppend(&err, "counter ", i, " = ", ctr.c[i], "; ");
    const uint32_t want_cls = action == CSF_ACT_PASS      ? CSF_CLASS_NONE
                              : action == CSF_ACT_OBSERVE ? CSF_CLASS_MAX  // partial or unverified
                                                          : CSF_CLASS_VALID;
    if (want_cls != CSF_CLASS_MAX && ctr.c[CSF_CTR_CLASS_BASE + want_cls] != 1)
      absl::StrAppend(&err, "not counted as class ", std::string(ref::ClassName(want_cls)), "; ");
    if (!err.empty())
      absl::StrAppend(&err, "action ", std::string(ref::ActionName(action)), ", ", HookLabel(hook, redirect),
                      "\n", testing::HexDump(frame));
    return err;
  }

  // Every action on every hook; returns the number of runs.
  static int CheckAllActionsAllHooks(const std::vector<uint8_t>& frame, const std::string& what,
                                     bool xdp_ok) {
    int runs = 0;
    for (uint32_t action = 0; action < CSF_ACT_MAX; ++action) {
      for (uint32_t hook = 0; hook < CSF_HOOK_MAX; ++hook) {
        if (hook == CSF_HOOK_XDP && !xdp_ok) continue;
        for (bool redirect : {false, true}) {
          if (redirect && hook != CSF_HOOK_XDP) continue;
          EXPECT_EQ(RunUntouched(frame, action, hook, redirect), "") << what;
          ++runs;
        }
      }
    }
    return runs;
  }

};

// The valid packets stated here: every L3 x L4 with a checksum, VLAN tags, IPv4 options, IPv6
// extension headers, Ethernet padding, UDP trailers, odd and empty payloads, and the RFC 1071
// edge where the checksum computes to 0 and is written as 0xffff (and, for TCP/ICMP/ICMPv6, the
// equally valid 0x0000).
std::vector<std::pair<std::string, PacketSpec>> StatedValidPackets() {
  std::vector<std::pair<std::string, PacketSpec>> v;
  struct Combo {
    L3Kind l3;
    L4Kind l4;
  };
  const Combo combos[] = {
      {L3Kind::kIpv4, L4Kind::kTcp},     {L3Kind::kIpv4, L4Kind::kUdp},
      {L3Kind::kIpv4, L4Kind::kUdpLite}, {L3Kind::kIpv4, L4Kind::kIcmp4},
      {L3Kind::kIpv4, L4Kind::kSctp},    {L3Kind::kIpv6, L4Kind::kTcp},
      {L3Kind::kIpv6, L4Kind::kUdp},     {L3Kind::kIpv6, L4Kind::kUdpLite},
      {L3Kind::kIpv6, L4Kind::kIcmp6},   {L3Kind::kIpv6, L4Kind::kSctp},
  };
  int n = 0;
  for (const Combo& c : combos) {
    for (size_t payload : {size_t{0}, size_t{1}, size_t{64}, size_t{1001}, size_t{1460}}) {
      for (int variant = 0; variant < 6; ++variant) {
        PacketSpec s;
        s.l3 = c.l3;
        s.l4 = c.l4;
        s.csum = CsumState::kValid;
        s.payload_len = payload;
        s.payload_seed = static_cast<uint64_t>(++n);
        std::string name = absl::StrCat(c.l3 == L3Kind::kIpv4 ? "ipv4" : "ipv6", " l4 ",
                                        static_cast<int>(c.l4), " payload ", payload);
        switch (variant) {
          case 0: break;
          case 1: s.vlan_tags = 1; name += " vlan1"; break;
          case 2:
            s.vlan_tags = 2;
            if (c.l3 == L3Kind::kIpv4) s.ip4_option_bytes = 20; else s.ip6_ext = {0, 60, 43, 44};
            name += " vlan2+options/ext";
            break;
          case 3:
            s.eth_padding = 18;
            if (c.l4 == L4Kind::kUdp) s.udp_trailer = 5;
            name += " padding/trailer";
            break;
          case 4:
            if (c.l4 == L4Kind::kSctp) continue;  // no RFC 1071 edge for CRC32c
            s.csum_all_ones = true;
            name += " checksum 0xffff";
            break;
          case 5:
            // A field of 0x0000 that is valid: TCP, ICMP and ICMPv6 (UDP and UDP-Lite reserve 0).
            if (c.l4 != L4Kind::kTcp && c.l4 != L4Kind::kIcmp4 && c.l4 != L4Kind::kIcmp6) continue;
            s.csum_all_ones = true;
            s.csum = CsumState::kZero;
            name += " checksum 0x0000 (valid)";
            break;
        }
        v.emplace_back(name, s);
      }
    }
  }
  return v;
}

TEST_F(ValidUntouched, EveryActionEveryHookStatedPackets) {
  int runs = 0, packets = 0;
  for (const auto& [name, spec] : StatedValidPackets()) {
    const std::vector<uint8_t> frame = testing::Build(spec);
    // Independent sanity: the reference agrees the packet is valid on every hook.
    ref::Meta meta;
    ASSERT_EQ(ref::ClassName(ref::Classify(frame, CSF_ACT_VERIFY, meta)), "valid")
        << name << ": " << testing::Describe(spec);
    runs += CheckAllActionsAllHooks(frame, name, frame.size() <= kMaxFrameXdp);
    ++packets;
  }
  std::printf("valid untouched: %d stated packets, %d BPF runs\n", packets, runs);
  EXPECT_GE(packets, 250);
}

TEST_F(ValidUntouched, EveryActionEveryHookRandomValidPackets) {
  const uint64_t cases = EnvU64("CSUMFIX_VALID_CASES", 20000);
  const uint64_t seed = EnvU64("CSUMFIX_VALID_SEED", 1);
  std::printf("valid untouched: %llu random specs, CSUMFIX_VALID_SEED=%llu\n",
              static_cast<unsigned long long>(cases), static_cast<unsigned long long>(seed));
  std::mt19937_64 rng(seed);
  uint64_t valid = 0, runs = 0;
  for (uint64_t i = 0; i < cases && !HasFailure(); ++i) {
    PacketSpec spec = testing::RandomSpec(rng, kMaxFrameXdp);
    const std::vector<uint8_t> frame = testing::Build(spec);
    ref::Meta meta;
    // "Arrived with a valid checksum" as the reference judges it (any damage, VLAN, extension
    // header or padding the generator made, as long as the L4 checksum verifies).
    if (frame.size() < 14 + 40 || ref::Classify(frame, CSF_ACT_VERIFY, meta) != CSF_CLASS_VALID)
      continue;
    // A wrong IPv4 header checksum is dropped by drop-bad on purpose: not a valid packet.
    if (ref::Parse(frame).l3 == ref::L3::kIpv4 && !ref::Parse(frame).ip4_hdr_ok) continue;
    ++valid;
    runs += CheckAllActionsAllHooks(frame, absl::StrCat("case ", i, " of CSUMFIX_VALID_SEED=",
                                                        seed, ": ", testing::Describe(spec)),
                                    true);
  }
  std::printf("valid untouched: %llu valid packets, %llu BPF runs\n",
              static_cast<unsigned long long>(valid), static_cast<unsigned long long>(runs));
  if (cases >= 10000) {
    EXPECT_GT(valid, cases / 10) << "the generator made too few valid packets";
  }
}

// The exception the contract names, on the reference (PROG_TEST_RUN cannot set CHECKSUM_PARTIAL):
// a valid packet the kernel holds as CHECKSUM_PARTIAL is PARTIAL, so fill writes the correct value
// (still valid; 0x0000 becomes 0xffff) and zero-udp4 zeroes UDP/IPv4. Nothing else changes it.
TEST(ValidUntouchedReference, KernelPartialExceptionInReference) {
  for (const auto& [name, spec] : StatedValidPackets()) {
    const std::vector<uint8_t> frame = testing::Build(spec);
    const ref::Parsed p = ref::Parse(frame);
    ASSERT_EQ(p.cls, uint32_t{CSF_CLASS_NONE}) << name;
    const bool udp4 = spec.l3 == L3Kind::kIpv4 && spec.l4 == L4Kind::kUdp;
    for (uint32_t hook = 0; hook < CSF_HOOK_MAX; ++hook) {
      for (uint32_t action = 0; action < CSF_ACT_MAX; ++action) {
        ref::Meta meta;
        meta.hook = hook;
        meta.is_partial = false;
        EXPECT_EQ(ref::Apply(action, frame, meta).out, frame) << name << " " << ref::ActionName(action);
        meta.is_partial = true;  // ignored under XDP (XDP never sees CHECKSUM_PARTIAL)
        const ref::Result r = ref::Apply(action, frame, meta);
        const bool rewrites = hook != CSF_HOOK_XDP &&
                              (action == CSF_ACT_FILL || action == CSF_ACT_ZERO_UDP4);
        if (!rewrites) {
          EXPECT_EQ(r.out, frame) << name << " " << ref::ActionName(action) << " hook " << hook;
          continue;
        }
        ref::Meta after;
        after.hook = hook;
        if (action == CSF_ACT_ZERO_UDP4 && udp4) {
          EXPECT_EQ(r.out[p.field_off], 0) << name;
          EXPECT_EQ(r.out[p.field_off + 1], 0) << name;
          EXPECT_EQ(r.deltas[CSF_CTR_ZEROED], 1u) << name;
        } else {
          EXPECT_EQ(ref::ClassName(ref::Classify(r.out, CSF_ACT_VERIFY, after)), "valid") << name;
          EXPECT_EQ(r.deltas[CSF_CTR_FILLED], 1u) << name;
          // Only the checksum field may differ, and only from 0x0000 to 0xffff.
          std::vector<uint8_t> want = frame;
          if (spec.csum == CsumState::kZero) want[p.field_off] = want[p.field_off + 1] = 0xff;
          EXPECT_EQ(r.out, want) << name << " " << ref::ActionName(action);
        }
      }
    }
  }
}

}  // namespace
}  // namespace csumfix
