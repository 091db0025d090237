#include "config/select.h"

#include <fnmatch.h>

#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace csumfix::config {

absl::StatusOr<std::vector<control::LinkInfo>> LinksToSelect() {
  absl::StatusOr<std::vector<control::LinkInfo>> links = control::ListLinks();
  if (links.ok())
    for (auto& l : *links)
      if (l.kind.empty()) l.kind = control::Driver(l.name);
  return links;
}

bool IsHelperLink(const control::LinkInfo& link) {
  // csf + lowercase hex ifindex + i|e + a|b (control/bounce.h BounceName), always a veth.
  const std::string& n = link.name;
  if (link.kind != "veth" || n.size() < 6 || !absl::StartsWith(n, "csf")) return false;
  const char dir = n[n.size() - 2], end = n.back();
  if ((dir != 'i' && dir != 'e') || (end != 'a' && end != 'b')) return false;
  for (size_t i = 3; i + 2 < n.size(); ++i)
    if (!absl::ascii_isdigit(n[i]) && !(n[i] >= 'a' && n[i] <= 'f')) return false;
  return true;
}

bool Selects(const InterfaceSpec& spec, const control::LinkInfo& link,
             const std::string& master_name) {
  if (IsHelperLink(link)) return false;
  if (!spec.name.empty() && spec.name != link.name) return false;
  if (!spec.match.empty() && fnmatch(spec.match.c_str(), link.name.c_str(), 0) != 0) return false;
  if (!spec.master.empty() && spec.master != master_name) return false;
  if (!spec.kind.empty() && spec.kind != link.kind) return false;
  return true;
}

std::vector<Selected> Select(const Config& cfg, const std::vector<control::LinkInfo>& links) {
  std::map<uint32_t, const control::LinkInfo*> by_index;
  for (const auto& l : links) by_index[l.ifindex] = &l;
  std::vector<Selected> out;
  for (const auto& l : links) {
    std::string master;
    if (auto it = by_index.find(l.master); l.master != 0 && it != by_index.end())
      master = it->second->name;
    for (size_t b = 0; b < cfg.interfaces.size(); ++b) {
      if (!Selects(cfg.interfaces[b], l, master)) continue;
      out.push_back({l, b});
      break;
    }
  }
  return out;
}

std::vector<std::string> Waiting(const Config& cfg, const std::vector<control::LinkInfo>& links) {
  std::vector<std::string> out;
  for (const auto& spec : cfg.interfaces) {
    if (spec.name.empty()) continue;
    bool present = false;
    for (const auto& l : links) present |= l.name == spec.name;
    if (!present) out.push_back(absl::StrCat(spec.name, " (", spec.where, ")"));
  }
  return out;
}

}  // namespace csumfix::config
