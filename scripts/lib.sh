# Shared shell helpers for csumfix scripts (sourced).
csf_need_root() {
  if [[ $(id -u) -ne 0 ]]; then
    echo "$(basename "$0"): run as root: it installs packages, loads BPF programs and creates network namespaces" >&2
    exit 1
  fi
}
# A fresh machine has no bpffs mounted.
csf_ensure_bpffs() {
  if [[ $(stat -f -c %T /sys/fs/bpf 2>/dev/null) != bpf_fs ]]; then
    mkdir -p /sys/fs/bpf && mount -t bpf bpf /sys/fs/bpf
  fi
}
