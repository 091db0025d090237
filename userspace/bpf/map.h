// Typed access to BPF maps by fd: no lookups by string name.
#ifndef CSUMFIX_USERSPACE_BPF_MAP_H_
#define CSUMFIX_USERSPACE_BPF_MAP_H_

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/status/statusor.h"
#include "base/status.h"

namespace csumfix::bpf {

template <typename K, typename V>
class Map {
  static_assert(std::is_trivially_copyable_v<K> && std::is_trivially_copyable_v<V>);

 public:
  Map(int fd, std::string name) : fd_(fd), name_(std::move(name)) {}
  int fd() const { return fd_; }

  // Value for `key`, or std::nullopt when absent.
  absl::StatusOr<std::optional<V>> Lookup(const K& key) const {
    V v{};
    if (bpf_map_lookup_elem(fd_, &key, &v) == 0) return v;
    if (errno == ENOENT) return std::nullopt;
    return ErrnoStatus(errno, "lookup in map " + name_);
  }
  absl::Status Update(const K& key, const V& value, uint64_t flags = BPF_ANY) {
    if (bpf_map_update_elem(fd_, &key, &value, flags) == 0) return absl::OkStatus();
    return ErrnoStatus(errno, "update of map " + name_);
  }
  // Deleting an absent key is not an error.
  absl::Status Delete(const K& key) {
    if (bpf_map_delete_elem(fd_, &key) == 0 || errno == ENOENT) return absl::OkStatus();
    return ErrnoStatus(errno, "delete from map " + name_);
  }
  absl::StatusOr<std::vector<K>> Keys() const {
    std::vector<K> keys;
    K cur{}, next{};
    const K* prev = nullptr;
    while (bpf_map_get_next_key(fd_, prev, &next) == 0) {
      keys.push_back(next);
      cur = next;
      prev = &cur;
    }
    if (errno != ENOENT) return ErrnoStatus(errno, "iterate map " + name_);
    return keys;
  }

 private:
  int fd_;
  std::string name_;
};

// Per-CPU map whose value V starts with S, a struct of __u64 counters: Lookup sums S over all
// CPUs (the rest of V, per-CPU state such as csf_slot's copy of the configuration, is not summed).
template <typename K, typename V, typename S = V>
class PerCpuSumMap {
  static_assert(sizeof(V) % sizeof(uint64_t) == 0 && sizeof(S) % sizeof(uint64_t) == 0);
  static_assert(sizeof(S) <= sizeof(V));

 public:
  PerCpuSumMap(int fd, std::string name) : fd_(fd), name_(std::move(name)) {
    int n = libbpf_num_possible_cpus();
    ncpu_ = n > 0 ? n : 1;
  }
  int fd() const { return fd_; }

  absl::StatusOr<std::optional<S>> Lookup(const K& key) const {
    std::vector<V> per(ncpu_);  // value size is a multiple of 8: no per-CPU padding
    if (bpf_map_lookup_elem(fd_, &key, per.data()) != 0) {
      if (errno == ENOENT) return std::nullopt;
      return ErrnoStatus(errno, "lookup in per-CPU map " + name_);
    }
    S sum{};
    auto* s = reinterpret_cast<uint64_t*>(&sum);
    for (const V& v : per) {
      const auto* p = reinterpret_cast<const uint64_t*>(&v);
      for (size_t i = 0; i < sizeof(S) / sizeof(uint64_t); ++i) s[i] += p[i];
    }
    return sum;
  }
  absl::Status Delete(const K& key) {
    if (bpf_map_delete_elem(fd_, &key) == 0 || errno == ENOENT) return absl::OkStatus();
    return ErrnoStatus(errno, "delete from map " + name_);
  }
  absl::StatusOr<std::vector<K>> Keys() const { return Map<K, V>(fd_, name_).Keys(); }

 private:
  int fd_;
  std::string name_;
  int ncpu_;
};

}  // namespace csumfix::bpf

#endif  // CSUMFIX_USERSPACE_BPF_MAP_H_
