// The read-only views of the pins: Status (per interface and hook), Counters and Flows. None of
// them takes the pin lock for longer than a glance (status never waits for a change).
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <net/if.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "control/control.h"
#include "control/netlink.h"

namespace csumfix::control {
namespace {

namespace fs = std::filesystem;

// A directory without a readable state record: an attach in progress, interrupted, or another
// ABI's. Attach writes the state last, under the lock.
void DescribeMissingState(const PinPaths& paths, const std::string& name,
                          absl::StatusOr<csf_attach_state>* st, IfaceStatus* s) {
  if (st->status().code() != absl::StatusCode::kNotFound) {
    s->state = "unreadable";
    s->problem = std::string(st->status().message());
  } else if (PinLockHeld(paths.top(), 1000)) {
    s->state = "attaching";
    s->problem = absl::StrCat("another csumfix is changing the attachments (an attach of ", name,
                              " in progress): run `csumfix status` again");
  } else if (*st = ReadState(paths.iface(name)); !st->ok()) {
    s->state = "incomplete";
    s->problem = absl::StrCat("no state record: an attach of ", name,
                              " was interrupted; `csumfix clean ", name,
                              "` removes what it left (pins, csf* veths, filters)");
  }
}

HookStatus HookOf(const std::string& dir, const csf_attach_state& st, uint32_t hook,
                  bool present, bool query, const bpf::Fd& ifcfg) {
  HookStatus h;
  h.hook = hook;
  h.mode = hook == CSF_HOOK_XDP ? "xdp" : st.mode[hook] == CSF_TC_MODE_TCX ? "tcx" : "clsact";
  h.prog_id = st.prog_id[hook];
  h.act_prog_id = hook == CSF_HOOK_XDP ? 0 : st.act_prog_id[hook];
  h.attached = present && (!query || HookAttached(dir, st, hook));
  if (query)
    if (auto id = PinnedIdent(absl::StrCat(dir, "/", PinBase(hook), "_prog")); id.ok())
      h.prog_tag = id->tag;
  if (ifcfg.valid()) {
    csf_if_key k{st.ifindex, hook};
    csf_ifcfg c{};
    if (bpf_map_lookup_elem(ifcfg.get(), &k, &c) == 0) h.action = c.action;
  }
  return h;
}

// Every entry of a pinned map, read at one moment; an entry evicted meanwhile is skipped.
template <typename K, typename V, typename M>
absl::StatusOr<std::vector<std::pair<K, V>>> Entries(const M& m) {
  std::vector<std::pair<K, V>> out;
  ASSIGN_OR_RETURN(std::vector<K> keys, m.Keys());
  for (const K& k : keys) {
    ASSIGN_OR_RETURN(std::optional<V> v, m.Lookup(k));
    if (v) out.emplace_back(k, *v);
  }
  return out;
}

// Whether the shared map `name` is pinned (no: nothing attached yet, an empty result); an error
// when it is pinned but `fd` could not open it.
absl::StatusOr<bool> Pinned(const PinPaths& paths, const char* name, const bpf::Fd& fd) {
  const std::string path = paths.map(name);
  if (access(path.c_str(), F_OK) != 0) return false;
  if (!fd.valid()) return ErrnoStatus(errno, "open " + path);
  return true;
}

std::string NameOf(uint32_t ifindex) {
  char buf[IF_NAMESIZE] = {};
  return if_indextoname(ifindex, buf) != nullptr ? buf : "";
}

}  // namespace

std::function<std::string(uint32_t)> Controller::Namer(
    const std::vector<IfaceStatus>* known) const {
  // The records say which name each attached ifindex had, in whatever namespace; a counter or
  // flow of an ifindex without one (detached meanwhile) is named from here when this is its
  // namespace. `known`: those records as Status() just read them (not read again).
  auto names = std::make_shared<std::map<uint32_t, std::string>>();
  if (known != nullptr) {
    for (const IfaceStatus& s : *known)
      if (s.state == "ok" && s.netns_ino == paths_.netns_ino()) (*names)[s.ifindex] = s.ifname;
  } else {
    for (const std::string& name : paths_.Interfaces())
      if (auto st = ReadState(paths_.iface(name)); st.ok()) (*names)[st->ifindex] = name;
  }
  const bool here = paths_.netns_ino() == CurrentNetnsIno();
  return [names, here](uint32_t ifindex) {
    auto it = names->find(ifindex);
    return it != names->end() ? it->second : here ? NameOf(ifindex) : std::string();
  };
}

IfaceStatus Controller::StatusOf(const std::string& name, const bpf::Fd& ifcfg,
                                 Detail detail) const {
  IfaceStatus s;
  s.ifname = name;
  s.netns_ino = paths_.netns_ino();
  const std::string dir = paths_.iface(name);
  auto st = ReadState(dir);
  if (!st.ok()) DescribeMissingState(paths_, name, &st, &s);
  if (!st.ok()) {
    s.ifindex = if_nametoindex(name.c_str());
    s.present = s.ifindex != 0;
    return s;
  }
  s.ifindex = st->ifindex;
  s.mechanism = st->mechanism;
  s.present = NameOf(st->ifindex) == name;
  if (s.present && detail == Detail::kFull) s.offloads = Offloads(name);
  bool all_links_defunct = true;
  for (uint32_t hook = 0; hook < CSF_HOOK_MAX; ++hook) {
    if (st->mode[hook] == CSF_TC_MODE_NONE) continue;
    const bool link = hook == CSF_HOOK_XDP || st->mode[hook] == CSF_TC_MODE_TCX;
    all_links_defunct &= link && LinkIfindex(dir, hook) == std::optional<uint32_t>(0);
    s.hooks.push_back(HookOf(dir, *st, hook, s.present, detail == Detail::kFull, ifcfg));
  }
  s.links_defunct = !s.hooks.empty() && all_links_defunct;
  return s;
}

bool Controller::Records(absl::string_view ifname, uint32_t ifindex) const {
  auto st = ReadState(paths_.iface(ifname));
  return st.ok() && st->ifindex == ifindex;
}

absl::StatusOr<std::vector<IfaceStatus>> Controller::Status(Detail detail) const {
  std::vector<IfaceStatus> out;
  if (access(paths_.root().c_str(), F_OK) != 0) return out;
  const bpf::Fd ifcfg(bpf_obj_get(paths_.map(CSF_MAP_IFCFG).c_str()));
  for (const std::string& name : paths_.Interfaces()) out.push_back(StatusOf(name, ifcfg, detail));
  std::sort(out.begin(), out.end(),
            [](const IfaceStatus& a, const IfaceStatus& b) { return a.ifname < b.ifname; });
  return out;
}

absl::StatusOr<std::vector<FlowRow>> Controller::Flows(size_t top) const {
  std::vector<FlowRow> rows;
  const PinnedMaps maps = PinnedMaps::Open(paths_);
  ASSIGN_OR_RETURN(bool pinned, Pinned(paths_, CSF_MAP_FLOWS, maps.flows));
  if (!pinned) return rows;
  using Entry = std::pair<csf_tuple, csf_flow_val>;
  ASSIGN_OR_RETURN(std::vector<Entry> entries, (Entries<csf_tuple, csf_flow_val>(maps.Flows())));
  const auto name_of = Namer();
  for (const auto& [k, v] : entries) {
    FlowRow r;
    r.key = k;
    r.val = v;
    r.netns_ino = paths_.netns_ino();
    r.ifname = name_of(k.ifindex);
    char buf[INET6_ADDRSTRLEN] = {};
    const int af = k.ipver == 4 ? AF_INET : AF_INET6;
    r.src = inet_ntop(af, k.src, buf, sizeof(buf)) ? buf : "?";
    r.dst = inet_ntop(af, k.dst, buf, sizeof(buf)) ? buf : "?";
    rows.push_back(std::move(r));
  }
  std::sort(rows.begin(), rows.end(), [](const FlowRow& a, const FlowRow& b) {
    return a.val.partial + a.val.bad > b.val.partial + b.val.bad;
  });
  if (top && rows.size() > top) rows.resize(top);
  return rows;
}

absl::StatusOr<std::vector<CounterRow>> Controller::Counters(
    const std::vector<IfaceStatus>* known) const {
  std::vector<CounterRow> rows;
  const PinnedMaps maps = PinnedMaps::Open(paths_);
  // csf_slots, plus what programs of csumfix 0.1 counted in csf_counters before an upgrade.
  std::map<std::pair<uint32_t, uint32_t>, csf_counters> sum;
  auto add = [&sum](const std::vector<std::pair<csf_if_key, csf_counters>>& entries) {
    for (const auto& [k, v] : entries) {
      csf_counters& s = sum[{k.ifindex, k.hook}];
      for (size_t i = 0; i < CSF_CTR_MAX; ++i) s.c[i] += v.c[i];
    }
  };
  ASSIGN_OR_RETURN(bool pinned, Pinned(paths_, CSF_MAP_SLOTS, maps.slots));
  if (pinned) {
    ASSIGN_OR_RETURN(auto entries, (Entries<csf_if_key, csf_counters>(maps.Counters())));
    add(entries);
  }
  ASSIGN_OR_RETURN(bool legacy, Pinned(paths_, CSF_MAP_LEGACY_COUNTERS, maps.legacy_counters));
  if (legacy) {
    ASSIGN_OR_RETURN(auto entries, (Entries<csf_if_key, csf_counters>(maps.LegacyCounters())));
    add(entries);
  }
  // Every hook attached here has a row from the attach on, zero until its first packet: stats
  // shows the hook, and a scrape has the series before traffic (rate() and absent() need it).
  // Only for this process's namespace: `present` is decided by the names here. Another
  // namespace's records are not read as statuses (Namer reads just their names).
  std::vector<IfaceStatus> records;
  if (paths_.netns_ino() == CurrentNetnsIno()) {
    if (known == nullptr)
      if (auto st = Status(Detail::kRecords); st.ok()) known = &(records = std::move(*st));
    if (known != nullptr)
      for (const IfaceStatus& s : *known)
        if (s.state == "ok" && s.present)
          for (const HookStatus& h : s.hooks) sum.try_emplace({s.ifindex, h.hook});
  }
  const auto name_of = Namer(known);
  for (const auto& [k, v] : sum) {
    CounterRow r;
    r.netns_ino = paths_.netns_ino();
    r.ifindex = k.first;
    r.hook = k.second;
    r.counters = v;
    r.ifname = name_of(k.first);
    rows.push_back(r);
  }
  std::sort(rows.begin(), rows.end(), [](const CounterRow& a, const CounterRow& b) {
    return std::tie(a.ifindex, a.hook) < std::tie(b.ifindex, b.hook);
  });
  return rows;
}

}  // namespace csumfix::control
