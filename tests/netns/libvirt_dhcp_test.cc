// The libvirt recipe, run: "the guest gets no DHCP lease". dnsmasq answers on the bridge (as on
// virbr0) with UDP it generated itself, so the OFFER leaves with CHECKSUM_PARTIAL; through a TAP
// whose reader took checksum offload (TUN_F_CSUM, as QEMU does for a virtio guest) it reaches the
// guest as NEEDS_CSUM with the pseudo-header seed in the field, which a raw-socket DHCP client
// drops. The lab (partial_lab.h): br0 in namespace A carries dnsmasq; tapr is the guest's TAP,
// read as QEMU reads it (virtio_net_hdr + frame); the DHCP client (busybox udhcpc, asking for
// broadcast answers) sits in namespace B behind the veth port vbr, so the OFFER is flooded to
// tapr. Each fix is applied the way the README's Deploy section gives it, then the OFFER as the
// guest receives it must carry a complete checksum and no NEEDS_CSUM:
//   - the recipe packaging/recipes/libvirt.toml: csumfix serve, egress on the bridge itself
//     (and ingress on its TAPs, for the other direction);
//   - csumfix serve, egress on the bridge's TAPs (master = "br0", kind = "tun") with action pass
//     and a [[rule]] udp dport 68 fill (only DHCP answers are touched);
//   - iptables' mangle CHECKSUM --checksum-fill for udp dport 68 (libvirt's iptables backend);
//   - a tc rule on the bridge (tc filter ... action csum udp, libvirt's answer for its nftables
//     backend, which has no CHECKSUM target), where the kernel has act_csum (not this host's
//     6.18; the VM matrix's act-csum kernels run it).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "netns/lab.h"
#include "netns/mechanisms.h"
#include "netns/partial_lab.h"

namespace csumfix::testing {
namespace {

constexpr char kBridgeAddr[] = "10.88.0.254/24";

class LibvirtDhcp : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0) << "netns tests need root: run scripts/test.sh as root";
    ASSERT_EQ(testing::Run({"sh", "-c", "command -v dnsmasq && command -v busybox"}).rc, 0)
        << "dnsmasq (dnsmasq-base) and busybox are needed: scripts/deps.sh installs them";
    ASSERT_TRUE(lab_.Setup()) << "lab setup failed: " << lab_.error();
    tmp_ = "/tmp/csf-dhcp-" + std::to_string(getpid());
    ASSERT_EQ(testing::Run({"mkdir", "-p", tmp_}).rc, 0);
    ASSERT_EQ(lab_.ns().Ip(std::string("addr add ") + kBridgeAddr + " dev br0"), 0);
    // dnsmasq as libvirt runs it on virbr0: DHCP only (no DNS), bound to the bridge.
    ASSERT_EQ(lab_.ns().Exec("dnsmasq --port=0 --interface=br0 --bind-interfaces --except-interface=lo "
                             "--dhcp-range=10.88.0.100,10.88.0.150,1h --dhcp-authoritative "
                             "--dhcp-leasefile=" + tmp_ + "/leases --pid-file=" + tmp_ +
                             "/dnsmasq.pid --log-facility=" + tmp_ + "/dnsmasq.log"),
              0);
  }
  void TearDown() override {
    StopServe();
    lab_.ns().Exec("kill $(cat " + tmp_ + "/dnsmasq.pid) 2>/dev/null");
    lab_.ns().Exec("iptables -t mangle -F POSTROUTING 2>/dev/null");
    Csumfix({"-n", lab_.ns().name(), "policy", "flush"});
    Csumfix({"-n", lab_.ns().name(), "detach", "--all"});
    unlink(("/run/csumfix/serve-" + lab_.ns().name() + ".json").c_str());
    testing::Run({"rm", "-rf", tmp_});
    EXPECT_FALSE(PathExists("/sys/fs/bpf/csumfix/v1")) << "pins left behind";
  }

  // One DHCP exchange: udhcpc in B sends DISCOVERs (broadcast flag set), dnsmasq offers; the
  // OFFER as it reaches the guest's TAP (tapr), or nullopt when none came.
  std::optional<TapFrame> Offer() {
    TapReader reader(lab_.tapr_fd(), PortFilter{67, 68});
    const std::string client = "busybox udhcpc -f -q -n -B -t 3 -T 1 -i " + lab_.peer_if() +
                               " -s /bin/true >/dev/null 2>&1 &";
    EXPECT_EQ(lab_.peer().Exec(client), 0);
    std::vector<TapFrame> got = reader.Collect(1, std::chrono::milliseconds(8000));
    lab_.peer().Exec("pkill -f 'busybox udhcpc' || true");
    if (got.empty()) return std::nullopt;
    return got[0];
  }
  // Starts `csumfix -n A serve --config` with `toml`; waits until `attached` is attached.
  void StartServe(const std::string& toml, const std::string& attached) {
    const std::string cfg = tmp_ + "/csumfix.toml";
    std::ofstream(cfg) << toml;
    CmdResult check = Csumfix({"-n", lab_.ns().name(), "serve", "--config", cfg, "--check-config"});
    ASSERT_EQ(check.rc, 0) << check.err;
    serve_ = fork();
    if (serve_ == 0) {
      FILE* f = fopen((tmp_ + "/serve.log").c_str(), "a");
      if (f) {
        dup2(fileno(f), 1);
        dup2(fileno(f), 2);
      }
      const std::string bin = CsumfixPath(), ns = lab_.ns().name();
      execl(bin.c_str(), bin.c_str(), "-n", ns.c_str(), "serve", "--config", cfg.c_str(),
            static_cast<char*>(nullptr));
      _exit(127);
    }
    ASSERT_TRUE(WaitFor(
        [&] {
          CmdResult s = Csumfix({"-n", lab_.ns().name(), "status"});
          return s.rc == 0 && s.out.find(attached) != std::string::npos;
        },
        60))
        << "serve did not attach " << attached;
  }
  void StopServe() {
    if (serve_ <= 0) return;
    kill(serve_, SIGTERM);
    waitpid(serve_, nullptr, 0);
    serve_ = -1;
  }
  // The OFFER must reach the guest complete: no NEEDS_CSUM, a checksum that verifies.
  void ExpectCompleteOffer(const std::string& how) {
    std::optional<TapFrame> f = Offer();
    ASSERT_TRUE(f.has_value()) << how << ": no DHCP OFFER reached the guest's TAP";
    EXPECT_FALSE(f->needs_csum()) << how << ": the OFFER still carries NEEDS_CSUM";
    EXPECT_TRUE(f->check.valid) << how << ": UDP checksum field 0x" << std::hex << f->check.field
                                << ", correct 0x" << f->check.expected;
  }

  PartialLab lab_;
  std::string tmp_;
  pid_t serve_ = -1;
};

TEST_F(LibvirtDhcp, WithoutAFixTheOfferReachesTheGuestAsASeed) {
  std::optional<TapFrame> f = Offer();
  ASSERT_TRUE(f.has_value()) << "no DHCP OFFER reached the guest's TAP";
  EXPECT_TRUE(f->needs_csum()) << "the lab must show the problem";
  EXPECT_TRUE(f->check.is_seed) << "field 0x" << std::hex << f->check.field << ", seed 0x"
                                << f->check.seed;
  EXPECT_FALSE(f->check.valid);
}

// The recipe as shipped (packaging/recipes/libvirt.toml), with the lab's bridge for virbr0.
TEST_F(LibvirtDhcp, TheRecipeCompletesTheOffer) {
  std::ifstream in(std::string(CSUMFIX_SOURCE_DIR) + "/packaging/recipes/libvirt.toml");
  std::stringstream text;
  text << in.rdbuf();
  std::string recipe = text.str();
  ASSERT_FALSE(recipe.empty());
  for (size_t at; (at = recipe.find("\"virbr0\"")) != std::string::npos;)
    recipe.replace(at, 8, "\"br0\"");
  StartServe(recipe, "tapr");
  ExpectCompleteOffer("the libvirt recipe (egress on the bridge)");
}

TEST_F(LibvirtDhcp, CsumfixOnTheBridgesTapsWithADhcpRuleCompletesTheOffer) {
  // The TAPs' own action is pass; the fill comes from the rule alone (which is why "auto" gives
  // them the probe's mechanism rather than observe).
  StartServe(R"([[interface]]
master = "br0"
kind = "tun"
hooks = ["egress"]
action = "pass"
mechanism = "auto"

[[rule]]
proto = "udp"
dport = 68
action = "fill"
priority = 10
)",
             "tapr");
  ExpectCompleteOffer("master = br0 egress + dport 68 rule");
}

TEST_F(LibvirtDhcp, IptablesChecksumFillCompletesTheOffer) {
  ASSERT_EQ(lab_.ns().Exec("iptables -t mangle -A POSTROUTING -p udp --dport 68 "
                           "-j CHECKSUM --checksum-fill"),
            0);
  ExpectCompleteOffer("iptables CHECKSUM --checksum-fill");
}

TEST_F(LibvirtDhcp, LibvirtsActCsumRuleCompletesTheOffer) {
  const ProbeFacts& p = Probe();
  ASSERT_TRUE(p.ok) << p.error;
  if (!p.act_csum) {
    // Only a skip where the kernel lacks act_csum; the act-csum kernels of the VM matrix run it.
    GTEST_SKIP() << "this kernel has no act_csum (csumfix probe: " << p.json
                 << "): the tc csum rule cannot be installed here";
  }
  // An egress filter on the bridge recomputing the UDP checksum of DHCP answers.
  ASSERT_EQ(lab_.ns().Exec("tc qdisc add dev br0 clsact && tc filter add dev br0 egress "
                           "protocol ip u32 match ip protocol 17 0xff match ip dport 68 0xffff "
                           "action csum udp"),
            0);
  ExpectCompleteOffer("tc action csum udp on br0");
}

}  // namespace
}  // namespace csumfix::testing
