// Policy rules as users write them: parsing and checking a RuleSpec (CLI flags or config keys),
// the rules of a zone, and how a rule is described. The rule store and its compilation into the
// programs' tables are in policy.cc.
#include "control/policy.h"

#include <arpa/inet.h>
#include <net/if.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/status.h"
#include "control/names.h"

namespace csumfix::control {

namespace {

constexpr uint32_t kMaxPortsPerRule = 4096;

// The payload a rule error carries: the field's key (KeySpelling).
constexpr char kRuleFieldPayload[] = "type.csumfix/control.RuleField";

struct FieldKey {
  RuleField field;
  const char* key;
};
constexpr FieldKey kFieldKeys[] = {
    {RuleField::kIface, "iface"}, {RuleField::kHook, "hook"},   {RuleField::kIp, "ip"},
    {RuleField::kProto, "proto"}, {RuleField::kSrc, "src"},     {RuleField::kDst, "dst"},
    {RuleField::kSport, "sport"}, {RuleField::kDport, "dport"}, {RuleField::kAction, "action"}};

// `s` marked as an error about `f`.
absl::Status Tagged(absl::Status s, RuleField f) {
  s.SetPayload(kRuleFieldPayload, absl::Cord(KeySpelling(f)));
  return s;
}

absl::Status Invalid(RuleField f, const std::string& msg) {
  return Tagged(absl::InvalidArgumentError(msg), f);
}

absl::StatusOr<uint8_t> ParseProto(const std::string& p, FieldSpelling spell) {
  static const std::map<std::string, uint8_t> kNames = {
      {"tcp", 6}, {"udp", 17}, {"udplite", 136}, {"sctp", 132}, {"icmp", 1}, {"icmpv6", 58}};
  if (auto it = kNames.find(p); it != kNames.end()) return it->second;
  uint32_t n;
  if (absl::SimpleAtoi(p, &n) && n > 0 && n < 256) return static_cast<uint8_t>(n);
  return Invalid(RuleField::kProto,
                 absl::StrCat(spell(RuleField::kProto), " ", p,
                              ": use tcp, udp, udplite, sctp, icmp, icmpv6 or a number 1-255"));
}

}  // namespace

std::string FlagSpelling(RuleField f) {
  return f == RuleField::kNone ? "" : absl::StrCat("--", KeySpelling(f));
}

std::string KeySpelling(RuleField f) {
  for (const auto& k : kFieldKeys)
    if (k.field == f) return k.key;
  return "";
}

RuleField RuleErrorField(const absl::Status& s) {
  auto key = s.GetPayload(kRuleFieldPayload);  // absl::optional<absl::Cord>
  if (!key) return RuleField::kNone;
  for (const auto& k : kFieldKeys)
    if (*key == k.key) return k.field;
  return RuleField::kNone;
}

std::string ProtoName(uint8_t proto) {
  switch (proto) {
    case 1: return "icmp";
    case 6: return "tcp";
    case 17: return "udp";
    case 58: return "icmpv6";
    case 132: return "sctp";
    case 136: return "udplite";
    default: return std::to_string(proto);
  }
}

namespace {

// A prefix of field `f` (src or dst); `*ipver` 0 or the rule's IP version so far.
absl::Status ParsePrefix(RuleField f, FieldSpelling spell, const std::string& text,
                         uint8_t* ipver, uint8_t addr[16], uint8_t* len) {
  const std::string what = spell(f);
  std::vector<std::string> parts = absl::StrSplit(text, '/');
  if (parts.size() > 2) return Invalid(f, what + " " + text + ": not a prefix");
  uint8_t v = 0;
  std::memset(addr, 0, 16);
  if (inet_pton(AF_INET, parts[0].c_str(), addr) == 1) {
    v = 4;
  } else if (inet_pton(AF_INET6, parts[0].c_str(), addr) == 1) {
    v = 6;
  } else {
    return Invalid(f, absl::StrCat(what, " ", text,
                                   ": not an IPv4 or IPv6 address (write e.g. 10.0.0.0/8 or "
                                   "fd00::/64)"));
  }
  uint32_t l = v == 4 ? 32 : 128;
  if (parts.size() == 2 && (!absl::SimpleAtoi(parts[1], &l) || l > (v == 4 ? 32u : 128u) || l == 0))
    return Invalid(f, absl::StrCat(what, " ", text, ": prefix length must be 1-",
                                   v == 4 ? 32 : 128));
  if (*ipver != 0 && *ipver != v)
    return Invalid(f, absl::StrCat(what, " ", text, " is IPv", int(v), " but the rule is IPv",
                                   int(*ipver)));
  *ipver = v;
  *len = static_cast<uint8_t>(l);
  uint8_t mask[16];
  FillMask(mask, *len);
  for (int b = 0; b < 16; ++b) addr[b] &= mask[b];  // keep only the prefix bits
  return absl::OkStatus();
}

// The IP version of a prefix ParsePrefix accepts; 0 when it accepts none.
uint8_t PrefixVersion(const std::string& text) {
  uint8_t v = 0, addr[16], len;
  return ParsePrefix(RuleField::kSrc, FlagSpelling, text, &v, addr, &len).ok() ? v : 0;
}

// A port or range of field `f` (sport or dport).
absl::Status ParsePorts(RuleField f, FieldSpelling spell, const std::string& text, uint16_t* lo,
                        uint16_t* hi) {
  const std::string what = spell(f);
  std::vector<std::string> parts = absl::StrSplit(text, '-');
  uint32_t a, b;
  if (parts.size() == 1 && absl::SimpleAtoi(parts[0], &a) && a > 0 && a < 65536) {
    *lo = *hi = static_cast<uint16_t>(a);
    return absl::OkStatus();
  }
  if (parts.size() == 2 && absl::SimpleAtoi(parts[0], &a) && absl::SimpleAtoi(parts[1], &b) &&
      a > 0 && b < 65536 && a <= b) {
    if (b - a + 1 > kMaxPortsPerRule)
      return Invalid(f, absl::StrCat(what, " ", text, ": at most ", kMaxPortsPerRule,
                                     " ports in a range"));
    *lo = static_cast<uint16_t>(a);
    *hi = static_cast<uint16_t>(b);
    return absl::OkStatus();
  }
  return Invalid(f, absl::StrCat(what, " ", text,
                                 ": write a port (80) or a range (8000-8080), 1-65535"));
}

}  // namespace

absl::StatusOr<csf_pol_rule> ParseRule(const RuleSpec& s, FieldSpelling spell) {
  csf_pol_rule r{};
  r.priority = s.priority;
  const uint32_t a = names::ActionFromName(s.action).value_or(CSF_ACT_MAX);
  if (a >= CSF_ACT_MAX)
    return Invalid(RuleField::kAction,
                   absl::StrCat(spell(RuleField::kAction), " ", s.action,
                                ": use pass, observe, verify, drop-bad, fill or zero-udp4"));
  r.action = a;
  if (!s.ifname.empty()) {
    r.ifindex = if_nametoindex(s.ifname.c_str());
    if (r.ifindex == 0)
      return Tagged(absl::NotFoundError(absl::StrCat(spell(RuleField::kIface), " ", s.ifname,
                                                     ": no such interface")),
                    RuleField::kIface);
    r.flags |= CSF_POL_F_IFINDEX;
  }
  if (!s.hook.empty()) {
    std::optional<uint32_t> hook = names::HookFromName(s.hook);
    if (!hook)
      return Invalid(RuleField::kHook,
                     spell(RuleField::kHook) + " " + s.hook + ": use ingress, egress or xdp");
    r.hook = *hook;
    r.flags |= CSF_POL_F_HOOK;
  }
  if (s.ip != 0) {
    if (s.ip != 4 && s.ip != 6) return Invalid(RuleField::kIp, spell(RuleField::kIp) + ": use 4 or 6");
    r.ipver = static_cast<uint8_t>(s.ip);
  }
  if (!s.proto.empty()) {
    ASSIGN_OR_RETURN(r.proto, ParseProto(s.proto, spell));
    r.flags |= CSF_POL_F_PROTO;
  }
  if (!s.src.empty())
    RETURN_IF_ERROR(ParsePrefix(RuleField::kSrc, spell, s.src, &r.ipver, r.src, &r.src_len));
  if (!s.dst.empty())
    RETURN_IF_ERROR(ParsePrefix(RuleField::kDst, spell, s.dst, &r.ipver, r.dst, &r.dst_len));
  if (r.ipver) r.flags |= CSF_POL_F_IPVER;
  const bool ported = r.proto == 6 || r.proto == 17 || r.proto == 136 || r.proto == 132;
  if ((!s.sport.empty() || !s.dport.empty()) && !ported)
    return Invalid(RuleField::kSport,
                   absl::StrCat(spell(RuleField::kSport), "/", spell(RuleField::kDport), " need ",
                                spell(RuleField::kProto), " tcp, udp, udplite or sctp"));
  if (!s.sport.empty()) {
    RETURN_IF_ERROR(ParsePorts(RuleField::kSport, spell, s.sport, &r.sport_lo, &r.sport_hi));
    r.flags |= CSF_POL_F_SPORT;
  }
  if (!s.dport.empty()) {
    RETURN_IF_ERROR(ParsePorts(RuleField::kDport, spell, s.dport, &r.dport_lo, &r.dport_hi));
    r.flags |= CSF_POL_F_DPORT;
  }
  if (static_cast<uint64_t>(r.sport_hi - r.sport_lo + 1) * (r.dport_hi - r.dport_lo + 1) >
      kMaxPortsPerRule)
    return absl::InvalidArgumentError(absl::StrCat(
        "a rule may cover at most ", kMaxPortsPerRule, " (source, destination) port pairs"));
  return r;
}

std::string DescribeRule(const csf_pol_rule& r, const RuleIfnames* ifnames) {
  std::string s = absl::StrCat("id ", r.id, " prio ", r.priority);
  if (r.flags & CSF_POL_F_IFINDEX) {
    char buf[IF_NAMESIZE] = {};
    const bool here = if_indextoname(r.ifindex, buf) != nullptr;
    auto it = ifnames != nullptr ? ifnames->find(r.id) : RuleIfnames::const_iterator();
    const bool named = ifnames != nullptr && it != ifnames->end();
    absl::StrAppend(&s, " iface ",
                    named ? it->second + (here ? "" : " (gone, waits for it)")
                    : here ? std::string(buf)
                           : absl::StrCat("ifindex ", r.ifindex, " (gone)"));
  }
  if (r.flags & CSF_POL_F_HOOK) absl::StrAppend(&s, " ", std::string(names::HookName(r.hook)));
  if (r.flags & CSF_POL_F_IPVER) absl::StrAppend(&s, " ipv", int(r.ipver));
  if (r.flags & CSF_POL_F_PROTO) absl::StrAppend(&s, " proto ", ProtoName(r.proto));
  auto addr = [&](const uint8_t* a, uint8_t len) {
    char buf[INET6_ADDRSTRLEN] = {};
    inet_ntop(r.ipver == 4 ? AF_INET : AF_INET6, a, buf, sizeof(buf));
    return absl::StrCat(buf, "/", int(len));
  };
  if (r.src_len) absl::StrAppend(&s, " src ", addr(r.src, r.src_len));
  if (r.dst_len) absl::StrAppend(&s, " dst ", addr(r.dst, r.dst_len));
  if (r.flags & CSF_POL_F_SPORT)
    absl::StrAppend(&s, " sport ", r.sport_lo, r.sport_hi != r.sport_lo ? absl::StrCat("-", r.sport_hi) : "");
  if (r.flags & CSF_POL_F_DPORT)
    absl::StrAppend(&s, " dport ", r.dport_lo, r.dport_hi != r.dport_lo ? absl::StrCat("-", r.dport_hi) : "");
  absl::StrAppend(&s, " -> ", r.action < CSF_ACT_MAX ? names::ActionName(r.action) : "?");
  return s;
}

absl::StatusOr<std::vector<csf_pol_rule>> ZoneRules(const std::vector<std::string>& prefixes,
                                                    const std::string& ifname, uint32_t priority,
                                                    FieldSpelling spell) {
  std::vector<csf_pol_rule> rules;
  for (const auto& a : prefixes) {
    const uint8_t va = PrefixVersion(a);
    for (const auto& b : prefixes) {
      // An IPv4 and an IPv6 member never talk to each other directly. A prefix that does not
      // parse is left to ParseRule, which says what is wrong with it.
      const uint8_t vb = PrefixVersion(b);
      if (va != 0 && vb != 0 && va != vb) continue;
      RuleSpec z;
      z.ifname = ifname;
      z.src = a;
      z.dst = b;
      z.action = "pass";
      z.priority = priority;
      ASSIGN_OR_RETURN(csf_pol_rule r, ParseRule(z, spell));
      rules.push_back(r);
    }
    RuleSpec f;
    f.ifname = ifname;
    f.src = a;
    f.action = "fill";
    f.priority = priority + 1;
    ASSIGN_OR_RETURN(csf_pol_rule r, ParseRule(f, spell));
    rules.push_back(r);
  }
  return rules;
}

void FillMask(uint8_t out[16], uint8_t len) {
  for (int b = 0; b < 16; ++b) {
    int bits = static_cast<int>(len) - b * 8;
    out[b] = bits >= 8 ? 0xff : bits <= 0 ? 0 : static_cast<uint8_t>(0xff << (8 - bits));
  }
}

bool RuleInterfaceGone(const csf_pol_rule& r) {
  char buf[IF_NAMESIZE] = {};
  return (r.flags & CSF_POL_F_IFINDEX) && if_indextoname(r.ifindex, buf) == nullptr;
}

}  // namespace csumfix::control
