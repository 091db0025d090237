// The csumfix command line as one CLI11 application (cli/app.h): help, footer, version, global
// options, least privilege, and the commands of kCommands, each in its own file
// (cli/cmd_<name>.cc, declared in cli/commands.h).
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <iostream>
#include <algorithm>
#include <string>
#include <vector>

#include "cli/app.h"

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/caps.h"
#include "base/memlock.h"
#include "base/status.h"
#include "base/version.h"
#include "cli/commands.h"
#include "control/pins.h"
#include "cli/common.h"
#include "csumfix/abi.h"

namespace csumfix::cli {
namespace {

// Joins /run/netns/<name> for this process (network namespace only; mounts stay).
absl::Status EnterNetns(const std::string& name) {
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
    return absl::InvalidArgumentError("--netns: \"" + name + "\" is not a namespace name");
  std::string path = "/run/netns/" + name;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return absl::NotFoundError("--netns: no namespace " + path + " (see `ip netns list`)");
  int r = setns(fd, CLONE_NEWNET);
  int e = errno;
  close(fd);
  if (r != 0) return ErrnoStatus(e, "--netns: join " + path);
  return absl::OkStatus();
}

// The commands of `a`, as "attach, detach, ..." (definition order).
std::string CommandNames(const CLI::App* a) {
  std::vector<std::string> names;
  for (const CLI::App* c : a->get_subcommands([](const CLI::App*) { return true; }))
    names.push_back(c->get_name());
  return absl::StrJoin(names, ", ");
}

// Command-line mistakes (exit 2, as iproute2's usage errors): "csumfix: <command>: <what is
// wrong>" and where the help is. An unknown or missing command word names the valid ones.
std::string UsageError(const CLI::App* root, const CLI::Error& e) {
  const CLI::App* cur = root;
  std::string path = "csumfix";
  while (!cur->get_subcommands().empty()) {
    cur = cur->get_subcommands().front();
    path += " " + cur->get_name();
  }
  std::string what = e.what();
  const bool has_commands = !cur->get_subcommands([](const CLI::App*) { return true; }).empty();
  if (has_commands && cur->get_subcommands().empty() && e.get_name() == "RequiredError") {
    // CLI11 reports an unknown command word as a missing subcommand; the word is left over.
    std::vector<std::string> rest = cur->remaining();
    for (const CLI::App* a = cur; rest.empty() && a->get_parent() != nullptr;) {
      a = a->get_parent();
      rest = a->remaining();
    }
    what =
        rest.empty() ? "no command given" : absl::StrCat("unknown command \"", rest.front(), "\"");
    absl::StrAppend(&what, "; ", path == "csumfix" ? "the commands are: " : "choose one of: ",
                    CommandNames(cur));
  }
  if (what.find(" not expected: ") != std::string::npos) {  // ExtrasError (named after the command)
    // "The following arguments were not expected: fill --acton": name the unknown option first.
    const size_t colon = what.find(": ");
    std::vector<std::string> rest =
        absl::StrSplit(colon == std::string::npos ? "" : what.substr(colon + 2), ' ',
                       absl::SkipEmpty());
    auto opt = std::find_if(rest.begin(), rest.end(),
                            [](const std::string& a) { return a.size() > 1 && a[0] == '-'; });
    if (opt != rest.end()) what = absl::StrCat("unknown option ", *opt, " (", what, ")");
  }
  std::string where = path == "csumfix" ? "" : path.substr(std::string("csumfix ").size()) + ": ";
  return absl::StrCat("csumfix: ", where, what, "\nRun `", path,
                      " --help` for the usage, options and examples.\n");
}

// The global options and what runs once they are parsed, before any command: joining the
// network namespace (-n) and dropping every capability the command does not need.
void AddGlobalOptions(CLI::App& app, Globals& g) {
  app.add_option("--bpffs", g.bpffs, "bpf filesystem mount point")->capture_default_str();
  app.add_flag("-j,--json", g.json,
               "JSON output from the command that follows (as its own -j; `csumfix -j status`)");
  app.add_flag("-p,--pretty", g.pretty, "JSON output, indented (implies -j)");
  app.add_option("-n,--netns", g.netns,
                 "run in network namespace NAME (/run/netns/NAME, as `ip -n`); the same as "
                 "`ip netns exec NAME csumfix ...`");
  app.parse_complete_callback([&app, &g] {
    ApplyGlobalJson(g);
    // Under `ip netns exec NS` /sys is the namespace's own, without the host's bpffs: join the
    // mount namespace it was run from (still one thread here), the same as `-n NS`. Elsewhere
    // without the host's bpffs (a container) pins would live in a private bpffs and vanish:
    // refuse before anything changes. Both before -n joins a namespace and capabilities go.
    const std::string cmd =
        app.get_subcommands().empty() ? "" : app.get_subcommands()[0]->get_name();
    const bool needs_pins = cmd != "diagnose" && cmd != "probe" && cmd != "check";
    if (auto joined = control::JoinHostMountsUnderIpNetnsExec(g.bpffs); !joined.ok() && needs_pins)
      throw CLI::RuntimeError(Fail(joined.status()));
    if (needs_pins)
      if (auto s = control::CheckHostBpffs(g.bpffs); !s.ok()) throw CLI::RuntimeError(Fail(s));
    if (!g.netns.empty() || app.count("--netns") > 0)  // -n "" is an error, not "no namespace"
      if (auto s = EnterNetns(g.netns); !s.ok()) throw CLI::RuntimeError(Fail(s));
    SetNetnsForHints(g.netns);
    if (needs_pins) {
      // csumfix 0.1 kept one pin set for every namespace: move it into per-namespace form once.
      auto moved = control::MigrateLegacyPins(g.bpffs);
      if (!moved.ok())
        throw CLI::RuntimeError(Fail(Annotate(
            moved.status(), "moving csumfix 0.1's pins into one directory per network namespace")));
      for (const std::string& m : *moved) std::cerr << "csumfix: 0.1 pins: " << m << "\n";
    }
    // Before the capabilities go (CAP_SYS_RESOURCE): pre-5.11 kernels charge BPF memory to it.
    base::RaiseMemlockLimit();
    // Least privilege (SECURITY.md): keep only what this command needs, for good.
    if (auto s = base::ApplyPlan(cmd, base::PlanFor(cmd, g.bpffs)); !s.ok())
      throw CLI::RuntimeError(Fail(s));
  });
}

// The command table, in the order `csumfix --help` and the usage errors list the commands.
using AddCommand = void (*)(CLI::App&, Globals&);
constexpr AddCommand kCommands[] = {
    AddAttachCommand, AddDetachCommand,   AddUpgradeCommand, AddCleanCommand,
    AddStatusCommand, AddStatsCommand,    AddPolicyCommand,  AddProbeCommand,
    AddFlowsCommand,  AddCheckCommand,    AddDiagnoseCommand, AddServeCommand,
};

}  // namespace

std::unique_ptr<CLI::App> NewApp(Globals& g) {
  auto app_ptr = std::make_unique<CLI::App>(
      "csumfix: find and fix partial (offloaded) L4 checksums with eBPF on TAP, bridge and veth\n"
      "ports. Run as root. Attachments are pinned under /sys/fs/bpf/" CSF_PIN_ROOT
      "/ and outlive this command.",
      "csumfix");
  CLI::App& app = *app_ptr;
  app.require_subcommand(1);
  app.failure_message(UsageError);
  app.set_version_flag("-V,--version", base::VersionText(),
                       "print the version, git revision, libbpf and pin ABI, then exit");
  AddGlobalOptions(app, g);
  for (AddCommand add : kCommands) add(app, g);
  // Set after the commands exist: CLI11 copies a parent's footer into subcommands created later,
  // and `csumfix COMMAND --help` should say only what is that command's.
  app.footer(
      "Commands that print data (status, stats, flows, policy list, probe, check, diagnose)\n"
      "print JSON with -j/--json, given before the command (as `ip -j`) or after it; -p/--pretty\n"
      "indents it. `csumfix COMMAND --help` describes each command.\n"
      "\n"
      "Exit status: 0 success; 1 the operation failed (the message says what is wrong and what\n"
      "to do); 2 usage error (unknown command or option, missing argument); 3 done with\n"
      "warnings (e.g. detach left a filter that is not csumfix's, probe could not find out\n"
      "everything, diagnose found bad checksums).\n"
      "\n"
      "Files: /sys/fs/bpf/csumfix/v1/netns/INODE/ (one per network namespace, INODE from\n"
      "`stat -Lc %i /proc/self/ns/net`): IFACE/ (state, programs and links of an attachment) and\n"
      "maps/ (counters, actions, policy, flows), /run/csumfix/probe.json\n"
      "(this boot's probe result), /run/csumfix/serve[-NS].json (interfaces serve attached).\n"
      "\n"
      "Examples (as root):\n"
      "  csumfix attach tap0 --both --action fill   # complete partial checksums both ways\n"
      "  csumfix status                             # what is attached, how, offloads, rules\n"
      "  csumfix stats tap0 -j                      # counters per hook, class and action\n"
      "  csumfix policy add --proto udp --dport 67-68 --action fill --priority 10\n"
      "  csumfix -n labns detach --all              # inside network namespace labns\n"
      "Documentation: README.md, docs/SEMANTICS.md (actions, classes), docs/POLICY.md.");

  return app_ptr;
}

}  // namespace csumfix::cli
