// Per-flow policy: rules kept in pinned maps (csf_pol_store), compiled into the tuple-space tables
// the BPF programs search (csf_pol_masks, csf_pol_rules) and switched in atomically. docs/POLICY.md.
#ifndef CSUMFIX_USERSPACE_CONTROL_POLICY_H_
#define CSUMFIX_USERSPACE_CONTROL_POLICY_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "csumfix/abi.h"

namespace csumfix::control {

// What a user writes; every field optional but the action.
struct RuleSpec {
  std::string ifname;  // "" = any interface
  std::string hook;    // "" | ingress | egress | xdp
  int ip = 0;          // 0 | 4 | 6
  std::string proto;   // "" | tcp | udp | udplite | sctp | icmp | icmpv6 | number
  std::string src, dst;      // "" | prefix (a.b.c.d/n, x::/n, or an address)
  std::string sport, dport;  // "" | port | lo-hi
  std::string action;
  uint32_t priority = 100;   // lower wins; ties: the older rule (lower id)
};

// The field of a RuleSpec a ParseRule error is about (kNone: the rule as a whole).
enum class RuleField { kNone, kIface, kHook, kIp, kProto, kSrc, kDst, kSport, kDport, kAction };
// How error messages name a field: the CLI's flag ("--src", the default) or the config file's
// key ("src"); a caller may pass its own (the config's [[zone]] says "prefix" for src and dst).
using FieldSpelling = std::string (*)(RuleField);
std::string FlagSpelling(RuleField f);
std::string KeySpelling(RuleField f);

// Parses and checks a spec into a stored rule (id 0). Errors name the field (spelled by `spell`)
// and what to write, and carry it as a payload: RuleErrorField says which it is.
// --iface binds the rule to that interface's index at this moment (docs/POLICY.md).
absl::StatusOr<csf_pol_rule> ParseRule(const RuleSpec& spec, FieldSpelling spell = FlagSpelling);
// The field an error of ParseRule or ZoneRules is about; kNone when it is about the rule as a
// whole (too many port pairs) or is not such an error.
RuleField RuleErrorField(const absl::Status& s);
// "id 3 prio 100 iface tap0 ingress tcp dst 10.0.0.0/8 -> fill"; with `ifnames` a rule bound
// to a name whose interface is gone says "iface tap0 (gone, waits for it)".
using RuleIfnames = std::map<uint32_t, std::string>;
std::string DescribeRule(const csf_pol_rule& r, const RuleIfnames* ifnames = nullptr);
// The first `len` bits of a 16-byte address mask set, the rest clear.
void FillMask(uint8_t out[16], uint8_t len);
// "tcp", "udp", "udplite", "sctp", "icmp", "icmpv6", else the number.
std::string ProtoName(uint8_t proto);
// A rule bound to an interface (--iface) whose index no longer exists here: the interface was
// deleted. Such a rule matches nothing (a new interface of that name gets a new index); `policy
// list` and `status` flag it, and `serve` removes it when it sees the interface go.
bool RuleInterfaceGone(const csf_pol_rule& r);
// The interface names rules were bound to (--iface), by rule id: a rule follows its name within
// its namespace (Policy::Rebind). A rule of csumfix 0.1 has none.
absl::StatusOr<RuleIfnames> ReadRuleIfnames(const std::string& bpffs = "/sys/fs/bpf");
// The rules as stored, read without taking the pin lock and without creating anything (for
// `status`); empty when no rule was ever added.
absl::StatusOr<std::vector<csf_pol_rule>> ReadRules(const std::string& bpffs = "/sys/fs/bpf");
// The rules of a Xen-style zone (`csumfix policy zone`): for every pair of member prefixes of
// the same IP version a `pass` rule at `priority`, for every member a `fill` rule at priority+1
// for what leaves it (a pair of an IPv4 and an IPv6 prefix gets none). `ifname` "" = any
// interface. Errors are ParseRule's (`spell` as there).
absl::StatusOr<std::vector<csf_pol_rule>> ZoneRules(const std::vector<std::string>& prefixes,
                                                    const std::string& ifname, uint32_t priority,
                                                    FieldSpelling spell = FlagSpelling);

class Policy {
 public:
  // Opens (creating when needed) the pinned policy maps under <bpffs>/csumfix/v1/maps.
  static absl::StatusOr<Policy> Open(const std::string& bpffs = "/sys/fs/bpf");

  absl::StatusOr<uint32_t> Add(csf_pol_rule rule);  // returns the new rule's id
  // Adds several rules at once (one switch of generations); all or none.
  absl::StatusOr<std::vector<uint32_t>> AddAll(std::vector<csf_pol_rule> rules);
  // Makes `rules` the whole rule set (ids renumbered from 1 in the given order): one switch of
  // generations, so packets see the old or the new set; nothing changes when it does not fit.
  // `ifnames` (per rule, or empty): the interface name a rule is bound to, for a rule whose
  // ifindex names no interface yet (0).
  absl::Status Replace(std::vector<csf_pol_rule> rules, const std::vector<std::string>& ifnames = {});
  absl::Status Delete(uint32_t id);
  // Deletes every rule `drop` selects, with one switch of generations; returns them.
  absl::StatusOr<std::vector<csf_pol_rule>> DeleteIf(
      const std::function<bool(const csf_pol_rule&)>& drop);
  absl::Status Flush();
  absl::StatusOr<std::vector<csf_pol_rule>> List() const;
  absl::StatusOr<RuleIfnames> Ifnames() const;
  // Points the rules bound to the name `ifname` at `ifindex` (a VM restart made a new interface
  // of that name; Controller::Attach calls it), with one switch of generations. Returns the
  // rules it changed.
  absl::StatusOr<std::vector<csf_pol_rule>> Rebind(absl::string_view ifname, uint32_t ifindex);

  // Compiles `rules` into the inactive generation and switches to it. Fails, changing nothing
  // the programs see, when the rules need more than CSF_POL_MAX_MASKS shapes or
  // CSF_POL_MAX_ENTRIES entries.
  absl::Status Install(const std::vector<csf_pol_rule>& rules);

 private:
  // The stored rule and the name of its interface, or its removal.
  absl::Status Store(const csf_pol_rule& r, const std::string& ifname = "");
  absl::Status Unstore(uint32_t id);
  int active_fd_ = -1, masks_fd_ = -1, rules_fd_ = -1, store_fd_ = -1, names_fd_ = -1;
  std::shared_ptr<void> keep_;  // owns the fds above
  std::shared_ptr<void> lock_;  // the pin directory's flock (LockPins)
};

}  // namespace csumfix::control

#endif  // CSUMFIX_USERSPACE_CONTROL_POLICY_H_
