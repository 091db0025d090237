// Fill mechanism "ifb" (docs/MECHANISMS.md), tc ingress only: what csumfix decided to fill leaves
// through an ifb device of csumfix's own, one per attached interface, whose tx checksumming is
// off. The core completes the checksum on that transmit (validate_xmit_skb), and the ifb hands
// the packet back to the ingress of the interface it came from, past tc (drivers/net/ifb.c): no
// loop, and the bridge or stack above sees it complete. Two ways in: csumfix's own program
// redirects the packet (kernels whose bpf_redirect marks it redirected, as the ifb requires: the
// probe's `ifb_redirect`), or else the classic selector filter (selector.h) with a mirred action.
// Not at egress: there the ifb's return keeps the "skip classification" mark, and a veth carries
// it to its peer, whose packet taps and tc ingress then never see the packet.
#ifndef CSUMFIX_USERSPACE_CONTROL_IFB_H_
#define CSUMFIX_USERSPACE_CONTROL_IFB_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "bpf/loader.h"
#include "control/hooks.h"
#include "csumfix/abi.h"

namespace csumfix::control {

// The ifb device of the interface `ifindex`: csfifb<hex ifindex> (<= 14 chars; never a bounce
// veth's name, whose hex digits follow "csf" directly).
std::string IfbName(uint32_t ifindex);

// Creates and sets up the interface's ifb device (IPv6 off, tx checksumming off, up); records
// it in `st` and its undo in ctx.rb. Returns its ifindex.
absl::StatusOr<uint32_t> AddIfb(uint32_t ifindex, const StepCtx& ctx, csf_attach_state* st);

// Whether attach lets csumfix's program redirect into the ifb itself: the probe found that the
// kernel re-injects what bpf_redirect hands an ifb (`ifb_redirect`), unless the environment
// variable CSUMFIX_IFB_VIA is "mirred" (then the selector with mirred, as on older kernels).
bool IfbByRedirect(bool probe_ifb_redirect);

// Deletes the ifb device `st` records, while it is still csumfix's (its name and kind ifb).
void RemoveIfb(const csf_attach_state& st, std::vector<std::string>* warnings);

// Deletes the ifb device named for `ifindex` when one exists; returns whether it did.
bool RemoveStrayIfb(uint32_t ifindex);

}  // namespace csumfix::control

#endif  // CSUMFIX_USERSPACE_CONTROL_IFB_H_
