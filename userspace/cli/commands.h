// The commands of csumfix, one file each (cli/cmd_<name>.cc). Each Add*Command registers its
// subcommand on `app` (options, help, footer, callback); main.cc calls them in table order,
// which is also the order `csumfix --help` and the usage errors list them in.
#pragma once

#include "CLI/CLI.hpp"
#include "cli/cmd_serve.h"  // AddServeCommand: the daemon (cli/cmd_serve.cc)
#include "cli/common.h"

namespace csumfix::cli {

// attach IFACE: attach csumfix to an interface's hooks (all-or-nothing).
void AddAttachCommand(CLI::App& app, Globals& g);
// detach IFACE | --all: remove what csumfix attached.
void AddDetachCommand(CLI::App& app, Globals& g);
// upgrade [IFACE]: swap this build's programs in place of another build's.
void AddUpgradeCommand(CLI::App& app, Globals& g);
// clean IFACE | --all: remove what csumfix left behind in this network namespace.
void AddCleanCommand(CLI::App& app, Globals& g);
// status [IFACE]: the attachments, their offloads and the policy rules that can match there.
void AddStatusCommand(CLI::App& app, Globals& g);
// stats [IFACE]: the counters per interface and hook.
void AddStatsCommand(CLI::App& app, Globals& g);
// policy add | zone | del | flush | list: the per-flow rules.
void AddPolicyCommand(CLI::App& app, Globals& g);
// probe: which fill mechanism this kernel gets (cached per boot).
void AddProbeCommand(CLI::App& app, Globals& g);
// flows: the flows seen with partial or bad checksums.
void AddFlowsCommand(CLI::App& app, Globals& g);
// check: load and verify every BPF program, attach nothing.
void AddCheckCommand(CLI::App& app, Globals& g);
// diagnose FILE: classify the checksums of a pcap/pcapng capture (no privileges needed).
void AddDiagnoseCommand(CLI::App& app, Globals& g);

}  // namespace csumfix::cli
