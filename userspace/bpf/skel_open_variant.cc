// Tests only (csumfix-upgrade-variant): OpenSkeleton() and OpenCompatSkeleton() with the test
// variant's builds of both objects (bpf/CMakeLists.txt), opened through the main skeleton
// (OpenSkeletonWithBytes), so the struct the rest of csumfix uses is the main one. Both are
// replaced: a kernel that loads the compat object (5.10 to 5.16) must see other programs too,
// or an upgrade to this binary has nothing to swap there. Linked before the library, so the
// library's skel_open.o and skel_open_compat.o are never pulled in.
#include "bpf/loader.h"
#include "variant/csumfix_variant.skel.h"
#include "variant_compat/csumfix_variant_compat.skel.h"

namespace csumfix::bpf {

csumfix_bpf* OpenSkeleton() {
  size_t size = 0;
  const void* elf = csumfix_variant_bpf__elf_bytes(&size);
  return OpenSkeletonWithBytes(elf, size);
}

csumfix_bpf* OpenCompatSkeleton() {
  size_t size = 0;
  const void* elf = csumfix_variant_compat_bpf__elf_bytes(&size);
  return OpenSkeletonWithBytes(elf, size);
}

}  // namespace csumfix::bpf
