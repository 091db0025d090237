#!/usr/bin/env python3
"""packaging/k8s/daemonset.yaml: parses (python3-yaml) and has the structure csumfix needs;
packaging/k8s/podmonitor.yaml scrapes its pods' metrics port; packaging/Containerfile builds the
image it runs from the .deb.

usage: k8s_test.py DAEMONSET_YAML [CSUMFIX_BINARY]
With CSUMFIX_BINARY, the ConfigMap's csumfix.toml is also validated by
`csumfix serve --check-config` (it names no interface, so any namespace will do).
"""
import os
import subprocess
import sys
import tempfile

import yaml

path = sys.argv[1]
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


with open(path) as f:
    docs = [d for d in yaml.safe_load_all(f) if d is not None]
kinds = {d["kind"]: d for d in docs}
check(set(kinds) == {"Namespace", "ConfigMap", "DaemonSet"}, f"kinds: {sorted(kinds)}")
ds, cm = kinds["DaemonSet"], kinds["ConfigMap"]
check(ds["apiVersion"] == "apps/v1", "DaemonSet apiVersion apps/v1")
ns = kinds["Namespace"]["metadata"]["name"]
check(ds["metadata"]["namespace"] == ns and cm["metadata"]["namespace"] == ns,
      "DaemonSet and ConfigMap in the Namespace object's namespace")
sel = ds["spec"]["selector"]["matchLabels"]
tmpl = ds["spec"]["template"]
check(all(tmpl["metadata"]["labels"].get(k) == v for k, v in sel.items()),
      "selector matches the template labels")
pod = tmpl["spec"]
check(pod.get("hostNetwork") is True, "hostNetwork: true")
check(pod.get("dnsPolicy") == "ClusterFirstWithHostNet", "dnsPolicy for hostNetwork")
check({"operator": "Exists"} in pod.get("tolerations", []), "a toleration for every taint")

ann = tmpl["metadata"].get("annotations", {})
check(ann.get("prometheus.io/scrape") == "true", "prometheus.io/scrape: \"true\" (a string)")
port = ann.get("prometheus.io/port")
check(isinstance(port, str) and port.isdigit(), "prometheus.io/port is a quoted number")

volumes = {v["name"]: v for v in pod["volumes"]}
check(volumes.get("bpffs", {}).get("hostPath", {}).get("path") == "/sys/fs/bpf",
      "bpffs hostPath /sys/fs/bpf")
check(volumes.get("run", {}).get("hostPath", {}).get("path") == "/run/csumfix",
      "hostPath /run/csumfix")
cfg_vol = volumes.get("config", {}).get("configMap", {}).get("name")
check(cfg_vol == cm["metadata"]["name"], "config volume is the ConfigMap")
check("csumfix.toml" in cm["data"], "ConfigMap holds csumfix.toml")
recipe = os.path.join(os.path.dirname(os.path.abspath(sys.argv[1])), "..", "recipes", "kubernetes.toml")
check(cm["data"].get("csumfix.toml") == open(recipe).read(),
      "ConfigMap csumfix.toml is packaging/recipes/kubernetes.toml (the netns tests run that file)")

containers = {c["name"]: c for c in pod["containers"]}
main = containers.get("csumfix")
check(main is not None, "container csumfix")
cmd = main["command"]
check(cmd[:4] == ["/usr/sbin/csumfix", "serve", "--config", "/etc/csumfix/csumfix.toml"],
      f"command runs serve with the config: {cmd}")
listen = cmd[cmd.index("--web.listen-address") + 1] if "--web.listen-address" in cmd else ""
check(listen.endswith(":" + str(port)), f"--web.listen-address {listen} uses the annotated port")
check(any(e["name"] == "POD_IP" for e in main.get("env", [])) and "$(POD_IP)" in listen,
      "listens on the pod (= node) address")
check(any(p["containerPort"] == int(port) for p in main.get("ports", [])),
      "containerPort is the annotated port")
mounts = {m["mountPath"]: m["name"] for m in main["volumeMounts"]}
check(mounts.get("/sys/fs/bpf") == "bpffs" and mounts.get("/run/csumfix") == "run"
      and mounts.get("/etc/csumfix") == "config", f"mounts: {mounts}")

# Probes: liveness is the endpoint answering, readiness the config applied (serve's /-/ready).
ports_by_name = {p.get("name"): p["containerPort"] for p in main.get("ports", [])}
live = main.get("livenessProbe", {}).get("httpGet", {})
ready = main.get("readinessProbe", {}).get("httpGet", {})
check(live.get("path") == "/-/healthy" and live.get("port") in ("metrics", int(port)),
      f"livenessProbe GET /-/healthy on the metrics port: {live}")
check(ready.get("path") == "/-/ready" and ready.get("port") in ("metrics", int(port)),
      f"readinessProbe GET /-/ready on the metrics port: {ready}")
check(ports_by_name.get("metrics") == int(port), "the container port named metrics is the annotated one")
# The host's bpffs: a remount on the host must reach the container (HostToContainer).
for c in pod.get("initContainers", []) + pod["containers"]:
    for m in c["volumeMounts"]:
        if m["name"] == "bpffs":
            check(m.get("mountPropagation") == "HostToContainer",
                  f"{c['name']}: /sys/fs/bpf mounted with mountPropagation: HostToContainer")

# The PodMonitor (Prometheus Operator) beside the annotations.
here = os.path.dirname(os.path.abspath(path))
with open(os.path.join(here, "podmonitor.yaml")) as f:
    pm_docs = [d for d in yaml.safe_load_all(f) if d is not None]
check(len(pm_docs) == 1 and pm_docs[0]["kind"] == "PodMonitor"
      and pm_docs[0]["apiVersion"] == "monitoring.coreos.com/v1", "podmonitor.yaml: one PodMonitor")
pm = pm_docs[0]
check(pm["metadata"]["namespace"] == ns
      or ns in pm["spec"].get("namespaceSelector", {}).get("matchNames", []),
      "the PodMonitor looks in the DaemonSet's namespace")
pm_sel = pm["spec"]["selector"]["matchLabels"]
check(all(tmpl["metadata"]["labels"].get(k) == v for k, v in pm_sel.items()),
      "the PodMonitor selects the DaemonSet's pods")
eps = pm["spec"]["podMetricsEndpoints"]
check(len(eps) >= 1 and all(e.get("port") in ports_by_name for e in eps),
      f"PodMonitor endpoints name a container port: {eps}")
check(all(e.get("path", "/metrics") == ann.get("prometheus.io/path", "/metrics") for e in eps),
      "PodMonitor path = the annotated path")

# The Containerfile: Debian bookworm-slim plus the .deb, the port, csumfix as the entrypoint.
with open(os.path.join(here, "..", "Containerfile")) as f:
    cf = [l.strip() for l in f if l.strip() and not l.lstrip().startswith("#")]
check(cf and cf[0] == "FROM debian:bookworm-slim", f"Containerfile FROM debian:bookworm-slim: {cf[:1]}")
check(any(l.startswith("COPY") and ".deb" in l for l in cf) or
      any(l.startswith("ARG DEB=") and l.endswith(".deb") for l in cf), "Containerfile copies the .deb")
check(any("apt-get install" in l and "csumfix.deb" in l for l in cf),
      "Containerfile installs the copied .deb with apt-get")
check(f"EXPOSE {port}" in cf, f"Containerfile exposes the metrics port {port}")
check(any(l.startswith("ENTRYPOINT") and "/usr/sbin/csumfix" in l for l in cf),
      "Containerfile runs /usr/sbin/csumfix")
check(main["image"].startswith("csumfix:"), "the DaemonSet runs the csumfix image")

for c in pod.get("initContainers", []) + pod["containers"]:
    sc = c.get("securityContext", {})
    check(sc.get("privileged") is False, f"{c['name']}: not privileged")
    check(sc.get("allowPrivilegeEscalation") is False, f"{c['name']}: no privilege escalation")
    caps = sc.get("capabilities", {})
    check(caps.get("drop") == ["ALL"], f"{c['name']}: drops ALL capabilities")
check(sorted(main["securityContext"]["capabilities"]["add"]) == ["BPF", "NET_ADMIN", "PERFMON"],
      "the daemon adds exactly BPF, NET_ADMIN, PERFMON")
init = {c["name"]: c for c in pod.get("initContainers", [])}
check("probe" in init and init["probe"]["command"][-1] == "probe",
      "an init container runs `csumfix probe`")

if len(sys.argv) > 2:
    with tempfile.NamedTemporaryFile("w", suffix=".toml") as t:
        t.write(cm["data"]["csumfix.toml"])
        t.flush()
        r = subprocess.run([sys.argv[2], "serve", "--config", t.name, "--check-config"],
                           capture_output=True, text=True)
        check(r.returncode == 0, f"ConfigMap csumfix.toml: serve --check-config: {r.stderr}")
        print(r.stdout.strip())

for f in failures:
    print("FAIL:", f, file=sys.stderr)
if failures:
    sys.exit(1)
print(f"ok: {path}: {len(docs)} objects, DaemonSet structure as required")
