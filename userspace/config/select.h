// Which [[interface]] block, if any, each link of the namespace falls under: the selectors
// (name, match, master, kind) of config.h applied to a list of links. Pure: tests give it links
// that need not exist (tests/unit/select_test.cc).
#ifndef CSUMFIX_USERSPACE_CONFIG_SELECT_H_
#define CSUMFIX_USERSPACE_CONFIG_SELECT_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "config/config.h"
#include "control/netlink.h"

namespace csumfix::config {

// Every link of the namespace (control::ListLinks), a link without a kind given its driver as
// kind (Xen's vif, a NIC), as the `kind` selector matches it.
absl::StatusOr<std::vector<control::LinkInfo>> LinksToSelect();

// Whether `link` is one of csumfix's own helper links (a bounce veth csf<hex><i|e><a|b>): never
// selected, whatever the selectors say.
bool IsHelperLink(const control::LinkInfo& link);

// Whether every selector of `spec` holds for `link`; `master_name` is the name of the link's
// master device ("" none).
bool Selects(const InterfaceSpec& spec, const control::LinkInfo& link,
             const std::string& master_name);

struct Selected {
  control::LinkInfo link;
  size_t block = 0;  // index into Config::interfaces: the first block that selects the link
};

// The links some block selects, in `links`' order, each with the first block (file order) that
// selects it. `links` is the whole namespace (masters are looked up in it by ifindex).
std::vector<Selected> Select(const Config& cfg, const std::vector<control::LinkInfo>& links);

// The blocks that name an interface (name = ...) that is not in `links`: "tap0 (FILE:LINE:COL)".
std::vector<std::string> Waiting(const Config& cfg, const std::vector<control::LinkInfo>& links);

}  // namespace csumfix::config

#endif  // CSUMFIX_USERSPACE_CONFIG_SELECT_H_
