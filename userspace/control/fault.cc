#include "control/fault.h"

#include <cstdlib>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "control/names.h"

namespace csumfix::control {
namespace {

constexpr absl::string_view kStepNames[] = {
    "pin-dirs",          "load",
    "iface-dir",         "bounce-veth",
    "bounce-veth-setup", "bounce-map",
    "bounce-return-prog-pin", "bounce-return-attach",
    "bounce-return-link-pin", "ifcfg",
    "tc-prog-pin",       "tc-attach",
    "tc-link-pin",       "act-csum-filter",
    "ifb-device",        "ifb-setup",
    "ifb-filter",
    "xdp-prog-pin",      "xdp-attach",
    "xdp-link-pin",      "state"};
static_assert(std::size(kStepNames) == static_cast<size_t>(Step::kCount));

bool PerHook(size_t i) {
  return i != static_cast<size_t>(Step::kPinDirs) && i != static_cast<size_t>(Step::kLoad) &&
         i != static_cast<size_t>(Step::kIfaceDir) && i != static_cast<size_t>(Step::kState);
}

}  // namespace

std::span<const absl::string_view> AttachFaultSteps() { return kStepNames; }

FaultInjector::FaultInjector() {
  // secure_getenv: never honoured in a setuid or file-capability process.
  if (const char* e = secure_getenv(kFaultInjectEnv); e != nullptr) {
    enabled_ = true;
    spec_ = e;
  }
}

absl::Status FaultInjector::Check() const {
  if (!enabled_ || spec_ == "list") return absl::OkStatus();
  const size_t at = spec_.find('@');
  const std::string name = spec_.substr(0, at);
  const std::string hook = at == std::string::npos ? "" : spec_.substr(at + 1);
  for (size_t i = 0; i < std::size(kStepNames); ++i) {
    if (kStepNames[i] != name) continue;
    if (at == std::string::npos) return absl::OkStatus();
    if (PerHook(i) && names::HookFromName(hook).has_value()) return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      kFaultInjectEnv, "=", spec_,
      ": not a fault-injection step (a test-only hook: unset it for normal use). Use list or "
      "one of ",
      absl::StrJoin(kStepNames, ", "), "; a step of a hook may end in @ingress, @egress or @xdp"));
}

absl::Status FaultInjector::At(Step s, uint32_t hook) {
  if (!enabled_) return absl::OkStatus();
  const absl::string_view name = kStepNames[static_cast<size_t>(s)];
  std::string point(name);
  if (hook != kNoHook) absl::StrAppend(&point, "@", names::HookName(hook));
  if (spec_ == "list") {
    reached_.push_back(point);
    return absl::OkStatus();
  }
  if (spec_ == point || spec_ == name)
    return absl::InternalError(absl::StrCat("injected fault at step ", point, " (",
                                            kFaultInjectEnv, " is set; a test-only hook)"));
  return absl::OkStatus();
}

absl::Status FaultInjector::Finish() const {
  if (!enabled_ || spec_ != "list") return absl::OkStatus();
  return absl::InternalError(absl::StrCat("injected fault at step list (points reached: ",
                                          absl::StrJoin(reached_, ", "), ")"));
}

}  // namespace csumfix::control
