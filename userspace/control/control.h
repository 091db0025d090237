// Attach / detach / status: the lifecycle of csumfix attachments, kept entirely in bpffs pins under
// <bpffs>/csumfix/v1/ so it survives the CLI and the daemon (see include/csumfix/abi.h).
// Every mutation holds an flock on <bpffs>/csumfix; attach is all-or-nothing with rollback;
// detach removes exactly what csumfix created. The jobs live in their own files: pins.h (bpffs,
// lock, state, shared maps), hooks.h (tcx / clsact / XDP), bounce.h, selector.h and ifb.h (the fill
// mechanisms' helpers), attach.cc (the orchestrator), query.cc (status, counters, flows).
#ifndef CSUMFIX_USERSPACE_CONTROL_CONTROL_H_
#define CSUMFIX_USERSPACE_CONTROL_CONTROL_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "base/outcome.h"
#include "bpf/loader.h"
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
  std::string prog_tag;   // Detail::kFull: the pinned program's kernel tag ("" if unreadable)
  bool attached = false;  // the kernel still runs our program there
  uint32_t action = CSF_ACT_PASS;
};

struct IfaceStatus {
  std::string ifname;
  uint64_t netns_ino = 0;  // the network namespace of the record (its inode)
  // The pin directory's record: "ok"; "attaching" (no state yet and another csumfix holds the
  // pin lock: an attach in progress); "incomplete" (no state and nobody holds the lock: an attach
  // was interrupted, `csumfix clean IFNAME` removes what it left); "unreadable" (the state exists
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
  uint64_t netns_ino = 0;  // the network namespace the ifindex is in
  uint32_t ifindex = 0;
  std::string ifname;  // from the attachment's record; "" when unknown
  uint32_t hook = 0;
  csf_counters counters{};
};

struct FlowRow {
  csf_tuple key{};
  csf_flow_val val{};
  uint64_t netns_ino = 0;
  std::string ifname;
  std::string src, dst;  // printable addresses
};

// What Controller::Upgrade did to one attachment.
struct UpgradeReport {
  std::string ifname;
  // One line per program replaced: "egress: prog 812 -> 907 (tag 3b1c.. -> 9e07..)".
  std::vector<std::string> swapped;
  // Why this attachment keeps (some of) its programs: not attached any more, a filter that runs
  // someone else's program, a failed step. "" when it runs this build's programs now.
  std::string error;
};

struct CleanReport {
  std::vector<std::string> removed;
  Done done;
};

// Checks an attach request against the kernel's features without touching the system: a hook is
// chosen, action and mechanism are known, the kernel can do the mechanism, the interface names
// are well formed, --redirect-to comes with --xdp. InvalidArgument / FailedPrecondition.
absl::Status ValidateAttach(const AttachRequest& req, const ProbeResult& features);

// The actions that can fill (fill and zero-udp4): only they hand kernel-PARTIAL packets to a fill
// mechanism (bpf/lib/pipeline.h, csf_fill). The others (pass, observe, verify, drop-bad) never
// change a checksum, so they need no mechanism and none of its helpers.
bool ActionCanFill(uint32_t action);

// The mechanism (CSF_MECH_*) an attach gets. `requested` is what the user wrote: "auto" (the
// default of `attach --mechanism` and of the config's `mechanism`) or a mechanism's name;
// `probed` is `csumfix probe`'s choice (CSF_MECH_MAX: the probe failed).
//   - A named mechanism is kept, whatever the action: a verify interface whose fills come from
//     policy rules gets its helpers when the user names a mechanism.
//   - "auto" with an action that cannot fill is observe: no bounce veths, no act_csum filter. A
//     policy rule that fills there then only completes seeds the kernel does not hold as partial;
//     kernel-PARTIAL packets are counted (class partial, that rule's action) and left alone.
//   - "auto" with fill or zero-udp4 is `probed`.
// CSF_MECH_MAX when there is no answer: an unknown name, or "auto" for a filling action when the
// probe failed. Pure: no probe, no syscall.
uint32_t ResolveMechanism(absl::string_view requested, uint32_t action, uint32_t probed);

// The attached interfaces of `attached` on which `rule` (a policy rule whose action fills) could
// fill a kernel-PARTIAL packet but whose mechanism is observe, so it cannot: state "ok", the
// device present here, a tc hook the rule can match, the rule bound to the interface or to none.
// Empty for a rule that does not fill. (`csumfix policy add` and `policy zone` warn about them.)
std::vector<const IfaceStatus*> FillRuleWithoutMechanism(const csf_pol_rule& rule,
                                                         const std::vector<IfaceStatus>& attached);

// Removes the namespace's pin directory and those above it, each only when empty.
void RemoveEmptyPinDirs(const PinPaths& paths);

class Controller {
 public:
  // `bpffs` is the bpf filesystem mount point; it is mounted there when it is not yet. The
  // controller works on the pins of network namespace `netns_ino` (its inode; default: this
  // process's). Attach and detach must run in that namespace; the views (Status, Counters,
  // Flows) read any namespace's pins, naming interfaces from the state records.
  explicit Controller(std::string bpffs = "/sys/fs/bpf", uint64_t netns_ino = CurrentNetnsIno());

  // Attaches as `req` asks, all-or-nothing. `features` is what the kernel can do (the probe's
  // result): a mechanism it lacks is refused before anything changes. Policy rules bound to the
  // interface's name (`policy add --iface`) are pointed at it when they named an older one.
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
  // Makes every attachment of this namespace (`ifname` "": all) run this build's programs,
  // replacing in place those another build loaded (told apart by the kernel's program tag): a
  // tcx or XDP link is updated to the new program, a cls_bpf filter is replaced on its own
  // handle and priority (the act-csum selector too), the bounce return program likewise; the
  // pins follow by rename and the record last. Every swap is atomic, so each packet meets the
  // old program or the new one; the pinned maps (counters, flows, rules) are shared by both.
  // Nothing else changes: hooks, mechanism, actions. FailedPrecondition before anything changes
  // when the pins are another pin ABI's; a problem with one attachment is reported in its
  // UpgradeReport and the others go on.
  absl::StatusOr<std::vector<UpgradeReport>> Upgrade(absl::string_view ifname = "");
  // Changes the default action of an attached hook (atomic map update).
  absl::Status SetAction(absl::string_view ifname, uint32_t hook, uint32_t action);
  // What Status() reads: everything (`csumfix status`, metrics), or only the records and whether
  // their devices exist here (kRecords: no ethtool offloads, no per-hook kernel query; hooks'
  // `attached` is then `present`). serve's link following uses kRecords: its cost stays a few
  // syscalls per interface however many are attached.
  enum class Detail { kFull, kRecords };
  absl::StatusOr<std::vector<IfaceStatus>> Status(Detail detail = Detail::kFull) const;
  // The record of `ifname` when it names `ifindex` (the interface that just went): one pin read.
  bool Records(absl::string_view ifname, uint32_t ifindex) const;
  // `known`: this namespace's records as Status() just returned them, to name the rows without
  // reading every record again (serve's scrape); nullptr reads them.
  absl::StatusOr<std::vector<CounterRow>> Counters(
      const std::vector<IfaceStatus>* known = nullptr) const;
  // The flows seen with partial or bad checksums, most affected first (at most `top`; 0 = all).
  absl::StatusOr<std::vector<FlowRow>> Flows(size_t top = 0) const;

  std::string root() const { return paths_.root(); }  // <bpffs>/csumfix/v1/netns/<ino>
  uint64_t netns_ino() const { return paths_.netns_ino(); }
  const PinPaths& paths() const { return paths_; }
  // Removes the shared maps and directories when nothing is attached and no policy rule exists.
  // Callers hold the lock or are the only user.
  void Tidy() const;
  // Mounts bpffs when needed and creates <bpffs>/csumfix/v1/maps.
  absl::Status EnsurePinDirs() const;
  // Keeps the loaded (verified) programs after an attach and uses them for the next ones while
  // the pinned shared maps are still theirs: an attach then costs a few syscalls instead of a
  // load through the verifier. For a long-running process (serve); the CLI attaches once.
  void KeepProgramsLoaded(bool keep) {
    keep_programs_ = keep;
    if (!keep) programs_.reset();
  }

 private:
  // Attach() under the pin lock, without the rules' rebinding.
  absl::Status AttachLocked(const AttachRequest& req, const ProbeResult& features);
  // Status(): the record of one pin directory, and its hooks.
  IfaceStatus StatusOf(const std::string& name, const bpf::Fd& ifcfg, Detail detail) const;
  // Counters(), Flows(): the name of an ifindex of this namespace ("" when unknown).
  std::function<std::string(uint32_t)> Namer(const std::vector<IfaceStatus>* known = nullptr) const;
  // The programs for an attach: the kept ones when they still fit the pinned maps and hold
  // `needed`, else loaded: all of them when they are kept (serve), else only `needed`.
  absl::StatusOr<std::shared_ptr<bpf::Programs>> LoadedPrograms(
      bpf::ProgramSet needed = bpf::kAllPrograms);
  PinPaths paths_;
  bool keep_programs_ = false;
  std::shared_ptr<bpf::Programs> programs_;  // KeepProgramsLoaded: the last loaded
};

}  // namespace csumfix::control

#endif  // CSUMFIX_USERSPACE_CONTROL_CONTROL_H_
