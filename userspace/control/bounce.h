// Fill mechanism "bounce" (docs/MECHANISMS.md): a veth pair of csumfix's own per (interface,
// direction). Kernel-PARTIAL packets leave by end a, whose tx checksum offload is off, so the core
// completes them; csf_bounce_return on end b sends them back. Being per direction, the return
// path needs no tag in the packet.
#ifndef CSUMFIX_USERSPACE_CONTROL_BOUNCE_H_
#define CSUMFIX_USERSPACE_CONTROL_BOUNCE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bpf/loader.h"
#include "control/hooks.h"
#include "control/pins.h"
#include "csumfix/abi.h"

namespace csumfix::control {

// Names of the bounce veth pair for (ifindex, hook): csf<hex ifindex><i|e><a|b>, <= 13 chars.
std::string BounceName(uint32_t ifindex, uint32_t hook, char end);
// <ifname dir>/bounce_<ingress|egress>: where the return program and link are pinned.
std::string BouncePinBase(const std::string& dir, uint32_t hook);

// Creates and sets up the pair for `ctx.hook` of `ifindex`, registers its return end in
// csf_bounce and attaches csf_bounce_return there; records all of it in `st` and its undo in
// ctx.rb. Returns the ifindex packets are to be redirected to (end a).
absl::StatusOr<uint32_t> AddBounce(const bpf::Programs& progs, uint32_t ifindex, TcApi api,
                                   const std::string& dir, const StepCtx& ctx,
                                   csf_attach_state* st);

// Detaches the return program, deletes the pair (only while it is still csumfix's) and its
// csf_bounce entry.
void RemoveBounce(const csf_attach_state& st, uint32_t hook, const std::string& dir,
                  const PinnedMaps& maps, std::vector<std::string>* warnings);

}  // namespace csumfix::control

#endif  // CSUMFIX_USERSPACE_CONTROL_BOUNCE_H_
