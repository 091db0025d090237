// Fill mechanism "ifb" (docs/MECHANISMS.md), tc ingress only: the classic selector filter
// (selector.h) redirects what csumfix decided to fill out of an ifb device of csumfix's own, one
// per attached interface, whose tx checksumming is off. The core completes the checksum on that
// transmit (validate_xmit_skb), and the ifb hands the packet back to the ingress of the
// interface it came from, past tc (drivers/net/ifb.c): no loop, and the bridge or stack above
// sees it complete. Not at egress: there the ifb's return keeps the "skip classification" mark,
// and a veth carries it to its peer, whose packet taps and tc ingress then never see the packet.
#ifndef CSUMFIX_USERSPACE_CONTROL_IFB_H_
#define CSUMFIX_USERSPACE_CONTROL_IFB_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "bpf/loader.h"
#include "control/hooks.h"
#include "csumfix/abi.h"

namespace csumfix::control {

// The ifb device of the interface `ifindex`: csfifb<hex ifindex> (<= 14 chars; never a bounce
// veth's name, whose hex digits follow "csf" directly).
std::string IfbName(uint32_t ifindex);

// Creates and sets up the interface's ifb device (IPv6 off, tx checksumming off, up), then the
// selector filter redirecting to it at `ctx.hook` (ingress); records both in `st` and their
// undo in ctx.rb.
absl::Status AddIfb(const bpf::Programs& progs, uint32_t ifindex, const std::string& base,
                    const std::string& where, const StepCtx& ctx, bool* made_clsact,
                    csf_attach_state* st);

// Deletes the ifb device `st` records, while it is still csumfix's (its name and kind ifb).
void RemoveIfb(const csf_attach_state& st, std::vector<std::string>* warnings);

// Deletes the ifb device named for `ifindex` when one exists; returns whether it did.
bool RemoveStrayIfb(uint32_t ifindex);

}  // namespace csumfix::control

#endif  // CSUMFIX_USERSPACE_CONTROL_IFB_H_
