// Writes a libFuzzer seed corpus for refcsum_fuzz: frames from the test generator
// (tests/common/pktgen), each prefixed with the fuzzer's meta byte (see refcsum_fuzz.cc).
//   make_seed_corpus DIR [COUNT] [SEED]
// Deterministic for a given COUNT and SEED. Besides COUNT random specs it writes every
// L3 x L4 x checksum state with default sizes, so each class has a seed.
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/pktgen.h"

namespace {

using csumfix::testing::CsumState;
using csumfix::testing::L3Kind;
using csumfix::testing::L4Kind;
using csumfix::testing::PacketSpec;

bool WriteSeed(const std::string& dir, size_t n, uint8_t meta, const std::vector<uint8_t>& frame) {
  char name[64];
  std::snprintf(name, sizeof name, "/seed-%06zu", n);
  const std::string path = dir + name;
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) {
    std::fprintf(stderr, "make_seed_corpus: open %s: %s\n", path.c_str(), std::strerror(errno));
    return false;
  }
  bool ok = std::fwrite(&meta, 1, 1, f) == 1 &&
            std::fwrite(frame.data(), 1, frame.size(), f) == frame.size();
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) std::fprintf(stderr, "make_seed_corpus: write %s failed\n", path.c_str());
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 4) {
    std::fprintf(stderr, "usage: make_seed_corpus DIR [COUNT (default 500)] [SEED (default 1)]\n");
    return 2;
  }
  const std::string dir = argv[1];
  const size_t count = argc > 2 ? std::strtoull(argv[2], nullptr, 0) : 500;
  const uint64_t seed = argc > 3 ? std::strtoull(argv[3], nullptr, 0) : 1;
  if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    std::fprintf(stderr, "make_seed_corpus: mkdir %s: %s\n", dir.c_str(), std::strerror(errno));
    return 1;
  }
  size_t n = 0;
  // Every L3 x L4 x checksum state, tc ingress, not partial.
  for (L3Kind l3 : {L3Kind::kIpv4, L3Kind::kIpv6, L3Kind::kNonIp}) {
    for (int l4 = 0; l4 <= static_cast<int>(L4Kind::kOther); ++l4) {
      for (CsumState cs : {CsumState::kValid, CsumState::kSeed, CsumState::kCorrupt,
                           CsumState::kZero}) {
        PacketSpec s;
        s.l3 = l3;
        s.l4 = static_cast<L4Kind>(l4);
        s.csum = cs;
        s.payload_len = 37;
        s.payload_seed = n;
        if ((s.l4 == L4Kind::kIcmp4 && l3 == L3Kind::kIpv6) ||
            (s.l4 == L4Kind::kIcmp6 && l3 == L3Kind::kIpv4))
          continue;
        if (!WriteSeed(dir, n++, 0, csumfix::testing::Build(s))) return 1;
      }
    }
  }
  // Random specs with random meta bytes (all five meta bits).
  std::mt19937_64 rng(seed);
  for (size_t i = 0; i < count; ++i) {
    const uint8_t meta = static_cast<uint8_t>(rng() & 0x1f);
    const PacketSpec s = csumfix::testing::RandomSpec(rng, 1600);
    if (!WriteSeed(dir, n++, meta, csumfix::testing::Build(s))) return 1;
  }
  std::printf("make_seed_corpus: %zu seeds in %s (seed %llu)\n", n, dir.c_str(),
              static_cast<unsigned long long>(seed));
  return 0;
}
