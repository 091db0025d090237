// Small rtnetlink (libmnl) and ethtool helpers for the links csumfix owns (bounce veths), and
// the link list and monitor of `serve` (ListLinks, LinkMonitor: links as they come and go).
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
// Turns transmit checksum offload off (ethtool -K NAME tx off) and checks that it is off (the
// bounce and ifb mechanisms rely on the core completing what leaves such a device).
absl::Status TxChecksumOff(const std::string& ifname);
// ethtool's transmit-checksum state: true when on.
absl::StatusOr<bool> TxChecksumOn(const std::string& ifname);
// The device's offload switches as ethtool -k shows them: tx-checksumming, rx-checksumming,
// tcp-segmentation-offload, generic-segmentation-offload, generic-receive-offload. A switch the
// driver does not report is left out.
std::vector<std::pair<std::string, bool>> Offloads(const std::string& ifname);

// The act-csum and ifb fill mechanisms: adds a classic (not direct-action) cls_bpf filter on the
// clsact hook (`ingress` true: ingress, else egress) of `ifindex`, with `handle` and `priority`,
// whose classifier is the program `prog_fd` and whose action is
//  - `mirred_to` == 0: act_csum recomputing TCP, UDP, UDP-Lite and SCTP checksums with control
//    "continue", the netlink form of
//      tc filter add dev D ingress prio P handle H bpf fd F action csum tcp udp udplite sctp continue
//  - else mirred redirecting the packet out of the device `mirred_to` (an ifb):
//      tc filter add dev D ingress prio P handle H bpf fd F action mirred egress redirect dev IFB
// The clsact qdisc must exist. Fails with EEXIST if a filter with that priority/handle exists,
// and with ENOENT/EOPNOTSUPP when the kernel lacks the action. With `replace`, an existing filter
// of that priority/handle is changed in place instead (cls_bpf swaps it under RCU: a packet
// meets the old filter or the new one, never none).
absl::Status AddSelectorFilter(uint32_t ifindex, bool ingress, uint32_t handle, uint32_t priority,
                               int prog_fd, const std::string& prog_name, uint32_t mirred_to,
                               bool replace = false);

// Creates an ifb device `name` with `queues` transmit and receive queues (each CPU that sends
// through it gets its own queue and tasklet) and a transmit queue of 1000 packets, down.
absl::Status CreateIfb(const std::string& name, uint32_t queues);

// Whether the clsact qdisc of `ifindex` holds any tc filter, ingress or egress (false as well when
// the interface has no clsact qdisc): an RTM_GETTFILTER dump of both clsact parents.
absl::StatusOr<bool> ClsactHasFilters(uint32_t ifindex);
// The program name a cls_bpf filter (handle, priority) at a clsact hook carries (libbpf names it
// "<prog name>:[<id>]"); "" when there is no such filter. Needs no CAP_SYS_ADMIN, unlike looking
// the program up by id.
std::string FilterProgName(uint32_t ifindex, bool ingress, uint32_t handle, uint32_t priority);

// The driver of a device, as `ethtool -i` shows it ("veth", "tun", "vif", ...; "" unknown).
std::string Driver(const std::string& ifname);

// Writes /proc/sys/net/ipv6/conf/<ifname>/disable_ipv6 = 1 (no-op without IPv6).
absl::Status DisableIpv6(const std::string& ifname);

// One network device of the current namespace, as rtnetlink describes it.
struct LinkInfo {
  uint32_t ifindex = 0;
  std::string name;    // IFLA_IFNAME
  std::string kind;    // IFLA_INFO_KIND ("tun", "veth", "bridge", "vxlan", ...); "" when the
                       // device has none (a physical NIC, Xen's netback vif)
  uint32_t master = 0; // IFLA_MASTER: the bridge (or bond, VRF) it is a port of; 0 none
  uint32_t flags = 0;  // ifi_flags (IFF_UP, ...)
};

// Every link of the current network namespace (an RTM_GETLINK dump), in ifindex order.
absl::StatusOr<std::vector<LinkInfo>> ListLinks();

// A link that appeared or changed (RTM_NEWLINK) or went away (RTM_DELLINK).
struct LinkEvent {
  enum class Kind { kNew, kDeleted };
  Kind kind = Kind::kDeleted;
  uint32_t ifindex = 0;
  std::string name;  // IFLA_IFNAME ("" when the message has none)
  LinkInfo link;     // all the message says about the link (kNew)
};

// The rtnetlink link events of the current network namespace (RTMGRP_LINK), for a poll loop:
// poll fd() for POLLIN, then Receive(). The socket does not block.
class LinkMonitor {
 public:
  // Opens the socket and subscribes. `rcvbuf` > 0 sets its receive buffer (bytes; the tests make
  // it small to provoke an overflow), 0 keeps the system's default.
  static absl::StatusOr<LinkMonitor> Open(int rcvbuf = 0);
  int fd() const;

  struct Batch {
    std::vector<LinkEvent> events;
    bool overflow = false;  // the kernel dropped events (ENOBUFS): whatever changed is unknown,
                            // resynchronise from a dump (ListLinks)
  };
  // Reads every datagram pending now (none: an empty batch). A failed read other than ENOBUFS
  // ends the batch.
  Batch Receive();

 private:
  std::unique_ptr<mnl_socket, MnlSocketCloser> nl_;
  std::vector<char> buf_;
};

}  // namespace csumfix::control

#endif  // CSUMFIX_USERSPACE_CONTROL_NETLINK_H_
