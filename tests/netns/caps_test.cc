// Least privilege (SECURITY.md): csumfix works with exactly CAP_BPF + CAP_NET_ADMIN +
// CAP_PERFMON, fails with a clear error without CAP_BPF, drops every other capability for good
// after start (also across execve), and keeps its pin directories at mode 0700.
#include <linux/capability.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "base/caps.h"
#include "base/memlock.h"
#include "gtest/gtest.h"
#include "netns/lab.h"
#include "nlohmann/json.hpp"

namespace csumfix::testing {
namespace {

using json = nlohmann::json;

constexpr uint64_t Bit(int cap) { return uint64_t{1} << cap; }
constexpr uint64_t kThree = Bit(CAP_BPF) | Bit(CAP_NET_ADMIN) | Bit(CAP_PERFMON);

// The hex capability masks of /proc/self/status ("CapEff", ...) and NoNewPrivs.
uint64_t StatusField(const std::string& text, const std::string& field) {
  const size_t at = text.find("\n" + field + ":");
  if (at == std::string::npos) return ~uint64_t{0};
  return std::stoull(text.substr(at + field.size() + 2), nullptr, 16);
}
uint64_t NoNewPrivs(const std::string& text) {
  const size_t at = text.find("\nNoNewPrivs:");
  return at == std::string::npos ? 99 : std::stoull(text.substr(at + 12));
}

// In a child: apply the plan for `command`, then report /proc/self/status from the child itself
// and from a program it executes (`cat`, a root execve that would regain everything without the
// bounding-set drop and no_new_privs).
struct ChildCaps {
  std::string self, after_exec, error;
};
ChildCaps DropInChild(const std::string& command) {
  int p[2];
  EXPECT_EQ(pipe(p), 0);
  pid_t pid = fork();
  if (pid == 0) {
    close(p[0]);
    dup2(p[1], 1);
    auto s = base::ApplyPlan(command, base::PlanFor(command, "/sys/fs/bpf"));
    if (!s.ok()) {
      std::printf("ERROR %s\n", std::string(s.message()).c_str());
      std::fflush(stdout);
      _exit(1);
    }
    std::ifstream f("/proc/self/status");
    std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    std::printf("%s\f", text.c_str());
    std::fflush(stdout);
    execlp("cat", "cat", "/proc/self/status", static_cast<char*>(nullptr));
    _exit(127);
  }
  close(p[1]);
  std::string all;
  char buf[4096];
  ssize_t n;
  while ((n = read(p[0], buf, sizeof buf)) > 0) all.append(buf, n);
  close(p[0]);
  int st = 0;
  waitpid(pid, &st, 0);
  ChildCaps c;
  if (all.rfind("ERROR ", 0) == 0) {
    c.error = all;
    return c;
  }
  const size_t ff = all.find('\f');
  c.self = "\n" + all.substr(0, ff);
  if (ff != std::string::npos) c.after_exec = "\n" + all.substr(ff + 1);
  return c;
}

TEST(Caps, StatusKeepsExactlyBpfNetAdminPerfmonForGood) {
  ASSERT_EQ(geteuid(), 0) << "run as root (scripts/test.sh)";
  ASSERT_TRUE(PathExists("/sys/fs/bpf")) << "bpffs expected at /sys/fs/bpf";
  const ChildCaps c = DropInChild("status");
  ASSERT_EQ(c.error, "");
  for (const char* f : {"CapEff", "CapPrm", "CapBnd"}) {
    EXPECT_EQ(StatusField(c.self, f), kThree) << f << "\n" << c.self;
    EXPECT_EQ(StatusField(c.after_exec, f), kThree) << f << " after execve\n" << c.after_exec;
  }
  EXPECT_EQ(StatusField(c.self, "CapInh"), 0u);
  EXPECT_EQ(StatusField(c.self, "CapAmb"), 0u);
  EXPECT_EQ(NoNewPrivs(c.self), 1u);
}

TEST(Caps, DiagnoseKeepsNothingProbeKeepsNamespaceAndModprobe) {
  ASSERT_EQ(geteuid(), 0) << "run as root (scripts/test.sh)";
  const ChildCaps d = DropInChild("diagnose");
  ASSERT_EQ(d.error, "");
  EXPECT_EQ(StatusField(d.self, "CapEff"), 0u) << d.self;
  EXPECT_EQ(StatusField(d.after_exec, "CapEff"), 0u) << d.after_exec;
  const ChildCaps p = DropInChild("probe");
  ASSERT_EQ(p.error, "");
  EXPECT_EQ(StatusField(p.self, "CapEff"), kThree | Bit(CAP_SYS_ADMIN) | Bit(CAP_SYS_MODULE))
      << p.self;
}

// csumfix itself under setpriv with only the three capabilities (bounding set: a root execve
// gets no more), inside a namespace entered with nsenter (`-n` needs CAP_SYS_ADMIN for setns).
class CapsCli : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0) << "netns tests need root: run scripts/test.sh as root";
    ASSERT_TRUE(ns_.Create()) << "cannot create a network namespace";
    ASSERT_EQ(ns_.Ip("link add ca type veth peer name cb"), 0);
    ASSERT_EQ(ns_.Ip("link set ca up"), 0);
    ASSERT_EQ(ns_.Ip("link set cb up"), 0);
    base::RaiseMemlockLimit();
    // attach --mechanism auto reads this boot's probe result; probing itself needs more
    // (CAP_SYS_ADMIN, CAP_SYS_MODULE), so it is cached first with full privileges.
    CmdResult p = Csumfix({"probe"});
    ASSERT_EQ(p.rc, 0) << p.err;
  }
  void TearDown() override {
    Csumfix({"-n", ns_.name(), "detach", "--all"});
    ns_.Destroy();
    EXPECT_FALSE(PathExists("/sys/fs/bpf/csumfix/v1")) << "pins left behind";
  }
  // csumfix with only `caps`. The locked-memory limit it inherits is this process's, lifted in
  // SetUp as far as this process may, as the systemd unit (LimitMEMLOCK=infinity) and `ulimit -l
  // unlimited` do: kernels before 5.11 charge BPF maps to it, and without CAP_SYS_RESOURCE
  // csumfix cannot lift it itself (AMemlockLimitOnlyMattersBefore511). `memlock`: a lower one
  // for csumfix (prlimit --memlock).
  CmdResult Limited(const std::string& caps, const std::vector<std::string>& args,
                    const std::string& memlock = "") {
    std::vector<std::string> argv = {"nsenter", "--net=/run/netns/" + ns_.name()};
    if (!memlock.empty()) argv.insert(argv.end(), {"prlimit", "--memlock=" + memlock});
    argv.insert(argv.end(), {"setpriv", "--bounding-set", "-all," + caps, "--inh-caps", "-all",
                             CsumfixPath()});
    argv.insert(argv.end(), args.begin(), args.end());
    return testing::Run(argv);
  }
  Netns ns_;
};

TEST_F(CapsCli, AttachStatusStatsDetachWithOnlyThreeCaps) {
  const std::string three = "+bpf,+net_admin,+perfmon";
  CmdResult a = Limited(three, {"attach", "ca", "--both", "--action", "fill"});
  ASSERT_EQ(a.rc, 0) << a.err;
  CmdResult s = Limited(three, {"status", "-j"});
  ASSERT_EQ(s.rc, 0) << s.err;
  json st = json::parse(s.out);
  ASSERT_EQ(st.size(), 1u) << s.out;
  EXPECT_EQ(st[0]["ifname"], "ca");
  for (const auto& h : st[0]["hooks"]) EXPECT_TRUE(h["attached"].get<bool>()) << h.dump();
  // Traffic through the attached hooks, then counters read with the three capabilities.
  ASSERT_EQ(ns_.Ip("addr add 10.78.0.1/24 dev ca"), 0);
  ASSERT_EQ(ns_.Ip("neigh add 10.78.0.2 lladdr 02:00:00:00:00:02 dev ca"), 0);
  ASSERT_EQ(ns_.Exec("python3 -c \"import socket; s=socket.socket(socket.AF_INET, "
                     "socket.SOCK_DGRAM); [s.sendto(b'x'*100, ('10.78.0.2', 9)) for _ in "
                     "range(5)]\""),
            0);
  CmdResult t = Limited(three, {"stats", "ca", "-j"});
  ASSERT_EQ(t.rc, 0) << t.err;
  uint64_t egress = 0;
  for (const auto& r : json::parse(t.out))
    if (r["hook"] == "egress") egress = r["packets"].get<uint64_t>();
  EXPECT_GE(egress, 5u) << t.out;

  // Pin directories: root's alone.
  for (const std::string& d :
       {std::string("/sys/fs/bpf/csumfix"), std::string("/sys/fs/bpf/csumfix/v1"),
        std::string("/sys/fs/bpf/csumfix/v1/netns"), ns_.PinRoot(), ns_.PinRoot() + "/maps",
        ns_.PinDir("ca")}) {
    struct stat sb {};
    ASSERT_EQ(stat(d.c_str(), &sb), 0) << d;
    EXPECT_EQ(sb.st_mode & 07777, 0700u) << d;
  }

  CmdResult d = Limited(three, {"detach", "ca"});
  ASSERT_EQ(d.rc, 0) << d.err;
  EXPECT_FALSE(PathExists(ns_.PinDir("ca"))) << "pins left behind";
}

// With the usual 64 KiB locked-memory limit and no CAP_SYS_RESOURCE: a kernel that charges BPF
// maps to RLIMIT_MEMLOCK (before 5.11) refuses csumfix's maps, and the error says what to lift and
// how; a newer kernel (memory cgroup accounting) attaches.
TEST_F(CapsCli, AMemlockLimitOnlyMattersBefore511) {
  utsname u{};
  ASSERT_EQ(uname(&u), 0);
  int major = 0, minor = 0;
  ASSERT_EQ(std::sscanf(u.release, "%d.%d", &major, &minor), 2) << u.release;
  const bool charged = major < 5 || (major == 5 && minor < 11);
  const std::string three = "+bpf,+net_admin,+perfmon";
  CmdResult a = Limited(three, {"attach", "ca", "--egress", "--action", "fill"}, "65536");
  if (charged) {
    EXPECT_EQ(a.rc, 1) << a.out << a.err;
    EXPECT_NE(a.err.find("RLIMIT_MEMLOCK"), std::string::npos) << a.err;
    EXPECT_NE(a.err.find("ulimit -l unlimited"), std::string::npos) << a.err;
    EXPECT_NE(a.err.find("LimitMEMLOCK=infinity"), std::string::npos) << a.err;
    EXPECT_FALSE(PathExists(ns_.PinDir("ca"))) << "half-applied";
  } else {
    EXPECT_EQ(a.rc, 0) << "kernel " << u.release << " charges the memory cgroup: " << a.err;
  }
}

// `probe` without CAP_SYS_ADMIN (no throwaway namespace) and CAP_SYS_MODULE (no modprobe)
// cannot find everything out: it says what it could not determine, exits 3, and caches nothing,
// so this boot's real result (cached in SetUp) stays and a later full probe is not misled.
TEST_F(CapsCli, ProbeWithoutSysAdminIsIncompleteAndNotCached) {
  const std::string cache = "/run/csumfix/probe.json";
  auto read = [](const std::string& path) {
    std::ifstream f(path);
    return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  };
  const std::string full = read(cache);
  ASSERT_FALSE(full.empty()) << "SetUp's full probe cached nothing";
  const json cached = json::parse(full);

  const std::string three = "+bpf,+net_admin,+perfmon";
  CmdResult r = Limited(three, {"probe", "--refresh", "-j"});
  EXPECT_EQ(r.rc, 3) << r.err;
  EXPECT_NE(r.err.find("probe incomplete, not cached"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("as root"), std::string::npos) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["complete"], false) << r.out;
  EXPECT_EQ(j["cached"], false);
  bool tail = false;
  for (const auto& u : j["undetermined"])
    tail |= u.get<std::string>().rfind("change_tail: ", 0) == 0 &&
            u.get<std::string>().find("CAP_SYS_ADMIN") != std::string::npos;
  EXPECT_TRUE(tail) << "names the change_tail probe and the missing capability: " << r.out;
  EXPECT_EQ(j["change_tail_clears_partial"], false) << "not known, so not claimed";
  EXPECT_EQ(read(cache), full) << "an incomplete result replaced this boot's cache";

  // Without a cache it creates none either.
  const std::string aside = cache + ".csft-" + std::to_string(getpid());
  ASSERT_EQ(rename(cache.c_str(), aside.c_str()), 0);
  CmdResult r2 = Limited(three, {"probe", "-j"});
  const bool created = PathExists(cache);
  ASSERT_EQ(rename(aside.c_str(), cache.c_str()), 0);  // this boot's result back in place
  EXPECT_EQ(r2.rc, 3) << r2.err;
  EXPECT_FALSE(created) << "an incomplete probe wrote " << cache;
  // With a complete cache the limited run just reads it.
  CmdResult r3 = Limited(three, {"probe", "-j"});
  EXPECT_EQ(r3.rc, 0) << r3.err;
  json j3 = json::parse(r3.out);
  EXPECT_EQ(j3["cached"], true);
  EXPECT_EQ(j3["complete"], true);
  EXPECT_EQ(j3["mechanism"], cached["mechanism"]);
}

// The Kubernetes init container's capabilities (packaging/k8s/daemonset.yaml): CAP_SYS_ADMIN but
// no CAP_SYS_MODULE. act_csum is then found out in the throwaway namespace (the kernel loads the
// module itself for a csum action), so the probe is complete and agrees with the full one.
TEST_F(CapsCli, ProbeWithoutSysModuleFindsActCsumInTheNamespace) {
  const json full = json::parse(Csumfix({"probe", "-j"}).out);
  CmdResult r = Limited("+bpf,+net_admin,+perfmon,+sys_admin", {"probe", "--refresh", "-j"});
  ASSERT_EQ(r.rc, 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j["complete"], true) << r.out;
  EXPECT_TRUE(j["undetermined"].empty()) << r.out;
  for (const char* k : {"mechanism", "act_csum", "change_tail_clears_partial", "tcx"})
    EXPECT_EQ(j[k], full[k]) << k << ": limited " << r.out << "\nfull " << full.dump();
  const std::string detail = j["act_csum_detail"];
  EXPECT_TRUE(detail.find("throwaway namespace") != std::string::npos ||
              detail.find("/sys/module/act_csum") != std::string::npos)
      << detail;
}

TEST_F(CapsCli, WithoutCapBpfFailsClearly) {
  for (const char* cmd : {"attach", "status", "stats", "detach"}) {
    std::vector<std::string> args = {cmd};
    if (std::string(cmd) == "attach" || std::string(cmd) == "detach") args.push_back("ca");
    CmdResult r = Limited("+net_admin,+perfmon", args);
    EXPECT_EQ(r.rc, 1) << cmd << ": " << r.err;
    EXPECT_NE(r.err.find("needs cap_bpf"), std::string::npos) << cmd << ": " << r.err;
    EXPECT_NE(r.err.find("setpriv"), std::string::npos) << cmd << ": " << r.err;
  }
  EXPECT_FALSE(PathExists(ns_.PinDir("ca")));
}

TEST_F(CapsCli, PinDirModeRepairedTo0700) {
  // A pin directory made earlier with a wider mode is narrowed on the next attach.
  ASSERT_FALSE(PathExists("/sys/fs/bpf/csumfix/v1")) << "another attachment exists";
  mkdir("/sys/fs/bpf/csumfix", 0755);
  ASSERT_EQ(chmod("/sys/fs/bpf/csumfix", 0755), 0);
  CmdResult a = Csumfix({"-n", ns_.name(), "attach", "ca", "--action", "observe"});
  ASSERT_EQ(a.rc, 0) << a.err;
  struct stat sb {};
  ASSERT_EQ(stat("/sys/fs/bpf/csumfix", &sb), 0);
  EXPECT_EQ(sb.st_mode & 07777, 0700u);
}

// Metrics on loopback by default (SECURITY.md): `csumfix serve` without --web.listen-address answers
// on 127.0.0.1:10786 and not on the interface's address, and runs with exactly the three
// capabilities.
TEST_F(CapsCli, ServeListensOnlyOnLoopbackWithThreeCaps) {
  ASSERT_EQ(ns_.Ip("addr add 10.79.0.1/24 dev ca"), 0);
  const std::string bin = CsumfixPath(), ns = ns_.name();
  pid_t pid = fork();
  if (pid == 0) {
    FILE* null = std::freopen("/dev/null", "w", stdout);
    (void)null;
    execl(bin.c_str(), bin.c_str(), "-n", ns.c_str(), "serve", static_cast<char*>(nullptr));
    _exit(127);
  }
  ASSERT_GT(pid, 0);
  const std::string connect =
      "python3 -c \"import socket,sys; socket.create_connection((sys.argv[1], 10786), 2)\" ";
  bool up = false;
  for (int i = 0; i < 100 && !up; ++i) {
    up = ns_.Exec(connect + "127.0.0.1 2>/dev/null") == 0;
    if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  const std::string st = "\n" + std::string((std::istreambuf_iterator<char>(f)),
                                             std::istreambuf_iterator<char>());
  const std::string listening = ns_.Capture("ss -ltnH");
  const int other = ns_.Exec(connect + "10.79.0.1 2>/dev/null");
  kill(pid, SIGTERM);
  int ws = 0;
  waitpid(pid, &ws, 0);
  ASSERT_TRUE(up) << "serve did not answer on 127.0.0.1:10786";
  EXPECT_NE(listening.find("127.0.0.1:10786"), std::string::npos) << listening;
  EXPECT_EQ(listening.find("0.0.0.0:10786"), std::string::npos) << listening;
  EXPECT_EQ(listening.find("*:10786"), std::string::npos) << listening;
  EXPECT_NE(other, 0) << "serve answered on 10.79.0.1:10786";
  EXPECT_EQ(StatusField(st, "CapEff"), kThree) << st;
  EXPECT_EQ(StatusField(st, "CapBnd"), kThree) << st;
  EXPECT_EQ(NoNewPrivs(st), 1u);
}

// No shell-outs (SECURITY.md): nothing in userspace/ runs a shell or builds a command line from
// strings. The one program csumfix executes is `modprobe -q act_csum` (control/probe.cc), with a
// fixed argv and no shell; anything new here must be argv-only and added to this list.
TEST(NoShellOuts, UserspaceExecutesOnlyFixedArgv) {
  const std::regex call(R"(\b(system|popen|execl|execlp|execle|execv|execvp|execvpe|execve|posix_spawnp?|wordexp)\s*\()");
  const std::regex shell(R"("(/bin/)?(ba)?sh"|"-c")");
  std::vector<std::string> found;
  int files = 0;
  for (const auto& e :
       std::filesystem::recursive_directory_iterator(std::string(CSUMFIX_SOURCE_DIR) + "/userspace")) {
    const std::string path = e.path().string();
    if (!e.is_regular_file() || !(path.ends_with(".cc") || path.ends_with(".h"))) continue;
    ++files;
    std::ifstream f(path);
    std::string line;
    for (int n = 1; std::getline(f, line); ++n) {
      const std::string code = line.substr(0, line.find("//"));
      if (std::regex_search(code, call) || std::regex_search(code, shell))
        found.push_back(path.substr(std::string(CSUMFIX_SOURCE_DIR).size() + 1) + ":" +
                        std::to_string(n) + ": " + line);
    }
  }
  EXPECT_GT(files, 10) << "userspace/ sources not found under " << CSUMFIX_SOURCE_DIR;
  ASSERT_EQ(found.size(), 1u) << "exec/shell calls in userspace/:\n" << [&] {
    std::string all;
    for (const auto& l : found) all += l + "\n";
    return all;
  }();
  EXPECT_NE(found[0].find("userspace/control/probe.cc"), std::string::npos) << found[0];
  EXPECT_NE(found[0].find(R"(execlp("modprobe", "modprobe", "-q", "act_csum")"), std::string::npos)
      << found[0];
}

}  // namespace
}  // namespace csumfix::testing
