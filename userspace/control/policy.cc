// The policy rule store (csf_pol_store and the rule names), its compilation into the tuple-space
// tables the programs search, and the atomic switch between generations. Parsing rules is in
// rules.cc.
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

absl::StatusOr<RuleIfnames> ReadIfnames(int fd) {
  bpf::Map<uint32_t, csf_pol_ifname> names(fd, CSF_PIN_POL_IFNAMES);
  RuleIfnames out;
  ASSIGN_OR_RETURN(std::vector<uint32_t> ids, names.Keys());
  for (uint32_t id : ids) {
    ASSIGN_OR_RETURN(std::optional<csf_pol_ifname> n, names.Lookup(id));
    if (n) out[id] = std::string(n->ifname, strnlen(n->ifname, sizeof(n->ifname)));
  }
  return out;
}

}  // namespace



absl::StatusOr<Policy> Policy::Open(const std::string& bpffs) {
  Controller c(bpffs);
  const std::string maps = c.paths().maps();
  // Serialised with attach/detach and other policy changes for the life of the object.
  ASSIGN_OR_RETURN(std::shared_ptr<void> lock, LockPins(bpffs));
  RETURN_IF_ERROR(CheckPinAbi(c.paths()));
  // Loading the object with the pin directory creates (or reuses) every shared map.
  RETURN_IF_ERROR(c.EnsurePinDirs());
  bpf::LoadOptions lo;
  lo.pin_maps_dir = maps;
  lo.programs = 0;  // the maps alone: no program is verified for a rule
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
  // The names of the interfaces rules are bound to: userspace's alone, made on first use (a
  // map set of csumfix 0.1 has none; its rules then keep only their ifindex).
  const std::string names_pin = maps + "/" CSF_PIN_POL_IFNAMES;
  bpf::Fd names(bpf_obj_get(names_pin.c_str()));
  if (!names.valid()) {
    LIBBPF_OPTS(bpf_map_create_opts, o, .map_flags = BPF_F_NO_PREALLOC);
    names = bpf::Fd(bpf_map_create(BPF_MAP_TYPE_HASH, "csf_pol_ifnames", sizeof(uint32_t),
                                   sizeof(csf_pol_ifname), CSF_POL_MAX_RULES, &o));
    if (!names.valid()) return ErrnoStatus(errno, "create " + names_pin);
    RETURN_IF_ERROR(PinFd(names.get(), names_pin));
  }
  p.names_fd_ = names.get();
  fds->push_back(std::move(names));
  p.keep_ = fds;
  p.lock_ = std::move(lock);
  return p;
}

absl::StatusOr<std::vector<csf_pol_rule>> Policy::List() const { return StoredRules(store_fd_); }

absl::Status Policy::Store(const csf_pol_rule& r, const std::string& ifname) {
  bpf::Map<uint32_t, csf_pol_rule> store(store_fd_, CSF_MAP_POL_STORE);
  RETURN_IF_ERROR(store.Update(r.id, r));
  bpf::Map<uint32_t, csf_pol_ifname> names(names_fd_, CSF_PIN_POL_IFNAMES);
  csf_pol_ifname n{};
  if ((r.flags & CSF_POL_F_IFINDEX) && !ifname.empty() && ifname.size() < sizeof(n.ifname)) {
    std::memcpy(n.ifname, ifname.data(), ifname.size());
    return names.Update(r.id, n);
  }
  if ((r.flags & CSF_POL_F_IFINDEX) && if_indextoname(r.ifindex, n.ifname) != nullptr)
    return names.Update(r.id, n);
  // Bound to an ifindex that is gone (a rebuild of an older rule set): its name, if known, stays.
  if (r.flags & CSF_POL_F_IFINDEX) return absl::OkStatus();
  return names.Delete(r.id);
}

absl::Status Policy::Unstore(uint32_t id) {
  bpf::Map<uint32_t, csf_pol_rule> store(store_fd_, CSF_MAP_POL_STORE);
  RETURN_IF_ERROR(store.Delete(id));
  bpf::Map<uint32_t, csf_pol_ifname> names(names_fd_, CSF_PIN_POL_IFNAMES);
  return names.Delete(id);
}

absl::StatusOr<RuleIfnames> Policy::Ifnames() const {
  return ReadIfnames(names_fd_);
}

absl::StatusOr<std::vector<csf_pol_rule>> Policy::Rebind(absl::string_view ifname,
                                                         uint32_t ifindex) {
  ASSIGN_OR_RETURN(RuleIfnames names, Ifnames());
  ASSIGN_OR_RETURN(std::vector<csf_pol_rule> rules, List());
  std::vector<csf_pol_rule> moved;
  for (auto& r : rules) {
    auto it = names.find(r.id);
    if ((r.flags & CSF_POL_F_IFINDEX) && it != names.end() && it->second == ifname &&
        r.ifindex != ifindex) {
      r.ifindex = ifindex;
      moved.push_back(r);
    }
  }
  if (moved.empty()) return moved;
  RETURN_IF_ERROR(Install(rules));  // one switch: packets see the old or the new binding
  bpf::Map<uint32_t, csf_pol_rule> store(store_fd_, CSF_MAP_POL_STORE);
  for (const auto& r : moved) RETURN_IF_ERROR(store.Update(r.id, r));
  return moved;
}

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
  for (const auto& r : add) RETURN_IF_ERROR(Store(r));
  return ids;
}

absl::Status Policy::Replace(std::vector<csf_pol_rule> rules,
                             const std::vector<std::string>& ifnames) {
  if (rules.size() > CSF_POL_MAX_RULES)
    return absl::ResourceExhaustedError(absl::StrCat("policy: at most ", CSF_POL_MAX_RULES,
                                                     " rules; existing rules are unchanged"));
  ASSIGN_OR_RETURN(std::vector<csf_pol_rule> old, List());
  uint32_t id = 1;
  for (auto& r : rules) r.id = id++;
  RETURN_IF_ERROR(Install(rules));  // fails before anything the programs see changes
  for (const auto& r : old) RETURN_IF_ERROR(Unstore(r.id));
  for (size_t i = 0; i < rules.size(); ++i)
    RETURN_IF_ERROR(Store(rules[i], i < ifnames.size() ? ifnames[i] : ""));
  return absl::OkStatus();
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
  return Unstore(id);
}

absl::StatusOr<std::vector<csf_pol_rule>> Policy::DeleteIf(
    const std::function<bool(const csf_pol_rule&)>& drop) {
  ASSIGN_OR_RETURN(std::vector<csf_pol_rule> rules, List());
  std::vector<csf_pol_rule> keep, gone;
  for (const auto& r : rules) (drop(r) ? gone : keep).push_back(r);
  if (gone.empty()) return gone;
  RETURN_IF_ERROR(Install(keep));
  for (const auto& r : gone) RETURN_IF_ERROR(Unstore(r.id));
  return gone;
}


absl::StatusOr<RuleIfnames> ReadRuleIfnames(const std::string& bpffs) {
  const std::string path = PinPaths(bpffs).map(CSF_PIN_POL_IFNAMES);
  if (access(path.c_str(), F_OK) != 0) return RuleIfnames{};
  bpf::Fd fd(bpf_obj_get(path.c_str()));
  if (!fd.valid()) return ErrnoStatus(errno, "open " + path);
  return ReadIfnames(fd.get());
}

absl::StatusOr<std::vector<csf_pol_rule>> ReadRules(const std::string& bpffs) {
  std::vector<csf_pol_rule> out;
  const std::string path = PinPaths(bpffs).map(CSF_MAP_POL_STORE);
  if (access(path.c_str(), F_OK) != 0) return out;
  bpf::Fd fd(bpf_obj_get(path.c_str()));
  if (!fd.valid()) return ErrnoStatus(errno, "open " + path);
  return StoredRules(fd.get());
}

absl::Status Policy::Flush() {
  RETURN_IF_ERROR(Install({}));
  ASSIGN_OR_RETURN(std::vector<csf_pol_rule> rules, List());
  for (const auto& r : rules) RETURN_IF_ERROR(Unstore(r.id));
  return absl::OkStatus();
}

}  // namespace csumfix::control
