// Malformed command lines: each must fail with the documented exit code (2 usage error, from the
// parser or a check it cannot express; 1 an operation refused) and a message that names what is
// wrong. None of them may change anything: every case is rejected before a pin, a hook or a rule
// is touched, and the test checks that /sys/fs/bpf/csumfix looks the same afterwards.
// Runs the csumfix binary as root (CSUMFIX_BIN, else the build tree's).
#include <unistd.h>

#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "netns/lab.h"

namespace csumfix::testing {
namespace {

struct Malformed {
  const char* name;
  std::vector<std::string> args;
  int rc;                             // 2: usage error, 1: refused
  std::vector<std::string> mentions;  // every one must appear in stderr
};

std::vector<Malformed> Cases() {
  const std::string long_if(40, 'x');
  return {
      // Commands and global options.
      // Usage errors name the word, list the valid ones and point at the help.
      {"unknown_command", {"frobnicate"}, 2,
       {"unknown command \"frobnicate\"", "attach, detach, upgrade, clean, status", "diagnose", "serve",
        "csumfix --help"}},
      {"unknown_command_after_netns", {"-n", "csf-no-such-ns", "frobnicate"}, 2,
       {"unknown command \"frobnicate\"", "csumfix --help"}},
      {"no_command", {}, 2, {"no command given", "attach", "csumfix --help"}},
      {"policy_unknown_subcommand", {"policy", "frobnicate"}, 2,
       {"policy: unknown command \"frobnicate\"", "add", "list", "csumfix policy --help"}},
      {"unknown_netns", {"-n", "csf-no-such-ns", "status"}, 1,
       {"csf-no-such-ns", "no namespace", "ip netns list"}},
      {"netns_path_escape", {"-n", "../../etc", "status"}, 1,
       {"../../etc", "not a namespace name"}},
      {"netns_empty", {"-n", "", "status"}, 1, {"not a namespace name"}},
      // attach: interface names.
      {"attach_no_iface", {"attach"}, 2, {"attach: iface is required", "csumfix attach --help"}},
      {"attach_empty_iface", {"attach", ""}, 1, {"not a valid interface name"}},
      {"attach_long_iface", {"attach", long_if}, 1,
       {long_if, "not a valid interface name (1 to 15 characters"}},
      {"attach_slash_iface", {"attach", "../maps"}, 1, {"../maps", "not a valid interface name"}},
      {"attach_dotdot_iface", {"attach", ".."}, 1, {"not a valid interface name"}},
      {"attach_missing_iface", {"attach", "csf-nosuch0"}, 1,
       {"csf-nosuch0", "no interface", "ip link show"}},
      // attach: actions, mechanisms, APIs, conflicting flags.
      {"attach_misspelt_option", {"attach", "lo", "--acton", "fill"}, 2,
       {"attach: unknown option --acton", "csumfix attach --help"}},
      {"attach_bad_action", {"attach", "lo", "--action", "frobnicate"}, 2,
       {"frobnicate", "unknown action", "fill"}},
      {"attach_empty_action", {"attach", "lo", "--action", ""}, 2, {"unknown action"}},
      {"attach_bad_mechanism", {"attach", "lo", "--mechanism", "telepathy"}, 2,
       {"telepathy", "bounce"}},
      {"attach_bad_tc_api", {"attach", "lo", "--tc-api", "netgraph"}, 2, {"netgraph", "tcx"}},
      {"attach_redirect_without_xdp", {"attach", "lo", "--mechanism", "observe", "--redirect-to", "lo"},
       1, {"--redirect-to needs --xdp"}},
      {"attach_redirect_missing_target",
       {"attach", "lo", "--mechanism", "observe", "--xdp", "--redirect-to", "csf-nosuch0"}, 1,
       {"csf-nosuch0", "no such interface"}},
      {"attach_unknown_flag", {"attach", "lo", "--turbo"}, 2,
       {"attach: ", "--turbo", "csumfix attach --help"}},
      {"attach_extra_argument", {"attach", "lo", "eth9"}, 2, {"eth9", "not expected"}},
      {"status_unknown_flag", {"status", "--bogus"}, 2, {"status: ", "--bogus"}},
      {"flows_top_not_number", {"flows", "--top", "many"}, 2, {"many"}},
      {"flows_top_negative", {"flows", "--top", "-1"}, 2, {"--top", "-1", "not in range 0"}},
      // detach.
      {"detach_nothing", {"detach"}, 2, {"detach: name an interface or use --all", "--help"}},
      {"check_config_without_config", {"serve", "--check-config"}, 2,
       {"--check-config needs --config FILE"}},
      // --check-config takes the command line as serve would: a name is no listen address.
      {"check_config_bad_listen",
       {"serve", "--config", std::string(CSUMFIX_SOURCE_DIR) + "/packaging/csumfix.toml",
        "--check-config", "--web.listen-address", "localhost:19786"},
       1, {"localhost:19786", "the host must be an IP address"}},
      {"stats_not_attached", {"stats", "csf-nosuch0"}, 1,
       {"csf-nosuch0 is not attached", "csumfix attach csf-nosuch0"}},
      {"status_not_attached", {"status", "csf-nosuch0"}, 1,
       {"csf-nosuch0 is not attached", "csumfix status"}},
      {"detach_iface_and_all", {"detach", "lo", "--all"}, 2, {"--all", "excludes"}},
      {"upgrade_not_attached", {"upgrade", "csf-nosuch0"}, 1,
       {"upgrade: csf-nosuch0 is not attached", "csumfix status"}},
      // policy add: prefixes, ports, protocols, conflicting versions.
      {"policy_no_action", {"policy", "add", "--proto", "udp"}, 2, {"--action", "required"}},
      {"policy_bad_action", {"policy", "add", "--action", "scramble"}, 2,
       {"scramble", "unknown action"}},
      {"policy_prefix_too_long", {"policy", "add", "--action", "fill", "--src", "10.0.0.0/33"}, 1,
       {"10.0.0.0/33", "prefix length"}},
      {"policy_prefix_not_ip", {"policy", "add", "--action", "fill", "--dst", "tap0/24"}, 1,
       {"tap0/24"}},
      {"policy_prefix_garbage", {"policy", "add", "--action", "fill", "--src", "1.2.3.4/8/9"}, 1,
       {"1.2.3.4/8/9", "not a prefix"}},
      {"policy_ip6_prefix_too_long",
       {"policy", "add", "--action", "fill", "--src", "fd00::/129"}, 1,
       {"fd00::/129", "prefix length"}},
      {"policy_mixed_versions",
       {"policy", "add", "--action", "fill", "--src", "10.0.0.0/8", "--dst", "fd00::/64"}, 1,
       {"IPv"}},
      {"policy_ip_version_conflict",
       {"policy", "add", "--action", "fill", "--ip", "4", "--src", "fd00::/64"}, 1,
       {"fd00::/64", "IPv"}},
      {"policy_bad_ip_version", {"policy", "add", "--action", "fill", "--ip", "5"}, 2, {"5"}},
      {"policy_port_without_proto", {"policy", "add", "--action", "fill", "--dport", "67"}, 1,
       {"--proto"}},
      {"policy_port_too_big",
       {"policy", "add", "--action", "fill", "--proto", "udp", "--dport", "70000"}, 1,
       {"70000"}},
      {"policy_port_range_reversed",
       {"policy", "add", "--action", "fill", "--proto", "udp", "--dport", "68-67"}, 1,
       {"68-67"}},
      {"policy_port_not_number",
       {"policy", "add", "--action", "fill", "--proto", "tcp", "--sport", "http"}, 1,
       {"http"}},
      {"policy_port_on_icmp",
       {"policy", "add", "--action", "fill", "--proto", "icmp", "--dport", "7"}, 1,
       {"port"}},
      {"policy_bad_proto", {"policy", "add", "--action", "fill", "--proto", "smtp"}, 1,
       {"smtp"}},
      {"policy_bad_hook", {"policy", "add", "--action", "fill", "--hook", "sideways"}, 2,
       {"sideways"}},
      {"policy_missing_iface", {"policy", "add", "--action", "fill", "--iface", "csf-nosuch0"}, 1,
       {"csf-nosuch0", "no such interface"}},
      {"policy_del_not_number", {"policy", "del", "seven"}, 2, {"seven"}},
      {"policy_no_subcommand", {"policy"}, 2, {"policy: no command given", "add"}},
      {"zone_bad_prefix", {"policy", "zone", "--prefix", "10.1.0.0/99"}, 1, {"10.1.0.0/99"}},
  };
}

std::set<std::string> PinTree() {
  std::set<std::string> out;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator("/sys/fs/bpf/csumfix", ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec))
    out.insert(it->path().string());
  return out;
}

TEST(CliMalformed, ExitCodeAndMessageNameTheProblem) {
  ASSERT_EQ(geteuid(), 0) << "run as root (scripts/test.sh): the refusals must come from csumfix's "
                             "checks, not from missing privileges";
  const std::set<std::string> pins_before = PinTree();
  for (const Malformed& c : Cases()) {
    SCOPED_TRACE(c.name);
    const CmdResult r = Csumfix(c.args);
    EXPECT_EQ(r.rc, c.rc) << c.name << "\nstdout: " << r.out << "\nstderr: " << r.err;
    for (const std::string& m : c.mentions)
      EXPECT_NE(r.err.find(m), std::string::npos)
          << c.name << ": stderr does not mention \"" << m << "\":\n" << r.err;
    // A refusal prints nothing on stdout that looks like success.
    EXPECT_EQ(r.out.find("attached "), std::string::npos) << c.name;
    EXPECT_EQ(r.out.find("added"), std::string::npos) << c.name;
  }
  EXPECT_EQ(PinTree(), pins_before) << "a malformed command changed /sys/fs/bpf/csumfix";
}

}  // namespace
}  // namespace csumfix::testing
