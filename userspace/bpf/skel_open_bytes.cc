// Opens a build of csumfix.bpf.c from its ELF bytes through the main object's skeleton: every
// build has the same map and program names, so libbpf fills the same struct csumfix_bpf the rest
// of csumfix uses; only the bytes differ. (A skeleton generated from another object may order
// its members differently: its struct must never stand in for the main one.)
#include <cerrno>
#include <cstdlib>

#include "bpf/loader.h"
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

}  // namespace csumfix::bpf
