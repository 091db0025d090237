// The csumfix command line as one CLI11 application: its description, global options (-j, -p,
// -n, --bpffs, -V), footer and every command of the command table. main.cc parses argv with it;
// the build's doc generator (cli/gendoc.cc) walks the same tree to write the man page and the
// bash completion, so they cannot drift from --help.
#pragma once

#include <memory>

#include "CLI/CLI.hpp"
#include "cli/common.h"

namespace csumfix::cli {

// A new application whose options and callbacks write into `g` (which must outlive it).
std::unique_ptr<CLI::App> NewApp(Globals& g);

}  // namespace csumfix::cli
