// Small rtnetlink (libmnl) and ethtool helpers for the links csumfix owns (bounce veths).
#ifndef CSUMFIX_USERSPACE_CONTROL_NETLINK_H_
#define CSUMFIX_USERSPACE_CONTROL_NETLINK_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace csumfix::control {

// Creates a veth pair `a` <-> `b` in the current network namespace with the given MTU (both ends).
absl::Status CreateVethPair(const std::string& a, const std::string& b, uint32_t mtu);
// Sets IFF_UP and IFF_NOARP on a link.
absl::Status SetUpNoArp(uint32_t ifindex);
// Deletes a link (for a veth, both ends go).
absl::Status DeleteLink(uint32_t ifindex);
// Turns transmit checksum offload off (ethtool -K NAME tx off) and checks that it is off.
absl::Status TxChecksumOff(const std::string& ifname);
// ethtool's transmit-checksum state: true when on.
absl::StatusOr<bool> TxChecksumOn(const std::string& ifname);
// The device's offload switches as ethtool -k shows them: tx-checksumming, rx-checksumming,
// tcp-segmentation-offload, generic-segmentation-offload, generic-receive-offload. A switch the
// driver does not report is left out.
std::vector<std::pair<std::string, bool>> Offloads(const std::string& ifname);

// The act_csum fill mechanism: adds a classic (not direct-action) cls_bpf filter on the clsact
// hook (`ingress` true: ingress, else egress) of `ifindex`, with `handle` and `priority`, whose
// classifier is the program `prog_fd` and whose action is act_csum recomputing TCP, UDP,
// UDP-Lite and SCTP checksums with control "continue" — the netlink form of
//   tc filter add dev D ingress prio P handle H bpf fd F action csum tcp udp udplite sctp continue
// The clsact qdisc must exist. Fails with EEXIST if a filter with that priority/handle exists,
// and with ENOENT/EOPNOTSUPP when the kernel has no act_csum.
absl::Status AddActCsumFilter(uint32_t ifindex, bool ingress, uint32_t handle, uint32_t priority,
                              int prog_fd, const std::string& prog_name);

// Whether the clsact qdisc of `ifindex` holds any tc filter, ingress or egress (false as well when
// the interface has no clsact qdisc): an RTM_GETTFILTER dump of both clsact parents.
absl::StatusOr<bool> ClsactHasFilters(uint32_t ifindex);

// Writes /proc/sys/net/ipv6/conf/<ifname>/disable_ipv6 = 1 (no-op without IPv6).
absl::Status DisableIpv6(const std::string& ifname);

}  // namespace csumfix::control

#endif  // CSUMFIX_USERSPACE_CONTROL_NETLINK_H_
