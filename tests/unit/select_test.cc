// config::Select applies the [[interface]] selectors to a list of links (no syscall, so the links
// need not exist): every selector given must hold, the first block in the file's order wins,
// csumfix's own bounce veths are never selected, named interfaces that are absent wait.
#include "config/select.h"

#include <string>
#include <vector>

#include "config/config.h"
#include "control/netlink.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace csumfix::config {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

InterfaceSpec Block(const std::string& name, const std::string& match, const std::string& master,
                    const std::string& kind, int line) {
  InterfaceSpec s;
  s.name = name;
  s.match = match;
  s.master = master;
  s.kind = kind;
  s.where = "h.toml:" + std::to_string(line) + ":1";
  return s;
}

// "name:block" for each selected link.
std::vector<std::string> Picks(const Config& cfg, const std::vector<control::LinkInfo>& links) {
  std::vector<std::string> out;
  for (const auto& s : Select(cfg, links)) out.push_back(s.link.name + ":" + std::to_string(s.block));
  return out;
}

const std::vector<control::LinkInfo> kHost = {
    {1, "lo", "", 0, 0},          {2, "eth0", "e1000e", 0, 0},  {3, "virbr0", "bridge", 0, 0},
    {4, "vnet0", "tun", 3, 0},    {5, "vnet1", "tun", 3, 0},    {6, "tap0", "tun", 0, 0},
    {7, "veth1a2b", "veth", 0, 0}, {8, "csf4ea", "veth", 0, 0}, {9, "csf4eb", "veth", 0, 0},
    {10, "vif3.0", "vif", 3, 0},  {11, "vnet9", "tun", 0, 0},   {12, "csfxyz", "veth", 0, 0},
};

TEST(Select, EachSelectorAlone) {
  Config cfg;
  cfg.interfaces = {Block("tap0", "", "", "", 1)};
  EXPECT_THAT(Picks(cfg, kHost), ElementsAre("tap0:0"));
  cfg.interfaces = {Block("", "vnet*", "", "", 1)};
  EXPECT_THAT(Picks(cfg, kHost), ElementsAre("vnet0:0", "vnet1:0", "vnet9:0"));
  cfg.interfaces = {Block("", "", "virbr0", "", 1)};
  EXPECT_THAT(Picks(cfg, kHost), ElementsAre("vnet0:0", "vnet1:0", "vif3.0:0"));
  cfg.interfaces = {Block("", "", "", "tun", 1)};
  EXPECT_THAT(Picks(cfg, kHost), ElementsAre("vnet0:0", "vnet1:0", "tap0:0", "vnet9:0"));
}

TEST(Select, EverySelectorGivenMustHold) {
  Config cfg;
  cfg.interfaces = {Block("", "vnet*", "virbr0", "tun", 1)};
  EXPECT_THAT(Picks(cfg, kHost), ElementsAre("vnet0:0", "vnet1:0"));  // not vnet9: no master
  cfg.interfaces = {Block("tap0", "vnet*", "", "", 1)};
  EXPECT_THAT(Picks(cfg, kHost), IsEmpty());
  cfg.interfaces = {Block("", "vif*", "", "vif", 1)};
  EXPECT_THAT(Picks(cfg, kHost), ElementsAre("vif3.0:0"));
}

TEST(Select, TheFirstBlockWins) {
  Config cfg;
  cfg.interfaces = {Block("vnet1", "", "", "", 1), Block("", "", "virbr0", "", 5),
                    Block("", "", "", "tun", 9)};
  EXPECT_THAT(Picks(cfg, kHost),
              ElementsAre("vnet0:1", "vnet1:0", "tap0:2", "vif3.0:1", "vnet9:2"));
}

TEST(Select, NeverCsumfixsOwnBounceVeths) {
  Config cfg;
  cfg.interfaces = {Block("", "*", "", "veth", 1)};
  // csf4ea/csf4eb are bounce veths; csfxyz is not csumfix's name pattern, so it is a user's.
  EXPECT_THAT(Picks(cfg, kHost), ElementsAre("veth1a2b:0", "csfxyz:0"));
  EXPECT_TRUE(IsHelperLink({8, "csf4ea", "veth", 0, 0}));
  EXPECT_TRUE(IsHelperLink({8, "csf1c0ib", "veth", 0, 0}));
  EXPECT_FALSE(IsHelperLink({8, "csf4ea", "tun", 0, 0}));
  EXPECT_FALSE(IsHelperLink({8, "csf4e", "veth", 0, 0}));
  EXPECT_FALSE(IsHelperLink({8, "csfgxa", "veth", 0, 0}));
}

TEST(Select, GlobsAreShellGlobs) {
  Config cfg;
  cfg.interfaces = {Block("", "vnet[01]", "", "", 1)};
  EXPECT_THAT(Picks(cfg, kHost), ElementsAre("vnet0:0", "vnet1:0"));
  cfg.interfaces = {Block("", "vif?.0", "", "", 1)};
  EXPECT_THAT(Picks(cfg, kHost), ElementsAre("vif3.0:0"));
}

TEST(Select, NamedInterfacesThatAreAbsentWait) {
  Config cfg;
  cfg.interfaces = {Block("tap0", "", "", "", 1), Block("tap7", "", "", "", 4),
                    Block("", "vnet*", "", "", 8)};
  EXPECT_THAT(Waiting(cfg, kHost), ElementsAre("tap7 (h.toml:4:1)"));
}

}  // namespace
}  // namespace csumfix::config
