// Tests only (csumfix-upgrade-variant): OpenSkeleton() with the test variant's ELF bytes, opened
// through the main skeleton (OpenSkeletonWithBytes), so the struct the rest of csumfix uses is
// the main one. Linked before the library, so the library's skel_open.o is never pulled in.
#include "bpf/loader.h"
#include "variant/csumfix_variant.skel.h"

namespace csumfix::bpf {

csumfix_bpf* OpenSkeleton() {
  size_t size = 0;
  const void* elf = csumfix_variant_bpf__elf_bytes(&size);
  return OpenSkeletonWithBytes(elf, size);
}

}  // namespace csumfix::bpf
