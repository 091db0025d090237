// Kernel feature probe: which fill mechanism this kernel gets, decided by trying, never by
// version number (distributions backport). Cached per boot in /run/csumfix/probe.json.
#ifndef CSUMFIX_USERSPACE_CONTROL_PROBE_H_
#define CSUMFIX_USERSPACE_CONTROL_PROBE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "csumfix/abi.h"

namespace csumfix::control {

struct ProbeResult {
  std::string kernel;   // uname -r
  std::string boot_id;  // the cache key
  bool cached = false;
  bool kern_ctx_kfunc = false;  // bpf_cast_to_kern_ctx (else probe-read fallback)
  bool tcx = false;             // tcx links (else clsact + cls_bpf direct-action)
  bool change_tail_clears_partial = false;
  std::string change_tail_detail;
  bool act_csum = false;
  std::string act_csum_detail;
  // The ifb mechanism (tc ingress only): an ifb device and csumfix's selector with a mirred
  // action to it, tried in the throwaway namespace. Never chosen by auto (--mechanism ifb).
  bool ifb = false;
  std::string ifb_detail;
  // ifb: the kernel re-injects what csumfix's program hands an ifb with bpf_redirect (6.4+), so
  // attach needs no selector filter (tried with one datagram; CSUMFIX_IFB_VIA=mirred overrides).
  bool ifb_redirect = false;
  std::string ifb_redirect_detail;
  uint32_t mechanism = CSF_MECH_OBSERVE;  // the choice
  std::string reason;                     // why
  // False when a fact could not be found out (e.g. no CAP_SYS_ADMIN for the throwaway
  // namespace, no CAP_SYS_MODULE to load act_csum): `undetermined` says which and why. Such a
  // result is never cached, and its choice only uses what is known (bounce works everywhere).
  bool complete = true;
  std::vector<std::string> undetermined;
};

// Runs the probe (in a throwaway network namespace) or returns this boot's cached result.
// Only a complete result is written to the cache.
absl::StatusOr<ProbeResult> Probe(bool refresh = false, const std::string& cache_dir = "/run/csumfix");

std::string ProbeToJson(const ProbeResult& r);

}  // namespace csumfix::control

#endif  // CSUMFIX_USERSPACE_CONTROL_PROBE_H_
