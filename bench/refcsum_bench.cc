// Benchmarks for the reference checksum library: the RFC 1071 sum and Apply(fill) on
// 64 / 1500 / 9000-byte frames. Bytes processed are reported, so Google Benchmark prints GB/s.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <span>
#include <vector>

#include "refcsum/refcsum.h"

namespace {

using csumfix::ref::Apply;
using csumfix::ref::InternetChecksum;
using csumfix::ref::Meta;

// An IPv4/TCP frame of `frame_len` bytes whose checksum field holds the pseudo-header seed, so
// Apply(fill) classifies it PARTIAL and writes the correct value (one full sum for the
// verification, one for the fill).
std::vector<uint8_t> SeededTcpFrame(size_t frame_len) {
  std::vector<uint8_t> f(frame_len);
  for (size_t i = 0; i < frame_len; ++i) f[i] = static_cast<uint8_t>(i * 131 + 7);
  const uint8_t eth_ip_tcp[] = {
      0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00,  // Ethernet, IPv4
      0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0,              // IPv4 (lengths below)
      192, 0, 2, 1, 198, 51, 100, 7,                                // addresses
      0xa8, 0xca, 0x01, 0xbb, 0, 0, 0, 1, 0, 0, 0, 2, 0x50, 0x18, 0xff, 0xff,  // TCP
      0, 0, 0, 0};  // checksum, urgent pointer
  std::copy(std::begin(eth_ip_tcp), std::end(eth_ip_tcp), f.begin());
  const size_t ip_len = frame_len - 14;
  f[16] = static_cast<uint8_t>(ip_len >> 8);
  f[17] = static_cast<uint8_t>(ip_len);
  const uint16_t hc = InternetChecksum(std::span(f).subspan(14, 20));
  f[24] = static_cast<uint8_t>(hc >> 8);
  f[25] = static_cast<uint8_t>(hc);
  const csumfix::ref::Parsed p = csumfix::ref::Parse(f);
  const uint16_t seed = csumfix::ref::PseudoSum(f, p);
  f[p.field_off] = static_cast<uint8_t>(seed >> 8);
  f[p.field_off + 1] = static_cast<uint8_t>(seed);
  return f;
}

void BM_InternetChecksum(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  std::vector<uint8_t> buf(n);
  for (size_t i = 0; i < n; ++i) buf[i] = static_cast<uint8_t>(i * 131 + 7);
  for (auto _ : state) {
    benchmark::DoNotOptimize(buf.data());
    uint16_t c = InternetChecksum(buf);
    benchmark::DoNotOptimize(c);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(n));
}
BENCHMARK(BM_InternetChecksum)->Arg(64)->Arg(1500)->Arg(9000);

void BM_ApplyFill(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  const std::vector<uint8_t> frame = SeededTcpFrame(n);
  const Meta meta;
  if (Apply(CSF_ACT_FILL, frame, meta).deltas[CSF_CTR_FILLED] != 1) {
    state.SkipWithError("benchmark frame is not filled");
    return;
  }
  for (auto _ : state) {
    auto r = Apply(CSF_ACT_FILL, frame, meta);
    benchmark::DoNotOptimize(r);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(n));
}
BENCHMARK(BM_ApplyFill)->Arg(64)->Arg(1500)->Arg(9000);

}  // namespace

BENCHMARK_MAIN();
