// Opens the compat BPF object (bpf/CMakeLists.txt: -DCSF_COMPAT, for kernels without bpf_loop or
// the 5.18 XDP helpers) through the main object's skeleton: the same map and program names, so
// libbpf fills the same struct csumfix_bpf the rest of csumfix uses; only the ELF bytes differ.
// (A skeleton generated from another object may order its members differently: its struct
// must never stand in for the main one.)
#include <cerrno>
#include <cstdlib>

#include "bpf/loader.h"
#include "compat/csumfix_compat.skel.h"
#include "csumfix.skel.h"

namespace csumfix::bpf {

csumfix_bpf* OpenSkeletonWithBytes(const void* elf, size_t size) {
  auto* obj = static_cast<csumfix_bpf*>(calloc(1, sizeof(csumfix_bpf)));
  if (obj == nullptr) {
    errno = ENOMEM;
    return nullptr;
  }
  int err = csumfix_bpf__create_skeleton(obj);
  if (err == 0) {
    obj->skeleton->data = elf;
    obj->skeleton->data_sz = size;
    err = bpf_object__open_skeleton(obj->skeleton, nullptr);
  }
  if (err != 0) {
    csumfix_bpf__destroy(obj);
    errno = -err;
    return nullptr;
  }
  return obj;
}

csumfix_bpf* OpenCompatSkeleton() {
  size_t size = 0;
  const void* elf = csumfix_compat_bpf__elf_bytes(&size);
  return OpenSkeletonWithBytes(elf, size);
}

}  // namespace csumfix::bpf
