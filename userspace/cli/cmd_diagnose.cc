// csumfix diagnose FILE: what the checksums in a packet capture are (userspace/diagnose).
// Needs no privileges and no BPF: it reads the file with libpcap and judges every checksum
// with the reference (refcsum).
#include <csignal>
#include <iostream>
#include <memory>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "base/status.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "diagnose/diagnose.h"

namespace csumfix::cli {
namespace {

struct DiagnoseOpts {
  std::string file;
  bool json = false;
  bool all = false;
  bool quiet = false;
  uint32_t mtu = 1500;
  size_t top = 20;
};

constexpr Help kHelp{
    "diagnose",
    "Classify the L4 checksums of a capture file (or - for standard input), per packet and flow.",
    "Reads pcap or pcapng (Ethernet, Linux cooked SLL/SLL2 from `tcpdump -i any`, raw IP) and "
    "classifies every packet's L4 checksum: valid; seed (the pseudo-header seed a "
    "checksum-offloading sender leaves: the capture was taken before offload completed it, "
    "not corruption); bad (with the correct value); zero (UDP over IPv4 without checksum, "
    "allowed); gso (IP length above --mtu: a segmentation-offload super-frame, not a real "
    "wire frame); na (no L4 checksum: non-IP, fragments, other protocols); malformed; "
    "truncated (cut by the snaplen: cannot be verified, never called bad). Then a per-flow "
    "summary with a verdict. Needs no privileges.\n"
    "Live: `tcpdump -U -i tap0 -w - | csumfix diagnose -`; Ctrl-C stops tcpdump, and diagnose "
    "(which ignores SIGINT while it reads a pipe) reports what it read.\n"
    "Exit status: 0 nothing bad (seeds, zero, gso and truncated packets are not errors), "
    "3 bad L4 or IPv4 header checksums found, 1 the file could not be read (missing, not a "
    "capture, unsupported link type, or cut inside a record: what was read is still "
    "reported), 2 usage error."};

// Prints the report; a file cut inside a record fails (after what was read is reported), bad
// checksums are a warning that the report's verdict already states (diagnose::ExitCode agrees).
Outcome Diagnose(const DiagnoseOpts& o) {
  diagnose::Options opt;
  opt.mtu = o.mtu;
  opt.keep_all = o.all;
  // Reading a pipe from tcpdump: Ctrl-C goes to the whole pipeline. Let it stop tcpdump only;
  // its end of file ends the report here.
  if (o.file == "-") std::signal(SIGINT, SIG_IGN);
  ASSIGN_OR_RETURN(diagnose::Report r, diagnose::DiagnoseFile(o.file, opt));
  if (o.quiet) r.shown.clear();
  if (o.json) {
    std::cout << JsonText(diagnose::ToJson(r, o.top)) << "\n";
  } else {
    std::cout << diagnose::ToText(r, o.top);
  }
  std::cout.flush();
  if (!r.read_error.empty()) return absl::OutOfRangeError(r.read_error);
  Done d;
  if (r.verdict() == diagnose::Verdict::kBad) d.Warn(diagnose::Advice(r.verdict()));
  return d;
}

}  // namespace

void AddDiagnoseCommand(CLI::App& app, Globals& g) {
  auto [cmd, o] = NewCommand<DiagnoseOpts>(app, kHelp);
  cmd->add_option("file", o->file,
                  "capture file (tcpdump -w / dumpcap / tshark -w), or - for standard input")->required();
  AddJsonFlag(cmd, o->json,
                "JSON: {\"capture\":{...},\"packets\":[...],\"flows\":[...],\"totals\":{...}}");
  cmd->add_flag("--all", o->all,
                "list every packet (default: only those that are not plainly valid)");
  cmd->add_flag("-q,--quiet", o->quiet, "no per-packet lines: flows, totals and verdict only")
      ->excludes("--all");
  cmd->add_option("--mtu", o->mtu,
                  "MTU of the captured link: a longer IP packet is a GSO/GRO super-frame")
      ->check(CLI::Range(68u, 1u << 20))
      ->capture_default_str();
  cmd->add_option("--top", o->top, "show at most N flows, most affected first (0: all)")
      ->capture_default_str();
  cmd->callback([o, &g] { g.rc = Finish(Diagnose(*o), Warnings::kInOutput); });
}

}  // namespace csumfix::cli
