// control::ParseRule's errors say which field failed, as a typed RuleField (RuleErrorField), and
// spell it as the caller asks: the CLI's flags by default, the config file's keys with
// KeySpelling. ZoneRules pairs prefixes of the same IP version only. Unprivileged: no interface
// is named but one that does not exist.
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "control/policy.h"
#include "csumfix/abi.h"
#include "gtest/gtest.h"

namespace csumfix::control {
namespace {

struct BadField {
  const char* what;
  RuleSpec spec;
  RuleField field;
  const char* flag_message;  // how the message starts with the CLI's spelling
  const char* key_message;   // ... with the config file's
};

RuleSpec Spec(void (*set)(RuleSpec&)) {
  RuleSpec s;
  s.action = "fill";
  set(s);
  return s;
}

TEST(RuleParse, ErrorsCarryTheFieldThatFailed) {
  const BadField cases[] = {
      {"src", Spec([](RuleSpec& s) { s.src = "10.0.0.300/8"; }), RuleField::kSrc,
       "--src 10.0.0.300/8: not an IPv4 or IPv6 address", "src 10.0.0.300/8: not an IPv4"},
      {"dst", Spec([](RuleSpec& s) { s.dst = "10.0.0.0/33"; }), RuleField::kDst,
       "--dst 10.0.0.0/33: prefix length must be 1-32", "dst 10.0.0.0/33: prefix length"},
      {"dst of the other version",
       Spec([](RuleSpec& s) { s.src = "10.0.0.0/8", s.dst = "fd00::/64"; }),
       RuleField::kDst, "--dst fd00::/64 is IPv6 but the rule is IPv4", "dst fd00::/64 is IPv6"},
      {"src against ip", Spec([](RuleSpec& s) { s.ip = 6, s.src = "10.0.0.0/8"; }),
       RuleField::kSrc, "--src 10.0.0.0/8 is IPv4 but the rule is IPv6", "src 10.0.0.0/8 is IPv4"},
      {"sport", Spec([](RuleSpec& s) { s.proto = "udp", s.sport = "0"; }), RuleField::kSport,
       "--sport 0: write a port (80) or a range", "sport 0: write a port"},
      {"dport", Spec([](RuleSpec& s) { s.proto = "tcp", s.dport = "9-1"; }), RuleField::kDport,
       "--dport 9-1: write a port (80) or a range", "dport 9-1: write a port"},
      {"dport range", Spec([](RuleSpec& s) { s.proto = "tcp", s.dport = "1-5000"; }),
       RuleField::kDport, "--dport 1-5000: at most 4096 ports", "dport 1-5000: at most"},
      {"ports without proto", Spec([](RuleSpec& s) { s.dport = "80"; }), RuleField::kSport,
       "--sport/--dport need --proto tcp, udp, udplite or sctp",
       "sport/dport need proto tcp, udp, udplite or sctp"},
      {"proto", Spec([](RuleSpec& s) { s.proto = "tcpp"; }), RuleField::kProto,
       "--proto tcpp: use tcp, udp", "proto tcpp: use tcp, udp"},
      {"action", Spec([](RuleSpec& s) { s.action = "fixit"; }), RuleField::kAction,
       "--action fixit: use pass, observe", "action fixit: use pass, observe"},
      {"hook", Spec([](RuleSpec& s) { s.hook = "egres"; }), RuleField::kHook,
       "--hook egres: use ingress, egress or xdp", "hook egres: use ingress"},
      {"ip", Spec([](RuleSpec& s) { s.ip = 5; }), RuleField::kIp, "--ip: use 4 or 6",
       "ip: use 4 or 6"},
      {"iface", Spec([](RuleSpec& s) { s.ifname = "nosuch-csf0"; }), RuleField::kIface,
       "--iface nosuch-csf0: no such interface", "iface nosuch-csf0: no such interface"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    auto flags = ParseRule(c.spec);
    ASSERT_FALSE(flags.ok());
    EXPECT_EQ(RuleErrorField(flags.status()), c.field);
    EXPECT_EQ(flags.status().message().rfind(c.flag_message, 0), 0u) << flags.status();
    auto keys = ParseRule(c.spec, KeySpelling);
    ASSERT_FALSE(keys.ok());
    EXPECT_EQ(RuleErrorField(keys.status()), c.field);
    EXPECT_EQ(keys.status().code(), flags.status().code());
    EXPECT_EQ(keys.status().message().rfind(c.key_message, 0), 0u) << keys.status();
  }
}

TEST(RuleParse, ErrorsAboutTheWholeRuleNameNoField) {
  RuleSpec s;
  s.action = "fill";
  s.proto = "udp";
  s.sport = "1000-1099";
  s.dport = "2000-2099";  // 100 x 100 port pairs
  auto r = ParseRule(s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(RuleErrorField(r.status()), RuleField::kNone);
  EXPECT_EQ(RuleErrorField(absl::InvalidArgumentError("--src x: not from ParseRule")),
            RuleField::kNone);
  EXPECT_EQ(RuleErrorField(absl::OkStatus()), RuleField::kNone);
}

TEST(RuleParse, SpellingsOfEveryField) {
  EXPECT_EQ(FlagSpelling(RuleField::kDport), "--dport");
  EXPECT_EQ(KeySpelling(RuleField::kDport), "dport");
  EXPECT_EQ(KeySpelling(RuleField::kNone), "");
  for (RuleField f : {RuleField::kIface, RuleField::kHook, RuleField::kIp, RuleField::kProto,
                      RuleField::kSrc, RuleField::kDst, RuleField::kSport, RuleField::kDport,
                      RuleField::kAction}) {
    EXPECT_FALSE(KeySpelling(f).empty());
    EXPECT_EQ(FlagSpelling(f), "--" + KeySpelling(f));
  }
}

TEST(ZoneRules, PairsOnlyPrefixesOfTheSameVersion) {
  // Two IPv4 members and one IPv6: pass rules 10.1<->10.1, 10.1<->10.2, 10.2<->10.1,
  // 10.2<->10.2, fd00<->fd00, and a fill rule per member.
  auto r = ZoneRules({"10.1.0.0/16", "fd00::/64", "10.2.0.0/16"}, "", 50);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->size(), 8u);
  size_t pass = 0, fill = 0;
  for (const auto& rule : *r) {
    if (rule.action == CSF_ACT_PASS) {
      ++pass;
      EXPECT_EQ(rule.priority, 50u);
      EXPECT_EQ(rule.src_len != 0 && rule.dst_len != 0, true);
    } else {
      ++fill;
      EXPECT_EQ(rule.action, uint32_t{CSF_ACT_FILL});
      EXPECT_EQ(rule.priority, 51u);
      EXPECT_EQ(rule.dst_len, 0);
    }
    EXPECT_TRUE(rule.ipver == 4 || rule.ipver == 6);
  }
  EXPECT_EQ(pass, 5u);
  EXPECT_EQ(fill, 3u);
}

TEST(ZoneRules, OnlyIPv6MembersAndOnlyMixedOnes) {
  auto v6 = ZoneRules({"fd00::/64", "fd01::/64"}, "", 10);
  ASSERT_TRUE(v6.ok()) << v6.status();
  EXPECT_EQ(v6->size(), 6u);
  auto mixed = ZoneRules({"192.0.2.0/24", "2001:db8::/32"}, "", 10);
  ASSERT_TRUE(mixed.ok()) << mixed.status();
  EXPECT_EQ(mixed->size(), 4u);  // each member with itself, and its fill rule
}

TEST(ZoneRules, ABadMemberIsParseRulesErrorWithItsField) {
  auto r = ZoneRules({"10.1.0.0/16", "bogus"}, "", 50);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(RuleErrorField(r.status()), RuleField::kDst);
  EXPECT_EQ(r.status().message().rfind("--dst bogus: not an IPv4 or IPv6 address", 0), 0u)
      << r.status();
  // A bad member next to one of the other version is still reported, not skipped.
  r = ZoneRules({"fd00::/64", "10.1.0.300/16"}, "", 50);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  r = ZoneRules({"10.1.0.0/16"}, "nosuch-csf0", 50);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(RuleErrorField(r.status()), RuleField::kIface);
}

}  // namespace
}  // namespace csumfix::control
