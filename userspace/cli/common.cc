// Shared helpers of the csumfix command table (see cli/common.h).
#include "cli/common.h"

#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "csumfix/abi.h"
#include "refcsum/refcsum.h"

namespace csumfix::cli {

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "csumfix: %s\n", std::string(s.message()).c_str());
  return s.code() == absl::StatusCode::kDataLoss ? 3 : 1;
}

int UsageFail(const std::string& command, const std::string& message) {
  std::fprintf(stderr, "csumfix: %s: %s\nRun `csumfix %s --help` for the usage, options and examples.\n",
               command.c_str(), message.c_str(), command.c_str());
  return 2;
}

std::string ActionList() {
  std::string out;
  for (uint32_t a = 0; a < CSF_ACT_MAX; ++a)
    absl::StrAppend(&out, a ? "|" : "", std::string(ref::ActionName(a)));
  return out;
}

uint32_t ActionOpt::value() const { return ref::ActionFromName(name); }

CLI::Validator ActionValidator() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        if (ref::ActionFromName(s) < CSF_ACT_MAX) return "";
        return absl::StrCat("unknown action \"", s, "\"; choose one of ", ActionList());
      },
      ActionList(), "ACTION");
}

nlohmann::json CountersJson(const csf_counters& c) {
  nlohmann::json j;
  j["packets"] = c.c[CSF_CTR_PACKETS];
  j["bytes"] = c.c[CSF_CTR_BYTES];
  nlohmann::json cls = nlohmann::json::object();
  for (uint32_t i = 0; i < CSF_CLASS_MAX; ++i)
    cls[std::string(ref::ClassName(i))] = c.c[CSF_CTR_CLASS_BASE + i];
  j["class"] = cls;
  nlohmann::json act = nlohmann::json::object();
  for (uint32_t i = 0; i < CSF_ACT_MAX; ++i)
    act[std::string(ref::ActionName(i))] = c.c[CSF_CTR_ACTION_BASE + i];
  j["action"] = act;
  j["filled"] = c.c[CSF_CTR_FILLED];
  j["zeroed"] = c.c[CSF_CTR_ZEROED];
  j["dropped"] = c.c[CSF_CTR_DROPPED];
  j["ip4_hdr_bad"] = c.c[CSF_CTR_IP4_HDR_BAD];
  j["fill_error"] = c.c[CSF_CTR_FILL_ERROR];
  j["bounced"] = c.c[CSF_CTR_BOUNCED];
  j["bounce_returned"] = c.c[CSF_CTR_BOUNCE_RETURNED];
  j["policy_hit"] = c.c[CSF_CTR_POLICY_HIT];
  j["act_selected"] = c.c[CSF_CTR_ACT_SELECTED];
  return j;
}

}  // namespace csumfix::cli
