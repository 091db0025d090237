#include "control/names.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace csumfix::names {
namespace {

absl::string_view NameOf(std::span<const Name> table, uint32_t id) {
  return id < table.size() ? table[id].name : absl::string_view("unknown");
}

std::optional<uint32_t> IdOf(std::span<const Name> table, absl::string_view name) {
  auto it = std::find_if(table.begin(), table.end(), [&](const Name& n) { return n.name == name; });
  if (it == table.end()) return std::nullopt;
  return it->id;
}

}  // namespace

absl::string_view ActionName(uint32_t id) { return NameOf(kActions, id); }
absl::string_view ClassName(uint32_t id) { return NameOf(kClasses, id); }
absl::string_view HookName(uint32_t id) { return NameOf(kHooks, id); }
absl::string_view MechanismName(uint32_t id) { return NameOf(kMechanisms, id); }
std::optional<uint32_t> ActionFromName(absl::string_view name) { return IdOf(kActions, name); }
std::optional<uint32_t> HookFromName(absl::string_view name) { return IdOf(kHooks, name); }
std::optional<uint32_t> MechanismFromName(absl::string_view name) {
  return IdOf(kMechanisms, name);
}

std::string Choices(std::span<const Name> table, absl::string_view sep) {
  return absl::StrJoin(table, sep, [](std::string* out, const Name& n) {
    absl::StrAppend(out, n.name);
  });
}

std::string MechanismChoices(absl::string_view sep) {
  return absl::StrCat("auto", sep, Choices(kMechanisms, sep));
}

}  // namespace csumfix::names
