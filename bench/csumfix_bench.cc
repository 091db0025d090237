// csumfix micro-benchmarks (root): per-packet cost of the BPF programs through BPF_PROG_TEST_RUN,
// beside a plain C checksum of the same bytes and the reference implementation, and the cost of
// the per-flow policy lookup at 10 / 1,000 / 100,000 rules. Prints a table and writes JSON.
// Figures only; nothing here asserts a target (BENCHMARKS.md says which were met).
//
//   csumfix_bench [--runs N] [--json FILE] [--quick]
//   csumfix_bench --loop pass|observe|verify|fill|empty SIZE SECONDS   (one case, for perf)
//
// Method (BENCHMARKS.md "Method"):
// - "repeat": one BPF_PROG_TEST_RUN with repeat=R; the kernel reports the mean time per run. The
//   skb is reused between repeats, so this suits actions that leave the packet as it was (pass,
//   observe, verify of a valid packet).
// - "single": R calls with repeat=1 and the median of the kernel-reported per-call duration, minus
//   the same median for an empty program of the same type (the timer's own overhead). Used for
//   fill, where the first run changes the packet (a repeat would verify a filled packet after
//   the first run), and as a cross-check for verify.
// Every figure is the median of N such runs (min and max are kept in the JSON).
// tc test runs build linear skbs of at most ~3.7 KB (the kernel refuses more with EINVAL) and
// csf_xdp is not an xdp.frags program, so 9000-byte frames are measured on live traffic instead
// (bench/lab_bench.py); the test-run attempt at 9000 is recorded with its error.
#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bpf/fd.h"
#include "bpf/loader.h"
#include "control/pins.h"
#include "control/policy.h"
#include "csumfix/abi.h"
#include "nlohmann/json.hpp"
#include "refcsum/refcsum.h"

namespace csumfix::bench {
namespace {

using json = nlohmann::json;

constexpr uint32_t kLoIfindex = 1;  // test runs use the loopback device of the current netns

// ---- The baseline: a plain, straightforward RFC 1071 loop (section 4.1 of the RFC) ----------
// 16-bit big-endian words into a 32-bit accumulator, odd byte padded, folded, inverted. No
// unrolling, no wide words: what "a plain C checksum" means in BENCHMARKS.md.
__attribute__((noinline)) uint16_t PlainRfc1071(const uint8_t* p, size_t n) {
  uint32_t sum = 0;
  while (n > 1) {
    sum += static_cast<uint32_t>(p[0]) << 8 | p[1];
    p += 2;
    n -= 2;
  }
  if (n > 0) sum += static_cast<uint32_t>(p[0]) << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

template <typename T>
inline void KeepAlive(T const& v) {
  asm volatile("" : : "r,m"(v) : "memory");
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// ---- Frames -------------------------------------------------------------------------------
struct Tcp4 {
  uint32_t src = 0xc0000201;  // 192.0.2.1
  uint32_t dst = 0xc6336407;  // 198.51.100.7
  uint16_t sport = 43210, dport = 443;
};

// An Ethernet/IPv4/TCP frame of exactly `frame_len` bytes (>= 54). With `seed`, the checksum field
// holds the pseudo-header seed (what an offloading sender leaves); else the correct checksum.
std::vector<uint8_t> TcpFrame(size_t frame_len, bool seed, const Tcp4& t = {}) {
  std::vector<uint8_t> f(frame_len);
  for (size_t i = 0; i < frame_len; ++i) f[i] = static_cast<uint8_t>(i * 131 + 7);
  const uint8_t hdr[] = {
      0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00,  // Ethernet, IPv4
      0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0,              // IPv4, lengths below
      0, 0, 0, 0, 0, 0, 0, 0,                                       // addresses below
      0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0x50, 0x18, 0xff, 0xff,   // TCP, ports below
      0, 0, 0, 0};
  std::copy(std::begin(hdr), std::end(hdr), f.begin());
  auto put16 = [&](size_t o, uint32_t v) {
    f[o] = static_cast<uint8_t>(v >> 8);
    f[o + 1] = static_cast<uint8_t>(v);
  };
  put16(16, frame_len - 14);
  put16(26, t.src >> 16);
  put16(28, t.src);
  put16(30, t.dst >> 16);
  put16(32, t.dst);
  put16(34, t.sport);
  put16(36, t.dport);
  put16(24, ref::InternetChecksum(std::span(f).subspan(14, 20)));
  const ref::Parsed p = ref::Parse(f);
  put16(p.field_off, ref::PseudoSum(f, p));
  if (!seed) put16(p.field_off, ref::CorrectField(f, p));
  return f;
}

// ---- Test-run helpers ---------------------------------------------------------------------
struct Sample {
  double median = 0, min = 0, max = 0;
  std::vector<double> runs;
  std::string error;
};

Sample Summarise(std::vector<double> runs) {
  Sample s;
  s.runs = runs;
  if (runs.empty()) return s;
  s.median = Median(runs);
  s.min = *std::min_element(runs.begin(), runs.end());
  s.max = *std::max_element(runs.begin(), runs.end());
  return s;
}

// Mean ns per run of `repeat` runs in one BPF_PROG_TEST_RUN, median over `runs` calls.
Sample RepeatRun(int fd, const std::vector<uint8_t>& frame, int runs, uint32_t repeat) {
  std::vector<double> v;
  for (int i = 0; i < runs; ++i) {
    auto r = bpf::TestRun(fd, frame, {.repeat = repeat});
    if (!r.ok()) {
      Sample s;
      s.error = r.status().ToString();
      return s;
    }
    v.push_back(r->duration_ns);
  }
  return Summarise(v);
}

// Median kernel-reported duration of `calls` single runs, each on a fresh copy of `frame`
// (the test run copies the frame in every call). One value per outer run.
Sample SingleRuns(int fd, const std::vector<uint8_t>& frame, int runs, int calls) {
  std::vector<double> v;
  for (int i = 0; i < runs; ++i) {
    std::vector<double> d;
    d.reserve(calls);
    for (int c = 0; c < calls; ++c) {
      auto r = bpf::TestRun(fd, frame, {.repeat = 1});
      if (!r.ok()) {
        Sample s;
        s.error = r.status().ToString();
        return s;
      }
      d.push_back(r->duration_ns);
    }
    v.push_back(Median(d));
  }
  return Summarise(v);
}

// Like SingleRuns, but each call takes the next of `frames` (distinct flows: colder caches).
Sample RotatingRuns(int fd, const std::vector<std::vector<uint8_t>>& frames, int runs, int calls) {
  std::vector<double> v;
  for (int i = 0; i < runs; ++i) {
    std::vector<double> d;
    for (int c = 0; c < calls; ++c) {
      auto r = bpf::TestRun(fd, frames[c % frames.size()], {.repeat = 1});
      if (!r.ok()) {
        Sample s;
        s.error = r.status().ToString();
        return s;
      }
      d.push_back(r->duration_ns);
    }
    v.push_back(Median(d));
  }
  return Summarise(v);
}

// Userspace: ns per call of fn, median over runs of ~5 ms each.
Sample TimeUser(int runs, const std::function<void()>& fn) {
  using clk = std::chrono::steady_clock;
  size_t iters = 1;
  for (;;) {  // calibrate to ~5 ms
    auto t0 = clk::now();
    for (size_t i = 0; i < iters; ++i) fn();
    double ns = std::chrono::duration<double, std::nano>(clk::now() - t0).count();
    if (ns > 5e6 || iters > (1u << 28)) break;
    iters *= 2;
  }
  std::vector<double> v;
  for (int r = 0; r < runs; ++r) {
    auto t0 = clk::now();
    for (size_t i = 0; i < iters; ++i) fn();
    v.push_back(std::chrono::duration<double, std::nano>(clk::now() - t0).count() / iters);
  }
  return Summarise(v);
}

// A program of `type` that returns `ret` and does nothing else: the "no program" baseline of a
// test run (the loop, the timer and the context set-up are all that is left).
bpf::Fd EmptyProg(bpf_prog_type type, int ret) {
  const bpf_insn insns[] = {
      {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = ret},
      {.code = BPF_JMP | BPF_EXIT},
  };
  return bpf::Fd(bpf_prog_load(type, "csf_bench_empty", "GPL", insns, 2, nullptr));
}

// ---- Results ------------------------------------------------------------------------------
struct Row {
  std::string group;   // "per-packet", "policy", "baseline"
  std::string name;    // what ran
  std::string hook;    // tc | xdp | user
  std::string method;  // repeat | single-minus-empty | rotating-minus-empty | user-loop
  size_t bytes = 0;
  Sample s;
  json extra = json::object();
};

json ToJson(const Row& r) {
  json j = {{"group", r.group}, {"name", r.name},      {"hook", r.hook},
            {"method", r.method}, {"bytes", r.bytes},  {"ns_median", r.s.median},
            {"ns_min", r.s.min}, {"ns_max", r.s.max},  {"runs", r.s.runs}};
  if (!r.s.error.empty()) j["error"] = r.s.error;
  for (auto& [k, v] : r.extra.items()) j[k] = v;
  return j;
}

struct Options {
  int runs = 7;
  uint32_t repeat = 20000;
  int single_calls = 4000;
  std::string json_path;
  bool quick = false;
  // --loop ACTION SIZE SECONDS: only run csf_tc_ingress with ACTION on one frame for SECONDS (for
  // `perf record -e cpu-clock`, which samples the JITed program and the helpers it calls).
  std::string loop_action;
  size_t loop_size = 64;
  double loop_seconds = 0;
};

class Bench {
 public:
  explicit Bench(Options o) : o_(std::move(o)) {}

  int Run();

 private:
  void Add(Row r) {
    if (r.s.error.empty())
      std::printf("  %-12s %-34s %-4s %5zu B  %9.1f ns  [%0.1f .. %0.1f]  %s\n", r.group.c_str(),
                  r.name.c_str(), r.hook.c_str(), r.bytes, r.s.median, r.s.min, r.s.max,
                  r.method.c_str());
    else
      std::printf("  %-12s %-34s %-4s %5zu B  n/a: %s\n", r.group.c_str(), r.name.c_str(),
                  r.hook.c_str(), r.bytes, r.s.error.c_str());
    std::fflush(stdout);
    rows_.push_back(std::move(r));
  }
  absl::Status SetAction(uint32_t hook, uint32_t action, uint32_t flags = 0) {
    return progs_->ifcfg().Update(csf_if_key{kLoIfindex, hook},
                                  csf_ifcfg{action, flags, CSF_MECH_OBSERVE,
                                            flags ? kLoIfindex : 0u});
  }
  Sample MinusEmpty(Sample s, const Sample& empty) {
    for (double& x : s.runs) x -= empty.median;
    if (s.error.empty()) {
      Sample t = Summarise(s.runs);
      return t;
    }
    return s;
  }
  void PerPacket();
  void Baselines();
  int Policy();

  Options o_;
  std::unique_ptr<bpf::Programs> progs_;
  std::vector<Row> rows_;
  bpf::Fd empty_tc_, empty_xdp_;
};

void Bench::Baselines() {
  for (size_t size : {64, 512, 1500, 9000}) {
    const std::vector<uint8_t> f = TcpFrame(size, true);
    std::span<const uint8_t> l4 = std::span(f).subspan(34);  // what a fill sums (+ pseudo header)
    Add({"baseline", "plain C RFC 1071 loop (L4 bytes)", "user", "user-loop", size,
         TimeUser(o_.runs, [&] { KeepAlive(PlainRfc1071(l4.data(), l4.size())); })});
    Add({"baseline", "refcsum InternetChecksum (L4 bytes)", "user", "user-loop", size,
         TimeUser(o_.runs, [&] { KeepAlive(ref::InternetChecksum(l4)); })});
    const ref::Meta meta;
    Add({"baseline", "refcsum Apply(fill) (whole frame)", "user", "user-loop", size,
         TimeUser(o_.runs, [&] {
           auto r = ref::Apply(CSF_ACT_FILL, f, meta);
           KeepAlive(r.out.data());
         })});
  }
}

void Bench::PerPacket() {
  struct Hook {
    const char* name;
    uint32_t hook;
    int fd;
    int empty;
    size_t max;
  };
  const Hook hooks[] = {
      {"tc", CSF_HOOK_TC_INGRESS, progs_->tc_ingress_fd(), empty_tc_.get(), 9000},
      {"xdp", CSF_HOOK_XDP, progs_->xdp_fd(), empty_xdp_.get(), 9000},
  };
  for (const Hook& h : hooks) {
    for (size_t size : {64, 512, 1500, 9000}) {
      if (size > h.max) continue;
      const std::vector<uint8_t> valid = TcpFrame(size, false);
      const std::vector<uint8_t> seed = TcpFrame(size, true);
      Sample empty_rep = RepeatRun(h.empty, valid, o_.runs, o_.repeat);
      Add({"per-packet", "empty program", h.name, "repeat", size, empty_rep});
      if (!empty_rep.error.empty()) continue;  // e.g. 9000 bytes: the kernel refuses the frame
      Sample empty_single = SingleRuns(h.empty, valid, o_.runs, o_.single_calls);
      Add({"per-packet", "empty program (timer overhead)", h.name, "single", size, empty_single});
      for (uint32_t act : {CSF_ACT_PASS, CSF_ACT_OBSERVE, CSF_ACT_VERIFY}) {
        (void)SetAction(h.hook, act);
        Add({"per-packet", absl::StrCat("csumfix ", std::string(ref::ActionName(act)), " (valid packet)"),
             h.name, "repeat", size, RepeatRun(h.fd, valid, o_.runs, o_.repeat)});
      }
      (void)SetAction(h.hook, CSF_ACT_VERIFY);
      Add({"per-packet", "csumfix verify (valid packet)", h.name, "single-minus-empty", size,
           MinusEmpty(SingleRuns(h.fd, valid, o_.runs, o_.single_calls), empty_single)});
      (void)SetAction(h.hook, CSF_ACT_OBSERVE);
      Add({"per-packet", "csumfix observe (seed packet)", h.name, "single-minus-empty", size,
           MinusEmpty(SingleRuns(h.fd, seed, o_.runs, o_.single_calls), empty_single)});
      // Fill: on XDP seeds are filled only on frames that leave by XDP_REDIRECT.
      (void)SetAction(h.hook, CSF_ACT_FILL, h.hook == CSF_HOOK_XDP ? CSF_IFCFG_F_XDP_REDIRECT : 0);
      auto check = bpf::TestRun(h.fd, seed);
      Row fill{"per-packet", "csumfix fill (seed packet, in place)", h.name, "single-minus-empty",
               size, MinusEmpty(SingleRuns(h.fd, seed, o_.runs, o_.single_calls), empty_single)};
      fill.extra["filled_ok"] = check.ok() && check->data_out == ref::Apply(CSF_ACT_FILL, seed, {}).out;
      Add(std::move(fill));
      (void)SetAction(h.hook, CSF_ACT_PASS);
    }
  }
}

// ---- Policy ---------------------------------------------------------------------------------
// Rules spread over eight shapes as an operator would write them: host and net prefixes on either
// side, service ports, port ranges. Every size uses the same shapes, so the number of hash lookups
// per packet (one per shape) is the same and only the table size changes.
std::vector<control::RuleSpec> PolicyRules(size_t n) {
  std::vector<control::RuleSpec> v;
  auto ip = [](uint32_t a) {
    return absl::StrFormat("%u.%u.%u.%u", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
  };
  for (size_t i = 0; i < n; ++i) {
    control::RuleSpec s;
    s.action = "observe";
    s.priority = 100 + static_cast<uint32_t>(i % 50);
    const uint32_t k = static_cast<uint32_t>(i / 8);
    switch (i % 8) {
      case 0: case 1: case 2:  // 3/8: destination hosts /32 in 10.64.0.0/10
        s.dst = ip(0x0a400000u + (k * 3 + i % 8)) + "/32"; break;
      case 3: s.src = ip(0x0a800000u + k) + "/32"; break;                  // source hosts
      case 4: s.dst = ip(0xac100000u + (k << 8)) + "/24"; break;           // destination /24
      case 5: s.src = ip(0xc0a80000u + ((k & 0xff) << 8) + (k >> 8)) + "/24";
              s.ip = 4; break;                                             // source /24 (+ip4)
      case 6: s.proto = "tcp"; s.dport = std::to_string(1024 + k % 60000); break;  // service port
      case 7: {  // UDP port ranges of 4 towards a /16
        s.proto = "udp";
        uint32_t lo = 2000 + (k * 4) % 60000;
        s.dport = absl::StrCat(lo, "-", lo + 3);
        s.dst = ip(0x0b000000u + ((k % 250) << 16)) + "/16";
        break;
      }
    }
    v.push_back(s);
  }
  return v;
}

int Bench::Policy() {
  // A private bpffs instance: the policy API pins its maps there, and the test-run programs share
  // them; /sys/fs/bpf/csumfix and real attachments are never touched.
  char tmpl[] = "/tmp/csfbench-bpffs-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return 1;
  const std::string fs = tmpl;
  if (mount("bpf", fs.c_str(), "bpf", 0, "mode=0700") != 0) {
    std::perror("mount private bpffs");
    rmdir(fs.c_str());
    return 1;
  }
  int rc = 0;
  {
    auto pol = control::Policy::Open(fs);
    bpf::LoadOptions lo;
    lo.pin_maps_dir = control::PinPaths(fs).maps();  // where Policy::Open(fs) pinned them
    auto progs = pol.ok() ? bpf::Programs::Load(lo) : pol.status();
    if (!pol.ok() || !progs.ok()) {
      std::cerr << "policy bench: " << (pol.ok() ? progs.status() : pol.status()) << "\n";
      rc = 1;
    } else {
      auto& P = **progs;
      const int fd = P.tc_ingress_fd();
      (void)P.ifcfg().Update(csf_if_key{kLoIfindex, CSF_HOOK_TC_INGRESS},
                             csf_ifcfg{CSF_ACT_OBSERVE, 0, CSF_MECH_OBSERVE, 0});
      // Packets: a miss (no rule matches; every shape is still searched) and hits on /32 hosts.
      const std::vector<uint8_t> miss = TcpFrame(64, false, {.src = 0x0a010101, .dst = 0x0a020202});
      Sample empty_single = SingleRuns(empty_tc_.get(), miss, o_.runs, o_.single_calls);
      Add({"policy", "no policy (observe)", "tc", "repeat", 64,
           RepeatRun(fd, miss, o_.runs, o_.repeat)});
      Add({"policy", "no policy (observe)", "tc", "single-minus-empty", 64,
           MinusEmpty(SingleRuns(fd, miss, o_.runs, o_.single_calls), empty_single)});
      std::vector<size_t> sizes = {10, 1000, 100000};
      for (size_t n : sizes) {
        (void)pol->Flush();
        std::vector<csf_pol_rule> rules;
        std::vector<std::tuple<uint32_t, int, int, int>> shapes;
        for (const auto& s : PolicyRules(n)) {
          auto r = control::ParseRule(s);
          if (!r.ok()) {
            std::cerr << "policy bench: " << r.status() << "\n";
            return 1;
          }
          rules.push_back(*r);
          auto sh = std::make_tuple(r->flags, int(r->src_len), int(r->dst_len), int(r->ipver));
          if (std::find(shapes.begin(), shapes.end(), sh) == shapes.end()) shapes.push_back(sh);
        }
        auto t0 = std::chrono::steady_clock::now();
        auto ids = pol->AddAll(rules);
        double install_s =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (!ids.ok()) {
          std::cerr << "policy bench: AddAll(" << n << "): " << ids.status() << "\n";
          rc = 1;
          break;
        }
        // Hit packets: distinct destination hosts from the /32 rules (cycled for the rotating run).
        std::vector<std::vector<uint8_t>> hits;
        for (size_t i = 0; i < std::min<size_t>(n, 4096 * 8); i += 8)
          hits.push_back(TcpFrame(64, false, {.dst = static_cast<uint32_t>(0x0a400000u + (i / 8) * 3)}));
        std::vector<std::vector<uint8_t>> misses;
        for (uint32_t i = 0; i < 4096; ++i)
          misses.push_back(TcpFrame(64, false, {.src = 0x0a010000u + i, .dst = 0x0a020000u + i,
                                                .sport = static_cast<uint16_t>(40000 + i)}));
        json extra = {{"rules", n}, {"install_s", install_s}, {"shapes", shapes.size()}};
        auto add = [&](const char* what, const char* method, Sample s) {
          Row r{"policy", absl::StrCat(n, " rules, ", what), "tc", method, 64, std::move(s)};
          r.extra = extra;
          Add(std::move(r));
        };
        // Check the hit really hits (the policy-hit counter moves).
        auto ctrs = P.counters();
        const csf_if_key key{kLoIfindex, CSF_HOOK_TC_INGRESS};
        (void)ctrs.Delete(key);
        (void)bpf::TestRun(fd, hits[0]);
        auto c = ctrs.Lookup(key);
        extra["hit_verified"] = c.ok() && c->has_value() && (**c).c[CSF_CTR_POLICY_HIT] == 1;
        add("hit /32", "repeat", RepeatRun(fd, hits[0], o_.runs, o_.repeat));
        add("miss", "repeat", RepeatRun(fd, miss, o_.runs, o_.repeat));
        add("hit, rotating flows", "rotating-minus-empty",
            MinusEmpty(RotatingRuns(fd, hits, o_.runs, o_.single_calls), empty_single));
        add("miss, rotating flows", "rotating-minus-empty",
            MinusEmpty(RotatingRuns(fd, misses, o_.runs, o_.single_calls), empty_single));
      }
      (void)pol->Flush();
    }
  }
  umount2(fs.c_str(), MNT_DETACH);
  rmdir(fs.c_str());
  return rc;
}

int Bench::Run() {
  auto p = bpf::Programs::Load();
  if (!p.ok()) {
    std::cerr << "csumfix_bench: " << p.status() << "\n";
    return 1;
  }
  progs_ = std::move(*p);
  empty_tc_ = EmptyProg(BPF_PROG_TYPE_SCHED_CLS, 0);
  empty_xdp_ = EmptyProg(BPF_PROG_TYPE_XDP, 2 /* XDP_PASS */);
  if (!empty_tc_.valid() || !empty_xdp_.valid()) {
    std::perror("csumfix_bench: load the empty programs");
    return 1;
  }
  if (!o_.loop_action.empty()) {
    const uint32_t act = ref::ActionFromName(o_.loop_action);
    const bool empty = o_.loop_action == "empty";
    if (!empty && act >= CSF_ACT_MAX) {
      std::fprintf(stderr, "csumfix_bench: --loop: unknown action %s\n", o_.loop_action.c_str());
      return 2;
    }
    if (!empty) (void)SetAction(CSF_HOOK_TC_INGRESS, act);
    const std::vector<uint8_t> f = TcpFrame(o_.loop_size, act == CSF_ACT_FILL);
    const int fd = empty ? empty_tc_.get() : progs_->tc_ingress_fd();
    auto t0 = std::chrono::steady_clock::now();
    std::vector<double> v;
    while (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() <
           o_.loop_seconds) {
      auto r = bpf::TestRun(fd, f, {.repeat = 100000});
      if (!r.ok()) {
        std::cerr << r.status() << "\n";
        return 1;
      }
      v.push_back(r->duration_ns);
    }
    std::printf("%s %zu B: median %.1f ns per run over %zu test runs of 100000\n",
                o_.loop_action.c_str(), o_.loop_size, Median(v), v.size());
    return 0;
  }
  std::printf("csumfix micro-benchmarks: median of %d runs (repeat=%u; single: %d calls)\n",
              o_.runs, o_.repeat, o_.single_calls);
  Baselines();
  PerPacket();
  int rc = Policy();
  if (!o_.json_path.empty()) {
    json out = json::array();
    for (const Row& r : rows_) out.push_back(ToJson(r));
    std::ofstream f(o_.json_path);
    f << json{{"runs", o_.runs}, {"repeat", o_.repeat}, {"single_calls", o_.single_calls},
              {"rows", out}}
             .dump(1)
      << "\n";
    if (!f) {
      std::cerr << "csumfix_bench: cannot write " << o_.json_path << "\n";
      return 1;
    }
  }
  return rc;
}

}  // namespace
}  // namespace csumfix::bench

int main(int argc, char** argv) {
  csumfix::bench::Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--runs" && i + 1 < argc) {
      o.runs = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--json" && i + 1 < argc) {
      o.json_path = argv[++i];
    } else if (a == "--loop" && i + 3 < argc) {
      o.loop_action = argv[++i];
      o.loop_size = std::strtoul(argv[++i], nullptr, 0);
      o.loop_seconds = std::atof(argv[++i]);
    } else if (a == "--quick") {
      o.quick = true;
      o.repeat = 2000;
      o.single_calls = 500;
    } else {
      std::fprintf(stderr, "usage: %s [--runs N] [--json FILE] [--quick] | --loop ACTION|empty SIZE SECONDS\n", argv[0]);
      return 2;
    }
  }
  if (geteuid() != 0) {
    std::fprintf(stderr, "csumfix_bench: needs root (BPF_PROG_TEST_RUN, bpffs)\n");
    return 1;
  }
  return csumfix::bench::Bench(std::move(o)).Run();
}
