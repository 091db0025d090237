// Upgrades under traffic (docs/UPGRADES.md): a csumfix of another build takes over attachments
// made by this one, swapping its programs in place, while a stream of locally generated UDP
// datagrams (CHECKSUM_PARTIAL on va egress, filled there) runs from A to B and an AF_PACKET
// reader on vb counts every datagram that arrives with only its checksum seed. The other build
// is csumfix-upgrade-variant: this csumfix with the test variant of the BPF object (every
// program's tag differs, bpf/CMakeLists.txt). A detach + attach during the same stream is the
// negative control: it must show seeds, or the stream could not have seen a gap.
#include <bpf/libbpf.h>
#include <signal.h>
#include <unistd.h>
#include <sys/wait.h>

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "csumfix/abi.h"
#include "netns/mechanisms.h"
#include "netns/serve_fixture.h"

namespace csumfix::testing {
namespace {

std::string VariantPath() {
  const std::string c = CsumfixPath();
  return c.substr(0, c.rfind('/') + 1) + "csumfix-upgrade-variant";
}

class Upgrade : public Serve {
 protected:
  void SetUp() override {
    Serve::SetUp();
    ASSERT_TRUE(PathExists(VariantPath())) << VariantPath() << " not built";
    WriteConfig("[[interface]]\nname = \"va\"\nhooks = [\"egress\"]\naction = \"fill\"\n");
  }

  // The egress hook of va as status reports it.
  json Hook() {
    json s = Status();
    EXPECT_EQ(s.size(), 1u) << s.dump();
    if (!s.empty())
      for (const auto& h : s[0]["hooks"])
        if (h["hook"] == "egress") return h;
    return json::object();
  }
  uint64_t Filled() {
    CmdResult r = Csumfix({"-n", a_.name(), "stats", "va", "-j"});
    EXPECT_EQ(r.rc, 0) << r.err;
    json rows = json::parse(r.out);
    return rows.empty() ? uint64_t{0} : rows[0].value("filled", uint64_t{0});
  }

  // Streams 200-byte datagrams from A to vb:port at about 1000 per second while `during` runs
  // and `seconds` (scaled for slow guests) after it, then returns "got csumnotready valid" of the
  // reader on vb; `sent` is how many the sender sent. The sender stops when told (a file), not
  // after a fixed time, so a slow machine cannot end the stream before `during` has finished
  // (a serve restart loads and verifies every program: minutes in a 5.10 guest under TCG); a
  // stream that stopped early anyway (its 30-minute cap) fails the test, which would prove
  // nothing.
  std::string Stream(int port, double seconds, const std::function<void()>& during,
                     int* sent) {
    const std::string done = tmp_ + "/sent-" + std::to_string(port);
    const std::string stop = tmp_ + "/stop-" + std::to_string(port);
    return RawRead(b_, "vb", port, 100000000, [&] {
      a_.Exec("python3 -c \"import os,socket,time; s=socket.socket(socket.AF_INET,"
              "socket.SOCK_DGRAM); t=time.time(); n=0\nwhile not os.path.exists('" + stop +
              "') and time.time()-t<1800:\n s.sendto(b'z'*200,('10.67.0.2'," +
              std::to_string(port) + ")); n+=1; time.sleep(0.001)\nopen('" + done +
              ".t','w').write(str(n)); os.rename('" + done + ".t','" + done +
              "')\" > /dev/null 2>&1 &");
      // Until the first datagram was filled: the sender is really running.
      ASSERT_TRUE(WaitFor([&] { return Filled() > filled_before_; }, 30)) << "no stream";
      during();
      EXPECT_FALSE(PathExists(done)) << "the stream ended before the swap was done: the test "
                                        "proves nothing";
      // Traffic through what `during` left in place, then stop the sender.
      usleep(static_cast<useconds_t>(seconds * TimeScale() * 1e6));
      a_.Exec("touch " + stop);
      ASSERT_TRUE(WaitFor([&] { return PathExists(done); }, 60));
      *sent = std::stoi(ReadFile(done));
    });
  }

  // The run of an upgrade: serve of `binary` started after the running one stopped; what the
  // new one logged until it was ready (the log file is appended to).
  std::string RestartServeAs(const std::string& binary) {
    EXPECT_EQ(StopServe(SIGTERM), 0);
    const size_t from = ReadFile(log_).size();
    StartServe({"--config", cfg_}, binary);
    return ReadFile(log_).substr(from);
  }

  uint64_t filled_before_ = 0;
};

// The "other build" must differ in both objects: a kernel without bpf_loop (5.10 to 5.16) loads
// the compat object, and a variant that changed only the main one left the upgrade tests there
// nothing to swap. Every program of each object this kernel loads that gets attached, loaded by
// `check`, has another tag in the variant than in csumfix.
TEST(UpgradeVariant, EveryProgramOfBothObjectsHasAnotherTag) {
  ASSERT_TRUE(PathExists(VariantPath())) << VariantPath() << " not built";
  // The compat object loads on every kernel; the main one only where the loader picks it (5.17+
  // with the XDP byte helpers): `check` without --object says which.
  CmdResult a = Csumfix({"check", "-j"});
  ASSERT_EQ(a.rc, 0) << a.err << a.out;
  const std::string picked = json::parse(a.out)["object"];
  std::vector<std::string> objects = {"compat"};
  if (picked == "main") objects.push_back("main");
  for (const std::string& object : objects) {
    SCOPED_TRACE("object " + object);
    auto tags = [&](const std::string& binary) {
      CmdResult r = csumfix::testing::Run({binary, "check", "--object", object, "-j"});
      EXPECT_EQ(r.rc, 0) << binary << ": " << r.err << r.out;
      std::map<std::string, std::string> t;
      if (r.rc != 0) return t;
      const json j = json::parse(r.out);
      EXPECT_EQ(j["object"], object) << r.out;
      for (const auto& p : j["programs"]) t[p["name"]] = p["tag"];
      return t;
    };
    const auto ours = tags(CsumfixPath());
    const auto theirs = tags(VariantPath());
    ASSERT_FALSE(ours.empty());
    ASSERT_EQ(ours.size(), theirs.size());
    for (const auto& [name, tag] : ours) {
      ASSERT_TRUE(theirs.count(name)) << name << " missing from the variant";
      if (name == "csf_probe_tail") continue;  // probe's test program: never attached, never swapped
      EXPECT_FALSE(tag.empty()) << name;
      EXPECT_NE(theirs.at(name), tag) << name << " is the same program in both builds";
    }
  }
}

// A package upgrade (serve restarted as the new build) and a downgrade back, both under
// traffic, with the attachment made by serve (tcx where the kernel has it: link update; clsact
// before 6.6) and made by the
// CLI through clsact + cls_bpf (filter replace). The bounce mechanism's return program (on
// this host) or the act-csum selector (VM matrix) is swapped too.
TEST_F(Upgrade, ServeSwapsProgramsInPlaceAndNoSeedPasses) {
  for (const std::string api : {"auto", "clsact"}) {
    SCOPED_TRACE("tc api " + api);
    if (api == "clsact") {
      ASSERT_EQ(Csumfix({"-n", a_.name(), "attach", "va", "--egress", "--action", "fill",
                         "--tc-api", "clsact"})
                    .rc,
                0);
    }
    StartServe({"--config", cfg_});
    const json a = Hook();
    // auto: tcx where the kernel has it (6.6+), clsact before (5.10, 6.1).
    const char* want = api == "clsact" || !testing::Probe().tcx ? "clsact" : "tcx";
    ASSERT_EQ(a["mode"], want) << a.dump();
    ASSERT_EQ(a["prog_tag"].get<std::string>().size(), 16u) << a.dump();
    filled_before_ = Filled();
    json b;
    std::string log_b, log_a;
    int sent = 0;
    const std::string got = Stream(api == "clsact" ? 7302 : 7301, 2, [&] {
      log_b = RestartServeAs(VariantPath());
      b = Hook();
      log_a = RestartServeAs("");  // and back: a downgrade within the pin ABI
    }, &sent);
    ASSERT_GT(sent, 0);
    EXPECT_EQ(got, std::to_string(sent) + " 0 " + std::to_string(sent))
        << "got, CSUMNOTREADY, valid: every datagram, none with a seed";
    EXPECT_NE(log_b.find("upgraded va egress: prog"), std::string::npos) << log_b;
    EXPECT_NE(b["prog_id"], a["prog_id"]);
    EXPECT_NE(b["prog_tag"], a["prog_tag"]) << "the variant build runs its own programs";
    EXPECT_EQ(b["mode"], a["mode"]);
    EXPECT_TRUE(b["attached"].get<bool>()) << b.dump();
    const json back = Hook();
    EXPECT_EQ(back["prog_tag"], a["prog_tag"]) << "this build's programs again";
    EXPECT_NE(back["prog_id"], b["prog_id"]);
    EXPECT_TRUE(back["attached"].get<bool>()) << back.dump();
    // The maps were shared: counting went on across both swaps, never reset.
    EXPECT_GE(Filled(), filled_before_ + static_cast<uint64_t>(sent));
    // One csumfix program at the hook, one filter per priority, nothing left of the old ones.
    const std::string net = a_.Capture("bpftool net show dev va");
    size_t n = 0;
    for (size_t pos = 0; (pos = net.find("csf_tc_egress", pos)) != std::string::npos; ++pos) ++n;
    EXPECT_EQ(n, 1u) << net;
    const std::string pins = a_.Capture("ls " + a_.PinRoot() + "/va");
    EXPECT_EQ(pins.find("_new"), std::string::npos) << pins;
    // A restart of the same build swaps nothing.
    const std::string same = RestartServeAs("");
    EXPECT_EQ(same.find("upgraded"), std::string::npos) << same;
    EXPECT_EQ(Hook()["prog_id"], back["prog_id"]);
    EXPECT_EQ(StopServe(SIGTERM), 0);
    ASSERT_EQ(Csumfix({"-n", a_.name(), "detach", "va"}).rc, 0);
  }
}

// The negative control: detach and attach again (the CLI, tens of milliseconds without a
// program) during the same kind of stream lets seeds through, which the reader sees.
TEST_F(Upgrade, DetachAndAttachLetsSeedsThrough) {
  ASSERT_EQ(Csumfix({"-n", a_.name(), "attach", "va", "--egress", "--action", "fill"}).rc, 0);
  filled_before_ = Filled();
  int sent = 0;
  const std::string got = Stream(7303, 2, [&] {
    ASSERT_EQ(Csumfix({"-n", a_.name(), "detach", "va"}).rc, 0);
    ASSERT_EQ(Csumfix({"-n", a_.name(), "attach", "va", "--egress", "--action", "fill"}).rc, 0);
  }, &sent);
  int g = 0, notready = 0, valid = 0;
  ASSERT_EQ(sscanf(got.c_str(), "%d %d %d", &g, &notready, &valid), 3) << got;
  EXPECT_GT(notready, 0) << got << ": the gap was not seen, so a zero elsewhere proves nothing";
  // Detach may drop what is in flight through the helpers it removes (a bounce veth's backlog:
  // 30 of 4683 on a loaded host); nothing promises otherwise. Most must arrive.
  EXPECT_GE(g, sent - sent / 20) << got;
  EXPECT_LE(g, sent) << got;
}

// The CLI's upgrade: each way reports what it swapped (the XDP link too), then nothing more to
// do.
TEST_F(Upgrade, CliUpgradeReportsSwapsAndIsIdempotent) {
  ASSERT_EQ(
      Csumfix({"-n", a_.name(), "attach", "va", "--egress", "--xdp", "--action", "fill"}).rc, 0);
  auto xdp = [&] {
    const json s = Status();
    if (!s.empty())
      for (const auto& h : s[0]["hooks"])
        if (h["hook"] == "xdp") return h;
    return json::object();
  };
  const json x = xdp();
  ASSERT_EQ(x["mode"], "xdp") << x.dump();
  const json a = Hook();
  CmdResult v = csumfix::testing::Run({VariantPath(), "-n", a_.name(), "upgrade", "-j"});
  ASSERT_EQ(v.rc, 0) << v.err;
  json j = json::parse(v.out);
  ASSERT_EQ(j.size(), 1u) << v.out;
  EXPECT_EQ(j[0]["ifname"], "va");
  EXPECT_EQ(j[0]["error"], "");
  EXPECT_GE(j[0]["swapped"].size(), 2u) << v.out;  // egress (and its bounce return), xdp
  EXPECT_NE(v.out.find("xdp: prog"), std::string::npos) << v.out;
  EXPECT_NE(Hook()["prog_tag"], a["prog_tag"]);
  EXPECT_NE(xdp()["prog_tag"], x["prog_tag"]);
  EXPECT_TRUE(xdp()["attached"].get<bool>());
  EXPECT_EQ(a_.Capture("ip -d link show va").find("prog/xdp id " +
                                                  std::to_string(x["prog_id"].get<uint32_t>())),
            std::string::npos)
      << "the old XDP program still runs";
  CmdResult again = csumfix::testing::Run({VariantPath(), "-n", a_.name(), "upgrade"});
  EXPECT_EQ(again.rc, 0) << again.err;
  EXPECT_EQ(again.out, "every attachment runs this build's programs\n");
  CmdResult back = Csumfix({"-n", a_.name(), "upgrade", "va"});
  EXPECT_EQ(back.rc, 0) << back.err;
  EXPECT_NE(back.out.find("va egress: prog"), std::string::npos) << back.out;
  EXPECT_EQ(Hook()["prog_tag"], a["prog_tag"]);
  EXPECT_EQ(xdp()["prog_tag"], x["prog_tag"]);
  EXPECT_EQ(SendAndRead(20, 7306), "20 0 20") << "got, CSUMNOTREADY, valid";
  CmdResult none = Csumfix({"-n", a_.name(), "upgrade", "vx"});
  EXPECT_EQ(none.rc, 1);
  EXPECT_NE(none.err.find("vx is not attached"), std::string::npos) << none.err;
}

// An upgrade that stopped after its swaps but before the record (a crash, a kill): the record
// still names the old programs while the kernel and the pins run the new ones. status still
// counts the hooks as csumfix's, the next upgrade completes the record without swapping, and
// detach then removes everything (a cls_bpf filter is removed only when it is csumfix's).
TEST_F(Upgrade, AnUpgradeStoppedBeforeItsRecordIsFinishedByTheNext) {
  ASSERT_EQ(Csumfix({"-n", a_.name(), "attach", "va", "--egress", "--action", "fill", "--tc-api",
                     "clsact"})
                .rc,
            0);
  const std::string state = a_.PinRoot() + "/va/state";
  auto record = [&] {
    return csumfix::testing::Run({"sh", "-c", "bpftool -j map lookup pinned " + state +
                                                  " key 0 0 0 0 | python3 -c \"import json,sys; "
                                                  "print(' '.join(json.load(sys.stdin)['value']))\""})
        .out;
  };
  const std::string old = record();
  ASSERT_FALSE(old.empty());
  CmdResult v = csumfix::testing::Run({VariantPath(), "-n", a_.name(), "upgrade"});
  ASSERT_EQ(v.rc, 0) << v.err;
  ASSERT_NE(record(), old);
  // Put the old record back: as if the upgrade had stopped right before writing it.
  ASSERT_EQ(csumfix::testing::Run({"sh", "-c", "bpftool map update pinned " + state +
                                                   " key 0 0 0 0 value " + old})
                .rc,
            0);
  json h = Hook();
  EXPECT_TRUE(h["attached"].get<bool>()) << "the pinned (new) program is csumfix's: " << h.dump();
  CmdResult again = csumfix::testing::Run({VariantPath(), "-n", a_.name(), "upgrade"});
  EXPECT_EQ(again.rc, 0) << again.err;
  EXPECT_EQ(again.out, "every attachment runs this build's programs\n") << "nothing to swap";
  EXPECT_NE(record(), old) << "the record was completed";
  const std::string running = a_.Capture("tc filter show dev va egress");
  EXPECT_NE(running.find("id " + std::to_string(Hook()["prog_id"].get<uint32_t>())),
            std::string::npos)
      << "the record names the program that runs: " << running;
  EXPECT_EQ(SendAndRead(20, 7305), "20 0 20") << "got, CSUMNOTREADY, valid";
  CmdResult d = Csumfix({"-n", a_.name(), "detach", "va"});
  EXPECT_EQ(d.rc, 0) << d.err;
  EXPECT_EQ(d.err, "");
  EXPECT_EQ(a_.Capture("tc filter show dev va egress"), "");
  EXPECT_EQ(a_.Capture("ip -o link show | grep -E '^[0-9]+: csf'"), "");
}

// Pins of another pin ABI: serve of the new build refuses to start and changes nothing (the
// programs keep running and filling); detach refuses too; the message says what to do.
TEST_F(Upgrade, OtherPinAbiIsRefusedAndKeepsRunning) {
  ASSERT_EQ(Csumfix({"-n", a_.name(), "attach", "va", "--egress", "--action", "fill"}).rc, 0);
  const json a = Hook();
  const std::string state = a_.PinRoot() + "/va/state";
  auto set_abi = [&](int v) {
    // Byte 0 of the record is abi_version (little endian __u32).
    const std::string cmd =
        "v=$(bpftool -j map lookup pinned " + state + " key 0 0 0 0 | python3 -c \"import json,"
        "sys; v=json.load(sys.stdin)['value']; v[0]='" + std::to_string(v) +
        "'; print(' '.join(v))\") && bpftool map update pinned " + state + " key 0 0 0 0 value $v";
    ASSERT_EQ(csumfix::testing::Run({"sh", "-c", cmd}).rc, 0) << cmd;
  };
  set_abi(2);
  // Whatever fails below, the record is ABI 1 again before TearDown detaches.
  struct Restore {
    std::function<void()> f;
    ~Restore() { f(); }
  } restore{[&] { set_abi(1); }};
  log_ = tmp_ + "/serve.log";
  pid_t p = Spawn({VariantPath(), "-n", a_.name(), "serve", "--config", cfg_}, {}, log_);
  int st = 0;
  ASSERT_TRUE(WaitFor([&] { return waitpid(p, &st, WNOHANG) == p; }, 30))
      << "serve did not stop:\n" << ReadFile(log_);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) != 0) << ReadFile(log_);
  const std::string log = ReadFile(log_);
  EXPECT_NE(log.find("pin ABI 2"), std::string::npos) << log;
  EXPECT_NE(log.find("Nothing was changed"), std::string::npos) << log;
  EXPECT_NE(log.find("`csumfix -n " + a_.name() + " detach --all`"), std::string::npos) << log;
  CmdResult d = Csumfix({"-n", a_.name(), "detach", "va"});
  EXPECT_EQ(d.rc, 1);
  EXPECT_NE(d.err.find("pin ABI 2"), std::string::npos) << d.err;
  CmdResult u = Csumfix({"-n", a_.name(), "upgrade"});
  EXPECT_EQ(u.rc, 1);
  // Untouched, and still filling.
  restore.f();
  restore.f = [] {};
  const json after = Hook();
  EXPECT_EQ(after["prog_id"], a["prog_id"]);
  EXPECT_EQ(after["prog_tag"], a["prog_tag"]);
  EXPECT_TRUE(after["attached"].get<bool>());
  EXPECT_EQ(SendAndRead(20, 7304), "20 0 20") << "got, CSUMNOTREADY, valid";
}

// csumfix 0.1 counted in csf_counters (per-CPU counters only); this build counts in csf_slots.
// Where 0.1's programs left that map pinned (counts from before an upgrade), stats adds its
// entries, and detach removes the attachment's entry from both. The legacy map is made here as
// 0.1 made it: a per-CPU hash of the same key, counters as value, pinned beside the others.
TEST_F(Upgrade, CountsInTheMapOfCsumfix01AreAddedAndDetachRemovesThem) {
  ASSERT_EQ(Csumfix({"-n", a_.name(), "attach", "va", "--egress", "--action", "fill"}).rc, 0);
  EXPECT_EQ(SendAndRead(10, 7305), "10 0 10") << "got, CSUMNOTREADY, valid";
  CmdResult st = Csumfix({"-n", a_.name(), "stats", "va", "-j"});
  ASSERT_EQ(st.rc, 0) << st.err;
  const json before = json::parse(st.out);
  ASSERT_EQ(before.size(), 1u) << st.out;
  const uint64_t ifindex = before[0]["ifindex"].get<uint64_t>();
  const uint64_t packets = before[0]["packets"].get<uint64_t>();
  ASSERT_GE(packets, 10u);
  const std::string legacy = a_.PinRoot() + "/maps/csf_counters";
  const std::string value_size = std::to_string(CSF_CTR_MAX * 8);
  ASSERT_EQ(csumfix::testing::Run({"bpftool", "map", "create", legacy, "type", "percpu_hash",
                                   "key", "8", "value", value_size, "entries", "64", "name",
                                   "csf_counters"}).rc, 0);
  // Key {ifindex, hook 1 = egress}; value: packets (counter 0) = 1000 on every CPU (bpftool
  // writes the one value to each).
  auto le32 = [](uint64_t v) {
    std::string o;
    for (int i = 0; i < 4; ++i) o += " " + std::to_string((v >> (8 * i)) & 0xff);
    return o;
  };
  std::string cmd = "bpftool map update pinned " + legacy + " key" + le32(ifindex) + le32(1) +
                    " value" + le32(1000) + le32(0);
  for (int i = 8; i < CSF_CTR_MAX * 8; ++i) cmd += " 0";
  ASSERT_EQ(csumfix::testing::Run({"sh", "-c", cmd}).rc, 0) << cmd;
  const int ncpu = libbpf_num_possible_cpus();
  st = Csumfix({"-n", a_.name(), "stats", "va", "-j"});
  ASSERT_EQ(st.rc, 0) << st.err;
  const json after = json::parse(st.out);
  ASSERT_EQ(after.size(), 1u) << st.out;
  // (+ whatever the namespace itself sent meanwhile, e.g. IPv6 neighbour discovery: a few.)
  const uint64_t now = after[0]["packets"].get<uint64_t>();
  EXPECT_GE(now, packets + 1000u * ncpu) << st.out;
  EXPECT_LT(now, packets + 1000u * ncpu + 100) << st.out;
  ASSERT_EQ(Csumfix({"-n", a_.name(), "detach", "va"}).rc, 0);
  // The last detach of a namespace may remove its map set, the legacy map with it.
  if (PathExists(legacy)) {
    CmdResult dump = csumfix::testing::Run({"bpftool", "-j", "map", "dump", "pinned", legacy});
    ASSERT_EQ(dump.rc, 0) << dump.err;
    EXPECT_TRUE(json::parse(dump.out).empty()) << dump.out;
    unlink(legacy.c_str());
  }
}

}  // namespace
}  // namespace csumfix::testing
