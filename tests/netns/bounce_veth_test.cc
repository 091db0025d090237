// The bounce fill mechanism on real traffic between two namespaces joined by a veth pair:
// locally generated UDP/TCP over veth is CHECKSUM_PARTIAL; with csumfix filling on the sender's
// egress, a raw reader on the receiver sees complete checksums, every byte still arrives, and the
// counters match what was sent.
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "netns/lab.h"
#include "nlohmann/json.hpp"

namespace csumfix::testing {
namespace {

using json = nlohmann::json;

// scripts/raw_reader.py: a dhclient-like AF_PACKET reader printing "got csumnotready valid".

class BounceVeth : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(RootAndNamespaces({&a_, &b_}));
    ASSERT_TRUE(VethPair({&a_, "va", "10.66.0.1/24"}, {&b_, "vb", "10.66.0.2/24"}));
    script_ = "/tmp/csf-bounce-" + std::to_string(getpid());
  }
  void TearDown() override {
    Csumfix({"-n", a_.name(), "policy", "flush"});
    Csumfix({"-n", a_.name(), "detach", "--all"});
    a_.Destroy();
    b_.Destroy();
    EXPECT_FALSE(PathExists("/sys/fs/bpf/csumfix/v1")) << "pins left behind";
  }

  // Sends n UDP datagrams from a_ to 10.66.0.2:port; returns the raw reader's "got notready valid".
  std::string SendAndRead(int n, int port) {
    return RawRead(b_, "vb", port, n, [&] {
      a_.Exec("python3 -c \"import socket,time; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
              " [s.sendto(b'z'*300,('10.66.0.2'," + std::to_string(port) + ")) or time.sleep(0.002)"
              " for _ in range(" + std::to_string(n) + ")]\"");
    });
  }

  json Stats() {
    CmdResult r = Csumfix({"-n", a_.name(), "stats", "va", "-j"});
    EXPECT_EQ(r.rc, 0) << r.err;
    return json::parse(r.out);
  }

  Netns a_, b_;
  std::string script_;
};

TEST_F(BounceVeth, WithoutCsumfixTheRawReaderSeesSeeds) {
  EXPECT_EQ(SendAndRead(30, 7001), "30 30 0") << "got, CSUMNOTREADY, valid";
}

TEST_F(BounceVeth, FillCompletesEveryPartialDatagram) {
  CmdResult a = Csumfix({"-n", a_.name(), "attach", "va", "--egress", "--action", "fill",
                     "--mechanism", "bounce"});
  ASSERT_EQ(a.rc, 0) << a.err;
  EXPECT_NE(a.out.find("fill mechanism bounce"), std::string::npos) << a.out;
  EXPECT_EQ(SendAndRead(30, 7002), "30 0 30") << "got, CSUMNOTREADY, valid";
  json rows = Stats();
  ASSERT_EQ(rows.size(), 1u);
  const json& r = rows[0];
  // Other traffic (ARP is not IP) may pass too; the UDP datagrams are exactly the partial ones.
  EXPECT_EQ(r["class"]["partial"], 30);
  EXPECT_EQ(r["filled"], 30);
  EXPECT_EQ(r["bounced"], 30);
  EXPECT_EQ(r["bounce_returned"], 30);
  EXPECT_EQ(r["fill_error"], 0);
  EXPECT_EQ(r["packets"].get<uint64_t>(), r["class"]["partial"].get<uint64_t>() +
                                               r["class"]["na"].get<uint64_t>() +
                                               r["class"]["valid"].get<uint64_t>())
      << "every packet counted once: " << r.dump();
  // The flow table names the affected flow.
  CmdResult fl = Csumfix({"-n", a_.name(), "flows", "-j"});
  ASSERT_EQ(fl.rc, 0) << fl.err;
  json flows = json::parse(fl.out);
  bool found = false;
  for (const json& f : flows) {
    if (f["dport"] != 7002) continue;
    found = true;
    EXPECT_EQ(f["src"], "10.66.0.1");
    EXPECT_EQ(f["dst"], "10.66.0.2");
    EXPECT_EQ(f["proto"], 17);
    EXPECT_EQ(f["hook"], "egress");
    EXPECT_EQ(f["partial"], 30);
    EXPECT_EQ(f["filled"], 30);
    EXPECT_EQ(f["bad"], 0);
  }
  EXPECT_TRUE(found) << fl.out;
  // The pair is ours and goes with detach.
  EXPECT_NE(a_.Capture("ip -o link show").find("csf2ea"), std::string::npos);
  ASSERT_EQ(Csumfix({"-n", a_.name(), "detach", "va"}).rc, 0);
  EXPECT_EQ(a_.Capture("ip -o link show").find("csf2e"), std::string::npos)
      << "bounce veth left behind";
}

TEST_F(BounceVeth, ObserveMechanismLeavesPartialAlone) {
  ASSERT_EQ(Csumfix({"-n", a_.name(), "attach", "va", "--egress", "--action", "fill",
                     "--mechanism", "observe"})
                .rc,
            0);
  EXPECT_EQ(SendAndRead(10, 7003), "10 10 0");
  json r = Stats()[0];
  EXPECT_EQ(r["class"]["partial"], 10);
  EXPECT_EQ(r["filled"], 0);
}

TEST_F(BounceVeth, TcpUnderLoadDeliversEveryByte) {
  ASSERT_EQ(Csumfix({"-n", a_.name(), "attach", "va", "--both", "--action", "fill",
                     "--mechanism", "bounce"}).rc, 0);
  // iperf3 for load: it must complete without error. (Its receiver byte count stops at the
  // test's end mark, so the exact-bytes check below uses a hashed transfer instead.)
  ASSERT_EQ(b_.Exec("iperf3 -s -1 -D -p 5299"), 0);
  usleep(300000);
  std::string out = a_.Capture("iperf3 -c 10.66.0.2 -p 5299 -t 2 -J");
  json j = json::parse(out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << out;
  ASSERT_FALSE(j.contains("error")) << out;
  EXPECT_GT(j["end"]["sum_received"]["bytes"].get<uint64_t>(), 0u);

  // 64 MiB of deterministic bytes over TCP: the receiver's count and SHA-256 must match.
  const std::string res = script_ + ".tcp";
  b_.Exec("python3 -c \"import os,socket,hashlib; l=socket.socket(); "
          "l.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1); l.bind(('10.66.0.2',5300)); "
          "l.listen(1); open('" + res + ".ready','w').close(); c,_=l.accept(); h=hashlib.sha256(); n=0\n"
          "while True:\n d=c.recv(1<<16)\n if not d: break\n n+=len(d); h.update(d)\n"
          "open('" + res + ".t','w').write('%d %s' % (n, h.hexdigest())); "
          "os.rename('" + res + ".t','" + res + "')\" > /dev/null 2>&1 &");
  ASSERT_TRUE(WaitFor([&] { return PathExists(res + ".ready"); }, 60)) << "TCP receiver not listening";
  std::string sent = a_.Capture(
      "python3 -c \"import socket,hashlib; s=socket.create_connection(('10.66.0.2',5300)); "
      "b=bytes(range(256))*4096; h=hashlib.sha256()\n"
      "for i in range(64): s.sendall(b); h.update(b)\n"
      "s.close(); print('%d %s' % (64*len(b), h.hexdigest()))\"");
  // The receiver renames its result into place once the sender closed and it read the rest.
  const bool done = WaitFor([&] { return PathExists(res); }, 30);
  const std::string got = done ? ReadFile(res) : "(no result from the receiver in time)";
  unlink(res.c_str());
  unlink((res + ".ready").c_str());
  ASSERT_FALSE(sent.empty());
  EXPECT_EQ(got + "\n", sent) << "receiver: count and sha256 differ from the sender's";
  for (const json& r : Stats()) {
    EXPECT_EQ(r["fill_error"], 0) << r.dump();
    EXPECT_EQ(r["bounced"], r["bounce_returned"]) << r.dump();
  }
}

TEST_F(BounceVeth, PolicyRulesOverrideTheInterfaceActionWithPrecedence) {
  ASSERT_EQ(Csumfix({"-n", a_.name(), "attach", "va", "--egress", "--action", "fill",
                     "--mechanism", "bounce"}).rc, 0);
  CmdResult r1 = Csumfix({"-n", a_.name(), "policy", "add", "--proto", "udp", "--dport", "7100",
                          "--action", "verify"});
  ASSERT_EQ(r1.rc, 0) << r1.err;
  EXPECT_EQ(SendAndRead(10, 7100), "10 10 0") << "rule: verify only, seeds stay";
  EXPECT_EQ(SendAndRead(10, 7101), "10 0 10") << "no rule: the interface's fill";
  // A more urgent rule (lower priority number) for the whole destination wins over both.
  CmdResult r2 = Csumfix({"-n", a_.name(), "policy", "add", "--iface", "va", "--hook", "egress",
                          "--dst", "10.66.0.2/32", "--action", "pass", "--priority", "10"});
  ASSERT_EQ(r2.rc, 0) << r2.err;
  EXPECT_EQ(SendAndRead(10, 7101), "10 10 0");
  CmdResult l = Csumfix({"-n", a_.name(), "policy", "list", "-j"});
  ASSERT_EQ(l.rc, 0) << l.err;
  json rules = json::parse(l.out);
  ASSERT_EQ(rules.size(), 2u);
  EXPECT_EQ(rules[0]["priority"], 10);  // precedence order
  EXPECT_EQ(rules[0]["action"], "pass");
  ASSERT_EQ(Csumfix({"-n", a_.name(), "policy", "del", std::to_string(rules[0]["id"].get<int>())}).rc, 0);
  EXPECT_EQ(SendAndRead(10, 7101), "10 0 10") << "rule deleted: fill again";
  json st = Stats()[0];
  // Rule hits: 10 (verify rule) + 10 (pass rule); the 20 others used the interface's action.
  EXPECT_EQ(st["policy_hit"], 20) << st.dump();
  // Errors name the field.
  CmdResult bad = Csumfix({"-n", a_.name(), "policy", "add", "--dport", "80", "--action", "pass"});
  EXPECT_EQ(bad.rc, 1);
  EXPECT_NE(bad.err.find("--sport/--dport need --proto"), std::string::npos) << bad.err;
  CmdResult bad2 = Csumfix({"-n", a_.name(), "policy", "add", "--src", "10.0.0.0/33", "--action", "pass"});
  EXPECT_NE(bad2.err.find("prefix length must be 1-32"), std::string::npos) << bad2.err;
}

TEST_F(BounceVeth, ZoneLeavesPartialInsideAndFillsWhatLeaves) {
  ASSERT_EQ(Csumfix({"-n", a_.name(), "attach", "va", "--egress", "--action", "fill",
                     "--mechanism", "bounce"}).rc, 0);
  // 10.66.0.0/24 holds both ends: inside the zone, checksums stay suppressed.
  CmdResult z = Csumfix({"-n", a_.name(), "policy", "zone", "--prefix", "10.66.0.0/24",
                         "--prefix", "fd00:66::/64"});
  ASSERT_EQ(z.rc, 0) << z.err;
  EXPECT_EQ(SendAndRead(10, 7200), "10 10 0") << "member to member: left partial";
  // Shrink the zone to the sender alone: the peer is outside, so its packets get filled. The
  // interface itself now only verifies, so the fill can come from the zone's rule alone: the
  // mechanism is named (auto would be observe for verify, with no bounce veth to fill with).
  ASSERT_EQ(Csumfix({"-n", a_.name(), "policy", "flush"}).rc, 0);
  ASSERT_EQ(Csumfix({"-n", a_.name(), "detach", "va"}).rc, 0);
  ASSERT_EQ(Csumfix({"-n", a_.name(), "attach", "va", "--egress", "--action", "verify",
                     "--mechanism", "bounce"}).rc, 0);
  CmdResult z2 = Csumfix({"-n", a_.name(), "policy", "zone", "--prefix", "10.66.0.1/32"});
  ASSERT_EQ(z2.rc, 0) << z2.err;
  EXPECT_EQ(z2.err, "") << "va has a mechanism: nothing to warn about";
  EXPECT_EQ(SendAndRead(10, 7201), "10 0 10") << "leaving the zone: filled";
}

// What csumfix may have made for va in `ns`, sorted: its links (the bounce veths are
// csf<hex ifindex><i|e><a|b>) and "act_csum-filter" for an act_csum selector filter on va.
std::string Helpers(const Netns& ns) {
  const std::string links = ns.Capture("ip -o link show");
  std::vector<std::string> found;
  for (size_t pos = 0; (pos = links.find(": csf", pos)) != std::string::npos; ++pos)
    found.push_back(links.substr(pos + 2, links.find_first_of(":@", pos + 2) - pos - 2));
  const std::string filters =
      ns.Capture("tc filter show dev va ingress; tc filter show dev va egress");
  if (filters.find("csf_act_select") != std::string::npos) found.push_back("act_csum-filter");
  std::sort(found.begin(), found.end());
  std::string out;
  for (const std::string& f : found) out += (out.empty() ? "" : " ") + f;
  return out;
}

json StatusOf(const Netns& ns) {
  CmdResult s = Csumfix({"-n", ns.name(), "status", "va", "-j"});
  EXPECT_EQ(s.rc, 0) << s.err;
  json j = json::parse(s.out, nullptr, false);
  return j.is_array() && j.size() == 1 ? j[0] : json();
}

// Issue 14 item 6: helpers only where the action can fill. With mechanism auto, an action that
// never fills gets mechanism observe: no bounce veth pair, no act_csum filter.
TEST_F(BounceVeth, ActionsThatNeverFillGetNoHelpers) {
  for (const char* action : {"observe", "verify", "pass", "drop-bad"}) {
    SCOPED_TRACE(action);
    CmdResult a = Csumfix({"-n", a_.name(), "attach", "va", "--action", action});
    ASSERT_EQ(a.rc, 0) << a.err;
    EXPECT_NE(a.out.find("fill mechanism observe (action " + std::string(action) +
                         " never fills"),
              std::string::npos)
        << a.out;
    EXPECT_EQ(Helpers(a_), "") << "helpers made for an action that never fills";
    json st = StatusOf(a_);
    EXPECT_EQ(st["mechanism"], "observe") << st.dump();
    ASSERT_EQ(st["hooks"].size(), 2u) << st.dump();
    for (const json& h : st["hooks"]) {
      EXPECT_EQ(h["action"], action) << h.dump();
      EXPECT_EQ(h["act_csum_prog_id"], 0) << h.dump();
    }
    ASSERT_EQ(Csumfix({"-n", a_.name(), "detach", "va"}).rc, 0);
  }
  // A filling action still gets the probe's mechanism and its helpers (bounce here: one pair per
  // hook; act-csum: its filters; bpf: none).
  CmdResult f = Csumfix({"-n", a_.name(), "attach", "va", "--action", "fill"});
  ASSERT_EQ(f.rc, 0) << f.err;
  EXPECT_EQ(f.out.find("fill mechanism observe"), std::string::npos) << f.out;
  const std::string mech = StatusOf(a_)["mechanism"];
  EXPECT_NE(mech, "observe");
  const std::string want = mech == "bounce"     ? "csf2ea csf2eb csf2ia csf2ib"
                           : mech == "act-csum" ? "act_csum-filter"
                                                : "";
  EXPECT_EQ(Helpers(a_), want) << mech;
}

// A named mechanism is kept whatever the action: the pair is made for observe too.
TEST_F(BounceVeth, ANamedMechanismKeepsItsHelpersForAnyAction) {
  CmdResult a = Csumfix({"-n", a_.name(), "attach", "va", "--action", "observe", "--mechanism",
                         "bounce"});
  ASSERT_EQ(a.rc, 0) << a.err;
  EXPECT_NE(a.out.find("action observe, fill mechanism bounce\n"), std::string::npos) << a.out;
  EXPECT_EQ(Helpers(a_), "csf2ea csf2eb csf2ia csf2ib");
  EXPECT_EQ(StatusOf(a_)["mechanism"], "bounce");
  ASSERT_EQ(Csumfix({"-n", a_.name(), "detach", "va"}).rc, 0);
  EXPECT_EQ(Helpers(a_), "") << "the pair goes with detach";
}

// A fill rule on an interface whose mechanism is observe: `policy add` warns (exit 0), naming the
// interface and the re-attach that gives it a mechanism; the rule fills nothing kernel-PARTIAL
// there until that is done.
TEST_F(BounceVeth, FillRuleOnAnObserveInterfaceWarnsWithTheFix) {
  ASSERT_EQ(Csumfix({"-n", a_.name(), "attach", "va", "--egress", "--action", "verify"}).rc, 0);
  CmdResult v = Csumfix({"-n", a_.name(), "policy", "add", "--proto", "udp", "--dport", "7300",
                         "--action", "verify"});
  ASSERT_EQ(v.rc, 0) << v.err;
  EXPECT_EQ(v.err, "") << "a rule that does not fill: no warning";
  CmdResult ing = Csumfix({"-n", a_.name(), "policy", "add", "--hook", "ingress", "--action",
                           "fill", "--priority", "200"});
  ASSERT_EQ(ing.rc, 0) << ing.err;
  EXPECT_EQ(ing.err, "") << "va has no ingress hook: the rule cannot fill there";

  CmdResult f = Csumfix({"-n", a_.name(), "policy", "add", "--proto", "udp", "--dport", "7301",
                         "--action", "fill"});
  ASSERT_EQ(f.rc, 3) << "added, with a warning: " << f.err;
  EXPECT_NE(f.err.find("csumfix: warning: va has fill mechanism observe"), std::string::npos)
      << f.err;
  const std::string fix = "`csumfix -n " + a_.name() + " detach va && csumfix -n " + a_.name() +
                          " attach va --egress --action verify --mechanism bounce`";
  EXPECT_NE(f.err.find(fix), std::string::npos) << f.err;
  CmdResult z = Csumfix({"-n", a_.name(), "policy", "zone", "--prefix", "10.66.0.1/32"});
  ASSERT_EQ(z.rc, 3) << z.err;
  EXPECT_NE(z.err.find("va has fill mechanism observe"), std::string::npos) << z.err;
  ASSERT_EQ(Csumfix({"-n", a_.name(), "policy", "flush"}).rc, 0);
  ASSERT_EQ(Csumfix({"-n", a_.name(), "policy", "add", "--proto", "udp", "--dport", "7301",
                     "--action", "fill"}).rc, 3);
  // As warned: the rule's packets stay partial, counted only.
  EXPECT_EQ(SendAndRead(10, 7301), "10 10 0");
  json r = Stats()[0];
  EXPECT_EQ(r["class"]["partial"], 10) << r.dump();
  EXPECT_EQ(r["action"]["fill"], 10) << r.dump();
  EXPECT_EQ(r["filled"], 0) << r.dump();
  EXPECT_EQ(r["fill_error"], 0) << r.dump();
  // The fix it names: now the rule fills, and adding another warns no more.
  ASSERT_EQ(Csumfix({"-n", a_.name(), "detach", "va"}).rc, 0);
  ASSERT_EQ(Csumfix({"-n", a_.name(), "attach", "va", "--egress", "--action", "verify",
                     "--mechanism", "bounce"}).rc, 0);
  EXPECT_EQ(SendAndRead(10, 7301), "10 0 10");
  CmdResult again = Csumfix({"-n", a_.name(), "policy", "add", "--proto", "udp", "--dport",
                             "7302", "--action", "zero-udp4"});
  ASSERT_EQ(again.rc, 0) << again.err;
  EXPECT_EQ(again.err, "") << again.err;
}

}  // namespace
}  // namespace csumfix::testing
