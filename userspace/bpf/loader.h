// Loading the csumfix BPF object through its generated skeleton (RAII), with the verifier log
// kept for error messages, and BPF_PROG_TEST_RUN for tests and benchmarks.
#ifndef CSUMFIX_USERSPACE_BPF_LOADER_H_
#define CSUMFIX_USERSPACE_BPF_LOADER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bpf/map.h"
#include "csumfix/abi.h"

struct csumfix_bpf;

namespace csumfix::bpf {

// Which build of the BPF object to load: the main one (bpf_loop, 5.17; XDP byte helpers, 5.18)
// or the compat one (bounded loops and global functions; docs/KERNELS.md). kAuto probes the
// kernel for those helpers — never its version number.
enum class Object { kAuto, kMain, kCompat };
// "main" / "compat" ("auto" for kAuto).
const char* ObjectName(Object o);
// What kAuto loads on this kernel: kMain when it has bpf_loop for tc and bpf_xdp_load_bytes for
// XDP, else kCompat. Probed once per process (two tiny program loads).
Object ProbeObject();

// The object's programs as bits of a set. A load verifies only the programs asked for: each
// costs verifier time (the compat object's tc programs take a quarter of a second each on this
// host's kernel, ten to fifteen seconds under TCG on 5.10), so an attach of one tc hook loads
// one program, not seven, and a policy change none (the maps alone).
using ProgramSet = uint32_t;
inline constexpr ProgramSet kProgTcIngress = 1u << 0;
inline constexpr ProgramSet kProgTcEgress = 1u << 1;
inline constexpr ProgramSet kProgXdp = 1u << 2;
inline constexpr ProgramSet kProgBounceReturn = 1u << 3;      // bounce: the veth's return side
inline constexpr ProgramSet kProgActSelectIngress = 1u << 4;  // act-csum: the classic selector
inline constexpr ProgramSet kProgActSelectEgress = 1u << 5;
inline constexpr ProgramSet kProgProbeTail = 1u << 6;         // `csumfix probe`'s change_tail test
inline constexpr ProgramSet kAllPrograms = (1u << 7) - 1;
// The program that runs at a hook (CSF_HOOK_*), and a tc hook's act-csum selector.
ProgramSet HookProgram(uint32_t hook);
ProgramSet ActSelectProgram(uint32_t hook);

struct LoadOptions {
  Object object = Object::kAuto;
  // Which programs to load (verify); the others stay unloaded (bpf_program__fd < 0). The maps
  // are made (or reused from pin_maps_dir) whatever the set, also when it is empty.
  ProgramSet programs = kAllPrograms;
  // Keep the full verifier log of a failed load in the error (long); otherwise the last lines.
  bool full_verifier_log = false;
  // When set, the shared maps (CSF_PINNED_MAPS in abi.h) are pinned in this bpffs directory, and
  // reused from there when already pinned, so every attachment shares one set.
  std::string pin_maps_dir;
  // Collect the verifier's statistics line ("processed N insns ...") per program into `stats`.
  bool verifier_stats = false;
  std::vector<std::string>* stats = nullptr;
};

// csumfix_bpf__open() of the skeleton this binary embeds (bpf/skel_open.cc, the only file that
// instantiates the object's bytes; the upgrade tests' variant binary links another one), and of
// the compat object (bpf/skel_open_compat.cc).
csumfix_bpf* OpenSkeleton();
csumfix_bpf* OpenCompatSkeleton();
// Opens another build of the object (`elf`, the bytes of its skeleton) through the main
// skeleton's struct: map and program names are the same, so libbpf fills the same fields.
csumfix_bpf* OpenSkeletonWithBytes(const void* elf, size_t size);

// csf_ifcfg, with csf_cfg_gen: every change of an entry also writes a new generation, which makes
// the programs take their per-CPU copies of the entries (csf_slots) again. Writers need no lock
// (abi.h struct csf_cfg_gen). gen_fd < 0 (maps pinned by csumfix 0.1, whose programs read
// csf_ifcfg on every packet): no generation to write.
class IfcfgMap {
 public:
  IfcfgMap(int fd, int gen_fd) : map_(fd, CSF_MAP_IFCFG), gen_fd_(gen_fd) {}
  int fd() const { return map_.fd(); }
  absl::StatusOr<std::optional<csf_ifcfg>> Lookup(const csf_if_key& key) const {
    return map_.Lookup(key);
  }
  absl::StatusOr<std::vector<csf_if_key>> Keys() const { return map_.Keys(); }
  absl::Status Update(const csf_if_key& key, const csf_ifcfg& value);
  // Deleting an absent key is not an error.
  absl::Status Delete(const csf_if_key& key);
  // Writes a new generation alone (the loader, when it finds none).
  absl::Status NewGeneration();

 private:
  Map<csf_if_key, csf_ifcfg> map_;
  int gen_fd_;
};

// csf_slots' counters, summed over the CPUs.
using SlotCounters = PerCpuSumMap<csf_if_key, csf_slot, csf_counters>;

class Programs {
 public:
  // Opens and loads every program and map. Fails with the verifier's last words on rejection.
  static absl::StatusOr<std::unique_ptr<Programs>> Load(const LoadOptions& opts = {});
  ~Programs();
  Programs(const Programs&) = delete;
  Programs& operator=(const Programs&) = delete;

  int tc_ingress_fd() const;
  int tc_egress_fd() const;
  int xdp_fd() const;
  // The program for a hook (CSF_HOOK_*).
  int prog_fd(uint32_t hook) const;

  IfcfgMap ifcfg() const;
  SlotCounters counters() const;
  Map<uint32_t, csf_bounce_ret> bounce() const;

  csumfix_bpf* skel() const { return skel_; }
  // The object these programs came from: kMain or kCompat.
  Object object() const { return object_; }
  // Whether every program of `set` was loaded (LoadOptions::programs).
  bool Has(ProgramSet set) const { return (loaded_ & set) == set; }

  // Whether the maps pinned in `dir` (CSF_PINNED_MAPS) are this object's own maps, so that its
  // programs may be attached again for them: false when a pin is missing or holds another map
  // (the shared maps were removed and made again since this object was loaded).
  bool UsesMapsPinnedAt(const std::string& dir) const;

 private:
  Programs(csumfix_bpf* skel, Object object, ProgramSet loaded)
      : skel_(skel), object_(object), loaded_(loaded) {}
  csumfix_bpf* skel_;
  Object object_;
  ProgramSet loaded_;
};

struct TestRunResult {
  uint32_t retval = 0;
  std::vector<uint8_t> data_out;
  uint32_t duration_ns = 0;  // average per repetition, as the kernel reports it
};

struct TestRunOptions {
  uint32_t repeat = 1;
  uint32_t gso_size = 0;  // tc only: makes the test skb look like a GSO super-frame
};

// Runs `prog_fd` on `frame` with BPF_PROG_TEST_RUN.
absl::StatusOr<TestRunResult> TestRun(int prog_fd, std::span<const uint8_t> frame,
                                      const TestRunOptions& o = {});

}  // namespace csumfix::bpf

#endif  // CSUMFIX_USERSPACE_BPF_LOADER_H_
