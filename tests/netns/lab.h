// Helpers for tests on real interfaces: throwaway network namespaces, running commands and the
// csumfix binary. Everything a test creates lives in a namespace it owns and is removed with it.
#ifndef CSUMFIX_TESTS_NETNS_LAB_H_
#define CSUMFIX_TESTS_NETNS_LAB_H_

#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace csumfix::testing {

struct CmdResult {
  int rc = -1;
  std::string out;
  std::string err;
};

// Runs argv (no shell) and captures stdout/stderr.
CmdResult Run(const std::vector<std::string>& argv);
// Runs the csumfix binary under test (CSUMFIX_BIN, else the build tree's).
CmdResult Csumfix(const std::vector<std::string>& args);
std::string CsumfixPath();
std::string BpfObjPath();  // the built csumfix.bpf.o
// The compat object (no bpf_loop): loads on every kernel of the matrix, 5.10 included, so tests
// that load "someone else's" program with iproute2 use it.
std::string BpfCompatObjPath();
bool PathExists(const std::string& path);
// The whole file (empty if it cannot be read).
std::string ReadFile(const std::string& path);
// csumfix's pin directory of this process's network namespace (as Netns::PinRoot).
std::string SelfPinRoot();
// How much slower than this 2-core host the machine is: CSUMFIX_TIME_SCALE (default 1; the VM
// guests under TCG set it). Deadlines the tests wait for are multiplied by it.
double TimeScale();
// Polls cond every 100 ms for up to `seconds` times TimeScale(); true once it holds. (Every wait
// is for something that must happen: a slower machine only waits longer before failing.)
bool WaitFor(const std::function<bool()>& cond, int seconds);

// Sets an environment variable for the csumfix runs of one scope (children inherit it) and
// restores what it was at the end of the scope (so scopes nest); a null value leaves the
// environment alone.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value);
  ~ScopedEnv();
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  bool set_;
  std::optional<std::string> old_;
};

class Netns;
// scripts/raw_reader.py (a dhclient-like AF_PACKET reader) on rx's `dev`, for n UDP datagrams to
// `port`: waits until it listens (up to 60 s: python3 starts slowly under TCG in the VM matrix),
// runs send(), and returns its line "got csumnotready valid", or "reader not ready" / "timeout".
std::string RawRead(const Netns& rx, const std::string& dev, int port, int n,
                    const std::function<void()>& send);

class Netns {
 public:
  Netns() = default;
  ~Netns() { Destroy(); }
  Netns(const Netns&) = delete;
  Netns& operator=(const Netns&) = delete;

  bool Create();   // a fresh uniquely named namespace with lo up
  void Destroy();  // kills its processes, deletes it
  const std::string& name() const { return name_; }

  int Ip(const std::string& args) const;           // `ip -n NAME args`
  // csumfix's pin directory of this namespace, /sys/fs/bpf/csumfix/v1/netns/<inode>, and of one
  // interface's attachment in it (a '.' in the name written as ':').
  std::string PinRoot() const;
  std::string PinDir(const std::string& ifname) const;
  int Exec(const std::string& sh) const;           // `ip netns exec NAME sh -c ...`
  std::string Capture(const std::string& sh) const;  // same, stdout+stderr

 private:
  std::string name_;
};

// The start of every netns test: root, then a fresh namespace for each of `nss`. Use it as
// ASSERT_TRUE(RootAndNamespaces({&a_, &b_})); the failure says which step failed and why.
::testing::AssertionResult RootAndNamespaces(std::initializer_list<Netns*> nss);

// One end of a veth pair: its namespace, name and IPv4/IPv6 address in CIDR form ("" = none).
struct VethEnd {
  const Netns* ns;
  std::string name;
  std::string cidr;
};
// Creates the pair (b in b.ns, which may be a.ns), gives each end its address and sets both up;
// false as soon as a step fails.
bool VethPair(const VethEnd& a, const VethEnd& b);

}  // namespace csumfix::testing

#endif  // CSUMFIX_TESTS_NETNS_LAB_H_
