// A lab that makes real CHECKSUM_PARTIAL traffic and shows what its consumers see (docs/LAB.md).
//
//   namespace A (lab.ns())                          namespace B (lab.peer())
//   tapg --+                                         vpeer  10.88.0.2/24, fd00:88::2/64
//   tapr --+-- br0 (no STP, fwd delay 0, no snooping)  [vpeer.100 with the addresses in VLAN mode,
//   vbr  --+ ......................................... if the kernel has 8021q; see VlanMode]
//
// The test process holds both TAP fds (IFF_TAP|IFF_NO_PI|IFF_VNET_HDR, TUN_F_CSUM). The "guest"
// writes frames to tapg with a virtio_net_hdr: NEEDS_CSUM + the pseudo-header seed makes a
// CHECKSUM_PARTIAL skb in the kernel; flags 0 + a full checksum is the control case. Consumers sit
// on the peer side (RawReader, UdpSink, TcpSink, PcapCapture) and on tapr (TapReader).
//
// Determinism: IPv6 is off in namespace A; B has no DAD, no RS, no RA, static neighbour entries
// for the guest; the bridge has a static fdb entry for vpeer's MAC on vbr, so unicast frames to
// vpeer never reach tapr. To reach tapr, send with FrameSpec::broadcast (destination
// ff:ff:ff:ff:ff:ff): the bridge floods it to tapr and vbr alike.
//
// Everything lives in the two namespaces and the fds of these objects; destroying them removes it.
#ifndef CSUMFIX_TESTS_NETNS_PARTIAL_LAB_H_
#define CSUMFIX_TESTS_NETNS_PARTIAL_LAB_H_

#include <sys/types.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "netns/lab.h"

namespace csumfix::testing {

using Mac = std::array<uint8_t, 6>;
std::string MacString(const Mac& m);

enum class IpVer { kV4, kV6 };
enum class L4Proto { kUdp, kTcp };
const char* Name(IpVer v);
const char* Name(L4Proto p);

// Runs fn on a short-lived thread that has joined network namespace `ns` (setns); sockets and TAP
// fds created there stay bound to that namespace. False (and *err) if the namespace cannot be
// entered; fn is not run then.
bool RunInNetns(const std::string& ns, const std::function<void()>& fn, std::string* err);

// ---- frames and checksums (own code; independent of userspace/refcsum and bpf/) ----

// Internet checksum helpers: 32-bit accumulation of big-endian 16-bit words, folding.
uint32_t CsumAdd(std::span<const uint8_t> bytes, uint32_t acc = 0);
uint16_t CsumFold(uint32_t acc);  // ones' complement fold, NOT inverted

// What the L4 checksum field of an Ethernet frame holds.
struct L4Check {
  bool parsed = false;  // Ethernet [802.1Q] IPv4|IPv6 (no options/ext headers) UDP|TCP understood
  std::optional<uint16_t> vlan;  // VID of an in-band 802.1Q tag
  IpVer ip = IpVer::kV4;
  L4Proto l4 = L4Proto::kUdp;
  uint16_t src_port = 0, dst_port = 0;
  size_t l4_offset = 0;    // from frame start
  size_t l4_len = 0;       // L4 header + payload, from the IP length
  size_t payload_len = 0;  // after the UDP/TCP header
  uint16_t field = 0;      // the checksum field as found (host order)
  uint16_t seed = 0;       // folded pseudo-header sum, not inverted (what NEEDS_CSUM carries)
  uint16_t expected = 0;   // the correct checksum (UDP: 0 -> 0xffff)
  bool valid = false;      // the field verifies
  bool is_seed = false;    // field == seed
};
L4Check InspectFrame(std::span<const uint8_t> frame);

// A guest frame to build/send.
struct FrameSpec {
  IpVer ip = IpVer::kV4;
  L4Proto l4 = L4Proto::kUdp;
  size_t payload_len = 64;
  uint16_t src_port = 40000;
  uint16_t dst_port = 5000;
  std::optional<uint16_t> vlan;  // 802.1Q VID in the frame; unset = untagged
  bool partial = true;    // true: NEEDS_CSUM + seed in the field; false: full checksum, flags 0
  bool broadcast = false; // destination ff:ff:ff:ff:ff:ff (flooded, reaches tapr) instead of vpeer
  uint32_t tcp_seq = 1000;
  uint16_t corrupt_xor = 0;  // complete frames only: xor the correct checksum with this
};

struct BuiltFrame {
  std::vector<uint8_t> vnet_hdr;  // struct virtio_net_hdr (10 bytes, little endian)
  std::vector<uint8_t> frame;     // Ethernet frame
  size_t l4_offset = 0;
};
BuiltFrame BuildFrame(const FrameSpec& spec, const Mac& src, const Mac& dst);

// ---- the lab ----

struct LabOptions {
  bool vlan = false;            // guest sends 802.1Q tagged frames with VID vlan_id
  uint16_t vlan_id = 100;
  bool tapr_csum_offload = true;  // TUNSETOFFLOAD(TUN_F_CSUM) on tapr
};

// How the peer receives tagged frames.
enum class VlanMode {
  kNone,       // untagged lab
  kSubif,      // vpeer.<id> (8021q) holds the addresses
  kTcxPop,     // no 8021q in the kernel: the addresses are on vpeer and a 3-instruction tcx
               // ingress program on vpeer pops the (hw-accel) tag so the stack delivers the frames;
               // it returns TCX_NEXT, and taps (AF_PACKET, tcpdump) on vpeer run before it anyway.
};

class PartialLab {
 public:
  static constexpr char kGuestV4[] = "10.88.0.1";
  static constexpr char kPeerV4[] = "10.88.0.2";
  static constexpr char kGuestV6[] = "fd00:88::1";
  static constexpr char kPeerV6[] = "fd00:88::2";
  static constexpr Mac kGuestMac = {0x02, 0x88, 0x00, 0x00, 0x00, 0x01};

  PartialLab() = default;
  ~PartialLab();
  PartialLab(const PartialLab&) = delete;
  PartialLab& operator=(const PartialLab&) = delete;

  // Builds everything; false with error() on failure (the destructor cleans up either way).
  bool Setup(const LabOptions& opts = {});
  const std::string& error() const { return error_; }

  const Netns& ns() const { return ns_; }      // bridge + TAPs + vbr
  const Netns& peer() const { return peer_; }  // vpeer (+ vpeer.<id>)
  const LabOptions& options() const { return opts_; }
  VlanMode vlan_mode() const { return vlan_mode_; }
  // Where the peer's addresses are: "vpeer", or "vpeer.<id>" in VlanMode::kSubif.
  const std::string& peer_if() const { return peer_if_; }
  const Mac& peer_mac() const { return peer_mac_; }
  std::optional<uint16_t> vlan() const {
    return opts_.vlan ? std::optional<uint16_t>(opts_.vlan_id) : std::nullopt;
  }
  static std::string PeerAddr(IpVer v) { return v == IpVer::kV4 ? kPeerV4 : kPeerV6; }
  static std::string GuestAddr(IpVer v) { return v == IpVer::kV4 ? kGuestV4 : kGuestV6; }
  int tapr_fd() const { return tapr_; }

  // Guest sender: writes virtio_net_hdr + frame to tapg. vlan: explicit tag (pass lab.vlan()).
  bool Send(const FrameSpec& spec);
  bool SendUdp(IpVer ip, size_t payload_len, uint16_t src_port, uint16_t dst_port,
               std::optional<uint16_t> vlan = std::nullopt);
  bool SendTcp(IpVer ip, size_t payload_len, uint16_t src_port, uint16_t dst_port,
               std::optional<uint16_t> vlan = std::nullopt);  // one PSH|ACK segment
  bool SendUdpComplete(IpVer ip, size_t payload_len, uint16_t src_port, uint16_t dst_port,
                       std::optional<uint16_t> vlan = std::nullopt);
  bool SendTcpComplete(IpVer ip, size_t payload_len, uint16_t src_port, uint16_t dst_port,
                       std::optional<uint16_t> vlan = std::nullopt);

 private:
  bool Fail(const std::string& what);
  void CloseFds();

  LabOptions opts_;
  Netns ns_;
  Netns peer_;
  std::string error_;
  std::string peer_if_ = "vpeer";
  Mac peer_mac_{};
  VlanMode vlan_mode_ = VlanMode::kNone;
  // Declared after the namespaces: closed first (a TUN fd keeps its namespace alive).
  int tapg_ = -1;
  int tapr_ = -1;
  int vlan_prog_ = -1;
  int vlan_link_ = -1;
};

// Keeps frames whose L4 ports match (0 = any) — the lab's traffic among ND/MLD noise.
struct PortFilter {
  uint16_t src_port = 0;
  uint16_t dst_port = 0;
  bool Match(const L4Check& c) const {
    return c.parsed && (!src_port || c.src_port == src_port) &&
           (!dst_port || c.dst_port == dst_port);
  }
};

inline constexpr std::chrono::milliseconds kCollectTimeout{2000};

// ---- consumers ----

struct RawFrame {
  std::vector<uint8_t> bytes;
  uint32_t tp_status = 0;  // tpacket_auxdata.tp_status
  uint8_t pkttype = 0;     // sll_pkttype
  std::optional<uint16_t> aux_vlan_tci;  // tag moved out of the bytes (TP_STATUS_VLAN_VALID)
  L4Check check;
  bool csum_not_ready() const;  // TP_STATUS_CSUMNOTREADY
  bool csum_valid() const;      // TP_STATUS_CSUM_VALID
};

// AF_PACKET SOCK_RAW ETH_P_ALL bound to one interface of a namespace, PACKET_AUXDATA on; keeps
// incoming (not PACKET_OUTGOING) frames that match the filter.
class RawReader {
 public:
  RawReader() = default;
  ~RawReader();
  RawReader(const RawReader&) = delete;
  RawReader& operator=(const RawReader&) = delete;
  bool Open(const std::string& ns, const std::string& ifname, PortFilter filter,
            std::string* err);
  // Reads until `want` matching frames arrived or `timeout` passed (each poll <= 2 s).
  std::vector<RawFrame> Collect(size_t want, std::chrono::milliseconds timeout = kCollectTimeout);

 private:
  int fd_ = -1;
  PortFilter filter_;
};

struct SinkStats {
  size_t datagrams = 0;
  size_t bytes = 0;
};

// A UDP socket bound to addr:port in a namespace.
class UdpSink {
 public:
  UdpSink() = default;
  ~UdpSink();
  UdpSink(const UdpSink&) = delete;
  UdpSink& operator=(const UdpSink&) = delete;
  bool Open(const std::string& ns, IpVer ip, const std::string& addr, uint16_t port,
            std::string* err);
  // Receives until `want` datagrams arrived or `timeout` passed; cumulative over calls.
  SinkStats Collect(size_t want, std::chrono::milliseconds timeout = kCollectTimeout);

 private:
  int fd_ = -1;
  SinkStats stats_;
};

// A listening TCP socket on addr:port in a namespace (segments to it are checksum-checked by the
// stack; see SnmpCounter for evidence of what it did with them).
class TcpSink {
 public:
  TcpSink() = default;
  ~TcpSink();
  TcpSink(const TcpSink&) = delete;
  TcpSink& operator=(const TcpSink&) = delete;
  bool Open(const std::string& ns, IpVer ip, const std::string& addr, uint16_t port,
            std::string* err);
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
};

// A MIB counter of a namespace: "Tcp:OutRsts", "Udp:InCsumErrors" (/proc/net/snmp) or
// "Udp6InDatagrams" (/proc/net/snmp6). -1 if not found.
int64_t SnmpCounter(const Netns& ns, const std::string& key);

struct TapFrame {
  uint8_t flags = 0;  // virtio_net_hdr.flags: VIRTIO_NET_HDR_F_NEEDS_CSUM (1), _DATA_VALID (2)
  uint8_t gso_type = 0;
  uint16_t csum_start = 0, csum_offset = 0;
  std::vector<uint8_t> bytes;
  L4Check check;
  bool needs_csum() const { return flags & 1; }
};

// Reads frames (virtio_net_hdr + Ethernet) from a TAP fd it does not own (lab.tapr_fd()).
class TapReader {
 public:
  TapReader(int fd, PortFilter filter) : fd_(fd), filter_(filter) {}
  std::vector<TapFrame> Collect(size_t want, std::chrono::milliseconds timeout = kCollectTimeout);

 private:
  int fd_;
  PortFilter filter_;
};

// ---- tcpdump + tshark cross-check ----

struct TsharkStatus {
  int udp = -1;  // udp.checksum.status: 0 Bad, 1 Good, 2 Unverified (tshark 4.0); -1 absent
  int tcp = -1;  // tcp.checksum.status
  int src_port = -1, dst_port = -1;
  int vlan = -1;  // vlan.id of the (first) 802.1Q tag tcpdump recorded; -1 untagged
  int status() const { return udp >= 0 ? udp : tcp; }
};

// tcpdump -i IF -w FILE -U -Q in -c COUNT FILTER in a namespace (forked, setns'd, exec'd); the
// capture file is a temporary removed with the object. tcpdump is always killed and reaped.
// A capture on the receiving veth sees a frame as RawReader does (seed and all); tcpdump puts an
// auxdata VLAN tag back into the recorded bytes.
class PcapCapture {
 public:
  PcapCapture() = default;
  ~PcapCapture();
  PcapCapture(const PcapCapture&) = delete;
  PcapCapture& operator=(const PcapCapture&) = delete;
  // Returns once tcpdump reports "listening on" (<= 5 s).
  bool Start(const std::string& ns, const std::string& ifname, size_t count,
             const std::string& filter, std::string* err);
  // Waits up to `timeout` for tcpdump to stop after `count` packets, else SIGTERM (then SIGKILL).
  // True if it stopped by itself.
  bool Stop(std::chrono::milliseconds timeout = kCollectTimeout);
  const std::string& path() const { return path_; }
  const std::string& log() const { return log_; }  // tcpdump's stderr

 private:
  void DrainLog(int timeout_ms);
  pid_t pid_ = -1;
  int err_fd_ = -1;
  std::string path_;
  std::string log_;
};

// tshark -r FILE -o udp.check_checksum:TRUE -o tcp.check_checksum:TRUE -T fields ... [-Y filter]
// (under `timeout 30`). One entry per packet; nullopt if tshark failed (*err gets its stderr).
std::optional<std::vector<TsharkStatus>> TsharkChecksums(const std::string& pcap,
                                                         const std::string& display_filter,
                                                         std::string* err);

}  // namespace csumfix::testing

#endif  // CSUMFIX_TESTS_NETNS_PARTIAL_LAB_H_
