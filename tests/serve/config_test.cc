// The serve config file: a valid file loads into the expected specs and rules; every kind of
// mistake is an error naming FILE:LINE:COLUMN of the offending key or value and the reason.
// Uses only the loopback interface, so it runs unprivileged.
#include <unistd.h>

#include <fstream>
#include <string>

#include "config/config.h"
#include "csumfix/abi.h"
#include "gtest/gtest.h"

namespace csumfix::config {
namespace {

class ConfigFile : public ::testing::Test {
 protected:
  std::string Write(const std::string& text) {
    path_ = "/tmp/csf-config-" + std::to_string(getpid()) + ".toml";
    std::ofstream(path_) << text;
    return path_;
  }
  // The error of loading `text`, which must fail with InvalidArgument.
  std::string Error(const std::string& text) {
    auto c = Load(Write(text));
    EXPECT_FALSE(c.ok());
    if (c.ok()) return "";
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument) << c.status();
    return std::string(c.status().message());
  }
  void TearDown() override {
    if (!path_.empty()) unlink(path_.c_str());
  }
  std::string path_;
};

TEST_F(ConfigFile, ValidFileLoads) {
  auto c = Load(Write(R"(# comment
[[interface]]
name = "lo"
hooks = ["ingress", "egress"]
action = "verify"
mechanism = "observe"

[[rule]]
proto = "udp"
dport = "67-68"
action = "fill"
priority = 10

[[rule]]
iface = "lo"
ip = 6
proto = 6
sport = 443
action = "drop-bad"

[[zone]]
prefixes = ["10.1.0.0/16", "10.2.0.0/16"]
)"));
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->interfaces.size(), 1u);
  const InterfaceSpec& i = c->interfaces[0];
  EXPECT_EQ(i.name, "lo");
  EXPECT_TRUE(i.ingress);
  EXPECT_TRUE(i.egress);
  EXPECT_FALSE(i.xdp);
  EXPECT_EQ(i.action, uint32_t{CSF_ACT_VERIFY});
  EXPECT_EQ(i.mechanism, "observe");
  EXPECT_EQ(i.where, path_ + ":2:1");
  // 2 rules + zone of 2 prefixes: 4 pass rules and 2 fill rules.
  ASSERT_EQ(c->rules.size(), 8u);
  EXPECT_EQ(c->rules[0].action, uint32_t{CSF_ACT_FILL});
  EXPECT_EQ(c->rules[0].proto, 17);
  EXPECT_EQ(c->rules[0].dport_lo, 67);
  EXPECT_EQ(c->rules[0].dport_hi, 68);
  EXPECT_EQ(c->rules[0].priority, 10u);
  EXPECT_EQ(c->rules[1].action, uint32_t{CSF_ACT_DROP_BAD});
  EXPECT_EQ(c->rules[1].ipver, 6);
  EXPECT_EQ(c->rules[1].sport_lo, 443);
  EXPECT_TRUE(c->rules[1].flags & CSF_POL_F_IFINDEX);
  EXPECT_EQ(c->rules[1].priority, 100u);
  int pass = 0, fill = 0;
  for (size_t k = 2; k < c->rules.size(); ++k) {
    pass += c->rules[k].action == CSF_ACT_PASS && c->rules[k].priority == 50;
    fill += c->rules[k].action == CSF_ACT_FILL && c->rules[k].priority == 51;
  }
  EXPECT_EQ(pass, 4);
  EXPECT_EQ(fill, 2);
}

TEST_F(ConfigFile, EmptyFileIsNoInterfacesNoRules) {
  auto c = Load(Write("# nothing\n"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->interfaces.empty());
  EXPECT_TRUE(c->rules.empty());
}

// Every fill mechanism `attach --mechanism` takes is accepted (whether the kernel has it is
// attach's question, answered when the file is applied).
TEST_F(ConfigFile, EveryMechanismName) {
  for (const char* m : {"auto", "bpf", "act-csum", "bounce", "ifb", "observe"}) {
    // ifb works at tc ingress only (the default hooks are ingress and egress).
    auto c = Load(Write(std::string("[[interface]]\nname = \"lo\"\nhooks = [\"ingress\"]\n"
                                    "mechanism = \"") + m + "\"\n"));
    ASSERT_TRUE(c.ok()) << m << ": " << c.status();
    ASSERT_EQ(c->interfaces.size(), 1u);
    EXPECT_EQ(c->interfaces[0].mechanism, m);
  }
}

TEST_F(ConfigFile, MissingFile) {
  auto c = Load("/nonexistent/csumfix.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(c.status().message().find("/nonexistent/csumfix.toml: cannot open"),
            std::string::npos);
}

TEST_F(ConfigFile, SyntaxError) {
  std::string e = Error("[[interface]]\nname = lo\n");
  EXPECT_EQ(e.rfind(path_ + ":2:8: TOML syntax: ", 0), 0u) << e;
  e = Error("[[interface]]\nname = \"lo\"\nhooks = [\"ingress\"\n");
  EXPECT_EQ(e.rfind(path_ + ":3:20: TOML syntax: ", 0), 0u) << e;  // the array never closes
}

TEST_F(ConfigFile, UnknownKeys) {
  std::string e = Error("[[interface]]\nname = \"lo\"\n  acton = \"fill\"\n");
  EXPECT_EQ(e.rfind(path_ + ":3:3: unknown key \"acton\" in [[interface]] #1", 0), 0u) << e;
  e = Error("[[interface]]\nname = \"lo\"\n\n[[rules]]\naction = \"fill\"\n");
  EXPECT_EQ(e.rfind(path_ + ":4:3: unknown key \"rules\"", 0), 0u) << e;
  e = Error("[[rule]]\naction = \"fill\"\nport = 80\n");
  EXPECT_EQ(e.rfind(path_ + ":3:1: unknown key \"port\" in [[rule]] #1", 0), 0u) << e;
}

TEST_F(ConfigFile, BadAction) {
  std::string e = Error("[[interface]]\nname = \"lo\"\naction = \"fixit\"\n");
  EXPECT_EQ(e.rfind(path_ + ":3:10: unknown action \"fixit\"", 0), 0u) << e;
  e = Error("[[rule]]\nproto = \"udp\"\naction = \"fixit\"\n");
  EXPECT_EQ(e.rfind(path_ + ":3:10: [[rule]] #1: action fixit: use pass", 0), 0u) << e;
  e = Error("[[rule]]\nproto = \"udp\"\n");
  EXPECT_EQ(e.rfind(path_ + ":1:1: [[rule]] #1 needs action", 0), 0u) << e;
}

TEST_F(ConfigFile, BadPrefixAndPorts) {
  std::string e = Error("[[rule]]\naction = \"fill\"\nsrc = \"10.0.0.300/8\"\n");
  EXPECT_EQ(e.rfind(path_ + ":3:7: [[rule]] #1: src 10.0.0.300/8: not an IPv4 or IPv6", 0), 0u)
      << e;
  e = Error("[[rule]]\naction = \"fill\"\ndst = \"10.0.0.0/33\"\n");
  EXPECT_EQ(e.rfind(path_ + ":3:7: [[rule]] #1: dst 10.0.0.0/33: prefix length must be 1-32", 0),
            0u)
      << e;
  e = Error("[[rule]]\naction = \"fill\"\nproto = \"udp\"\ndport = \"9-1\"\n");
  EXPECT_EQ(e.rfind(path_ + ":4:9: [[rule]] #1: dport 9-1", 0), 0u) << e;
  e = Error("[[zone]]\nprefixes = [\"10.1.0.0/16\", \"bogus\"]\n");
  EXPECT_EQ(e.rfind(path_ + ":2:12: [[zone]] #1: prefix bogus", 0), 0u) << e;
}

TEST_F(ConfigFile, Selectors) {
  auto c = Load(Write(R"([[interface]]
master = "virbr0"
match = "vnet*"
kind = "tun"
action = "observe"

[[interface]]
kind = "vif"
hooks = ["egress"]
)"));
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->interfaces.size(), 2u);
  const InterfaceSpec& a = c->interfaces[0];
  EXPECT_EQ(a.name, "");
  EXPECT_EQ(a.match, "vnet*");
  EXPECT_EQ(a.master, "virbr0");
  EXPECT_EQ(a.kind, "tun");
  EXPECT_TRUE(a.ingress && a.egress) << "the default hooks are both tc hooks";
  EXPECT_EQ(a.Selectors(), "match = \"vnet*\", master = \"virbr0\", kind = \"tun\"");
  EXPECT_FALSE(c->interfaces[1].ingress);
  EXPECT_TRUE(c->interfaces[1].egress);

  std::string e = Error("[[interface]]\nhooks = [\"egress\"]\n");
  EXPECT_EQ(e.rfind(path_ + ":1:1: [[interface]] #1 selects nothing: give name", 0), 0u) << e;
  e = Error("[[interface]]\nmaster = \"a/b\"\n");
  EXPECT_EQ(e.rfind(path_ + ":2:10: \"a/b\" is not an interface name", 0), 0u) << e;
  e = Error("[[interface]]\nkind = \"TUN\"\n");
  EXPECT_EQ(e.rfind(path_ + ":2:8: kind must be a link kind", 0), 0u) << e;
  e = Error("[[interface]]\nmatch = \"\"\n");
  EXPECT_EQ(e.rfind(path_ + ":2:9: match must be a shell glob", 0), 0u) << e;
  e = Error("[[interface]]\nmatch = \"v*\"\nkind = \"tun\"\n[[interface]]\nkind = \"tun\"\n"
            "match = \"v*\"\n");
  EXPECT_EQ(e.rfind(path_ + ":4:1: match = \"v*\", kind = \"tun\" is already listed at " + path_ +
                    ":1:1", 0), 0u) << e;
}

TEST_F(ConfigFile, UnknownInterface) {
  // An [[interface]] that does not exist yet is no error: serve attaches it when it appears.
  auto ok = Load(Write("[[interface]]\nname = \"nosuch0\"\n"));
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->interfaces[0].name, "nosuch0");
  // Nor is a [[rule]] naming one: it is bound to the name, with ifindex 0 until an interface of
  // that name is attached (it matches nothing meanwhile).
  auto rule = Load(Write("[[rule]]\niface = \"nosuch0\"\naction = \"fill\"\n"));
  ASSERT_TRUE(rule.ok()) << rule.status();
  ASSERT_EQ(rule->rules.size(), 1u);
  EXPECT_TRUE(rule->rules[0].flags & CSF_POL_F_IFINDEX);
  EXPECT_EQ(rule->rules[0].ifindex, 0u);
  EXPECT_EQ(rule->rule_ifnames, std::vector<std::string>{"nosuch0"});
  // A malformed name is still an error, and redirect_to must exist.
  std::string e = Error("[[rule]]\niface = \"a/b\"\naction = \"fill\"\n");
  EXPECT_NE(e.find("[[rule]] #1"), std::string::npos) << e;
  e = Error("[[interface]]\nname = \"lo\"\nhooks = [\"xdp\"]\nredirect_to = \"nosuch0\"\n");
  EXPECT_EQ(e.rfind(path_ + ":4:15: unknown interface nosuch0", 0), 0u) << e;
}

TEST_F(ConfigFile, OtherMistakes) {
  std::string e = Error("[[interface]]\nname = \"lo\"\nhooks = [\"ingres\"]\n");
  EXPECT_EQ(e.rfind(path_ + ":3:9: unknown hook \"ingres\"", 0), 0u) << e;
  e = Error("[[interface]]\nname = \"lo\"\nredirect_to = \"lo\"\n");
  EXPECT_EQ(e.rfind(path_ + ":3:15: redirect_to needs \"xdp\" in hooks", 0), 0u) << e;
  e = Error("[[interface]]\nname = \"lo\"\n[[interface]]\nname = \"lo\"\n");
  EXPECT_EQ(e.rfind(path_ + ":3:1: name = \"lo\" is already listed at " + path_ + ":1:1", 0), 0u)
      << e;
  e = Error("[[interface]]\nname = 7\n");
  EXPECT_EQ(e.rfind(path_ + ":2:8: [[interface]] #1 name must be a string", 0), 0u) << e;
  e = Error("[[interface]]\nname = \"lo\"\nmechanism = \"telepathy\"\n");
  EXPECT_EQ(e.rfind(path_ + ":3:13: unknown mechanism \"telepathy\": use auto, bpf, act-csum, "
                            "bounce, ifb or observe", 0), 0u) << e;
  e = Error("[[interface]]\nname = \"lo\"\nmechanism = \"ifb\"\n");
  EXPECT_EQ(e.rfind(path_ + ":3:13: mechanism \"ifb\" works at tc ingress only", 0), 0u) << e;
  e = Error("[[interface]]\nname = \"lo\"\nmechanism = \"ifb\"\nhooks = [\"egress\"]\n");
  EXPECT_EQ(e.rfind(path_ + ":3:13: mechanism \"ifb\" works at tc ingress only", 0), 0u) << e;
  e = Error("interface = \"lo\"\n");
  EXPECT_EQ(e.rfind(path_ + ":1:13: interface must be an array of tables", 0), 0u) << e;
  e = Error("[[rule]]\naction = \"fill\"\nip = 5\n");
  EXPECT_EQ(e.rfind(path_ + ":3:6: [[rule]] #1 ip must be 4 or 6", 0), 0u) << e;
}

}  // namespace
}  // namespace csumfix::config
