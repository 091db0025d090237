// csumfix serve (cli/cmd_serve.cc): the daemon with the Prometheus endpoint and the config file.
#pragma once

#include "CLI/CLI.hpp"
#include "cli/common.h"

namespace csumfix::cli {

void AddServeCommand(CLI::App& app, Globals& g);

}  // namespace csumfix::cli
