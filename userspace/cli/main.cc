// csumfix's entry point: the command line (cli/app.h) parsed and run. Exit codes (cli/exit.h):
// 0 success, 1 operation failed, 2 usage error (CLI11's), 3 partial success (done with warnings).
#include "CLI/CLI.hpp"
#include "cli/app.h"
#include "cli/common.h"
#include "cli/exit.h"

namespace csumfix {

int Main(int argc, char** argv) {
  cli::Globals g;
  std::unique_ptr<CLI::App> app = cli::NewApp(g);
  try {
    app->parse(argc, argv);
  } catch (const CLI::RuntimeError& e) {
    return e.get_exit_code();
  } catch (const CLI::ParseError& e) {
    return app->exit(e) == 0 ? cli::kExitDone : cli::kExitUsage;
  }
  return g.rc;
}

}  // namespace csumfix

int main(int argc, char** argv) { return csumfix::Main(argc, argv); }
