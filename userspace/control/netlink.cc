#include "control/netlink.h"

#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/ethtool.h>
#include <linux/if.h>
#include <linux/if_ether.h>
#include <linux/if_link.h>
#include <linux/pkt_cls.h>
#include <linux/rtnetlink.h>
#include <linux/sockios.h>
#include <linux/tc_act/tc_csum.h>
#include <linux/tc_act/tc_mirred.h>
#include <linux/veth.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "bpf/fd.h"

namespace csumfix::control {
namespace {

// Sends one request and waits for its ACK.
absl::Status Talk(nlmsghdr* nlh, absl::string_view what) {
  std::unique_ptr<mnl_socket, MnlSocketCloser> nl(mnl_socket_open(NETLINK_ROUTE));
  if (!nl) return ErrnoStatus(errno, absl::StrCat(what, ": netlink socket"));
  if (mnl_socket_bind(nl.get(), 0, MNL_SOCKET_AUTOPID) < 0)
    return ErrnoStatus(errno, absl::StrCat(what, ": netlink bind"));
  const uint32_t portid = mnl_socket_get_portid(nl.get());
  nlh->nlmsg_flags |= NLM_F_ACK;
  nlh->nlmsg_seq = static_cast<uint32_t>(time(nullptr));
  if (mnl_socket_sendto(nl.get(), nlh, nlh->nlmsg_len) < 0)
    return ErrnoStatus(errno, absl::StrCat(what, ": netlink send"));
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  ssize_t n = mnl_socket_recvfrom(nl.get(), buf.data(), buf.size());
  if (n < 0) return ErrnoStatus(errno, absl::StrCat(what, ": netlink receive"));
  if (mnl_cb_run(buf.data(), n, nlh->nlmsg_seq, portid, nullptr, nullptr) < 0)
    return ErrnoStatus(errno, what);
  return absl::OkStatus();
}

absl::Status Ethtool(const std::string& ifname, void* v, absl::string_view what) {
  bpf::Fd fd(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return ErrnoStatus(errno, "socket for ethtool");
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
  ifr.ifr_data = reinterpret_cast<char*>(v);
  if (ioctl(fd.get(), SIOCETHTOOL, &ifr) != 0)
    return ErrnoStatus(errno, absl::StrCat(what, " on ", ifname));
  return absl::OkStatus();
}

// Starts an rtnetlink link message (type RTM_NEWLINK / RTM_DELLINK) in `buf`.
nlmsghdr* LinkMsg(std::vector<char>& buf, uint16_t type, uint16_t flags, uint32_t ifindex,
                  ifinfomsg** ifm_out = nullptr) {
  buf.assign(MNL_SOCKET_BUFFER_SIZE, 0);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = type;
  nlh->nlmsg_flags = NLM_F_REQUEST | flags;
  auto* ifm = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
  ifm->ifi_family = AF_UNSPEC;
  ifm->ifi_index = static_cast<int>(ifindex);
  if (ifm_out) *ifm_out = ifm;
  return nlh;
}

// The attributes of one link message that LinkInfo holds.
LinkInfo ParseLink(const nlmsghdr* nlh) {
  const auto* ifm = static_cast<const ifinfomsg*>(mnl_nlmsg_get_payload(nlh));
  LinkInfo l;
  l.ifindex = static_cast<uint32_t>(ifm->ifi_index);
  l.flags = ifm->ifi_flags;
  mnl_attr_parse(
      nlh, sizeof(*ifm),
      [](const nlattr* attr, void* d) -> int {
        auto* l = static_cast<LinkInfo*>(d);
        switch (mnl_attr_get_type(attr)) {
          case IFLA_IFNAME:
            if (mnl_attr_validate(attr, MNL_TYPE_STRING) >= 0) l->name = mnl_attr_get_str(attr);
            break;
          case IFLA_MASTER:
            if (mnl_attr_validate(attr, MNL_TYPE_U32) >= 0) l->master = mnl_attr_get_u32(attr);
            break;
          case IFLA_LINKINFO:
            mnl_attr_parse_nested(
                attr,
                [](const nlattr* a, void* d2) -> int {
                  if (mnl_attr_get_type(a) == IFLA_INFO_KIND &&
                      mnl_attr_validate(a, MNL_TYPE_STRING) >= 0)
                    static_cast<LinkInfo*>(d2)->kind = mnl_attr_get_str(a);
                  return MNL_CB_OK;
                },
                l);
            break;
          default:
            break;
        }
        return MNL_CB_OK;
      },
      &l);
  return l;
}

// mnl_cb_run callback: one link message into the std::vector<LinkEvent> at `data`.
int CollectLinkEvent(const nlmsghdr* nlh, void* data) {
  if (nlh->nlmsg_type != RTM_NEWLINK && nlh->nlmsg_type != RTM_DELLINK) return MNL_CB_OK;
  // The bridge reports its ports' own state as link messages of family AF_BRIDGE: an RTM_DELLINK
  // of that family means "no longer a port", not "deleted". The device's messages are AF_UNSPEC.
  if (static_cast<const ifinfomsg*>(mnl_nlmsg_get_payload(nlh))->ifi_family == AF_BRIDGE)
    return MNL_CB_OK;
  LinkEvent ev;
  ev.kind = nlh->nlmsg_type == RTM_DELLINK ? LinkEvent::Kind::kDeleted : LinkEvent::Kind::kNew;
  ev.link = ParseLink(nlh);
  ev.ifindex = ev.link.ifindex;
  ev.name = ev.link.name;
  static_cast<std::vector<LinkEvent>*>(data)->push_back(std::move(ev));
  return MNL_CB_OK;
}

// mnl_cb_run callback: one link of a dump into the std::vector<LinkInfo> at `data`.
int CollectLinkInfo(const nlmsghdr* nlh, void* data) {
  if (nlh->nlmsg_type == RTM_NEWLINK)
    static_cast<std::vector<LinkInfo>*>(data)->push_back(ParseLink(nlh));
  return MNL_CB_OK;
}

}  // namespace

void MnlSocketCloser::operator()(mnl_socket* s) const { mnl_socket_close(s); }

absl::StatusOr<LinkMonitor> LinkMonitor::Open(int rcvbuf) {
  LinkMonitor m;
  m.nl_.reset(mnl_socket_open2(NETLINK_ROUTE, SOCK_NONBLOCK | SOCK_CLOEXEC));
  if (!m.nl_) return ErrnoStatus(errno, "rtnetlink socket");
  if (rcvbuf > 0 && setsockopt(mnl_socket_get_fd(m.nl_.get()), SOL_SOCKET, SO_RCVBUFFORCE,
                               &rcvbuf, sizeof(rcvbuf)) != 0)
    return ErrnoStatus(errno, absl::StrCat("rtnetlink socket: receive buffer of ", rcvbuf));
  if (mnl_socket_bind(m.nl_.get(), RTMGRP_LINK, MNL_SOCKET_AUTOPID) < 0)
    return ErrnoStatus(errno, "subscribe to rtnetlink link events");
  m.buf_.resize(MNL_SOCKET_BUFFER_SIZE);
  return m;
}

int LinkMonitor::fd() const { return mnl_socket_get_fd(nl_.get()); }

LinkMonitor::Batch LinkMonitor::Receive() {
  Batch b;
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(nl_.get(), buf_.data(), buf_.size());
    if (n < 0 && errno == ENOBUFS) {
      b.overflow = true;  // the queue is reset; later events arrive again
      continue;
    }
    if (n <= 0) break;  // EAGAIN: nothing more pending now
    mnl_cb_run(buf_.data(), n, 0, 0, CollectLinkEvent, &b.events);
  }
  return b;
}

namespace {

// One RTM_GETLINK dump; EINTR when the kernel says it was interrupted by a change
// (NLM_F_DUMP_INTR, which libmnl reports as EINTR): `*interrupted` then says so.
absl::StatusOr<std::vector<LinkInfo>> DumpLinks(bool* interrupted) {
  *interrupted = false;
  std::unique_ptr<mnl_socket, MnlSocketCloser> nl(mnl_socket_open(NETLINK_ROUTE));
  if (!nl) return ErrnoStatus(errno, "list links: netlink socket");
  if (mnl_socket_bind(nl.get(), 0, MNL_SOCKET_AUTOPID) < 0)
    return ErrnoStatus(errno, "list links: netlink bind");
  const uint32_t portid = mnl_socket_get_portid(nl.get());
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE, 0);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = RTM_GETLINK;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  nlh->nlmsg_seq = static_cast<uint32_t>(time(nullptr));
  auto* ifm = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
  ifm->ifi_family = AF_UNSPEC;
  const uint32_t seq = nlh->nlmsg_seq;
  if (mnl_socket_sendto(nl.get(), nlh, nlh->nlmsg_len) < 0)
    return ErrnoStatus(errno, "list links: netlink send");
  std::vector<LinkInfo> out;
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(nl.get(), buf.data(), buf.size());
    if (n < 0) return ErrnoStatus(errno, "list links: netlink receive");
    int r = mnl_cb_run(buf.data(), n, seq, portid, CollectLinkInfo, &out);
    if (r < 0) {
      *interrupted = errno == EINTR;
      return ErrnoStatus(errno, "list links");
    }
    if (r == MNL_CB_STOP) break;
  }
  std::sort(out.begin(), out.end(),
            [](const LinkInfo& a, const LinkInfo& b) { return a.ifindex < b.ifindex; });
  return out;
}

}  // namespace

absl::StatusOr<std::vector<LinkInfo>> ListLinks() {
  absl::StatusOr<std::vector<LinkInfo>> links;
  bool interrupted = true;
  for (int attempt = 0; attempt < 20 && interrupted; ++attempt) links = DumpLinks(&interrupted);
  return links;
}

absl::Status CreateVethPair(const std::string& a, const std::string& b, uint32_t mtu) {
  std::vector<char> buf;
  nlmsghdr* nlh = LinkMsg(buf, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, 0);
  mnl_attr_put_strz(nlh, IFLA_IFNAME, a.c_str());
  mnl_attr_put_u32(nlh, IFLA_MTU, mtu);
  nlattr* linkinfo = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
  mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "veth");
  nlattr* data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
  nlattr* peer = mnl_attr_nest_start(nlh, VETH_INFO_PEER);
  auto* pifm = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
  pifm->ifi_family = AF_UNSPEC;
  mnl_attr_put_strz(nlh, IFLA_IFNAME, b.c_str());
  mnl_attr_put_u32(nlh, IFLA_MTU, mtu);
  mnl_attr_nest_end(nlh, peer);
  mnl_attr_nest_end(nlh, data);
  mnl_attr_nest_end(nlh, linkinfo);
  return Talk(nlh, absl::StrCat("create veth pair ", a, "/", b));
}

absl::Status SetUpNoArp(uint32_t ifindex) {
  std::vector<char> buf;
  ifinfomsg* ifm = nullptr;
  nlmsghdr* nlh = LinkMsg(buf, RTM_NEWLINK, 0, ifindex, &ifm);
  ifm->ifi_flags = IFF_UP | IFF_NOARP;
  ifm->ifi_change = IFF_UP | IFF_NOARP;
  return Talk(nlh, absl::StrCat("set link ", ifindex, " up"));
}

absl::Status DeleteLink(uint32_t ifindex) {
  std::vector<char> buf;
  nlmsghdr* nlh = LinkMsg(buf, RTM_DELLINK, 0, ifindex);
  return Talk(nlh, absl::StrCat("delete link ", ifindex));
}

std::string Driver(const std::string& ifname) {
  ethtool_drvinfo info{};
  info.cmd = ETHTOOL_GDRVINFO;
  if (!Ethtool(ifname, &info, "ethtool -i").ok()) return "";
  return info.driver;
}

absl::StatusOr<bool> TxChecksumOn(const std::string& ifname) {
  ethtool_value v{};
  v.cmd = ETHTOOL_GTXCSUM;
  RETURN_IF_ERROR(Ethtool(ifname, &v, "ethtool get tx-checksumming"));
  return v.data != 0;
}

absl::Status TxChecksumOff(const std::string& ifname) {
  ethtool_value v{};
  v.cmd = ETHTOOL_STXCSUM;
  v.data = 0;
  RETURN_IF_ERROR(Ethtool(ifname, &v, "ethtool set tx-checksumming off"));
  ASSIGN_OR_RETURN(bool on, TxChecksumOn(ifname));
  if (on)
    return absl::FailedPreconditionError(
        absl::StrCat(ifname, ": tx-checksumming stays on; csumfix's fill device needs it off"));
  return absl::OkStatus();
}

std::vector<std::pair<std::string, bool>> Offloads(const std::string& ifname) {
  static const std::pair<const char*, uint32_t> kCmds[] = {
      {"tx-checksumming", ETHTOOL_GTXCSUM},
      {"rx-checksumming", ETHTOOL_GRXCSUM},
      {"tcp-segmentation-offload", ETHTOOL_GTSO},
      {"generic-segmentation-offload", ETHTOOL_GGSO},
      {"generic-receive-offload", ETHTOOL_GGRO}};
  std::vector<std::pair<std::string, bool>> out;
  for (const auto& [name, cmd] : kCmds) {
    ethtool_value v{};
    v.cmd = cmd;
    if (Ethtool(ifname, &v, name).ok()) out.emplace_back(name, v.data != 0);
  }
  return out;
}

absl::Status DisableIpv6(const std::string& ifname) {
  std::string path = absl::StrCat("/proc/sys/net/ipv6/conf/", ifname, "/disable_ipv6");
  bpf::Fd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd.valid()) return errno == ENOENT ? absl::OkStatus() : ErrnoStatus(errno, "open " + path);
  if (write(fd.get(), "1", 1) != 1) return ErrnoStatus(errno, "write " + path);
  return absl::OkStatus();
}

absl::Status AddSelectorFilter(uint32_t ifindex, bool ingress, uint32_t handle, uint32_t priority,
                               int prog_fd, const std::string& prog_name, uint32_t mirred_to,
                               bool replace) {
  // Message layout as iproute2's tc builds it (tc/f_bpf.c, tc/m_csum.c, tc/m_mirred.c) and
  // net/sched/cls_bpf.c, act_csum.c, act_mirred.c parse it: tcmsg + TCA_KIND "bpf" +
  // TCA_OPTIONS { TCA_BPF_FD, TCA_BPF_NAME, TCA_BPF_FLAGS (0: classic), TCA_BPF_ACT { [1] {
  // TCA_ACT_KIND "csum" | "mirred", TCA_ACT_OPTIONS { TCA_CSUM_PARMS | TCA_MIRRED_PARMS } } } }.
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE, 0);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = RTM_NEWTFILTER;
  // tc_new_tfilter (net/sched/cls_api.c) hands an existing filter to cls_bpf_change unless
  // NLM_F_EXCL is set; cls_bpf then replaces the entry with list_replace_rcu.
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE | (replace ? NLM_F_REPLACE : NLM_F_EXCL);
  auto* tcm = static_cast<tcmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(tcmsg)));
  tcm->tcm_family = AF_UNSPEC;
  tcm->tcm_ifindex = static_cast<int>(ifindex);
  tcm->tcm_handle = handle;
  tcm->tcm_parent = TC_H_MAKE(TC_H_CLSACT, ingress ? TC_H_MIN_INGRESS : TC_H_MIN_EGRESS);
  tcm->tcm_info = TC_H_MAKE(priority << 16, htons(ETH_P_ALL));
  mnl_attr_put_strz(nlh, TCA_KIND, "bpf");
  nlattr* opts = mnl_attr_nest_start(nlh, TCA_OPTIONS);
  mnl_attr_put_u32(nlh, TCA_BPF_FD, static_cast<uint32_t>(prog_fd));
  mnl_attr_put_strz(nlh, TCA_BPF_NAME, prog_name.c_str());
  mnl_attr_put_u32(nlh, TCA_BPF_FLAGS, 0);
  nlattr* acts = mnl_attr_nest_start(nlh, TCA_BPF_ACT);
  nlattr* act = mnl_attr_nest_start(nlh, 1);
  mnl_attr_put_strz(nlh, TCA_ACT_KIND, mirred_to == 0 ? "csum" : "mirred");
  nlattr* aopts = mnl_attr_nest_start(nlh, TCA_ACT_OPTIONS);
  if (mirred_to == 0) {
    tc_csum parm{};
    parm.action = TC_ACT_UNSPEC;  // "continue": later classic filters still see the packet
    parm.update_flags = TCA_CSUM_UPDATE_FLAG_TCP | TCA_CSUM_UPDATE_FLAG_UDP |
                        TCA_CSUM_UPDATE_FLAG_UDPLITE | TCA_CSUM_UPDATE_FLAG_SCTP;
    mnl_attr_put(nlh, TCA_CSUM_PARMS, sizeof(parm), &parm);
  } else {
    tc_mirred parm{};
    parm.action = TC_ACT_STOLEN;  // redirect: the packet is the ifb's now (iproute2 m_mirred.c)
    parm.eaction = TCA_EGRESS_REDIR;
    parm.ifindex = mirred_to;
    mnl_attr_put(nlh, TCA_MIRRED_PARMS, sizeof(parm), &parm);
  }
  mnl_attr_nest_end(nlh, aopts);
  mnl_attr_nest_end(nlh, act);
  mnl_attr_nest_end(nlh, acts);
  mnl_attr_nest_end(nlh, opts);
  return Talk(nlh, absl::StrCat(replace ? "replace" : "add", " cls_bpf + ",
                                mirred_to == 0 ? "act_csum" : "mirred", " filter on ifindex ",
                                ifindex, ingress ? " ingress" : " egress"));
}

absl::Status CreateIfb(const std::string& name, uint32_t queues) {
  std::vector<char> buf;
  nlmsghdr* nlh = LinkMsg(buf, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, 0);
  mnl_attr_put_strz(nlh, IFLA_IFNAME, name.c_str());
  mnl_attr_put_u32(nlh, IFLA_NUM_TX_QUEUES, queues);
  mnl_attr_put_u32(nlh, IFLA_NUM_RX_QUEUES, queues);
  mnl_attr_put_u32(nlh, IFLA_TXQLEN, 1000);
  nlattr* linkinfo = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
  mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "ifb");
  mnl_attr_nest_end(nlh, linkinfo);
  return Talk(nlh, absl::StrCat("create ifb device ", name));
}

namespace {

// One filter of a clsact hook, as a dump reports it.
struct FilterInfo {
  uint32_t handle = 0, priority = 0;
  std::string bpf_name;  // cls_bpf: the program's name as the filter carries it ("" otherwise)
};

int CollectFilter(const nlmsghdr* m, void* data) {
  if (m->nlmsg_type != RTM_NEWTFILTER) return MNL_CB_OK;
  const auto* tcm = static_cast<const tcmsg*>(mnl_nlmsg_get_payload(m));
  FilterInfo f;
  f.handle = tcm->tcm_handle;
  f.priority = TC_H_MAJ(tcm->tcm_info) >> 16;
  const nlattr* opts = nullptr;
  mnl_attr_parse(
      m, sizeof(*tcm),
      [](const nlattr* a, void* d) {
        if (mnl_attr_get_type(a) == TCA_OPTIONS) *static_cast<const nlattr**>(d) = a;
        return static_cast<int>(MNL_CB_OK);
      },
      &opts);
  if (opts != nullptr)
    mnl_attr_parse_nested(
        opts,
        [](const nlattr* a, void* d) {
          if (mnl_attr_get_type(a) == TCA_BPF_NAME)
            *static_cast<std::string*>(d) = mnl_attr_get_str(a);
          return static_cast<int>(MNL_CB_OK);
        },
        &f.bpf_name);
  static_cast<std::vector<FilterInfo>*>(data)->push_back(f);
  return MNL_CB_OK;
}

// The filters of both clsact hooks of `ifindex` (none without a clsact qdisc); `minor` selects
// one hook (TC_H_MIN_INGRESS / TC_H_MIN_EGRESS), 0 both.
absl::StatusOr<std::vector<FilterInfo>> DumpFilters(uint32_t ifindex, uint32_t only_minor) {
  std::unique_ptr<mnl_socket, MnlSocketCloser> nl(mnl_socket_open(NETLINK_ROUTE));
  if (!nl) return ErrnoStatus(errno, "list tc filters: netlink socket");
  if (mnl_socket_bind(nl.get(), 0, MNL_SOCKET_AUTOPID) < 0)
    return ErrnoStatus(errno, "list tc filters: netlink bind");
  const uint32_t portid = mnl_socket_get_portid(nl.get());
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  std::vector<FilterInfo> out;
  for (uint32_t minor : {TC_H_MIN_INGRESS, TC_H_MIN_EGRESS}) {
    if (only_minor != 0 && minor != only_minor) continue;
    std::fill(buf.begin(), buf.end(), 0);
    nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
    nlh->nlmsg_type = RTM_GETTFILTER;
    nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    nlh->nlmsg_seq = static_cast<uint32_t>(time(nullptr)) + minor;
    auto* tcm = static_cast<tcmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(tcmsg)));
    tcm->tcm_family = AF_UNSPEC;
    tcm->tcm_ifindex = static_cast<int>(ifindex);
    tcm->tcm_parent = TC_H_MAKE(TC_H_CLSACT, minor);
    const uint32_t seq = nlh->nlmsg_seq;
    if (mnl_socket_sendto(nl.get(), nlh, nlh->nlmsg_len) < 0)
      return ErrnoStatus(errno, "list tc filters: netlink send");
    for (;;) {
      ssize_t n = mnl_socket_recvfrom(nl.get(), buf.data(), buf.size());
      if (n < 0) return ErrnoStatus(errno, "list tc filters: netlink receive");
      int r = mnl_cb_run(buf.data(), n, seq, portid, CollectFilter, &out);
      if (r < 0) {
        const int e = errno;
        if (e == EINVAL || e == ENOENT) break;  // no clsact qdisc: nothing to list
        return ErrnoStatus(e, absl::StrCat("list tc filters of ifindex ", ifindex));
      }
      if (r == MNL_CB_STOP) break;
    }
  }
  return out;
}

}  // namespace

absl::StatusOr<bool> ClsactHasFilters(uint32_t ifindex) {
  // Every message of the dump is a filter (or a classifier instance): one is enough.
  ASSIGN_OR_RETURN(std::vector<FilterInfo> f, DumpFilters(ifindex, 0));
  return !f.empty();
}

std::string FilterProgName(uint32_t ifindex, bool ingress, uint32_t handle, uint32_t priority) {
  auto f = DumpFilters(ifindex, ingress ? TC_H_MIN_INGRESS : TC_H_MIN_EGRESS);
  if (!f.ok()) return "";
  for (const FilterInfo& i : *f)
    if (i.handle == handle && i.priority == priority && !i.bpf_name.empty()) return i.bpf_name;
  return "";
}

}  // namespace csumfix::control
