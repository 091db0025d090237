// Opens the compat BPF object (bpf/CMakeLists.txt: -DCSF_COMPAT, for kernels without bpf_loop or
// the 5.18 XDP helpers) through the main object's skeleton (skel_open_bytes.cc). Alone in its
// file, like OpenSkeleton(), so that a binary embedding other builds of both objects (the
// upgrade tests' variant, skel_open_variant.cc) replaces the pair without a duplicate symbol.
#include "bpf/loader.h"
#include "compat/csumfix_compat.skel.h"

namespace csumfix::bpf {

csumfix_bpf* OpenCompatSkeleton() {
  size_t size = 0;
  const void* elf = csumfix_compat_bpf__elf_bytes(&size);
  return OpenSkeletonWithBytes(elf, size);
}

}  // namespace csumfix::bpf
