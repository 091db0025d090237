// Differential suite: every case runs through the BPF programs with BPF_PROG_TEST_RUN and through
// the reference (userspace/refcsum) on the same bytes; verdict, output bytes and counter deltas
// must match exactly. PROG_TEST_RUN cannot make a CHECKSUM_PARTIAL skb, so partial packets are
// represented by the seed in the bytes (docs/SEMANTICS.md); real partial traffic is tested in
// tests/netns/.
//
// Environment: CSUMFIX_DIFF_CASES (default 100000), CSUMFIX_DIFF_SEED (default: time-based, printed).
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <random>
#include <sstream>
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
using testing::Damage;
using testing::L3Kind;
using testing::L4Kind;
using testing::PacketSpec;

constexpr uint32_t kLoIfindex = 1;  // PROG_TEST_RUN runs tc and XDP on the loopback device
// csumfix lets packets go with TC_ACT_UNSPEC (-1), so other tc programs still see them.
constexpr uint32_t kTcPass = 0xffffffffu /* TC_ACT_UNSPEC */, kTcActShot = 2, kXdpDrop = 1, kXdpPass = 2, kXdpRedirect = 4;
// Largest frames BPF_PROG_TEST_RUN takes linearly (a page less head- and tailroom).
constexpr size_t kMaxFrameTc = 3600;
constexpr size_t kMaxFrameXdp = 3400;

const char* kCounterNames[] = {
    "PACKETS", "BYTES", "class none", "class valid", "class partial", "class bad",
    "class zero", "class na", "class unparsable", "class gso", "class unverified",
    "act pass", "act observe", "act verify", "act drop-bad", "act fill", "act zero-udp4",
    "FILLED", "ZEROED", "DROPPED", "IP4_HDR_BAD", "FILL_ERROR", "BOUNCED",
    "BOUNCE_RETURNED", "POLICY_HIT", "ACT_SELECTED"};
static_assert(sizeof(kCounterNames) / sizeof(kCounterNames[0]) == CSF_CTR_MAX);

uint64_t EnvU64(const char* name, uint64_t dflt) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 0) : dflt;
}

class Differential : public testing::LoadedPrograms {
 protected:
  // Runs one case through both; returns "" when they agree, else a description of the mismatch.
  static std::string Compare(const std::vector<uint8_t>& frame, uint32_t action, uint32_t hook,
                             bool xdp_redirect = false) {
    std::ostringstream err;
    csf_if_key key{kLoIfindex, hook};
    auto cfg = progs_->ifcfg();
    auto ctrs = progs_->counters();
    // The redirect target does not matter: a test run reports XDP_REDIRECT without sending.
    const csf_ifcfg c{action, xdp_redirect ? CSF_IFCFG_F_XDP_REDIRECT : 0u, 0,
                      xdp_redirect ? kLoIfindex : 0u};
    if (auto s = cfg.Update(key, c); !s.ok()) return s.ToString();
    if (auto s = ctrs.Delete(key); !s.ok()) return s.ToString();
    auto run = bpf::TestRun(progs_->prog_fd(hook), frame);
    if (!run.ok()) return absl::StrCat("hook ", hook, ": ", run.status().ToString());
    auto got = ctrs.Lookup(key);
    if (!got.ok()) return got.status().ToString();
    csf_counters bpf_ctr = got->value_or(csf_counters{});

    ref::Meta meta;
    meta.hook = hook;
    meta.xdp_redirect = xdp_redirect && hook == CSF_HOOK_XDP;
    ref::Result want = ref::Apply(action, frame, meta);
    uint32_t want_ret = hook == CSF_HOOK_XDP
                            ? (want.verdict == ref::Verdict::kDrop       ? kXdpDrop
                               : want.verdict == ref::Verdict::kRedirect ? kXdpRedirect
                                                                         : kXdpPass)
                            : (want.verdict == ref::Verdict::kDrop ? kTcActShot : kTcPass);
    if (run->retval != want_ret)
      err << "verdict: bpf " << run->retval << ", reference " << want_ret << "\n";
    if (run->data_out != want.out) {
      err << "output bytes differ (bpf " << run->data_out.size() << " bytes, reference "
          << want.out.size() << ")";
      for (size_t i = 0; i < std::min(run->data_out.size(), want.out.size()); ++i) {
        if (run->data_out[i] != want.out[i]) {
          err << "; first at offset " << i << ": bpf 0x" << std::hex << int(run->data_out[i])
              << " reference 0x" << int(want.out[i]) << std::dec;
          break;
        }
      }
      err << "\nbpf output:\n" << testing::HexDump(run->data_out);
    }
    for (int i = 0; i < CSF_CTR_MAX; ++i) {
      if (bpf_ctr.c[i] != want.deltas[i])
        err << "counter " << kCounterNames[i] << ": bpf " << bpf_ctr.c[i] << ", reference "
            << want.deltas[i] << "\n";
    }
    if (!err.str().empty()) {
      err << "action " << ref::ActionName(action) << ", hook " << hook << ", reference class "
          << ref::ClassName(want.cls) << "\nframe (" << frame.size() << " bytes):\n"
          << testing::HexDump(frame);
    }
    return err.str();
  }

};

// ---- Named cases: the expected class is stated, not taken from either implementation ----------
struct Named {
  const char* name;
  PacketSpec spec;
  uint32_t action;
  uint32_t want_class;
  bool want_drop;
  bool want_modified;
};

PacketSpec Spec(L3Kind l3, L4Kind l4, CsumState cs, size_t payload = 64) {
  PacketSpec s;
  s.l3 = l3;
  s.l4 = l4;
  s.csum = cs;
  s.payload_len = payload;
  s.payload_seed = payload * 7 + static_cast<int>(l4);
  return s;
}

std::vector<Named> NamedCases() {
  using enum L3Kind;
  using enum L4Kind;
  using enum CsumState;
  std::vector<Named> v = {
      {"tcp4_valid_fill", Spec(kIpv4, kTcp, kValid), CSF_ACT_FILL, CSF_CLASS_VALID, false, false},
      {"tcp4_seed_fill", Spec(kIpv4, kTcp, kSeed), CSF_ACT_FILL, CSF_CLASS_PARTIAL, false, true},
      {"tcp6_seed_fill", Spec(kIpv6, kTcp, kSeed, 1400), CSF_ACT_FILL, CSF_CLASS_PARTIAL, false, true},
      {"udp4_seed_fill", Spec(kIpv4, kUdp, kSeed), CSF_ACT_FILL, CSF_CLASS_PARTIAL, false, true},
      {"udp6_seed_fill_odd", Spec(kIpv6, kUdp, kSeed, 1001), CSF_ACT_FILL, CSF_CLASS_PARTIAL, false, true},
      {"udp4_seed_zero_udp4", Spec(kIpv4, kUdp, kSeed), CSF_ACT_ZERO_UDP4, CSF_CLASS_PARTIAL, false, true},
      {"udp4_zero", Spec(kIpv4, kUdp, kZero), CSF_ACT_FILL, CSF_CLASS_ZERO, false, false},
      {"udp6_zero_is_bad", Spec(kIpv6, kUdp, kZero), CSF_ACT_VERIFY, CSF_CLASS_BAD, false, false},
      {"udp6_zero_dropped", Spec(kIpv6, kUdp, kZero), CSF_ACT_DROP_BAD, CSF_CLASS_BAD, true, false},
      {"tcp4_bad_dropped", Spec(kIpv4, kTcp, kCorrupt), CSF_ACT_DROP_BAD, CSF_CLASS_BAD, true, false},
      {"tcp4_seed_not_dropped", Spec(kIpv4, kTcp, kSeed), CSF_ACT_DROP_BAD, CSF_CLASS_PARTIAL, false, false},
      {"tcp4_bad_not_filled", Spec(kIpv4, kTcp, kCorrupt), CSF_ACT_FILL, CSF_CLASS_BAD, false, false},
      {"tcp4_observe_seed", Spec(kIpv4, kTcp, kSeed), CSF_ACT_OBSERVE, CSF_CLASS_PARTIAL, false, false},
      {"tcp4_observe_valid", Spec(kIpv4, kTcp, kValid), CSF_ACT_OBSERVE, CSF_CLASS_UNVERIFIED, false, false},
      {"tcp4_pass", Spec(kIpv4, kTcp, kSeed), CSF_ACT_PASS, CSF_CLASS_NONE, false, false},
      {"udplite6_seed", Spec(kIpv6, kUdpLite, kSeed), CSF_ACT_FILL, CSF_CLASS_PARTIAL, false, true},
      {"icmp4_valid", Spec(kIpv4, kIcmp4, kValid), CSF_ACT_VERIFY, CSF_CLASS_VALID, false, false},
      {"icmp4_bad", Spec(kIpv4, kIcmp4, kCorrupt), CSF_ACT_VERIFY, CSF_CLASS_BAD, false, false},
      {"icmp6_seed", Spec(kIpv6, kIcmp6, kSeed), CSF_ACT_FILL, CSF_CLASS_PARTIAL, false, true},
      {"sctp4_valid", Spec(kIpv4, kSctp, kValid, 333), CSF_ACT_VERIFY, CSF_CLASS_VALID, false, false},
      {"sctp6_seed_fill", Spec(kIpv6, kSctp, kSeed, 333), CSF_ACT_FILL, CSF_CLASS_PARTIAL, false, true},
      {"sctp4_bad", Spec(kIpv4, kSctp, kCorrupt), CSF_ACT_VERIFY, CSF_CLASS_BAD, false, false},
      {"gre_na", Spec(kIpv4, kOther, kValid), CSF_ACT_FILL, CSF_CLASS_NA, false, false},
      {"arp_na", Spec(kNonIp, kUdp, kValid), CSF_ACT_FILL, CSF_CLASS_NA, false, false},
      {"tcp4_jumbo_seed", Spec(kIpv4, kTcp, kSeed, 3400), CSF_ACT_FILL, CSF_CLASS_PARTIAL, false, true},
  };
  {
    Named n{"vlan2_udp4_seed", Spec(kIpv4, kUdp, kSeed), CSF_ACT_FILL, CSF_CLASS_PARTIAL, false, true};
    n.spec.vlan_tags = 2;
    v.push_back(n);
    n.name = "vlan3_na";
    n.spec.vlan_tags = 3;
    n.want_class = CSF_CLASS_NA;
    n.want_modified = false;
    v.push_back(n);
  }
  {
    Named n{"ip4_options_tcp_seed", Spec(kIpv4, kTcp, kSeed), CSF_ACT_FILL, CSF_CLASS_PARTIAL, false, true};
    n.spec.ip4_option_bytes = 12;
    v.push_back(n);
  }
  {
    Named n{"ip6_all_ext_udp_seed", Spec(kIpv6, kUdp, kSeed), CSF_ACT_FILL, CSF_CLASS_PARTIAL, false, true};
    n.spec.ip6_ext = {0, 60, 43, 44};
    v.push_back(n);
    n.name = "ip6_routing_segleft_na";
    n.spec.routing_segments_left = true;
    n.spec.ip6_ext = {43};
    n.want_class = CSF_CLASS_NA;
    n.want_modified = false;
    v.push_back(n);
  }
  {
    Named n{"ip4_first_fragment_na", Spec(kIpv4, kUdp, kSeed), CSF_ACT_FILL, CSF_CLASS_NA, false, false};
    n.spec.fragment_first = true;
    v.push_back(n);
    n.name = "ip6_nonfirst_fragment_na";
    n.spec = Spec(kIpv6, kUdp, kSeed);
    n.spec.ip6_ext = {44};
    n.spec.fragment_nonfirst = true;
    v.push_back(n);
  }
  {
    Named n{"ip4_bad_hdr_dropped", Spec(kIpv4, kUdp, kValid), CSF_ACT_DROP_BAD, CSF_CLASS_VALID, true, false};
    n.spec.bad_ip4_hdr_csum = true;
    v.push_back(n);
  }
  {
    Named n{"padded_udp4_seed", Spec(kIpv4, kUdp, kSeed, 4), CSF_ACT_FILL, CSF_CLASS_PARTIAL, false, true};
    n.spec.eth_padding = 20;
    v.push_back(n);
  }
  {
    Named n{"truncated_tcp4", Spec(kIpv4, kTcp, kValid), CSF_ACT_FILL, CSF_CLASS_UNPARSABLE, false, false};
    n.spec.damage = Damage::kTruncate;
    n.spec.truncate_to = 40;
    v.push_back(n);
  }
  return v;
}

TEST_F(Differential, NamedCases) {
  for (const Named& n : NamedCases()) {
    SCOPED_TRACE(n.name);
    std::vector<uint8_t> frame = testing::Build(n.spec);
    for (uint32_t hook = 0; hook < CSF_HOOK_MAX; ++hook) {
      std::string diff = Compare(frame, n.action, hook);
      EXPECT_EQ(diff, "") << n.name << ": " << testing::Describe(n.spec);
      // The expectation stated here, independent of both implementations.
      ref::Meta meta;
      meta.hook = hook;
      ref::Result r = ref::Apply(n.action, frame, meta);
      EXPECT_EQ(ref::ClassName(r.cls), ref::ClassName(n.want_class)) << n.name;
      EXPECT_EQ(r.verdict == ref::Verdict::kDrop, n.want_drop) << n.name;
      // XDP_PASS never fills (the kernel completes those itself): the frame stays as it was.
      bool modified = r.out != frame;
      EXPECT_EQ(modified, n.want_modified && hook != CSF_HOOK_XDP) << n.name << " hook " << hook;
    }
    // XDP with a redirect: the frame leaves without checksum metadata, so seeds are filled.
    EXPECT_EQ(Compare(frame, n.action, CSF_HOOK_XDP, true), "") << n.name << " (XDP redirect)";
    ref::Meta meta;
    meta.hook = CSF_HOOK_XDP;
    meta.xdp_redirect = true;
    ref::Result r = ref::Apply(n.action, frame, meta);
    EXPECT_EQ(r.out != frame, n.want_modified) << n.name << " (XDP redirect)";
    EXPECT_EQ(r.verdict, n.want_drop ? ref::Verdict::kDrop : ref::Verdict::kRedirect) << n.name;
  }
}

TEST_F(Differential, FilledPacketsVerify) {
  // A fill must produce a packet the reference then calls valid (closing the loop).
  for (const Named& n : NamedCases()) {
    if (!n.want_modified || n.action != CSF_ACT_FILL) continue;
    SCOPED_TRACE(n.name);
    std::vector<uint8_t> frame = testing::Build(n.spec);
    csf_if_key key{kLoIfindex, CSF_HOOK_TC_INGRESS};
    ASSERT_TRUE(progs_->ifcfg().Update(key, csf_ifcfg{CSF_ACT_FILL, 0, 0, 0}).ok());
    auto run = bpf::TestRun(progs_->tc_ingress_fd(), frame);
    ASSERT_TRUE(run.ok()) << run.status();
    ref::Meta meta;
    EXPECT_EQ(ref::ClassName(ref::Classify(run->data_out, CSF_ACT_VERIFY, meta)), "valid")
        << n.name;
  }
}

TEST_F(Differential, GsoIsCountedAndLeftAlone) {
  // A GSO skb can be made in the test run by setting gso_size in the context.
  for (uint32_t action : {CSF_ACT_OBSERVE, CSF_ACT_VERIFY, CSF_ACT_DROP_BAD, CSF_ACT_FILL}) {
    for (uint32_t hook : {CSF_HOOK_TC_INGRESS, CSF_HOOK_TC_EGRESS}) {
      PacketSpec spec = Spec(L3Kind::kIpv4, L4Kind::kTcp, CsumState::kSeed, 2000);
      spec.bad_ip4_hdr_csum = true;  // not looked at either
      std::vector<uint8_t> frame = testing::Build(spec);
      csf_if_key key{kLoIfindex, hook};
      ASSERT_TRUE(progs_->ifcfg().Update(key, csf_ifcfg{action, 0, 0, 0}).ok());
      ASSERT_TRUE(progs_->counters().Delete(key).ok());
      bpf::TestRunOptions o;
      o.gso_size = 1448;
      auto run = bpf::TestRun(progs_->prog_fd(hook), frame, o);
      ASSERT_TRUE(run.ok()) << run.status();
      EXPECT_EQ(run->retval, kTcPass);
      EXPECT_EQ(run->data_out, frame);
      auto c = progs_->counters().Lookup(key);
      ASSERT_TRUE(c.ok() && c->has_value());
      ref::Meta meta;
      meta.hook = hook;
      meta.is_gso = true;
      ref::Result want = ref::Apply(action, frame, meta);
      EXPECT_EQ(want.cls, uint32_t{CSF_CLASS_GSO});
      for (int i = 0; i < CSF_CTR_MAX; ++i)
        EXPECT_EQ((*c)->c[i], want.deltas[i]) << "counter " << kCounterNames[i];
    }
  }
}

TEST_F(Differential, RandomCases) {
  const uint64_t cases = EnvU64("CSUMFIX_DIFF_CASES", 200000);
  const uint64_t seed = EnvU64(
      "CSUMFIX_DIFF_SEED",
      static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()));
  std::printf("differential: %llu cases, CSUMFIX_DIFF_SEED=%llu\n",
              static_cast<unsigned long long>(cases), static_cast<unsigned long long>(seed));
  std::mt19937_64 rng(seed);
  uint64_t per_class[CSF_CLASS_MAX] = {}, failures = 0, short_frames = 0, kernel_refused = 0;
  for (uint64_t i = 0; i < cases && failures < 5; ++i) {
    const uint32_t hook = rng() % CSF_HOOK_MAX;
    const uint32_t action = rng() % CSF_ACT_MAX;
    PacketSpec spec = testing::RandomSpec(rng, hook == CSF_HOOK_XDP ? kMaxFrameXdp : kMaxFrameTc);
    std::vector<uint8_t> frame = testing::Build(spec);
    if (frame.size() < 14) {
      // The kernel refuses test frames shorter than an Ethernet header; the reference must call
      // them unparsable.
      ++short_frames;
      ref::Meta meta;
      meta.hook = hook;
      uint32_t cls = ref::Apply(action, frame, meta).cls;
      EXPECT_TRUE(action == CSF_ACT_PASS ? cls == CSF_CLASS_NONE : cls == CSF_CLASS_UNPARSABLE);
      continue;
    }
    if (hook != CSF_HOOK_XDP && frame.size() < 14 + 40) {
      // tc's PROG_TEST_RUN refuses IP frames too short for their IP header (EINVAL); real
      // traffic never brings such a frame to tc either. The reference must call them unparsable.
      auto probe = bpf::TestRun(progs_->prog_fd(hook), frame);
      if (!probe.ok() && probe.status().code() == absl::StatusCode::kInvalidArgument) {
        ++kernel_refused;
        ref::Meta meta;
        meta.hook = hook;
        uint32_t cls = ref::Apply(action, frame, meta).cls;
        EXPECT_TRUE(action == CSF_ACT_PASS ? cls == CSF_CLASS_NONE : cls == CSF_CLASS_UNPARSABLE)
            << "kernel refused a " << frame.size() << "-byte frame the reference calls "
            << ref::ClassName(cls) << ": " << testing::Describe(spec);
        continue;
      }
    }
    const bool redirect = hook == CSF_HOOK_XDP && (rng() & 1);
    std::string diff = Compare(frame, action, hook, redirect);
    if (!diff.empty()) {
      ++failures;
      ADD_FAILURE() << "case " << i << " of CSUMFIX_DIFF_SEED=" << seed << ": "
                    << testing::Describe(spec) << (redirect ? " (XDP redirect)" : "") << "\n"
                    << diff;
    }
    ref::Meta meta;
    meta.hook = hook;
    ++per_class[ref::Classify(frame, action, meta) % CSF_CLASS_MAX];
  }
  std::printf("differential: classes seen:");
  for (uint32_t c = 0; c < CSF_CLASS_MAX; ++c)
    std::printf(" %s=%llu", std::string(ref::ClassName(c)).c_str(),
                static_cast<unsigned long long>(per_class[c]));
  std::printf(" (frames under 14 bytes: %llu; short IP frames tc's test run refuses: %llu)\n",
              static_cast<unsigned long long>(short_frames),
              static_cast<unsigned long long>(kernel_refused));
  // The generator must reach every class the test run can produce (GSO needs a real skb).
  for (uint32_t c = 0; c < CSF_CLASS_MAX; ++c) {
    if (c == CSF_CLASS_GSO || cases < 10000) continue;
    EXPECT_GT(per_class[c], 0u) << "no case of class " << ref::ClassName(c);
  }
}

// Replays stored frames through both on every action and hook (and XDP redirect): the pcap
// fixtures (tests/fixtures/*.pcap) always, plus every file of CSUMFIX_DIFF_CORPUS when set — a
// libFuzzer corpus of tests/fuzz/refcsum_fuzz (byte 0 is its meta byte, the frame follows; the
// meta byte is not used, since BPF_PROG_TEST_RUN cannot set CHECKSUM_PARTIAL).
TEST_F(Differential, CorpusReplay) {
  auto slurp = [](const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  };
  std::vector<std::pair<std::string, std::vector<uint8_t>>> frames;
  for (const char* name : {"valid.pcap", "seed.pcap", "bad.pcap", "misc.pcap"}) {
    const std::vector<uint8_t> pcap = slurp(std::string(CSUMFIX_FIXTURE_DIR) + "/" + name);
    ASSERT_GT(pcap.size(), 24u) << name << " missing in " << CSUMFIX_FIXTURE_DIR;
    for (size_t off = 24, i = 0; off + 16 <= pcap.size(); ++i) {  // classic pcap, little endian
      const size_t len = pcap[off + 8] | pcap[off + 9] << 8 | pcap[off + 10] << 16 | pcap[off + 11] << 24;
      ASSERT_LE(off + 16 + len, pcap.size()) << name;
      frames.emplace_back(absl::StrCat(name, " #", i),
                          std::vector<uint8_t>(pcap.begin() + off + 16, pcap.begin() + off + 16 + len));
      off += 16 + len;
    }
  }
  const size_t fixtures = frames.size();
  EXPECT_GE(fixtures, 43u);
  if (const char* dir = std::getenv("CSUMFIX_DIFF_CORPUS"); dir && *dir) {
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
      std::vector<uint8_t> b = slurp(e.path().string());
      if (b.empty()) continue;
      frames.emplace_back(e.path().string(), std::vector<uint8_t>(b.begin() + 1, b.end()));
    }
    EXPECT_GT(frames.size(), fixtures) << "CSUMFIX_DIFF_CORPUS=" << dir << " holds no input";
  }
  uint64_t runs = 0, not_run = 0, failures = 0;
  for (const auto& [name, frame] : frames) {
    for (uint32_t hook = 0; hook < CSF_HOOK_MAX && failures < 5; ++hook) {
      // What the kernel's test run refuses (RandomCases checks the reference's class for those).
      if (frame.size() < 14 || frame.size() > (hook == CSF_HOOK_XDP ? kMaxFrameXdp : kMaxFrameTc) ||
          (hook != CSF_HOOK_XDP && frame.size() < 14 + 40 &&
           !bpf::TestRun(progs_->prog_fd(hook), frame).ok())) {
        ++not_run;
        continue;
      }
      for (uint32_t action = 0; action < CSF_ACT_MAX; ++action) {
        for (bool redirect : {false, true}) {
          if (redirect && hook != CSF_HOOK_XDP) continue;
          std::string diff = Compare(frame, action, hook, redirect);
          ++runs;
          if (!diff.empty()) {
            ++failures;
            ADD_FAILURE() << name << (redirect ? " (XDP redirect)" : "") << "\n" << diff;
          }
        }
      }
    }
  }
  std::printf("corpus replay: %zu frames (%zu from the pcap fixtures), %llu runs, %llu frame/hook "
              "pairs the test run refuses\n",
              frames.size(), fixtures, static_cast<unsigned long long>(runs),
              static_cast<unsigned long long>(not_run));
}

}  // namespace
}  // namespace csumfix
