#include "metrics/exposition.h"

#include <cstdio>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "base/version.h"
#include "csumfix/abi.h"
#include "control/names.h"

namespace csumfix::metrics {
namespace {

using Labels = std::vector<std::pair<std::string, std::string>>;

// One metric family: HELP, TYPE and its samples, written together as the format requires.
class Family {
 public:
  Family(std::string name, std::string type, std::string help)
      : name_(std::move(name)), type_(std::move(type)), help_(std::move(help)) {}

  void Add(const Labels& labels, const std::string& value) {
    std::string line = name_;
    if (!labels.empty()) {
      line += '{';
      for (size_t i = 0; i < labels.size(); ++i)
        absl::StrAppend(&line, i ? "," : "", labels[i].first, "=\"",
                        EscapeLabelValue(labels[i].second), "\"");
      line += '}';
    }
    absl::StrAppend(&line, " ", value, "\n");
    samples_ += line;
  }
  void Add(const Labels& labels, uint64_t v) { Add(labels, std::to_string(v)); }

  void AppendTo(std::string* out) const {
    // HELP text escapes only backslash and newline.
    std::string help;
    for (char c : help_) {
      if (c == '\\') help += "\\\\";
      else if (c == '\n') help += "\\n";
      else help += c;
    }
    absl::StrAppend(out, "# HELP ", name_, " ", help, "\n# TYPE ", name_, " ", type_, "\n",
                    samples_);
  }

 private:
  std::string name_, type_, help_, samples_;
};

std::string FormatDouble(double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.17g", v);
  return buf;
}


}  // namespace

std::string EscapeLabelValue(absl::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

absl::Status Collect(const control::Controller& c, Snapshot* out) {
  auto st = c.Status();
  if (!st.ok()) return Annotate(st.status(), "metrics: read attachments");
  out->ifaces = std::move(st).value();
  // The counters of every namespace with csumfix pins (attachments made with `csumfix -n NS`,
  // a pod's), named from their records; serve's own namespace first.
  std::vector<uint64_t> namespaces = c.paths().Namespaces();
  std::erase(namespaces, c.netns_ino());
  namespaces.insert(namespaces.begin(), c.netns_ino());
  absl::Status first = absl::OkStatus();
  for (uint64_t ino : namespaces) {
    auto rows = ino == c.netns_ino() ? c.Counters(&out->ifaces)
                                     : control::Controller(c.paths().bpffs(), ino).Counters();
    if (!rows.ok()) {
      if (first.ok()) first = Annotate(rows.status(), absl::StrCat("metrics: read counters of netns ", ino));
      continue;
    }
    const std::string name = control::NetnsName(ino);
    out->netns_names[ino] = name;
    for (auto& r : *rows) out->counters.push_back(std::move(r));
  }
  return first;
}

std::string Render(const Snapshot& s) {
  // Labels follow node_exporter's: `device` names the interface. Counter rows are keyed by
  // namespace and ifindex, named by the attachment's record (which
  // stays right when the device is gone), else "ifindex:N". Every sample says its namespace:
  // netns (the inode) and netns_name (its /run/netns name; "" for a pod's or the host's).
  auto device_of = [&](const control::CounterRow& r) {
    return r.ifname.empty() ? absl::StrCat("ifindex:", r.ifindex) : r.ifname;
  };
  auto netns = [&](uint64_t ino) -> Labels {
    auto it = s.netns_names.find(ino);
    return {{"netns", std::to_string(ino)},
            {"netns_name", it != s.netns_names.end() ? it->second : control::NetnsName(ino)}};
  };
  auto with = [](Labels a, const Labels& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  };

  Family packets("csumfix_packets_total", "counter",
                 "Packets seen by a csumfix program, per interface and hook.");
  Family bytes("csumfix_bytes_total", "counter",
               "Bytes of the packets seen by a csumfix program, per interface and hook.");
  Family cls("csumfix_class_packets_total", "counter",
             "Packets per L4 checksum class (valid, partial, bad, zero, na, unparsable, gso, "
             "unverified; none under action pass).");
  Family act("csumfix_action_packets_total", "counter",
             "Packets per action applied (the hook's default or a policy rule's).");
  std::vector<Family> simple;
  for (const auto& d : names::kCounters)
    simple.emplace_back(std::string(d.metric), "counter", std::string(d.help));

  for (const auto& r : s.counters) {
    const std::string hook(names::HookName(r.hook));
    const Labels base = with({{"device", device_of(r)}, {"hook", hook}}, netns(r.netns_ino));
    packets.Add(base, r.counters.c[CSF_CTR_PACKETS]);
    bytes.Add(base, r.counters.c[CSF_CTR_BYTES]);
    for (uint32_t k = 0; k < CSF_CLASS_MAX; ++k) {
      Labels l = base;
      l.emplace_back("class", std::string(names::ClassName(k)));
      cls.Add(l, r.counters.c[CSF_CTR_CLASS_BASE + k]);
    }
    for (uint32_t a = 0; a < CSF_ACT_MAX; ++a) {
      Labels l = base;
      l.emplace_back("action", std::string(names::ActionName(a)));
      act.Add(l, r.counters.c[CSF_CTR_ACTION_BASE + a]);
    }
    for (size_t i = 0; i < simple.size(); ++i) simple[i].Add(base, r.counters.c[names::kCounters[i].id]);
  }

  Family info("csumfix_attachment_info", "gauge",
              "One per attached hook (value 1): fill mechanism, attach mode (tcx, clsact, xdp), "
              "program id and default action; with mechanism act-csum (or ifb by mirred) also "
              "act_csum_prog_id, the selector program of the classic cls_bpf + csum (mirred) "
              "filter.");
  Family attached("csumfix_program_attached", "gauge",
                  "1 while the kernel still runs csumfix's program at the hook, else 0.");
  Family present("csumfix_interface_present", "gauge",
                 "1 while the attached interface exists with the recorded ifindex, else 0.");
  for (const auto& i : s.ifaces) {
    const Labels ns = netns(i.netns_ino);
    present.Add(with({{"device", i.ifname}}, ns), i.present ? 1 : 0);
    for (const auto& h : i.hooks) {
      const std::string hook(names::HookName(h.hook));
      Labels l = {{"device", i.ifname},
                  {"hook", hook},
                  {"mechanism", std::string(names::MechanismName(i.mechanism))},
                  {"mode", h.mode},
                  {"prog_id", std::to_string(h.prog_id)},
                  {"action", std::string(names::ActionName(h.action))}};
      if (!h.prog_tag.empty()) l.emplace_back("prog_tag", h.prog_tag);
      if (h.act_prog_id != 0) l.emplace_back("act_csum_prog_id", std::to_string(h.act_prog_id));
      info.Add(with(l, ns), 1);
      attached.Add(with({{"device", i.ifname}, {"hook", hook}}, ns), h.attached ? 1 : 0);
    }
  }

  const DaemonState& d = s.daemon;
  Family scrape("csumfix_scrape_errors_total", "counter",
                "Scrapes whose reading of the pinned maps failed (see the daemon's log).");
  scrape.Add({}, d.scrape_errors);

  const base::BuildInfo& b = base::Build();
  Family build("csumfix_build_info", "gauge",
               "Value 1, labelled with the version, git revision and libbpf of this csumfix and "
               "the kernel it runs on.");
  build.Add({{"version", b.version}, {"revision", b.revision}, {"libbpf", b.libbpf},
             {"kernel", d.kernel}},
            1);

  std::string out;
  build.AppendTo(&out);
  for (const Family* f : {&packets, &bytes, &cls, &act}) f->AppendTo(&out);
  for (const auto& f : simple) f.AppendTo(&out);
  for (const Family* f : {&info, &attached, &present, &scrape}) f->AppendTo(&out);
  if (!d.probe_mechanism.empty()) {
    Family mech("csumfix_fill_mechanism_info", "gauge",
                "The fill mechanism `csumfix probe` chooses on this kernel (value 1).");
    mech.Add({{"mechanism", d.probe_mechanism}, {"kernel", d.kernel}}, 1);
    mech.AppendTo(&out);
  }
  if (d.has_config) {
    Family reloads("csumfix_config_reloads_total", "counter",
                   "Attempts to apply the config file, by result (success or failure).");
    reloads.Add({{"result", "success"}}, d.config_reloads_ok);
    reloads.Add({{"result", "failure"}}, d.config_reloads_failed);
    reloads.AppendTo(&out);
    Family last("csumfix_config_last_reload_successful", "gauge",
                "1 when the last attempt to apply the config file succeeded, else 0.");
    last.Add({}, d.config_last_ok ? 1 : 0);
    last.AppendTo(&out);
    Family when("csumfix_config_last_reload_success_timestamp_seconds", "gauge",
                "Unix time of the last successful apply of the config file.");
    when.Add({}, FormatDouble(d.config_last_ok_time));
    when.AppendTo(&out);
    Family follow("csumfix_follow_attaches_total", "counter",
                  "Interfaces the config selects that serve attached as they appeared, joined a "
                  "bridge or were renamed, by result (success or failure).");
    follow.Add({{"result", "success"}}, d.follow_attached);
    follow.Add({{"result", "failure"}}, d.follow_failed);
    follow.AppendTo(&out);
    Family waiting("csumfix_config_waiting_interfaces", "gauge",
                   "Interfaces the config names that do not exist now (attached when they appear).");
    waiting.Add({}, d.waiting);
    waiting.AppendTo(&out);
  }
  Family resyncs("csumfix_link_resyncs_total", "counter",
                 "Full re-reads of the links after the kernel dropped link events (ENOBUFS).");
  resyncs.Add({}, d.link_resyncs);
  resyncs.AppendTo(&out);
  return out;
}

}  // namespace csumfix::metrics
