#include "netns/mechanisms.h"

#include <algorithm>

#include "netns/lab.h"
#include "nlohmann/json.hpp"

namespace csumfix::testing {

const ProbeFacts& Probe() {
  static const ProbeFacts facts = [] {
    ProbeFacts f;
    CmdResult r = Csumfix({"probe", "-j"});
    if (r.rc != 0) {
      f.error = "csumfix probe -j failed (" + std::to_string(r.rc) + "): " + r.err;
      return f;
    }
    auto j = nlohmann::json::parse(r.out, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) {
      f.error = "csumfix probe -j printed no JSON object: " + r.out;
      return f;
    }
    f.json = r.out;
    f.chosen = j.value("mechanism", "");
    f.change_tail = j.value("change_tail_clears_partial", false);
    f.act_csum = j.value("act_csum", false);
    f.ifb = j.value("ifb", false);
    f.ifb_redirect = j.value("ifb_redirect", false);
    f.tcx = j.value("tcx", false);
    f.ok = !f.chosen.empty();
    if (!f.ok) f.error = "no \"mechanism\" in " + r.out;
    return f;
  }();
  return facts;
}

std::string ExpectedChoice(const ProbeFacts& p) {
  return p.change_tail ? "bpf" : p.act_csum ? "act-csum" : "bounce";
}

std::vector<std::string> FillMechanisms(bool at_ingress) {
  const ProbeFacts& p = Probe();
  std::vector<std::string> m;
  if (!p.ok) return m;
  m.push_back(p.chosen);
  for (const char* x : {"bpf", "act-csum", "bounce", "ifb"}) {
    const bool supported = std::string(x) == "bounce" ||
                           (std::string(x) == "bpf" && p.change_tail) ||
                           (std::string(x) == "act-csum" && p.act_csum) ||
                           (std::string(x) == "ifb" && p.ifb && at_ingress);
    if (supported && std::find(m.begin(), m.end(), x) == m.end()) m.push_back(x);
  }
  return m;
}

}  // namespace csumfix::testing
