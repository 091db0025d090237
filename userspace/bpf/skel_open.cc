// The one place that opens the embedded BPF object: csumfix_bpf__open() instantiates the
// object's bytes (the skeleton's csumfix_bpf__elf_bytes). Every other file uses the skeleton's
// struct only, so a binary that compiles this file against another skeleton of the same source
// (the upgrade tests' variant) embeds that object instead.
#include "bpf/loader.h"
#include "csumfix.skel.h"

namespace csumfix::bpf {

csumfix_bpf* OpenSkeleton() { return csumfix_bpf__open(); }

}  // namespace csumfix::bpf
