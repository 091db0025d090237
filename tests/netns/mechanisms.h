// Which fill mechanisms the real-traffic tests run with on this kernel, from `csumfix probe -j`.
// Every mechanism the kernel supports is tested, not only the one `auto` picks: bounce works
// everywhere; bpf where the change_tail fix is present; act-csum where act_csum is; ifb (tc
// ingress only) where ifb devices and the mirred action are.
#ifndef CSUMFIX_TESTS_NETNS_MECHANISMS_H_
#define CSUMFIX_TESTS_NETNS_MECHANISMS_H_

#include <string>
#include <vector>

namespace csumfix::testing {

struct ProbeFacts {
  bool ok = false;
  std::string error;   // why the probe could not be read
  std::string chosen;  // what --mechanism auto gets
  bool change_tail = false;
  bool act_csum = false;
  bool ifb = false;  // the ifb mechanism works (tc ingress only; never auto's choice)
  bool ifb_redirect = false;  // ... reached by csumfix's own redirect (else the selector + mirred)
  bool tcx = false;  // tcx links (6.6+): attach mode "tcx", else "clsact"
  std::string json;  // the probe's output, for messages
};

// `csumfix probe -j`, run once per test binary.
const ProbeFacts& Probe();

// The choice the probe's own facts call for (bpf > act-csum > bounce): what `chosen` must be.
std::string ExpectedChoice(const ProbeFacts& p);

// The mechanisms to test here: the chosen one first, then every other one the kernel supports
// at that hook (`at_ingress` false: ifb, which works at tc ingress only, is left out).
std::vector<std::string> FillMechanisms(bool at_ingress);

}  // namespace csumfix::testing

#endif  // CSUMFIX_TESTS_NETNS_MECHANISMS_H_
