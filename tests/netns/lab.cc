#include "netns/lab.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace csumfix::testing {
namespace {

std::string ReadAll(int fd) {
  std::string s;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) s.append(buf, n);
  return s;
}

std::string Quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) {
    if (c == '\'') q += "'\\''";
    else q += c;
  }
  return q + "'";
}

}  // namespace

CmdResult Run(const std::vector<std::string>& argv) {
  CmdResult r;
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) return r;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], 1);
    dup2(err[1], 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  close(out[1]);
  close(err[1]);
  // Drain both pipes without deadlock: stderr output is small, read it after stdout.
  r.out = ReadAll(out[0]);
  r.err = ReadAll(err[0]);
  close(out[0]);
  close(err[0]);
  int st = 0;
  waitpid(pid, &st, 0);
  r.rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return r;
}

std::string CsumfixPath() {
  const char* e = std::getenv("CSUMFIX_BIN");
  return e && *e ? e : CSUMFIX_BIN_DEFAULT;
}

std::string BpfObjPath() { return std::string(CSUMFIX_BPF_OBJ_DIR) + "/csumfix.bpf.o"; }
std::string BpfCompatObjPath() {
  return std::string(CSUMFIX_BPF_OBJ_DIR) + "/compat/csumfix.bpf.o";
}

CmdResult Csumfix(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {CsumfixPath()};
  argv.insert(argv.end(), args.begin(), args.end());
  return Run(argv);
}

namespace {
std::string PinRootOf(const std::string& nsfs) {
  struct stat st {};
  const unsigned long long ino = stat(nsfs.c_str(), &st) == 0 ? st.st_ino : 0;
  return "/sys/fs/bpf/csumfix/v1/netns/" + std::to_string(ino);
}
}  // namespace

std::string SelfPinRoot() { return PinRootOf("/proc/self/ns/net"); }
std::string Netns::PinRoot() const { return PinRootOf("/run/netns/" + name_); }

std::string Netns::PinDir(const std::string& ifname) const {
  std::string pin = ifname;
  std::replace(pin.begin(), pin.end(), '.', ':');
  return PinRoot() + "/" + pin;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool PathExists(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0;
}

ScopedEnv::ScopedEnv(const char* name, const char* value) : name_(name), set_(value != nullptr) {
  if (!set_) return;
  if (const char* was = getenv(name_)) old_ = std::string(was);
  setenv(name_, value, 1);
}
ScopedEnv::~ScopedEnv() {
  if (!set_) return;
  if (old_) {
    setenv(name_, old_->c_str(), 1);
  } else {
    unsetenv(name_);
  }
}

double TimeScale() {
  const char* e = std::getenv("CSUMFIX_TIME_SCALE");
  const double v = e ? std::atof(e) : 1.0;
  return v >= 1.0 ? v : 1.0;
}

bool WaitFor(const std::function<bool()>& cond, int seconds) {
  // A wall-clock deadline, not a number of tries: under TCG one try can take seconds.
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000.0 * TimeScale()));
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    usleep(100000);
  }
  return cond();
}

std::string RawRead(const Netns& rx, const std::string& dev, int port, int n,
                    const std::function<void()>& send) {
  static std::atomic<int> seq{0};
  const std::string base = "/tmp/csf-raw-" + std::to_string(getpid()) + "-" +
                           std::to_string(seq++);
  const std::string ready = base + ".ready", out = base + ".out";
  rx.Exec("python3 " + Quote(std::string(CSUMFIX_SOURCE_DIR) + "/scripts/raw_reader.py") + " " +
          Quote(dev) + " " + std::to_string(port) + " " + std::to_string(n) + " " + ready +
          " > " + out + " 2>&1 &");
  const bool listening = WaitFor([&] { return PathExists(ready); }, 60);
  unlink(ready.c_str());
  if (!listening) {
    unlink(out.c_str());
    return "reader not ready";
  }
  send();
  std::string line = "timeout";
  WaitFor(
      [&] {
        std::string s = rx.Capture("cat " + out);
        if (s.empty() || s.back() != '\n') return false;
        line = s.substr(0, s.size() - 1);
        return true;
      },
      30);
  unlink(out.c_str());
  return line;
}

bool Netns::Create() {
  static std::atomic<int> seq{0};
  name_ = "csft-" + std::to_string(getpid()) + "-" + std::to_string(seq++);
  if (Run({"ip", "netns", "add", name_}).rc != 0) {
    name_.clear();
    return false;
  }
  return Ip("link set lo up") == 0;
}

void Netns::Destroy() {
  if (name_.empty()) return;
  Run({"sh", "-c", "ip netns pids " + Quote(name_) + " | xargs -r kill -9"});
  Run({"ip", "netns", "del", name_});
  name_.clear();
}

int Netns::Ip(const std::string& args) const {
  return Run({"sh", "-c", "ip -n " + Quote(name_) + " " + args}).rc;
}

int Netns::Exec(const std::string& sh) const {
  return Run({"ip", "netns", "exec", name_, "sh", "-c", sh}).rc;
}

std::string Netns::Capture(const std::string& sh) const {
  CmdResult r = Run({"ip", "netns", "exec", name_, "sh", "-c", sh + " 2>&1"});
  return r.out;
}

bool VethPair(const VethEnd& a, const VethEnd& b) {
  std::string add = "link add " + a.name + " type veth peer name " + b.name;
  if (b.ns != a.ns) add += " netns " + b.ns->name();
  if (a.ns->Ip(add) != 0) return false;
  for (const VethEnd* e : {&a, &b})
    if (!e->cidr.empty() && e->ns->Ip("addr add " + e->cidr + " dev " + e->name) != 0) return false;
  for (const VethEnd* e : {&a, &b})
    if (e->ns->Ip("link set " + e->name + " up") != 0) return false;
  return true;
}

::testing::AssertionResult RootAndNamespaces(std::initializer_list<Netns*> nss) {
  if (geteuid() != 0)
    return ::testing::AssertionFailure() << "netns tests need root: run scripts/test.sh as root";
  for (Netns* ns : nss)
    if (!ns->Create()) return ::testing::AssertionFailure() << "cannot create a network namespace";
  return ::testing::AssertionSuccess();
}

}  // namespace csumfix::testing
