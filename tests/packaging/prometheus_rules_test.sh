#!/usr/bin/env bash
# packaging/prometheus/csumfix.rules.yml: promtool accepts it (`promtool check rules`), its unit
# tests pass (`promtool test rules csumfix.rules.test.yml`: each alert fires on synthetic series
# where it should, with its labels and annotations, and stays silent where it should not; each
# recording rule gives the expected values), and those tests cover every rule: each alert has an
# evaluation where it fires and one where it is silent, each recording rule a promql_expr_test.
# Removing an alert fails the unit tests (the expected alert is missing); adding one without
# tests fails the coverage check.
# usage: prometheus_rules_test.sh PACKAGING_DIR       (unprivileged; promtool from deps.sh)
set -euo pipefail
pkg=$1
dir=$pkg/prometheus
rules=$dir/csumfix.rules.yml
tests=$dir/csumfix.rules.test.yml
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v promtool >/dev/null \
  || fail "promtool not found: it comes with the prometheus package (scripts/deps.sh installs it)"
command -v python3 >/dev/null || fail "python3 not found (needed for the coverage check)"
python3 -c 'import yaml' 2>/dev/null || fail "python3-yaml missing (scripts/deps.sh installs it)"
[[ -f $rules && -f $tests ]] || fail "missing $rules or $tests"
echo "promtool: $(promtool --version 2>&1 | head -n 1)"

echo "+ promtool check rules $rules"
promtool check rules "$rules" || fail "promtool check rules $rules"

# promtool resolves rule_files relative to the test file's directory.
echo "+ promtool test rules $tests"
promtool test rules "$tests" || fail "promtool test rules $tests"

echo "+ coverage of $rules by $tests"
python3 - "$rules" "$tests" <<'EOF' || fail "the unit tests do not cover every rule"
import sys
import yaml

rules = yaml.safe_load(open(sys.argv[1]))
tests = yaml.safe_load(open(sys.argv[2]))
alerts, records = set(), set()
for group in rules["groups"]:
    for r in group["rules"]:
        if "alert" in r:
            alerts.add(r["alert"])
            if "for" not in r:
                print(f"alert {r['alert']} has no 'for:'")
                sys.exit(1)
            if "severity" not in r.get("labels", {}):
                print(f"alert {r['alert']} has no severity label")
                sys.exit(1)
            if not {"summary", "description"} <= set(r.get("annotations", {})):
                print(f"alert {r['alert']} lacks a summary or description annotation")
                sys.exit(1)
        else:
            records.add(r["record"])
fires, silent, exprs = set(), set(), set()
for t in tests["tests"]:
    for a in t.get("alert_rule_test", []):
        (fires if a.get("exp_alerts") else silent).add(a["alertname"])
    for e in t.get("promql_expr_test", []):
        exprs.add(e["expr"].strip())
problems = []
for a in sorted(alerts):
    if a not in fires:
        problems.append(f"alert {a}: no test where it fires")
    if a not in silent:
        problems.append(f"alert {a}: no test where it stays silent")
for r in sorted(records):
    if r not in exprs:
        problems.append(f"recording rule {r}: no promql_expr_test with expr: {r}")
for p in problems:
    print(p)
if problems:
    sys.exit(1)
print(f"ok: {len(alerts)} alerts fire and stay silent in tests, {len(records)} recording rules checked")
EOF
echo "ok: promtool check rules, promtool test rules and coverage"
