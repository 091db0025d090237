#include "control/policy.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <net/if.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <optional>
#include <thread>
#include <tuple>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/status.h"
#include "bpf/fd.h"
#include "bpf/loader.h"
#include "bpf/map.h"
#include "control/control.h"
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

void FillMask(uint8_t out[16], uint8_t len) {
  for (int b = 0; b < 16; ++b) {
    int bits = static_cast<int>(len) - b * 8;
    out[b] = bits >= 8 ? 0xff : bits <= 0 ? 0 : static_cast<uint8_t>(0xff << (8 - bits));
  }
}

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

struct MaskSig {
  uint32_t flags;
  uint8_t src_len, dst_len, ipver;
  auto tie() const { return std::tie(flags, src_len, dst_len, ipver); }
  bool operator<(const MaskSig& o) const { return tie() < o.tie(); }
  bool operator==(const MaskSig& o) const { return tie() == o.tie(); }
};

// The mask's ipver is what the programs compare first (bpf/lib/policy.h: a mask with
// CSF_POL_F_IPVER skips packets of the other version), so it is set whenever the flag is: with it
// set only for prefix masks, `--ip 4` alone never matched (found by tests/bpf/policy_diff_test.cc).
MaskSig SigOf(const csf_pol_rule& r) {
  return {r.flags, r.src_len, r.dst_len,
          static_cast<uint8_t>((r.flags & CSF_POL_F_IPVER) ? r.ipver : 0)};
}

// The rules as written (csf_pol_store), in precedence order: priority, then id.
absl::StatusOr<std::vector<csf_pol_rule>> StoredRules(int store_fd) {
  bpf::Map<uint32_t, csf_pol_rule> store(store_fd, CSF_MAP_POL_STORE);
  std::vector<csf_pol_rule> out;
  ASSIGN_OR_RETURN(std::vector<uint32_t> ids, store.Keys());
  for (uint32_t id : ids) {
    ASSIGN_OR_RETURN(std::optional<csf_pol_rule> r, store.Lookup(id));
    if (r) out.push_back(*r);
  }
  std::sort(out.begin(), out.end(), [](const csf_pol_rule& a, const csf_pol_rule& b) {
    return std::tie(a.priority, a.id) < std::tie(b.priority, b.id);
  });
  return out;
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

std::string DescribeRule(const csf_pol_rule& r) {
  std::string s = absl::StrCat("id ", r.id, " prio ", r.priority);
  if (r.flags & CSF_POL_F_IFINDEX) {
    char buf[IF_NAMESIZE] = {};
    absl::StrAppend(&s, " iface ",
                    if_indextoname(r.ifindex, buf) ? std::string(buf)
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

absl::StatusOr<Policy> Policy::Open(const std::string& bpffs) {
  Controller c(bpffs);
  const std::string maps = c.root() + "/" CSF_PIN_MAPS;
  // Serialised with attach/detach and other policy changes for the life of the object.
  ASSIGN_OR_RETURN(std::shared_ptr<void> lock, LockPins(bpffs));
  // Loading the object with the pin directory creates (or reuses) every shared map.
  RETURN_IF_ERROR(c.EnsurePinDirs());
  bpf::LoadOptions lo;
  lo.pin_maps_dir = maps;
  ASSIGN_OR_RETURN(std::unique_ptr<bpf::Programs> progs, bpf::Programs::Load(lo));
  Policy p;
  auto fds = std::make_shared<std::vector<bpf::Fd>>();
  for (const char* name :
       {CSF_MAP_POL_ACTIVE, CSF_MAP_POL_MASKS, CSF_MAP_POL_RULES, CSF_MAP_POL_STORE}) {
    bpf::Fd fd(bpf_obj_get((maps + "/" + name).c_str()));
    if (!fd.valid()) return ErrnoStatus(errno, "open pinned " + std::string(name));
    fds->push_back(std::move(fd));
  }
  p.active_fd_ = (*fds)[0].get();
  p.masks_fd_ = (*fds)[1].get();
  p.rules_fd_ = (*fds)[2].get();
  p.store_fd_ = (*fds)[3].get();
  p.keep_ = fds;
  p.lock_ = std::move(lock);
  return p;
}

absl::StatusOr<std::vector<csf_pol_rule>> Policy::List() const { return StoredRules(store_fd_); }

absl::Status Policy::Install(const std::vector<csf_pol_rule>& rules) {
  // 1. Shapes.
  std::vector<MaskSig> sigs;
  for (const auto& r : rules)
    if (std::find(sigs.begin(), sigs.end(), SigOf(r)) == sigs.end()) sigs.push_back(SigOf(r));
  if (sigs.size() > CSF_POL_MAX_MASKS)
    return absl::ResourceExhaustedError(absl::StrCat(
        "policy: the rules have ", sigs.size(), " distinct shapes (which fields they match and "
        "prefix lengths); at most ", CSF_POL_MAX_MASKS, " fit. Use fewer distinct prefix lengths."));
  // 2. Entries (best rule per key).
  std::map<std::vector<uint8_t>, csf_pol_val> entries;
  bpf::Map<uint32_t, csf_pol_active> active_map(active_fd_, CSF_MAP_POL_ACTIVE);
  ASSIGN_OR_RETURN(std::optional<csf_pol_active> cur, active_map.Lookup(0));
  const uint32_t old_active = cur ? cur->active : 0;
  const uint32_t gen = old_active == 1 ? 1 : 0;  // the one not in use
  for (const auto& r : rules) {
    const uint32_t mi = static_cast<uint32_t>(
        std::find(sigs.begin(), sigs.end(), SigOf(r)) - sigs.begin());
    for (uint32_t sp = r.sport_lo; sp <= r.sport_hi; ++sp) {
      for (uint32_t dp = r.dport_lo; dp <= r.dport_hi; ++dp) {
        csf_pol_key k{};
        k.gen_mask = gen << 8 | mi;
        if (r.flags & CSF_POL_F_IFINDEX) k.t.ifindex = r.ifindex;
        if (r.flags & CSF_POL_F_HOOK) k.t.hook = r.hook;
        if (r.flags & CSF_POL_F_IPVER) k.t.ipver = r.ipver;
        if (r.flags & CSF_POL_F_PROTO) k.t.proto = r.proto;
        if (r.flags & CSF_POL_F_SPORT) k.t.sport = static_cast<uint16_t>(sp);
        if (r.flags & CSF_POL_F_DPORT) k.t.dport = static_cast<uint16_t>(dp);
        std::memcpy(k.t.src, r.src, 16);
        std::memcpy(k.t.dst, r.dst, 16);
        std::vector<uint8_t> kb(reinterpret_cast<uint8_t*>(&k),
                                reinterpret_cast<uint8_t*>(&k) + sizeof(k));
        csf_pol_val v{r.action, r.priority, r.id, 0};
        auto [it, fresh] = entries.emplace(kb, v);
        if (!fresh && std::tie(v.priority, v.rule_id) < std::tie(it->second.priority, it->second.rule_id))
          it->second = v;
      }
    }
  }
  if (entries.size() > CSF_POL_MAX_ENTRIES)
    return absl::ResourceExhaustedError(absl::StrCat(
        "policy: ", entries.size(), " table entries after expanding port ranges; at most ",
        CSF_POL_MAX_ENTRIES, " fit. Narrow the port ranges or use fewer rules."));
  // 3. Clear the inactive generation, write it, switch with one 4-byte store.
  size_t kept = 0;  // entries of the other generation, left by the last clear_gen
  auto clear_gen = [&](uint32_t g) -> absl::Status {
    bpf::Map<csf_pol_key, csf_pol_val> m(rules_fd_, CSF_MAP_POL_RULES);
    ASSIGN_OR_RETURN(std::vector<csf_pol_key> keys, m.Keys());
    kept = 0;
    for (const auto& k : keys) {
      if ((k.gen_mask >> 8) == g) RETURN_IF_ERROR(m.Delete(k));
      else ++kept;
    }
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(clear_gen(gen));
  // Until the switch the table holds the rules in force as well: say so, rather than fail
  // half-way with the map's E2BIG.
  if (kept + entries.size() > CSF_POL_MAX_ENTRIES)
    return absl::ResourceExhaustedError(absl::StrCat(
        "policy: the new rules need ", entries.size(), " table entries and the rules in force hold ",
        kept, "; both stay in the table until the switch, and at most ", CSF_POL_MAX_ENTRIES,
        " fit. Narrow the port ranges, or `csumfix policy flush` and add the rules again "
        "(existing rules are unchanged)."));
  bpf::Map<uint32_t, csf_pol_mask> masks(masks_fd_, CSF_MAP_POL_MASKS);
  for (uint32_t i = 0; i < CSF_POL_MAX_MASKS; ++i) {
    csf_pol_mask m{};
    if (i < sigs.size()) {
      m.flags = sigs[i].flags;
      m.src_len = sigs[i].src_len;
      m.dst_len = sigs[i].dst_len;
      m.ipver = sigs[i].ipver;
      m.used = 1;
      FillMask(m.src_mask, m.src_len);
      FillMask(m.dst_mask, m.dst_len);
    }
    RETURN_IF_ERROR(masks.Update(gen * CSF_POL_MAX_MASKS + i, m));
  }
  bpf::Map<csf_pol_key, csf_pol_val> table(rules_fd_, CSF_MAP_POL_RULES);
  for (const auto& [kb, v] : entries) {
    csf_pol_key k;
    std::memcpy(&k, kb.data(), sizeof(k));
    if (auto s = table.Update(k, v); !s.ok()) {
      (void)clear_gen(gen);
      return Annotate(s, "policy: writing the new table (nothing switched)");
    }
  }
  RETURN_IF_ERROR(active_map.Update(0, csf_pol_active{rules.empty() ? 0u : gen + 1, 0}));
  // Grace period: a program that read the old generation just before the switch finishes within
  // microseconds; only then does the old generation go.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  if (old_active != 0) RETURN_IF_ERROR(clear_gen(old_active - 1));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<uint32_t>> Policy::AddAll(std::vector<csf_pol_rule> add) {
  ASSIGN_OR_RETURN(std::vector<csf_pol_rule> rules, List());
  uint32_t next = 1;
  for (const auto& r : rules) next = std::max(next, r.id + 1);
  if (rules.size() + add.size() > CSF_POL_MAX_RULES)
    return absl::ResourceExhaustedError(absl::StrCat("policy: at most ", CSF_POL_MAX_RULES,
                                                     " rules; existing rules are unchanged"));
  std::vector<uint32_t> ids;
  for (auto& r : add) {
    r.id = next++;
    ids.push_back(r.id);
    rules.push_back(r);
  }
  RETURN_IF_ERROR(Install(rules));  // fails before anything the programs see changes
  bpf::Map<uint32_t, csf_pol_rule> store(store_fd_, CSF_MAP_POL_STORE);
  for (const auto& r : add) RETURN_IF_ERROR(store.Update(r.id, r));
  return ids;
}

absl::Status Policy::Replace(std::vector<csf_pol_rule> rules) {
  if (rules.size() > CSF_POL_MAX_RULES)
    return absl::ResourceExhaustedError(absl::StrCat("policy: at most ", CSF_POL_MAX_RULES,
                                                     " rules; existing rules are unchanged"));
  ASSIGN_OR_RETURN(std::vector<csf_pol_rule> old, List());
  uint32_t id = 1;
  for (auto& r : rules) r.id = id++;
  RETURN_IF_ERROR(Install(rules));  // fails before anything the programs see changes
  bpf::Map<uint32_t, csf_pol_rule> store(store_fd_, CSF_MAP_POL_STORE);
  for (const auto& r : old) RETURN_IF_ERROR(store.Delete(r.id));
  for (const auto& r : rules) RETURN_IF_ERROR(store.Update(r.id, r));
  return absl::OkStatus();
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

absl::StatusOr<uint32_t> Policy::Add(csf_pol_rule rule) {
  ASSIGN_OR_RETURN(std::vector<uint32_t> ids, AddAll({rule}));
  return ids[0];
}

absl::Status Policy::Delete(uint32_t id) {
  ASSIGN_OR_RETURN(std::vector<csf_pol_rule> rules, List());
  auto it = std::find_if(rules.begin(), rules.end(), [&](const auto& r) { return r.id == id; });
  if (it == rules.end())
    return absl::NotFoundError(absl::StrCat("policy: no rule ", id, " (see `csumfix policy list`)"));
  rules.erase(it);
  RETURN_IF_ERROR(Install(rules));
  bpf::Map<uint32_t, csf_pol_rule> store(store_fd_, CSF_MAP_POL_STORE);
  return store.Delete(id);
}

absl::StatusOr<std::vector<csf_pol_rule>> Policy::DeleteIf(
    const std::function<bool(const csf_pol_rule&)>& drop) {
  ASSIGN_OR_RETURN(std::vector<csf_pol_rule> rules, List());
  std::vector<csf_pol_rule> keep, gone;
  for (const auto& r : rules) (drop(r) ? gone : keep).push_back(r);
  if (gone.empty()) return gone;
  RETURN_IF_ERROR(Install(keep));
  bpf::Map<uint32_t, csf_pol_rule> store(store_fd_, CSF_MAP_POL_STORE);
  for (const auto& r : gone) RETURN_IF_ERROR(store.Delete(r.id));
  return gone;
}

bool RuleInterfaceGone(const csf_pol_rule& r) {
  char buf[IF_NAMESIZE] = {};
  return (r.flags & CSF_POL_F_IFINDEX) && if_indextoname(r.ifindex, buf) == nullptr;
}

absl::StatusOr<std::vector<csf_pol_rule>> ReadRules(const std::string& bpffs) {
  std::vector<csf_pol_rule> out;
  const std::string path = Controller(bpffs).root() + "/" CSF_PIN_MAPS "/" CSF_MAP_POL_STORE;
  if (access(path.c_str(), F_OK) != 0) return out;
  bpf::Fd fd(bpf_obj_get(path.c_str()));
  if (!fd.valid()) return ErrnoStatus(errno, "open " + path);
  return StoredRules(fd.get());
}

absl::Status Policy::Flush() {
  RETURN_IF_ERROR(Install({}));
  ASSIGN_OR_RETURN(std::vector<csf_pol_rule> rules, List());
  bpf::Map<uint32_t, csf_pol_rule> store(store_fd_, CSF_MAP_POL_STORE);
  for (const auto& r : rules) RETURN_IF_ERROR(store.Delete(r.id));
  return absl::OkStatus();
}

}  // namespace csumfix::control
