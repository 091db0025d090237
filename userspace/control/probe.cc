#include "control/probe.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/status.h"
#include "bpf/fd.h"
#include "bpf/loader.h"
#include "control/control.h"
#include "control/names.h"
#include "control/netlink.h"
#include "csumfix.skel.h"
#include "nlohmann/json.hpp"

namespace csumfix::control {
namespace {

using json = nlohmann::json;

std::string ReadFirstLine(const std::string& path) {
  std::ifstream f(path);
  std::string s;
  std::getline(f, s);
  return s;
}

bool HaveKfunc(const char* name) {
  btf* vmlinux = btf__load_vmlinux_btf();
  if (vmlinux == nullptr) return false;
  bool found = btf__find_by_name_kind(vmlinux, name, BTF_KIND_FUNC) > 0;
  btf__free(vmlinux);
  return found;
}

// Whether this process holds `cap` in its effective set (capget(2); no libcap down here).
bool EffectiveCap(int cap) {
  __user_cap_header_struct h{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct d[2] = {};
  if (syscall(SYS_capget, &h, d) != 0) return false;
  return (d[cap / 32].effective >> (cap % 32)) & 1u;
}

// tcx exists iff the kernel knows the BPF_TCX_INGRESS attach type for a query on lo. Sets
// `*unknown` when the query was refused for lack of privilege (then nothing is known).
bool HaveTcx(std::string* unknown) {
  LIBBPF_OPTS(bpf_prog_query_opts, q);
  if (bpf_prog_query_opts(1, BPF_TCX_INGRESS, &q) == 0) return true;
  const int e = errno;
  if (e == EPERM || e == EACCES)
    *unknown = absl::StrCat("tcx: BPF_PROG_QUERY on lo refused (", strerrorname_np(e),
                            "; needs CAP_NET_ADMIN)");
  return false;
}

// What the throwaway namespace found out about act_csum: adding csumfix's selector filter with a
// csum action on its lo (the kernel loads act_csum itself for that, when it has the module); and
// about the ifb mechanism: an ifb device with tx checksumming off and the selector with a mirred
// action to it (the kernel loads ifb and act_mirred likewise).
struct ActTry {
  bool ran = false;  // the attempt was made (the namespace and the programs were there)
  bool ok = false;
  std::string error;
  bool ifb_ok = false;
  std::string ifb_error;
  bool ifb_redirect_ok = false;  // a datagram csumfix's program redirected into the ifb came back
  std::string ifb_redirect_error;
};

// act_csum: loaded, built in, or loadable as a module. Sets `*unknown` when that could not be
// found out: not loaded, no CAP_SYS_MODULE for modprobe, and no throwaway namespace to try in.
bool HaveActCsum(const ActTry& tried, std::string* detail, std::string* unknown) {
  auto present = [] {
    struct stat st {};
    return stat("/sys/module/act_csum", &st) == 0;
  };
  if (present()) {
    *detail = "act_csum present (/sys/module/act_csum)";
    return true;
  }
  if (tried.ok) {
    *detail = "act_csum loaded by the kernel for a csum action in a throwaway namespace";
    return true;
  }
  if (!EffectiveCap(CAP_SYS_MODULE)) {
    if (tried.ran) {
      *detail = absl::StrCat("the kernel refused a csum action in a throwaway namespace: ",
                             tried.error, " (CONFIG_NET_ACT_CSUM unset?)");
      return false;
    }
    *detail = "not loaded, and without CAP_SYS_MODULE `modprobe act_csum` cannot load it";
    *unknown = "act_csum: not loaded, this process lacks CAP_SYS_MODULE to run `modprobe "
               "act_csum`, and no throwaway namespace to try a csum action in";
    return false;
  }
  pid_t pid = fork();
  if (pid == 0) {
    int devnull = open("/dev/null", O_WRONLY);
    if (devnull >= 0) {
      dup2(devnull, 1);
      dup2(devnull, 2);
    }
    execlp("modprobe", "modprobe", "-q", "act_csum", static_cast<char*>(nullptr));
    _exit(127);
  }
  int st = 0;
  if (pid > 0) waitpid(pid, &st, 0);
  if (present()) {
    *detail = "act_csum loaded with modprobe";
    return true;
  }
  *detail = absl::StrCat(
      "not built in and `modprobe act_csum` failed",
      tried.ran ? absl::StrCat("; the kernel refused a csum action in a throwaway namespace: ",
                               tried.error)
                : "",
      " (CONFIG_NET_ACT_CSUM unset?)");
  return false;
}

// Whether the kernel re-injects what csumfix's program hands an ifb with bpf_redirect (an ifb drops
// packets not marked redirected; bpf_redirect marks them since "bpf: Set skb redirect and
// from_ingress info in __bpf_tx_skb", 6.4): csf_tc_ingress on lo's ingress, configured as attach
// configures it for mechanism ifb with redirect, and one locally sent (CHECKSUM_PARTIAL) datagram,
// which must reach its socket: redirected, completed by the ifb's transmit, re-injected, and
// accepted by UDP's checksum check. Runs in the probe's throwaway namespace.
absl::Status TryIfbRedirect(const bpf::Programs& progs, uint32_t ifb) {
  csf_ifcfg cfg{CSF_ACT_FILL, CSF_IFCFG_F_NONE, CSF_MECH_IFB, ifb};
  RETURN_IF_ERROR(progs.ifcfg().Update(csf_if_key{1, CSF_HOOK_TC_INGRESS}, cfg));
  bpf_program* prog = progs.skel()->progs.csf_tc_ingress;
  bpf_link* link = bpf_program__attach_tcx(prog, 1, nullptr);
  if (link == nullptr) {  // before tcx: clsact (made by the caller), ahead of the selectors
    LIBBPF_OPTS(bpf_tc_hook, h, .ifindex = 1, .attach_point = BPF_TC_INGRESS);
    LIBBPF_OPTS(bpf_tc_opts, o, .prog_fd = bpf_program__fd(prog), .handle = 1, .priority = 1);
    if (int e = bpf_tc_attach(&h, &o); e != 0)
      return ErrnoStatus(e, "attach csumfix's program to lo's ingress");
  }
  bpf::Fd rx(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  bpf::Fd tx(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_in at{};
  at.sin_family = AF_INET;
  at.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(at);
  timeval wait{1, 0};
  if (!rx.valid() || !tx.valid() || bind(rx.get(), reinterpret_cast<sockaddr*>(&at), len) != 0 ||
      getsockname(rx.get(), reinterpret_cast<sockaddr*>(&at), &len) != 0 ||
      setsockopt(rx.get(), SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof(wait)) != 0)
    return ErrnoStatus(errno, "probe sockets");
  char payload[64] = {'c', 's', 'f'};
  if (sendto(tx.get(), payload, sizeof(payload), 0, reinterpret_cast<sockaddr*>(&at), len) < 0)
    return ErrnoStatus(errno, "send the probe datagram");
  char got[sizeof(payload)];
  const ssize_t n = recv(rx.get(), got, sizeof(got), 0);
  if (link) bpf_link__destroy(link);
  // Redirected (counted by the program), then received: the ifb re-injected it. Received but not
  // counted would mean the program let it pass (not PARTIAL here?): nothing learnt.
  ASSIGN_OR_RETURN(std::optional<csf_counters> c,
                   progs.counters().Lookup(csf_if_key{1, CSF_HOOK_TC_INGRESS}));
  if (!c.has_value() || c->c[CSF_CTR_ACT_SELECTED] == 0)
    return absl::InternalError(
        "csumfix's program did not redirect the probe datagram into the ifb (not PARTIAL?)");
  if (n != static_cast<ssize_t>(sizeof(payload)))
    return absl::UnavailableError(
        "a datagram csumfix's program redirected into the ifb did not come back (the kernel's "
        "bpf_redirect does not mark packets redirected, which an ifb needs: before 6.4)");
  return absl::OkStatus();
}

// In a child in a fresh network namespace: csf_probe_tail on lo egress, one UDP datagram; then
// csumfix's act_csum filter on lo, and the ifb mechanism both ways (`*act`).
absl::StatusOr<csf_probe_result> ProbeChangeTail(ActTry* act) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return ErrnoStatus(errno, "probe pipe");
  bpf::Fd rd(fds[0]), wr(fds[1]);
  pid_t pid = fork();
  if (pid < 0) return ErrnoStatus(errno, "probe fork");
  if (pid == 0) {
    rd.Reset();
    csf_probe_result r{};
    r.trim_ret = -9999;
    bool act_ran = false, act_ok = false, ifb_ok = false, redirect_ok = false;
    std::string act_error, ifb_error, redirect_error;
    auto run = [&]() -> absl::Status {
      if (unshare(CLONE_NEWNET) != 0) return ErrnoStatus(errno, "unshare(CLONE_NEWNET)");
      RETURN_IF_ERROR(SetUpNoArp(1));
      bpf::LoadOptions lo;
      lo.programs = bpf::kProgProbeTail | bpf::kProgActSelectIngress | bpf::kProgTcIngress;
      ASSIGN_OR_RETURN(std::unique_ptr<bpf::Programs> progs, bpf::Programs::Load(lo));
      bpf_program* prog = progs->skel()->progs.csf_probe_tail;
      bpf_link* link = bpf_program__attach_tcx(prog, 1, nullptr);
      if (link == nullptr) {
        LIBBPF_OPTS(bpf_tc_hook, h, .ifindex = 1, .attach_point = BPF_TC_EGRESS);
        bpf_tc_hook_create(&h);
        LIBBPF_OPTS(bpf_tc_opts, o, .prog_fd = bpf_program__fd(prog));
        if (int e = bpf_tc_attach(&h, &o); e != 0) return ErrnoStatus(e, "attach probe to lo");
      }
      bpf::Fd s(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
      sockaddr_in to{};
      to.sin_family = AF_INET;
      to.sin_port = htons(9);
      to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      char payload[64] = {};
      sendto(s.get(), payload, sizeof(payload), 0, reinterpret_cast<sockaddr*>(&to), sizeof(to));
      uint32_t key = 0;
      if (bpf_map_lookup_elem(bpf_map__fd(progs->skel()->maps.csf_probe), &key, &r) != 0)
        return ErrnoStatus(errno, "read probe map");
      if (link) bpf_link__destroy(link);
      // act_csum, by trying: csumfix's classic selector filter with a csum action on lo's
      // ingress, as attach adds it. The kernel loads the act_csum module itself when it has one
      // (no CAP_SYS_MODULE needed); all of it goes with the namespace.
      LIBBPF_OPTS(bpf_tc_hook, hi, .ifindex = 1, .attach_point = BPF_TC_INGRESS);
      if (int e = bpf_tc_hook_create(&hi); e != 0 && e != -EEXIST) {
        act_error = std::string(ErrnoStatus(e, "create clsact on lo").message());
      } else {
        bpf_program* sel = progs->skel()->progs.csf_act_select_ingress;
        absl::Status a = AddSelectorFilter(1, true, 0xc5f, 0xc60, bpf_program__fd(sel),
                                           bpf_program__name(sel), /*mirred_to=*/0);
        act_ok = a.ok();
        if (!a.ok()) act_error = std::string(a.message());
        // The ifb mechanism, as attach sets it up (control/ifb.cc), on lo's ingress too.
        absl::Status f = [&]() -> absl::Status {
          RETURN_IF_ERROR(CreateIfb("csfprobe", 1));
          const uint32_t ifb = if_nametoindex("csfprobe");
          if (ifb == 0) return absl::InternalError("the ifb device vanished");
          RETURN_IF_ERROR(TxChecksumOff("csfprobe"));
          RETURN_IF_ERROR(SetUpNoArp(ifb));
          return AddSelectorFilter(1, true, 0xc5f, 0xc61, bpf_program__fd(sel),
                                   bpf_program__name(sel), ifb);
        }();
        ifb_ok = f.ok();
        if (!f.ok()) ifb_error = std::string(f.message());
        if (ifb_ok) {
          absl::Status d = TryIfbRedirect(*progs, if_nametoindex("csfprobe"));
          redirect_ok = d.ok();
          if (!d.ok()) redirect_error = std::string(d.message());
        }
      }
      act_ran = true;
      return absl::OkStatus();
    };
    absl::Status st = run();
    if (!st.ok()) {
      std::string m(st.message());
      (void)!write(wr.get(), "E", 1);
      (void)!write(wr.get(), m.data(), m.size());
      _exit(1);
    }
    // 'R', the result, one byte each for act_csum, ifb and ifb by redirect ('1' worked, '0'
    // refused), then the three error texts, NUL-separated.
    (void)!write(wr.get(), "R", 1);
    (void)!write(wr.get(), &r, sizeof(r));
    (void)!write(wr.get(), act_ok ? "1" : "0", 1);
    (void)!write(wr.get(), ifb_ok ? "1" : "0", 1);
    (void)!write(wr.get(), redirect_ok ? "1" : "0", 1);
    (void)!write(wr.get(), act_error.data(), act_error.size());
    (void)!write(wr.get(), "", 1);
    (void)!write(wr.get(), ifb_error.data(), ifb_error.size());
    (void)!write(wr.get(), "", 1);
    (void)!write(wr.get(), redirect_error.data(), redirect_error.size());
    _exit(0);
  }
  wr.Reset();
  std::string buf;
  char tmp[512];
  ssize_t n;
  while ((n = read(rd.get(), tmp, sizeof(tmp))) > 0) buf.append(tmp, n);
  int st = 0;
  waitpid(pid, &st, 0);
  if (buf.size() >= 4 + sizeof(csf_probe_result) && buf[0] == 'R') {
    csf_probe_result r;
    std::memcpy(&r, buf.data() + 1, sizeof(r));
    act->ran = true;
    act->ok = buf[1 + sizeof(r)] == '1';
    act->ifb_ok = buf[2 + sizeof(r)] == '1';
    act->ifb_redirect_ok = buf[3 + sizeof(r)] == '1';
    const std::vector<std::string> texts =
        absl::StrSplit(buf.substr(4 + sizeof(r)), absl::ByChar('\0'));
    if (texts.size() > 0) act->error = texts[0];
    if (texts.size() > 1) act->ifb_error = texts[1];
    if (texts.size() > 2) act->ifb_redirect_error = texts[2];
    return r;
  }
  if (!buf.empty() && buf[0] == 'E') return absl::InternalError("probe: " + buf.substr(1));
  return absl::InternalError("probe child died without a result");
}

}  // namespace

std::string ProbeToJson(const ProbeResult& r) {
  json j{{"kernel", r.kernel},
         {"boot_id", r.boot_id},
         {"cached", r.cached},
         {"kern_ctx_kfunc", r.kern_ctx_kfunc},
         {"tcx", r.tcx},
         {"change_tail_clears_partial", r.change_tail_clears_partial},
         {"change_tail_detail", r.change_tail_detail},
         {"act_csum", r.act_csum},
         {"act_csum_detail", r.act_csum_detail},
         {"ifb", r.ifb},
         {"ifb_detail", r.ifb_detail},
         {"ifb_redirect", r.ifb_redirect},
         {"ifb_redirect_detail", r.ifb_redirect_detail},
         {"mechanism", std::string(names::MechanismName(r.mechanism))},
         {"reason", r.reason},
         {"complete", r.complete},
         {"undetermined", r.undetermined}};
  return j.dump();
}

absl::StatusOr<ProbeResult> Probe(bool refresh, const std::string& cache_dir) {
  ProbeResult r;
  utsname u{};
  uname(&u);
  r.kernel = u.release;
  r.boot_id = ReadFirstLine("/proc/sys/kernel/random/boot_id");
  const std::string cache = cache_dir + "/probe.json";
  if (!refresh) {
    std::ifstream f(cache);
    if (f) {
      json j = json::parse(f, nullptr, /*allow_exceptions=*/false);
      // Only complete results are written; a file saying otherwise is not trusted either.
      // A cache written before the ifb facts existed lacks them: probe again.
      if (!j.is_discarded() && j.value("boot_id", "") == r.boot_id && !r.boot_id.empty() &&
          j.value("complete", true) && j.contains("ifb") && j.contains("ifb_redirect")) {
        r.cached = true;
        r.kern_ctx_kfunc = j.value("kern_ctx_kfunc", false);
        r.tcx = j.value("tcx", false);
        r.change_tail_clears_partial = j.value("change_tail_clears_partial", false);
        r.change_tail_detail = j.value("change_tail_detail", "");
        r.act_csum = j.value("act_csum", false);
        r.act_csum_detail = j.value("act_csum_detail", "");
        r.ifb = j.value("ifb", false);
        r.ifb_detail = j.value("ifb_detail", "");
        r.ifb_redirect = j.value("ifb_redirect", false);
        r.ifb_redirect_detail = j.value("ifb_redirect_detail", "");
        r.mechanism = names::MechanismFromName(j.value("mechanism", "observe")).value_or(CSF_MECH_OBSERVE);
        r.reason = j.value("reason", "");
        if (r.mechanism < CSF_MECH_MAX) return r;
      }
    }
  }
  r.kern_ctx_kfunc = HaveKfunc("bpf_cast_to_kern_ctx");
  std::string unknown;
  r.tcx = HaveTcx(&unknown);
  if (!unknown.empty()) r.undetermined.push_back(unknown);
  ActTry act_try;
  auto tail = ProbeChangeTail(&act_try);
  if (!tail.ok()) {
    r.change_tail_detail = absl::StrCat("probe failed: ", tail.status().message());
    r.undetermined.push_back(absl::StrCat(
        "change_tail: ", tail.status().message(),
        EffectiveCap(CAP_SYS_ADMIN) ? "" : " (the throwaway namespace needs CAP_SYS_ADMIN)"));
  } else if (!tail->seen) {
    r.change_tail_detail = "no CHECKSUM_PARTIAL datagram reached the probe on lo";
    r.undetermined.push_back("change_tail: " + r.change_tail_detail);
  } else {
    r.change_tail_clears_partial = tail->trim_ret == 0 && tail->summed_after != 3;
    r.change_tail_detail =
        absl::StrCat("bpf_skb_change_tail below the checksum field returned ", tail->trim_ret,
                     ", ip_summed after: ", tail->summed_after,
                     r.change_tail_clears_partial ? " (PARTIAL cleared: fixed kernel)"
                                                  : " (no: kernel lacks the change_tail fix)");
  }
  unknown.clear();
  r.act_csum = HaveActCsum(act_try, &r.act_csum_detail, &unknown);
  if (!unknown.empty()) r.undetermined.push_back(unknown);
  if (act_try.ran) {
    r.ifb = act_try.ifb_ok;
    r.ifb_detail = r.ifb ? "an ifb device with tx checksumming off and csumfix's selector with a "
                           "mirred action to it work (tried in a throwaway namespace)"
                         : absl::StrCat("the kernel refused it in a throwaway namespace: ",
                                        act_try.ifb_error, " (CONFIG_IFB or CONFIG_NET_ACT_MIRRED "
                                        "unset?)");
    r.ifb_redirect = act_try.ifb_redirect_ok;
    r.ifb_redirect_detail =
        !r.ifb   ? "not tried: no ifb"
        : r.ifb_redirect
            ? "a datagram csumfix's program redirected into the ifb came back complete: attach "
              "redirects into the ifb itself, no selector filter"
            : absl::StrCat(act_try.ifb_redirect_error, "; attach uses the selector with mirred");
  } else {
    r.ifb_detail = "not tried: no throwaway namespace";
    r.ifb_redirect_detail = r.ifb_detail;
    r.undetermined.push_back("ifb: no throwaway namespace to try an ifb device in");
  }
  r.complete = r.undetermined.empty();

  // Order: pure BPF -> act_csum behind a selector -> bounce veth -> observe-only. Never by
  // version number: distributions backport fixes, so only trying the operation tells.
  if (r.change_tail_clears_partial) {
    r.mechanism = CSF_MECH_BPF;
    r.reason = absl::StrCat("bpf_skb_change_tail clears CHECKSUM_PARTIAL: pure BPF fill",
                            r.kern_ctx_kfunc ? "" : " (skb state through probe-read: no kfunc)");
  } else if (r.act_csum) {
    r.mechanism = CSF_MECH_ACT_CSUM;
    r.reason =
        "no change_tail fix; act_csum available: classic act_csum behind the csumfix "
        "selector";
  } else {
    r.mechanism = CSF_MECH_BOUNCE;
    r.reason = "no change_tail fix and no act_csum: the bounce veth is what works here";
  }
  if (!r.complete) {
    // Never cache a guess: the next run with the privileges finds out (and caches that).
    r.reason = absl::StrCat(
        "incomplete probe (", absl::StrJoin(r.undetermined, "; "), "): ",
        names::MechanismName(r.mechanism),
        " is the best of what is known (bounce works on every kernel); not cached. Run `csumfix "
        "probe` as root for this kernel's real choice");
    return r;
  }

  mkdir(cache_dir.c_str(), 0700);
  std::ofstream out(cache + ".tmp");
  out << ProbeToJson(r) << "\n";
  out.close();
  if (out) rename((cache + ".tmp").c_str(), cache.c_str());
  return r;
}

}  // namespace csumfix::control
