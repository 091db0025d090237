// The control plane's vocabulary: the one table each of actions, checksum classes, hooks, fill
// mechanisms and counters, used by CLI parsing, JSON, metrics, config messages and tests.
// The reference (userspace/refcsum) keeps its own names on purpose, as the independent oracle;
// tests/unit/names_test.cc asserts that the two agree.
#ifndef CSUMFIX_USERSPACE_CONTROL_NAMES_H_
#define CSUMFIX_USERSPACE_CONTROL_NAMES_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include "absl/strings/string_view.h"

#include "csumfix/abi.h"

namespace csumfix::names {

struct Name {
  uint32_t id;
  absl::string_view name;
};

// Indexed by id (CSF_ACT_*, CSF_CLASS_*, CSF_HOOK_*, CSF_MECH_*): kActions[id].id == id.
inline constexpr Name kActions[] = {
    {CSF_ACT_PASS, "pass"},         {CSF_ACT_OBSERVE, "observe"}, {CSF_ACT_VERIFY, "verify"},
    {CSF_ACT_DROP_BAD, "drop-bad"}, {CSF_ACT_FILL, "fill"},       {CSF_ACT_ZERO_UDP4, "zero-udp4"}};
inline constexpr Name kClasses[] = {
    {CSF_CLASS_NONE, "none"}, {CSF_CLASS_VALID, "valid"},           {CSF_CLASS_PARTIAL, "partial"},
    {CSF_CLASS_BAD, "bad"},   {CSF_CLASS_ZERO, "zero"},             {CSF_CLASS_NA, "na"},
    {CSF_CLASS_UNPARSABLE, "unparsable"}, {CSF_CLASS_GSO, "gso"}, {CSF_CLASS_UNVERIFIED, "unverified"}};
inline constexpr Name kHooks[] = {
    {CSF_HOOK_TC_INGRESS, "ingress"}, {CSF_HOOK_TC_EGRESS, "egress"}, {CSF_HOOK_XDP, "xdp"}};
// "auto" is not a mechanism: it asks the probe for one (see MechanismChoices()).
inline constexpr Name kMechanisms[] = {{CSF_MECH_OBSERVE, "observe"},
                                       {CSF_MECH_BPF, "bpf"},
                                       {CSF_MECH_ACT_CSUM, "act-csum"},
                                       {CSF_MECH_BOUNCE, "bounce"},
                                       {CSF_MECH_IFB, "ifb"}};
static_assert(std::size(kActions) == CSF_ACT_MAX && std::size(kClasses) == CSF_CLASS_MAX &&
              std::size(kHooks) == CSF_HOOK_MAX && std::size(kMechanisms) == CSF_MECH_MAX);

// The counters that are one number per (interface, hook), beyond packets, bytes and the per-class
// and per-action arrays: the key `stats -j` prints, the Prometheus family and its help.
struct Counter {
  uint32_t id;  // CSF_CTR_*
  absl::string_view json;
  absl::string_view metric;
  absl::string_view help;
};
inline constexpr Counter kCounters[] = {
    {CSF_CTR_FILLED, "filled", "csumfix_filled_packets_total",
     "Packets whose partial L4 checksum csumfix completed."},
    {CSF_CTR_ZEROED, "zeroed", "csumfix_zeroed_packets_total",
     "Partial UDP-over-IPv4 packets whose checksum was set to 0 (action zero-udp4)."},
    {CSF_CTR_DROPPED, "dropped", "csumfix_dropped_packets_total",
     "Packets dropped for a bad L4 or IPv4 header checksum (action drop-bad)."},
    {CSF_CTR_IP4_HDR_BAD, "ip4_hdr_bad", "csumfix_ip4_header_bad_packets_total",
     "Packets with a wrong IPv4 header checksum."},
    {CSF_CTR_FILL_ERROR, "fill_error", "csumfix_fill_errors_total",
     "Packets a fill was wanted for but a helper failed; they left unchanged."},
    {CSF_CTR_BOUNCED, "bounced", "csumfix_bounced_packets_total",
     "CHECKSUM_PARTIAL packets sent through the bounce veth to be completed."},
    {CSF_CTR_BOUNCE_RETURNED, "bounce_returned", "csumfix_bounce_returned_packets_total",
     "Packets that came back completed from the bounce veth (not counted again elsewhere)."},
    {CSF_CTR_POLICY_HIT, "policy_hit", "csumfix_policy_hits_total",
     "Packets whose action came from a per-flow policy rule."},
    {CSF_CTR_ACT_SELECTED, "act_selected", "csumfix_act_csum_selected_packets_total",
     "CHECKSUM_PARTIAL packets handed on to be completed: by the selector to act_csum "
     "(mechanism act-csum) or to the ifb device (mechanism ifb), or by csumfix's program "
     "redirecting into the ifb itself (mechanism ifb on kernels that allow it)."},
};
static_assert(std::size(kCounters) == CSF_CTR_MAX - CSF_CTR_FILLED,
              "every single counter of abi.h has a name");

// Name of an id; "unknown" when out of range.
absl::string_view ActionName(uint32_t id);
absl::string_view ClassName(uint32_t id);
absl::string_view HookName(uint32_t id);
absl::string_view MechanismName(uint32_t id);
// Id of a name; nullopt when it is none of them.
std::optional<uint32_t> ActionFromName(absl::string_view name);
std::optional<uint32_t> HookFromName(absl::string_view name);
std::optional<uint32_t> MechanismFromName(absl::string_view name);

// "pass|observe|verify|..." (in id order), for help texts and errors.
std::string Choices(std::span<const Name> table, absl::string_view sep = "|");
// Every value `--mechanism` and the config's `mechanism` take: "auto" then the mechanisms.
std::string MechanismChoices(absl::string_view sep = ", ");

}  // namespace csumfix::names

#endif  // CSUMFIX_USERSPACE_CONTROL_NAMES_H_
