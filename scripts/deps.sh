#!/usr/bin/env bash
# Install everything csumfix needs to build, test, demo and benchmark, from Debian's archive only.
# Idempotent; run as root on Debian 12 (bookworm). Adds bookworm-backports for libbpf >= 1.4 and
# bpftool.
set -euo pipefail

if [[ $(id -u) -ne 0 ]]; then
  echo "deps.sh: must run as root (it installs Debian packages); run it again as root" >&2
  exit 1
fi

stamp=/var/lib/csumfix-deps.stamp
want_rev=10   # bump when the package list below changes
if [[ -f $stamp && $(cat "$stamp") == "$want_rev" && ${CSUMFIX_DEPS_FORCE:-0} != 1 ]]; then
  echo "deps.sh: dependencies already installed (rev $want_rev); CSUMFIX_DEPS_FORCE=1 reinstalls"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  cat > /etc/apt/sources.list.d/bookworm-backports.sources <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
# tshark asks whether non-root users may capture; answer before installing.
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections

apt-get update -o Acquire::Retries=3
apt-get install -y --no-install-recommends \
  build-essential cmake ninja-build pkg-config git \
  clang-19 llvm-19 lld-19 libclang-rt-19-dev \
  libelf-dev zlib1g-dev libzstd-dev \
  libabsl-dev googletest libgtest-dev libgmock-dev libbenchmark-dev \
  libmnl-dev libpcap-dev nlohmann-json3-dev libcli11-dev libcpp-httplib-dev libtomlplusplus-dev \
  libcap-dev libcap2-bin libsystemd-dev libyaml-cpp-dev libssl-dev libcrypt-dev \
  systemd python3-yaml dpkg-dev lintian openssl groff-base man-db bsdextrautils bash-completion \
  iproute2 iputils-ping util-linux ethtool tcpdump tshark iperf3 iptables python3 \
  dnsmasq-base busybox-static \
  gnuplot-nox linux-perf
# serve's tests: promtool checks the exposition, a real Prometheus scrapes it. The tests start
# their own server on a free port; the packaged service is not wanted.
apt-get install -y --no-install-recommends prometheus
if [[ -d /run/systemd/system ]]; then systemctl disable --now prometheus.service || true; fi
apt-get install -y --no-install-recommends -t bookworm-backports libbpf-dev bpftool linux-libc-dev

# Sanity: fail loudly here rather than in the build.
command -v clang-19 >/dev/null || { echo "deps.sh: clang-19 missing after install" >&2; exit 1; }
command -v bpftool >/dev/null || { echo "deps.sh: bpftool missing after install" >&2; exit 1; }
v=$(pkg-config --modversion libbpf)
if ! dpkg --compare-versions "$v" ge 1.4; then
  echo "deps.sh: libbpf $v installed but >= 1.4 is needed (bookworm-backports)" >&2; exit 1
fi
echo "$want_rev" > "$stamp"
echo "deps.sh: ok (clang-19, libbpf $v, $(bpftool version | head -1))"
