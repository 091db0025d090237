// Attach / detach / status: the lifecycle of csumfix attachments, kept entirely in bpffs pins under
// <bpffs>/csumfix/v1/ so it survives the CLI and the daemon (see include/csumfix/abi.h).
// Every mutation holds an flock on <bpffs>/csumfix; attach is all-or-nothing with rollback;
// detach removes exactly what csumfix created. The jobs live in their own files: pins.h (bpffs,
// lock, state, shared maps), hooks.h (tcx / clsact / XDP), bounce.h and act_csum.h (the fill
// mechanisms' helpers), attach.cc (the orchestrator), query.cc (status, counters, flows).
#ifndef CSUMFIX_USERSPACE_CONTROL_CONTROL_H_
#define CSUMFIX_USERSPACE_CONTROL_CONTROL_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/outcome.h"
#include "control/fault.h"
#include "control/hooks.h"
#include "control/pins.h"
#include "control/probe.h"
#include "csumfix/abi.h"

namespace csumfix::control {

struct AttachRequest {
  std::string ifname;
  bool ingress = false;
  bool egress = false;
  bool xdp = false;
  uint32_t action = CSF_ACT_FILL;  // default action for every hook attached
  TcApi tc_api = TcApi::kAuto;     // kAuto: tcx where the kernel has it, else clsact + cls_bpf
  uint32_t mechanism = CSF_MECH_OBSERVE;  // how kernel-PARTIAL packets get filled (CSF_MECH_*)
  std::string xdp_redirect_to;  // XDP: redirect every frame not dropped to this interface
};

struct HookStatus {
  uint32_t hook = 0;      // CSF_HOOK_*
  std::string mode;       // "tcx", "clsact", "xdp"
  uint32_t prog_id = 0;   // id recorded at attach
  uint32_t act_prog_id = 0;  // act-csum: the classic selector filter's program (0: none)
  bool attached = false;  // the kernel still runs our program there
  uint32_t action = CSF_ACT_PASS;
};

struct IfaceStatus {
  std::string ifname;
  // The pin directory's record: "ok"; "attaching" (no state yet and another csumfix holds the
  // pin lock: an attach in progress); "incomplete" (no state and nobody holds the lock: an attach
  // was interrupted, `csumfix detach IFNAME` removes what it left); "unreadable" (the state exists
  // but cannot be read, e.g. another ABI version). Other than "ok", ifindex and present describe
  // the device of that name now, and nothing else is filled.
  std::string state = "ok";
  std::string problem;  // why, and what to do, when state is not "ok"
  uint32_t mechanism = CSF_MECH_OBSERVE;
  uint32_t ifindex = 0;
  bool present = false;  // the interface still exists with this ifindex
  // Every hook is a tcx/XDP link and every link reports its device gone (ifindex 0): the
  // interface was deleted, whatever network namespace it lived in.
  bool links_defunct = false;
  std::vector<HookStatus> hooks;
  std::vector<std::pair<std::string, bool>> offloads;  // ethtool -k view of the device
};

struct CounterRow {
  uint32_t ifindex = 0;
  std::string ifname;  // "" when the interface is gone
  uint32_t hook = 0;
  csf_counters counters{};
};

struct FlowRow {
  csf_tuple key{};
  csf_flow_val val{};
  std::string ifname;
  std::string src, dst;  // printable addresses
};

struct CleanReport {
  std::vector<std::string> removed;
  Done done;
};

// Checks an attach request against the kernel's features without touching the system: a hook is
// chosen, action and mechanism are known, the kernel can do the mechanism, the interface names
// are well formed, --redirect-to comes with --xdp. InvalidArgument / FailedPrecondition.
absl::Status ValidateAttach(const AttachRequest& req, const ProbeResult& features);

class Controller {
 public:
  // `bpffs` is the bpf filesystem mount point; it is mounted there when it is not yet.
  explicit Controller(std::string bpffs = "/sys/fs/bpf");

  // Attaches as `req` asks, all-or-nothing. `features` is what the kernel can do (the probe's
  // result): a mechanism it lacks is refused before anything changes.
  absl::Status Attach(const AttachRequest& req, const ProbeResult& features);
  // Removes what csumfix attached to `ifname`. Done with warnings when something was left alone
  // (not csumfix's any more) or the attach had been interrupted; NotFound when not attached.
  Outcome Detach(absl::string_view ifname);
  Outcome DetachAll();
  // Removes what csumfix left in this network namespace and no live record accounts for (see
  // leftovers.h): records of deleted interfaces, pins of interrupted attaches, stray bounce veth
  // pairs and csumfix filters. `ifname` "" = every interface. Returns what it removed; warnings
  // name what it left alone.
  absl::StatusOr<CleanReport> Clean(absl::string_view ifname);
  // Changes the default action of an attached hook (atomic map update).
  absl::Status SetAction(absl::string_view ifname, uint32_t hook, uint32_t action);
  absl::StatusOr<std::vector<IfaceStatus>> Status() const;
  absl::StatusOr<std::vector<CounterRow>> Counters() const;
  // The flows seen with partial or bad checksums, most affected first (at most `top`; 0 = all).
  absl::StatusOr<std::vector<FlowRow>> Flows(size_t top = 0) const;

  std::string root() const { return paths_.root(); }  // <bpffs>/csumfix/v1
  const PinPaths& paths() const { return paths_; }
  // Removes the shared maps and directories when nothing is attached and no policy rule exists.
  // Callers hold the lock or are the only user.
  void Tidy() const;
  // Mounts bpffs when needed and creates <bpffs>/csumfix/v1/maps.
  absl::Status EnsurePinDirs() const;

 private:
  // Status(): the record of one pin directory, and its hooks.
  IfaceStatus StatusOf(const std::string& name, const bpf::Fd& ifcfg) const;
  PinPaths paths_;
};

}  // namespace csumfix::control

#endif  // CSUMFIX_USERSPACE_CONTROL_CONTROL_H_
