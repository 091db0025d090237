#!/usr/bin/env python3
"""packaging/grafana/csumfix.json: a Grafana dashboard whose every query works on csumfix's metrics.

usage: grafana_dashboard_test.py DASHBOARD_JSON        (unprivileged; promtool from deps.sh)

Checks the structure (the ${datasource} variable of type prometheus used by every panel and
query, the query variables device, hook and netns_name from label_values, an expr in every
target, unique panel ids), then evaluates every expr with promtool: each one, with its variables
at their "All" value ($__rate_interval and $__range as given below), becomes the alert
`count(EXPR) > 0` in a throwaway rules file, and `promtool test rules` requires every such alert
to fire on synthetic series shaped like one `csumfix serve` scrape, i.e. every query parses and
returns at least one series. tests/netns/dashboard_test.cc does the same against a real scrape.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

path = sys.argv[1]
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


if shutil.which("promtool") is None:
    sys.exit("FAIL: promtool not found: it comes with the prometheus package (scripts/deps.sh)")

with open(path) as f:
    dash = json.load(f)
print(f"dashboard: {dash.get('title')!r}, schemaVersion {dash.get('schemaVersion')}")
check(isinstance(dash.get("schemaVersion"), int) and dash["schemaVersion"] >= 36,
      "schemaVersion >= 36")
check(dash.get("uid") == "csumfix", "uid csumfix")

variables = {v["name"]: v for v in dash.get("templating", {}).get("list", [])}
ds = variables.get("datasource", {})
check(ds.get("type") == "datasource" and ds.get("query") == "prometheus",
      "a datasource variable named datasource of type prometheus")
for name in ("device", "hook", "netns_name"):
    v = variables.get(name, {})
    q = v.get("query", {})
    q = q.get("query", "") if isinstance(q, dict) else q
    check(v.get("type") == "query" and re.match(rf"label_values\(.*,\s*{name}\)$", q or ""),
          f"variable {name}: a query variable from label_values(..., {name})")
    check(v.get("includeAll") and v.get("allValue") == ".*",
          f"variable {name}: All means the regex .* (so that series without the label match)")

DS = {"type": "prometheus", "uid": "${datasource}"}
# "All" of every query variable; Grafana's built-in intervals as a dashboard at a 1 s scrape
# interval would get them.
values = {"$__rate_interval": "30s", "$__range": "5m"}
for name, v in variables.items():
    if v.get("type") == "query":
        values["$" + name] = v.get("allValue", ".*")


def walk(panels):
    for p in panels:
        yield p
        yield from walk(p.get("panels", []))


queries = []  # (panel title, refId, expr with the variables substituted)
ids = set()
for p in walk(dash.get("panels", [])):
    check(p.get("id") not in ids, f"panel id {p.get('id')} unique")
    ids.add(p.get("id"))
    check("gridPos" in p, f"panel {p.get('title')!r}: gridPos")
    if p.get("type") == "row":
        continue
    check(p.get("datasource") == DS, f"panel {p.get('title')!r}: datasource ${{datasource}}")
    targets = p.get("targets", [])
    check(targets, f"panel {p.get('title')!r}: at least one target")
    for t in targets:
        expr = t.get("expr", "")
        where = f"panel {p['title']!r} target {t.get('refId')}"
        check(expr.strip() != "", f"{where}: an expr")
        check(t.get("datasource") == DS, f"{where}: datasource ${{datasource}}")
        check("datasource" not in expr, f"{where}: no datasource in the expr")
        for k in sorted(values, key=len, reverse=True):  # $__range before a shorter prefix
            expr = expr.replace(k, values[k])
        check("$" not in expr, f"{where}: every variable known (left: {expr})")
        queries.append((p["title"], t.get("refId"), expr))
print(f"{len(queries)} queries in {len(ids)} panels and rows")

# Scrapes of serve every 10 s for 10 minutes (a 30 s rate window needs two samples), with the
# families and labels userspace/metrics/exposition.cc writes, the counters growing:
# va ingress and egress in the named namespace "lab", lo egress in an unnamed one (a pod's).
ATT = [("va", "ingress", 'netns="4026532000",netns_name="lab"'),
       ("va", "egress", 'netns="4026532000",netns_name="lab"'),
       ("lo", "egress", 'netns="4026533000",netns_name=""')]
COUNTERS = ["csumfix_packets_total", "csumfix_bytes_total", "csumfix_filled_packets_total",
            "csumfix_zeroed_packets_total", "csumfix_dropped_packets_total",
            "csumfix_ip4_header_bad_packets_total", "csumfix_fill_errors_total",
            "csumfix_bounced_packets_total", "csumfix_bounce_returned_packets_total",
            "csumfix_policy_hits_total", "csumfix_act_csum_selected_packets_total"]
CLASSES = ["none", "valid", "partial", "bad", "zero", "na", "unparsable", "gso", "unverified"]
ACTIONS = ["pass", "observe", "verify", "drop-bad", "fill", "zero-udp4"]
T = 'job="csumfix",instance="127.0.0.1:10786"'
series = []


def add(name, labels, values="0+10x60"):
    series.append({"series": f"{name}{{{T}{',' if labels else ''}{labels}}}", "values": values})


for dev, hook, ns in ATT:
    base = f'device="{dev}",hook="{hook}",{ns}'
    for c in COUNTERS:
        add(c, base)
    for c in CLASSES:
        add("csumfix_class_packets_total", f'{base},class="{c}"')
    for a in ACTIONS:
        add("csumfix_action_packets_total", f'{base},action="{a}"')
    add("csumfix_attachment_info",
        f'device="{dev}",hook="{hook}",mechanism="bounce",mode="tcx",prog_id="42",'
        f'action="fill",{ns}', "1x60")
    add("csumfix_program_attached", base, "1x60")
for dev, ns in (("va", ATT[0][2]), ("lo", ATT[2][2])):
    add("csumfix_interface_present", f'device="{dev}",{ns}', "1x60")
add("csumfix_scrape_errors_total", "", "0x60")
add("csumfix_fill_mechanism_info", 'mechanism="bounce",kernel="6.12.0"', "1x60")
for r in ("success", "failure"):
    add("csumfix_config_reloads_total", f'result="{r}"', "1x60")
    add("csumfix_follow_attaches_total", f'result="{r}"', "0x60")
add("csumfix_config_last_reload_successful", "", "1x60")
add("csumfix_config_last_reload_success_timestamp_seconds", "", "60x60")
add("csumfix_config_waiting_interfaces", "", "0x60")
add("csumfix_link_resyncs_total", "", "0x60")
add("csumfix_build_info", 'version="0.3.0",revision="abc1234",libbpf="1.4.0",kernel="6.12.0"',
    "1x60")

alerts, tests = [], []
for i, (title, ref, expr) in enumerate(queries):
    name = f"DashboardQuery{i}"
    alerts.append({"alert": name, "expr": f"count({expr}) > 0",
                   "annotations": {"query": f"{title} / {ref}"}})
    tests.append({"eval_time": "8m", "alertname": name,
                  "exp_alerts": [{"exp_annotations": {"query": f"{title} / {ref}"}}]})

with tempfile.TemporaryDirectory() as tmp:
    rules = os.path.join(tmp, "dashboard.rules.yml")
    test = os.path.join(tmp, "dashboard.test.yml")
    # JSON is YAML: no YAML library needed.
    with open(rules, "w") as f:
        json.dump({"groups": [{"name": "dashboard", "rules": alerts}]}, f, indent=1)
    with open(test, "w") as f:
        json.dump({"rule_files": ["dashboard.rules.yml"], "evaluation_interval": "1m",
                   "tests": [{"interval": "10s", "input_series": series,
                              "alert_rule_test": tests}]}, f, indent=1)
    for cmd in (["promtool", "check", "rules", rules], ["promtool", "test", "rules", test]):
        print("+ " + " ".join(cmd))
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            # promtool names the failing DashboardQueryN; list what each one is.
            print(r.stdout + r.stderr)
            for i, (title, ref, expr) in enumerate(queries):
                print(f"DashboardQuery{i}: {title} / {ref}: {expr}")
            failures.append(f"{' '.join(cmd[:3])} failed")
            break
        print(r.stdout.strip())

for f in failures:
    print("FAIL: " + f)
if failures:
    sys.exit(1)
print(f"ok: structure, and all {len(queries)} queries return data on a synthetic scrape")
