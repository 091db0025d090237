// Small rtnetlink (libmnl) and ethtool helpers for the links csumfix owns (bounce veths), and
// the link monitor of `serve` (LinkMonitor: interfaces deleted while it runs).
#ifndef CSUMFIX_USERSPACE_CONTROL_NETLINK_H_
#define CSUMFIX_USERSPACE_CONTROL_NETLINK_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

struct mnl_socket;

namespace csumfix::control {

// Closes a libmnl socket (std::unique_ptr<mnl_socket, MnlSocketCloser>).
struct MnlSocketCloser {
  void operator()(mnl_socket* s) const;
};

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
// The program name a cls_bpf filter (handle, priority) at a clsact hook carries (libbpf names it
// "<prog name>:[<id>]"); "" when there is no such filter. Needs no CAP_SYS_ADMIN, unlike looking
// the program up by id.
std::string FilterProgName(uint32_t ifindex, bool ingress, uint32_t handle, uint32_t priority);

// Writes /proc/sys/net/ipv6/conf/<ifname>/disable_ipv6 = 1 (no-op without IPv6).
absl::Status DisableIpv6(const std::string& ifname);

// A link that appeared or changed (RTM_NEWLINK) or went away (RTM_DELLINK).
struct LinkEvent {
  enum class Kind { kNew, kDeleted };
  Kind kind = Kind::kDeleted;
  uint32_t ifindex = 0;
  std::string name;  // IFLA_IFNAME ("" when the message has none)
};

// The rtnetlink link events of the current network namespace (RTMGRP_LINK), for a poll loop:
// poll fd() for POLLIN, then Receive().
class LinkMonitor {
 public:
  // Opens the socket and subscribes.
  static absl::StatusOr<LinkMonitor> Open();
  int fd() const;

  struct Batch {
    std::vector<LinkEvent> events;
    bool overflow = false;  // the kernel dropped events (ENOBUFS): whatever changed is unknown
  };
  // Reads one datagram of events (blocks when none is pending). Any other failed read is as if
  // nothing had arrived.
  Batch Receive();

 private:
  std::unique_ptr<mnl_socket, MnlSocketCloser> nl_;
  std::vector<char> buf_;
};

}  // namespace csumfix::control

#endif  // CSUMFIX_USERSPACE_CONTROL_NETLINK_H_
