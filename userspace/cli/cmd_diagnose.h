// csumfix diagnose FILE (cli/cmd_diagnose.cc).
#pragma once

#include "CLI/CLI.hpp"
#include "cli/common.h"

namespace csumfix::cli {

// Registers `diagnose`: classify the checksums of a pcap/pcapng capture (no privileges needed).
void AddDiagnoseCommand(CLI::App& app, Globals& g);

}  // namespace csumfix::cli
