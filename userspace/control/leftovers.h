// Leftovers: what csumfix made and no live state record accounts for any more — the record of
// an interface that was deleted (or recreated under its name with a new ifindex, as a VM restart
// does), the pins of an attach that was interrupted, bounce veth pairs and cls_bpf filters whose
// record went with a private bpffs (`ip netns exec`). Attach replaces them, `csumfix clean`
// removes them. Recognised as csumfix's own by construction: bounce pairs by their name
// (csf<hex ifindex><i|e><a|b>, see bounce.h) and kind veth, filters by csumfix's handle and
// priorities together with a program named csf_*; nothing else is ever touched.
#ifndef CSUMFIX_USERSPACE_CONTROL_LEFTOVERS_H_
#define CSUMFIX_USERSPACE_CONTROL_LEFTOVERS_H_

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "control/pins.h"

namespace csumfix::control {

// Undoes everything the state record `st` says csumfix attached to the interface of `dir`
// (programs, act-csum filters, bounce veths, configuration, counters, a clsact qdisc it made),
// reporting what it left alone in `warnings`. The pins in `dir` stay.
void DetachRecorded(const csf_attach_state& st, const std::string& dir, const PinnedMaps& maps,
                    std::vector<std::string>* warnings);

// Whether the attachment recorded in `st` was made in this network namespace (a record from
// csumfix 0.1 carries none and counts as this one's).
bool InThisNetns(const csf_attach_state& st);
// Whether the attachment recorded in `st` belongs to an interface that no longer exists: made in
// this network namespace, and its ifindex names no device here any more.
bool InterfaceGone(const csf_attach_state& st);

// Removes csumfix's cls_bpf filters (its handle, both priorities, a csf_* program) from the tc
// hooks of `ifindex` unless their program id is in `keep`; returns what it removed.
std::vector<std::string> RemoveStrayFilters(uint32_t ifindex, const std::set<uint32_t>& keep);

// Deletes the bounce veth pair named for (ifindex, hook) when it exists; returns whether it did.
bool RemoveStrayBounce(uint32_t ifindex, uint32_t hook);

}  // namespace csumfix::control

#endif  // CSUMFIX_USERSPACE_CONTROL_LEFTOVERS_H_
