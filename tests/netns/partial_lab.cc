#include "netns/partial_lab.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <thread>

namespace csumfix::testing {
namespace {

using Clock = std::chrono::steady_clock;

constexpr Mac kBroadcast = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
// struct virtio_net_hdr (linux/virtio_net.h does not compile as C++): flags, gso_type, hdr_len,
// gso_size, csum_start, csum_offset; little endian on this (little-endian) host.
constexpr size_t kVnetHdrLen = 10;
constexpr uint8_t VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
constexpr uint8_t VIRTIO_NET_HDR_GSO_NONE = 0;
constexpr size_t kMaxFrame = 65536;

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

void CloseFd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

uint16_t Get16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
void Put16(std::vector<uint8_t>& b, size_t at, uint16_t v) {
  b[at] = v >> 8;
  b[at + 1] = v & 0xff;
}
void Append16(std::vector<uint8_t>& b, uint16_t v) {
  b.push_back(v >> 8);
  b.push_back(v & 0xff);
}
void Append32(std::vector<uint8_t>& b, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back((v >> s) & 0xff);
}
void AppendLe16(std::vector<uint8_t>& b, uint16_t v) {
  b.push_back(v & 0xff);
  b.push_back(v >> 8);
}

// Pseudo-header sum (not folded) for an L4 segment of `l4_len` bytes.
uint32_t PseudoSum(IpVer ip, const uint8_t* src, const uint8_t* dst, uint8_t proto,
                   size_t l4_len) {
  size_t alen = ip == IpVer::kV4 ? 4 : 16;
  uint32_t acc = CsumAdd({src, alen});
  acc = CsumAdd({dst, alen}, acc);
  acc += proto;
  acc += static_cast<uint32_t>(l4_len >> 16) + static_cast<uint32_t>(l4_len & 0xffff);
  return acc;
}

// Milliseconds left until `deadline`, capped at 2 s per poll.
int PollMs(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return static_cast<int>(std::clamp<int64_t>(left.count(), 0, 2000));
}

bool WaitReadable(int fd, Clock::time_point deadline) {
  int ms = PollMs(deadline);
  if (ms <= 0) return false;
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, ms) > 0 && (p.revents & POLLIN);
}

int OpenTap(const char* name, bool csum_offload, std::string* err) {
  int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    *err = Errno("open /dev/net/tun");
    return -1;
  }
  ifreq ifr{};
  std::snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
  if (ioctl(fd, TUNSETIFF, &ifr) != 0) {
    *err = Errno(std::string("TUNSETIFF ") + name);
    close(fd);
    return -1;
  }
  unsigned int offload = csum_offload ? TUN_F_CSUM : 0;
  if (ioctl(fd, TUNSETOFFLOAD, offload) != 0) {
    *err = Errno(std::string("TUNSETOFFLOAD ") + name);
    close(fd);
    return -1;
  }
  return fd;
}

long Bpf(int cmd, union bpf_attr* attr) {
  return syscall(SYS_bpf, cmd, attr, sizeof(*attr));
}

// tcx ingress program: bpf_skb_vlan_pop(skb); return TCX_NEXT.
bool LoadVlanPop(int ifindex, int* prog_fd, int* link_fd, std::string* err) {
  struct bpf_insn insns[3] = {};
  insns[0].code = BPF_JMP | BPF_CALL;
  insns[0].imm = BPF_FUNC_skb_vlan_pop;
  insns[1].code = BPF_ALU64 | BPF_MOV | BPF_K;
  insns[1].dst_reg = BPF_REG_0;
  insns[1].imm = TCX_NEXT;
  insns[2].code = BPF_JMP | BPF_EXIT;
  char log[4096] = {};
  union bpf_attr a;
  std::memset(&a, 0, sizeof(a));
  a.prog_type = BPF_PROG_TYPE_SCHED_CLS;
  a.insns = reinterpret_cast<uint64_t>(insns);
  a.insn_cnt = 3;
  a.license = reinterpret_cast<uint64_t>("GPL");
  a.log_buf = reinterpret_cast<uint64_t>(log);
  a.log_size = sizeof(log);
  a.log_level = 1;
  std::snprintf(a.prog_name, sizeof(a.prog_name), "csft_vlan_pop");
  int pfd = static_cast<int>(Bpf(BPF_PROG_LOAD, &a));
  if (pfd < 0) {
    *err = Errno("BPF_PROG_LOAD vlan pop") + "\n" + log;
    return false;
  }
  std::memset(&a, 0, sizeof(a));
  a.link_create.prog_fd = pfd;
  a.link_create.target_ifindex = ifindex;
  a.link_create.attach_type = BPF_TCX_INGRESS;
  int lfd = static_cast<int>(Bpf(BPF_LINK_CREATE, &a));
  if (lfd < 0) {
    *err = Errno("BPF_LINK_CREATE tcx ingress vlan pop");
    close(pfd);
    return false;
  }
  *prog_fd = pfd;
  *link_fd = lfd;
  return true;
}

}  // namespace

std::string MacString(const Mac& m) {
  char s[18];
  std::snprintf(s, sizeof(s), "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4],
                m[5]);
  return s;
}

const char* Name(IpVer v) { return v == IpVer::kV4 ? "IPv4" : "IPv6"; }
const char* Name(L4Proto p) { return p == L4Proto::kUdp ? "UDP" : "TCP"; }

bool RunInNetns(const std::string& ns, const std::function<void()>& fn, std::string* err) {
  bool ok = false;
  std::string e;
  std::thread t([&] {
    int fd = open(("/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      e = Errno("open /run/netns/" + ns);
      return;
    }
    if (setns(fd, CLONE_NEWNET) != 0) {
      e = Errno("setns " + ns);
      close(fd);
      return;
    }
    close(fd);
    fn();
    ok = true;
  });
  t.join();
  if (!ok && err) *err = e;
  return ok;
}

// ---- checksums and frames ----

uint32_t CsumAdd(std::span<const uint8_t> bytes, uint32_t acc) {
  uint64_t sum = acc;
  size_t i = 0;
  for (; i + 1 < bytes.size(); i += 2) sum += Get16(&bytes[i]);
  if (i < bytes.size()) sum += static_cast<uint32_t>(bytes[i]) << 8;
  while (sum >> 32) sum = (sum & 0xffffffff) + (sum >> 32);
  return static_cast<uint32_t>(sum);
}

uint16_t CsumFold(uint32_t acc) {
  uint64_t s = acc;
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return static_cast<uint16_t>(s);
}

L4Check InspectFrame(std::span<const uint8_t> f) {
  L4Check c;
  if (f.size() < 14) return c;
  size_t off = 12;
  uint16_t type = Get16(&f[off]);
  if (type == 0x8100 || type == 0x88a8) {
    if (f.size() < 18) return c;
    c.vlan = Get16(&f[14]) & 0x0fff;
    off += 4;
    type = Get16(&f[off]);
  }
  off += 2;
  const uint8_t *src, *dst;
  uint8_t proto;
  if (type == 0x0800) {
    if (f.size() < off + 20 || (f[off] >> 4) != 4) return c;
    size_t ihl = (f[off] & 0xf) * 4u;
    size_t tot = Get16(&f[off + 2]);
    if (ihl < 20 || tot < ihl || f.size() < off + tot) return c;
    if (Get16(&f[off + 6]) & 0x3fff) return c;  // fragment
    c.ip = IpVer::kV4;
    proto = f[off + 9];
    src = &f[off + 12];
    dst = &f[off + 16];
    c.l4_offset = off + ihl;
    c.l4_len = tot - ihl;
  } else if (type == 0x86dd) {
    if (f.size() < off + 40 || (f[off] >> 4) != 6) return c;
    size_t plen = Get16(&f[off + 4]);
    if (f.size() < off + 40 + plen) return c;
    c.ip = IpVer::kV6;
    proto = f[off + 6];
    src = &f[off + 8];
    dst = &f[off + 24];
    c.l4_offset = off + 40;
    c.l4_len = plen;
  } else {
    return c;
  }
  size_t hdr, field_at;
  if (proto == IPPROTO_UDP) {
    c.l4 = L4Proto::kUdp;
    hdr = 8;
    field_at = 6;
  } else if (proto == IPPROTO_TCP) {
    c.l4 = L4Proto::kTcp;
    hdr = 20;
    field_at = 16;
    if (c.l4_len >= 13) hdr = std::max<size_t>(20, (f[c.l4_offset + 12] >> 4) * 4u);
  } else {
    return c;
  }
  if (c.l4_len < hdr) return c;
  const uint8_t* l4 = &f[c.l4_offset];
  c.src_port = Get16(l4);
  c.dst_port = Get16(l4 + 2);
  c.payload_len = c.l4_len - hdr;
  c.field = Get16(l4 + field_at);
  uint32_t pseudo = PseudoSum(c.ip, src, dst, proto, c.l4_len);
  c.seed = CsumFold(pseudo);
  uint32_t all = CsumAdd({l4, c.l4_len}, pseudo);
  c.valid = CsumFold(all) == 0xffff;
  // The correct value: sum with the field taken as zero, inverted.
  uint32_t without = CsumFold(all) + static_cast<uint16_t>(~c.field);  // minus the field
  uint16_t expected = static_cast<uint16_t>(~CsumFold(without));
  if (c.l4 == L4Proto::kUdp && expected == 0) expected = 0xffff;
  c.expected = expected;
  c.is_seed = c.field == c.seed;
  c.parsed = true;
  return c;
}

BuiltFrame BuildFrame(const FrameSpec& s, const Mac& src_mac, const Mac& dst_mac) {
  BuiltFrame out;
  std::vector<uint8_t>& b = out.frame;
  b.insert(b.end(), dst_mac.begin(), dst_mac.end());
  b.insert(b.end(), src_mac.begin(), src_mac.end());
  if (s.vlan) {
    Append16(b, 0x8100);
    Append16(b, *s.vlan & 0x0fff);
  }
  const bool v4 = s.ip == IpVer::kV4;
  Append16(b, v4 ? 0x0800 : 0x86dd);
  const size_t l3 = b.size();
  const uint8_t proto = s.l4 == L4Proto::kUdp ? IPPROTO_UDP : IPPROTO_TCP;
  const size_t l4_hdr = s.l4 == L4Proto::kUdp ? 8 : 20;
  const size_t l4_len = l4_hdr + s.payload_len;
  uint8_t saddr[16] = {}, daddr[16] = {};
  inet_pton(v4 ? AF_INET : AF_INET6, PartialLab::GuestAddr(s.ip).c_str(), saddr);
  inet_pton(v4 ? AF_INET : AF_INET6, PartialLab::PeerAddr(s.ip).c_str(), daddr);
  if (v4) {
    b.push_back(0x45);
    b.push_back(0);
    Append16(b, static_cast<uint16_t>(20 + l4_len));
    Append16(b, s.src_port);  // id
    Append16(b, 0x4000);      // DF
    b.push_back(64);
    b.push_back(proto);
    Append16(b, 0);
    b.insert(b.end(), saddr, saddr + 4);
    b.insert(b.end(), daddr, daddr + 4);
    Put16(b, l3 + 10, static_cast<uint16_t>(~CsumFold(CsumAdd({&b[l3], 20}))));
  } else {
    Append32(b, 0x60000000);
    Append16(b, static_cast<uint16_t>(l4_len));
    b.push_back(proto);
    b.push_back(64);
    b.insert(b.end(), saddr, saddr + 16);
    b.insert(b.end(), daddr, daddr + 16);
  }
  const size_t l4 = b.size();
  out.l4_offset = l4;
  Append16(b, s.src_port);
  Append16(b, s.dst_port);
  size_t field;
  if (s.l4 == L4Proto::kUdp) {
    Append16(b, static_cast<uint16_t>(l4_len));
    field = l4 + 6;
    Append16(b, 0);
  } else {
    Append32(b, s.tcp_seq);
    Append32(b, 1);       // ack
    b.push_back(5 << 4);  // data offset
    b.push_back(0x18);    // PSH|ACK
    Append16(b, 65535);
    field = l4 + 16;
    Append16(b, 0);
    Append16(b, 0);  // urgent
  }
  for (size_t i = 0; i < s.payload_len; ++i) b.push_back((i * 31 + s.src_port) & 0xff);
  const uint32_t pseudo = PseudoSum(s.ip, saddr, daddr, proto, l4_len);
  uint16_t csum;
  if (s.partial) {
    csum = CsumFold(pseudo);  // the seed, not inverted
  } else {
    csum = static_cast<uint16_t>(~CsumFold(CsumAdd({&b[l4], l4_len}, pseudo)));
    if (s.l4 == L4Proto::kUdp && csum == 0) csum = 0xffff;
    csum ^= s.corrupt_xor;  // a wrong checksum on purpose (0: none)
  }
  Put16(b, field, csum);

  std::vector<uint8_t>& h = out.vnet_hdr;
  h.push_back(s.partial ? VIRTIO_NET_HDR_F_NEEDS_CSUM : 0);
  h.push_back(VIRTIO_NET_HDR_GSO_NONE);
  AppendLe16(h, static_cast<uint16_t>(l4 + l4_hdr));  // hdr_len
  AppendLe16(h, 0);                                   // gso_size
  AppendLe16(h, s.partial ? static_cast<uint16_t>(l4) : 0);
  AppendLe16(h, s.partial ? static_cast<uint16_t>(field - l4) : 0);
  return out;
}

// ---- PartialLab ----

PartialLab::~PartialLab() {
  CloseFds();
  peer_.Destroy();
  ns_.Destroy();
}

void PartialLab::CloseFds() {
  CloseFd(vlan_link_);
  CloseFd(vlan_prog_);
  CloseFd(tapr_);
  CloseFd(tapg_);
}

bool PartialLab::Fail(const std::string& what) {
  error_ = what;
  return false;
}

bool PartialLab::Setup(const LabOptions& opts) {
  opts_ = opts;
  if (!ns_.Create()) return Fail("cannot create the bridge namespace");
  if (!peer_.Create()) return Fail("cannot create the peer namespace");
  // A: IPv6 off (nothing there needs it; no RS/MLD/DAD noise from br0, taps, vbr).
  if (ns_.Exec("sysctl -qw net.ipv6.conf.default.disable_ipv6=1 "
               "net.ipv6.conf.all.disable_ipv6=1") != 0)
    return Fail("sysctl in " + ns_.name());
  // B: before vpeer exists, so it inherits: no DAD, no router solicitations, no RA.
  if (peer_.Exec("sysctl -qw net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0 "
                 "net.ipv6.conf.default.router_solicitations=0 "
                 "net.ipv6.conf.all.router_solicitations=0 net.ipv6.conf.default.accept_ra=0 "
                 "net.ipv6.conf.all.accept_ra=0") != 0)
    return Fail("sysctl in " + peer_.name());

  std::string err;
  if (!RunInNetns(ns_.name(), [&] {
        tapg_ = OpenTap("tapg", true, &err);
        if (tapg_ >= 0) tapr_ = OpenTap("tapr", opts_.tapr_csum_offload, &err);
      }, &err) || tapg_ < 0 || tapr_ < 0)
    return Fail("TAP: " + err);

  const std::string peer = peer_.name();
  for (const std::string& c : {
           std::string("link add br0 type bridge stp_state 0 forward_delay 0 mcast_snooping 0 "
                       "ageing_time 30000"),
           std::string("link set tapg master br0"), std::string("link set tapr master br0"),
           "link add vbr type veth peer name vpeer netns " + peer,
           std::string("link set vbr master br0"), std::string("link set br0 up"),
           std::string("link set tapg up"), std::string("link set tapr up"),
           std::string("link set vbr up")}) {
    if (ns_.Ip(c) != 0) return Fail("ip -n " + ns_.name() + " " + c);
  }
  if (peer_.Ip("link set vpeer up") != 0) return Fail("vpeer up");

  peer_if_ = "vpeer";
  vlan_mode_ = VlanMode::kNone;
  if (opts_.vlan) {
    const std::string sub = "vpeer." + std::to_string(opts_.vlan_id);
    if (peer_.Ip("link add link vpeer name " + sub + " type vlan id " +
                 std::to_string(opts_.vlan_id) + " 2>/dev/null") == 0) {
      vlan_mode_ = VlanMode::kSubif;
      peer_if_ = sub;
      if (peer_.Ip("link set " + sub + " up") != 0) return Fail(sub + " up");
    } else {
      // No 8021q in this kernel: pop the tag at tcx ingress of vpeer instead.
      vlan_mode_ = VlanMode::kTcxPop;
      bool ok = false;
      if (!RunInNetns(peer, [&] {
            int ifindex = static_cast<int>(if_nametoindex("vpeer"));
            if (ifindex == 0) {
              err = Errno("if_nametoindex vpeer");
              return;
            }
            ok = LoadVlanPop(ifindex, &vlan_prog_, &vlan_link_, &err);
          }, &err) || !ok)
        return Fail("VLAN: no 8021q and " + err);
    }
  }
  const std::string& pif = peer_if_;
  const std::string guest = MacString(kGuestMac);
  for (const std::string& c : {
           "addr add " + std::string(kPeerV4) + "/24 dev " + pif,
           "addr add " + std::string(kPeerV6) + "/64 dev " + pif + " nodad",
           "neigh replace " + std::string(kGuestV4) + " lladdr " + guest + " dev " + pif +
               " nud permanent",
           "neigh replace " + std::string(kGuestV6) + " lladdr " + guest + " dev " + pif +
               " nud permanent"}) {
    if (peer_.Ip(c) != 0) return Fail("ip -n " + peer + " " + c);
  }

  bool got_mac = false;
  if (!RunInNetns(peer, [&] {
        int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        ifreq ifr{};
        std::snprintf(ifr.ifr_name, IFNAMSIZ, "vpeer");
        if (s >= 0 && ioctl(s, SIOCGIFHWADDR, &ifr) == 0) {
          std::memcpy(peer_mac_.data(), ifr.ifr_hwaddr.sa_data, 6);
          got_mac = true;
        } else {
          err = Errno("SIOCGIFHWADDR vpeer");
        }
        if (s >= 0) close(s);
      }, &err) || !got_mac)
    return Fail(err);
  // vpeer's MAC is known to the bridge from the start: unicast to it never floods to tapr.
  if (ns_.Exec("bridge fdb replace " + MacString(peer_mac_) + " dev vbr master static") != 0)
    return Fail("static fdb entry for vpeer");

  // All three ports forwarding and the veth carrier up (no STP: immediate, but asynchronous).
  for (int i = 0;; ++i) {
    std::string br = ns_.Capture("bridge link show");
    size_t fwd = 0;
    for (size_t p = 0; (p = br.find("state forwarding", p)) != std::string::npos; ++p) ++fwd;
    std::string v = peer_.Capture("ip link show vpeer");
    if (fwd == 3 && v.find("LOWER_UP") != std::string::npos) break;
    if (i == 100) return Fail("ports not forwarding after 5 s:\n" + br + v);
    usleep(50 * 1000);
  }
  return true;
}

bool PartialLab::Send(const FrameSpec& spec) {
  BuiltFrame f = BuildFrame(spec, kGuestMac, spec.broadcast ? kBroadcast : peer_mac_);
  iovec iov[2] = {{f.vnet_hdr.data(), f.vnet_hdr.size()}, {f.frame.data(), f.frame.size()}};
  ssize_t n = writev(tapg_, iov, 2);
  if (n != static_cast<ssize_t>(f.vnet_hdr.size() + f.frame.size()))
    return Fail(n < 0 ? Errno("write tapg") : "short write to tapg");
  return true;
}

namespace {
FrameSpec Spec(IpVer ip, L4Proto l4, size_t len, uint16_t sp, uint16_t dp,
               std::optional<uint16_t> vlan, bool partial) {
  FrameSpec s;
  s.ip = ip;
  s.l4 = l4;
  s.payload_len = len;
  s.src_port = sp;
  s.dst_port = dp;
  s.vlan = vlan;
  s.partial = partial;
  return s;
}
}  // namespace

bool PartialLab::SendUdp(IpVer ip, size_t len, uint16_t sp, uint16_t dp,
                         std::optional<uint16_t> vlan) {
  return Send(Spec(ip, L4Proto::kUdp, len, sp, dp, vlan, true));
}
bool PartialLab::SendTcp(IpVer ip, size_t len, uint16_t sp, uint16_t dp,
                         std::optional<uint16_t> vlan) {
  return Send(Spec(ip, L4Proto::kTcp, len, sp, dp, vlan, true));
}
bool PartialLab::SendUdpComplete(IpVer ip, size_t len, uint16_t sp, uint16_t dp,
                                 std::optional<uint16_t> vlan) {
  return Send(Spec(ip, L4Proto::kUdp, len, sp, dp, vlan, false));
}
bool PartialLab::SendTcpComplete(IpVer ip, size_t len, uint16_t sp, uint16_t dp,
                                 std::optional<uint16_t> vlan) {
  return Send(Spec(ip, L4Proto::kTcp, len, sp, dp, vlan, false));
}

// ---- RawReader ----

bool RawFrame::csum_not_ready() const { return tp_status & TP_STATUS_CSUMNOTREADY; }
bool RawFrame::csum_valid() const { return tp_status & TP_STATUS_CSUM_VALID; }

RawReader::~RawReader() { CloseFd(fd_); }

bool RawReader::Open(const std::string& ns, const std::string& ifname, PortFilter filter,
                     std::string* err) {
  CloseFd(fd_);
  filter_ = filter;
  std::string e;
  RunInNetns(ns, [&] {
    // Protocol 0 until bound: nothing from other interfaces sneaks in.
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
      e = Errno("socket AF_PACKET");
      return;
    }
    int one = 1, buf = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
    sockaddr_ll sll{};
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_ALL);
    sll.sll_ifindex = static_cast<int>(if_nametoindex(ifname.c_str()));
    if (sll.sll_ifindex == 0) {
      e = Errno("if_nametoindex " + ifname);
    } else if (setsockopt(fd, SOL_PACKET, PACKET_AUXDATA, &one, sizeof(one)) != 0) {
      e = Errno("PACKET_AUXDATA");
    } else if (bind(fd, reinterpret_cast<sockaddr*>(&sll), sizeof(sll)) != 0) {
      e = Errno("bind AF_PACKET " + ifname);
    } else {
      fd_ = fd;
      return;
    }
    close(fd);
  }, &e);
  if (fd_ < 0 && err) *err = e;
  return fd_ >= 0;
}

std::vector<RawFrame> RawReader::Collect(size_t want, std::chrono::milliseconds timeout) {
  std::vector<RawFrame> out;
  if (fd_ < 0) return out;
  const auto deadline = Clock::now() + timeout;
  std::vector<uint8_t> buf(kMaxFrame);
  while (out.size() < want && WaitReadable(fd_, deadline)) {
    for (;;) {
      sockaddr_ll sll{};
      alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(tpacket_auxdata))];
      iovec iov{buf.data(), buf.size()};
      msghdr m{};
      m.msg_name = &sll;
      m.msg_namelen = sizeof(sll);
      m.msg_iov = &iov;
      m.msg_iovlen = 1;
      m.msg_control = ctl;
      m.msg_controllen = sizeof(ctl);
      ssize_t n = recvmsg(fd_, &m, MSG_DONTWAIT);
      if (n < 0) break;
      if (sll.sll_pkttype == PACKET_OUTGOING) continue;
      RawFrame f;
      f.pkttype = sll.sll_pkttype;
      f.bytes.assign(buf.begin(), buf.begin() + std::min<size_t>(n, buf.size()));
      for (cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level != SOL_PACKET || c->cmsg_type != PACKET_AUXDATA) continue;
        tpacket_auxdata aux;
        std::memcpy(&aux, CMSG_DATA(c), sizeof(aux));
        f.tp_status = aux.tp_status;
        if (aux.tp_status & TP_STATUS_VLAN_VALID) f.aux_vlan_tci = aux.tp_vlan_tci;
      }
      f.check = InspectFrame(f.bytes);
      if (filter_.Match(f.check)) out.push_back(std::move(f));
    }
  }
  return out;
}

// ---- UdpSink / TcpSink ----

namespace {
int BoundSocket(const std::string& ns, IpVer ip, int type, const std::string& addr,
                uint16_t port, std::string* err) {
  int out = -1;
  std::string e;
  RunInNetns(ns, [&] {
    const int fam = ip == IpVer::kV4 ? AF_INET : AF_INET6;
    int fd = socket(fam, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
      e = Errno("socket");
      return;
    }
    int one = 1, buf = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
    sockaddr_storage ss{};
    socklen_t len;
    if (ip == IpVer::kV4) {
      auto* a = reinterpret_cast<sockaddr_in*>(&ss);
      a->sin_family = AF_INET;
      a->sin_port = htons(port);
      inet_pton(AF_INET, addr.c_str(), &a->sin_addr);
      len = sizeof(*a);
    } else {
      auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
      a->sin6_family = AF_INET6;
      a->sin6_port = htons(port);
      inet_pton(AF_INET6, addr.c_str(), &a->sin6_addr);
      len = sizeof(*a);
    }
    if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
      e = Errno("bind " + addr + " port " + std::to_string(port));
    } else if (type == SOCK_STREAM && listen(fd, 16) != 0) {
      e = Errno("listen");
    } else {
      out = fd;
      return;
    }
    close(fd);
  }, &e);
  if (out < 0 && err) *err = e;
  return out;
}
}  // namespace

UdpSink::~UdpSink() { CloseFd(fd_); }

bool UdpSink::Open(const std::string& ns, IpVer ip, const std::string& addr, uint16_t port,
                   std::string* err) {
  CloseFd(fd_);
  stats_ = {};
  fd_ = BoundSocket(ns, ip, SOCK_DGRAM, addr, port, err);
  return fd_ >= 0;
}

SinkStats UdpSink::Collect(size_t want, std::chrono::milliseconds timeout) {
  if (fd_ < 0) return stats_;
  const auto deadline = Clock::now() + timeout;
  std::vector<uint8_t> buf(kMaxFrame);
  while (stats_.datagrams < want && WaitReadable(fd_, deadline)) {
    ssize_t n;
    while ((n = recv(fd_, buf.data(), buf.size(), MSG_DONTWAIT)) >= 0) {
      ++stats_.datagrams;
      stats_.bytes += static_cast<size_t>(n);
    }
  }
  return stats_;
}

TcpSink::~TcpSink() { CloseFd(fd_); }

bool TcpSink::Open(const std::string& ns, IpVer ip, const std::string& addr, uint16_t port,
                   std::string* err) {
  CloseFd(fd_);
  fd_ = BoundSocket(ns, ip, SOCK_STREAM, addr, port, err);
  return fd_ >= 0;
}

int64_t SnmpCounter(const Netns& ns, const std::string& key) {
  std::istringstream in(ns.Capture("cat /proc/net/snmp /proc/net/snmp6"));
  std::string line, header;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::vector<std::string> tok;
    for (std::string t; ls >> t;) tok.push_back(t);
    if (tok.size() == 2 && tok[0] == key) return std::strtoll(tok[1].c_str(), nullptr, 10);
    if (tok.empty() || tok[0].back() != ':') continue;
    // /proc/net/snmp: a header line "Tcp: A B ..." followed by "Tcp: 1 2 ...".
    if (header.empty() || header.compare(0, tok[0].size(), tok[0]) != 0) {
      header = line;
      continue;
    }
    std::istringstream hs(header);
    std::vector<std::string> names;
    for (std::string t; hs >> t;) names.push_back(t);
    header.clear();
    for (size_t i = 1; i < names.size() && i < tok.size(); ++i)
      if (tok[0] + names[i] == key) return std::strtoll(tok[i].c_str(), nullptr, 10);
  }
  return -1;
}

// ---- TapReader ----

std::vector<TapFrame> TapReader::Collect(size_t want, std::chrono::milliseconds timeout) {
  std::vector<TapFrame> out;
  const auto deadline = Clock::now() + timeout;
  std::vector<uint8_t> buf(kMaxFrame + kVnetHdrLen);
  while (out.size() < want && WaitReadable(fd_, deadline)) {
    ssize_t n;
    while ((n = read(fd_, buf.data(), buf.size())) >= static_cast<ssize_t>(kVnetHdrLen)) {
      TapFrame f;
      f.flags = buf[0];
      f.gso_type = buf[1];
      f.csum_start = static_cast<uint16_t>(buf[6] | buf[7] << 8);
      f.csum_offset = static_cast<uint16_t>(buf[8] | buf[9] << 8);
      f.bytes.assign(buf.begin() + kVnetHdrLen, buf.begin() + n);
      f.check = InspectFrame(f.bytes);
      if (filter_.Match(f.check)) out.push_back(std::move(f));
    }
  }
  return out;
}

// ---- PcapCapture ----

PcapCapture::~PcapCapture() {
  Stop(std::chrono::milliseconds(0));
  if (!path_.empty()) unlink(path_.c_str());
}

void PcapCapture::DrainLog(int timeout_ms) {
  if (err_fd_ < 0) return;
  pollfd p{err_fd_, POLLIN, 0};
  char b[1024];
  while (poll(&p, 1, timeout_ms) > 0) {
    ssize_t n = read(err_fd_, b, sizeof(b));
    if (n <= 0) {
      CloseFd(err_fd_);
      return;
    }
    log_.append(b, n);
    timeout_ms = 0;
  }
}

bool PcapCapture::Start(const std::string& ns, const std::string& ifname, size_t count,
                        const std::string& filter, std::string* err) {
  auto fail = [&](const std::string& e) {
    if (err) *err = e;
    return false;
  };
  if (pid_ > 0) return fail("capture already running");
  char tmpl[] = "/tmp/csft-pcap-XXXXXX.pcap";
  int tfd = mkstemps(tmpl, 5);
  if (tfd < 0) return fail(Errno("mkstemps"));
  close(tfd);
  path_ = tmpl;
  int nsfd = open(("/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
  if (nsfd < 0) return fail(Errno("open netns " + ns));
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) {
    close(nsfd);
    return fail(Errno("pipe"));
  }
  std::vector<std::string> args = {"tcpdump", "-i", ifname, "-w", path_, "-U",
                                   "--immediate-mode", "-Q", "in", "-nn", "-Z", "root",
                                   "-c", std::to_string(count)};
  if (!filter.empty()) args.push_back(filter);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    int devnull = open("/dev/null", O_RDWR);
    if (setns(nsfd, CLONE_NEWNET) != 0) _exit(126);
    dup2(devnull, 0);
    dup2(devnull, 1);
    dup2(pipefd[1], 2);
    execvp(argv[0], argv.data());
    _exit(127);
  }
  close(nsfd);
  close(pipefd[1]);
  if (pid < 0) {
    close(pipefd[0]);
    return fail(Errno("fork"));
  }
  pid_ = pid;
  err_fd_ = pipefd[0];
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  while (log_.find("listening on") == std::string::npos) {
    if (err_fd_ < 0 || Clock::now() >= deadline) {
      Stop(std::chrono::milliseconds(0));
      return fail("tcpdump did not start: " + log_);
    }
    pollfd p{err_fd_, POLLIN, 0};
    if (poll(&p, 1, PollMs(deadline)) > 0) {
      char b[1024];
      ssize_t n = read(err_fd_, b, sizeof(b));
      if (n <= 0) CloseFd(err_fd_);
      else log_.append(b, n);
    }
  }
  return true;
}

bool PcapCapture::Stop(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return false;
  const auto deadline = Clock::now() + timeout;
  bool by_itself = false;
  int st = 0;
  for (;;) {
    pid_t r = waitpid(pid_, &st, WNOHANG);
    if (r == pid_ || r < 0) {
      by_itself = r == pid_ && WIFEXITED(st) && WEXITSTATUS(st) == 0;
      pid_ = -1;
      break;
    }
    if (Clock::now() >= deadline) break;
    DrainLog(20);
    usleep(10 * 1000);
  }
  if (pid_ > 0) {
    kill(pid_, SIGTERM);  // tcpdump flushes and closes the file on SIGTERM
    const auto hard = Clock::now() + std::chrono::seconds(1);
    while (waitpid(pid_, &st, WNOHANG) == 0) {
      if (Clock::now() >= hard) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &st, 0);
        break;
      }
      usleep(10 * 1000);
    }
    pid_ = -1;
  }
  DrainLog(0);
  CloseFd(err_fd_);
  return by_itself;
}

std::optional<std::vector<TsharkStatus>> TsharkChecksums(const std::string& pcap,
                                                         const std::string& display_filter,
                                                         std::string* err) {
  // 180 s: only a bound for a hang. The first tshark of a TCG guest (cold page cache, dissector
  // registration) took over 30 s on 6.1 in the VM matrix.
  std::vector<std::string> argv = {"timeout", "180", "tshark", "-n", "-r", pcap,
                                   "-o", "udp.check_checksum:TRUE",
                                   "-o", "tcp.check_checksum:TRUE",
                                   "-T", "fields",
                                   "-e", "udp.checksum.status", "-e", "tcp.checksum.status",
                                   "-e", "udp.srcport", "-e", "udp.dstport",
                                   "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "vlan.id"};
  if (!display_filter.empty()) {
    argv.push_back("-Y");
    argv.push_back(display_filter);
  }
  CmdResult r = Run(argv);
  if (r.rc != 0) {
    if (err) *err = "tshark rc " + std::to_string(r.rc) + ": " + r.err;
    return std::nullopt;
  }
  std::vector<TsharkStatus> out;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    std::vector<std::string> f;
    size_t p = 0;
    for (;;) {
      size_t t = line.find('\t', p);
      f.push_back(line.substr(p, t == std::string::npos ? std::string::npos : t - p));
      if (t == std::string::npos) break;
      p = t + 1;
    }
    f.resize(7);
    auto num = [](const std::string& s) {  // first of an aggregated "a,b"
      return s.empty() ? -1 : std::atoi(s.substr(0, s.find(',')).c_str());
    };
    TsharkStatus s;
    s.udp = num(f[0]);
    s.tcp = num(f[1]);
    s.src_port = f[2].empty() ? num(f[4]) : num(f[2]);
    s.dst_port = f[3].empty() ? num(f[5]) : num(f[3]);
    s.vlan = num(f[6]);
    out.push_back(s);
  }
  return out;
}

}  // namespace csumfix::testing
