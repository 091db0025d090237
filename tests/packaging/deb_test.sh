#!/usr/bin/env bash
# `cpack -G DEB` in the build directory makes csumfix_<version>_<arch>.deb with the binary, the
# systemd unit and the examples, dependencies from dpkg-shlibdeps, and a binary that runs from
# the extracted package. Dependencies are checked against this system with `dpkg --dry-run -i`
# (nothing is installed).
# usage: deb_test.sh BUILD_DIR FIXTURE_DIR
set -euo pipefail
build=$1; fixtures=$2
fail() { echo "FAIL: $*" >&2; exit 1; }
for t in cpack dpkg-deb dpkg-shlibdeps; do
  command -v $t >/dev/null || fail "$t missing: run scripts/deps.sh"
done
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
(cd "$build" && cpack -G DEB -B "$tmp/out") > "$tmp/cpack.log" 2>&1 \
  || { cat "$tmp/cpack.log" >&2; fail "cpack -G DEB"; }
debs=("$tmp"/out/csumfix_*.deb)
[[ ${#debs[@]} -eq 1 && -f ${debs[0]} ]] || fail "expected one csumfix_*.deb, got: ${debs[*]}"
deb=${debs[0]}
echo "built $(basename "$deb") ($(stat -c %s "$deb") bytes)"

info=$(dpkg-deb -I "$deb")
field() { dpkg-deb -f "$deb" "$1"; }
[[ $(field Package) == csumfix ]] || fail "Package: $(field Package)"
[[ $(field Architecture) == $(dpkg --print-architecture) ]] || fail "Architecture"
deps=$(field Depends)
for lib in libbpf1 libpcap0.8 libmnl0 libcap2 libabsl20220623 libc6 libstdc++6; do
  grep -q "\b$lib\b" <<<"$deps" || fail "Depends lacks $lib: $deps"
done
grep -q 'libbpf1 (>= 1:1.4' <<<"$deps" || fail "Depends lacks libbpf1 >= 1.4: $deps"
for s in postinst prerm postrm; do
  grep -qE "^ +[0-9]+ bytes, +[0-9]+ lines +\* +$s " <<<"$info" || fail "no executable $s: $info"
done
echo "ok: control: $deps"

list=$(dpkg-deb -c "$deb" | awk '{print $1, $6}')
for f in "-rwxr-xr-x ./usr/sbin/csumfix" \
         "-rw-r--r-- ./etc/csumfix/csumfix.toml" \
         "-rw-r--r-- ./etc/default/csumfix" \
         "-rw-r--r-- ./usr/share/man/man8/csumfix.8.gz" \
         "-rw-r--r-- ./usr/share/bash-completion/completions/csumfix" \
         "-rw-r--r-- ./usr/share/doc/csumfix/copyright" \
         "-rw-r--r-- ./usr/share/doc/csumfix/changelog.gz" \
         "-rw-r--r-- ./usr/lib/systemd/system/csumfix.service" \
         "-rw-r--r-- ./usr/share/doc/csumfix/examples/csumfix.toml" \
         "-rw-r--r-- ./usr/share/doc/csumfix/examples/daemonset.yaml" \
         "-rw-r--r-- ./usr/share/doc/csumfix/README.md"; do
  grep -qxF -- "$f" <<<"$list" || fail "package lacks $f"
done
# Nothing but these trees: no test binaries, no headers, no stray BPF objects (the skeleton embeds it).
extra=$(grep -vE ' \./(usr/(sbin/csumfix|lib/systemd/system/csumfix\.service|share/doc/csumfix/.*|lib/|lib/systemd/|lib/systemd/system/|sbin/|share/|share/doc/|share/man/(man8/(csumfix\.8\.gz)?)?|share/bash-completion/(completions/(csumfix)?)?)?|etc/(csumfix/(csumfix\.toml)?|default/(csumfix)?)?)?$' <<<"$list" || true)
[[ -z $extra ]] || fail "unexpected files: $extra"
echo "ok: contents"

# Conffiles: the two files under /etc, so dpkg keeps an admin's edits on upgrade.
dpkg-deb -e "$deb" "$tmp/control"
[[ $(sort "$tmp/control/conffiles") == $'/etc/csumfix/csumfix.toml\n/etc/default/csumfix' ]] \
  || fail "conffiles: $(cat "$tmp/control/conffiles" 2>/dev/null)"
maint=$(field Maintainer)
grep -qE '^[^<>]+ <[^@ ]+@[^@ ]+\.[a-z]+>$' <<<"$maint" && ! grep -q localhost <<<"$maint" \
  || fail "Maintainer is not a name and an address: $maint"
echo "ok: conffiles, Maintainer: $maint"

# lintian: no error and no warning (informational tags are printed).
command -v lintian >/dev/null || fail "lintian missing: run scripts/deps.sh"
lintian --fail-on error,warning --display-info --show-overrides "$deb" > "$tmp/lintian.txt" 2>&1 \
  || { cat "$tmp/lintian.txt" >&2; fail "lintian"; }
sed 's/^/  lintian: /' "$tmp/lintian.txt"
echo "ok: lintian: no errors, no warnings"

dpkg-deb -x "$deb" "$tmp/root"
bin=$tmp/root/usr/sbin/csumfix
! readelf -S "$bin" | grep -q '\.debug_info' || fail "binary not stripped (CPACK_STRIP_FILES)"
cmp -s "$tmp/root/usr/lib/systemd/system/csumfix.service" \
  "$(dirname "$0")/../../packaging/systemd/csumfix.service" || fail "unit differs from the source"
"$bin" --version | grep -q '^csumfix ' || fail "packaged binary: --version"
set +e
"$bin" diagnose -q "$fixtures/diagnose/sll2.pcap" > "$tmp/diag.txt"; rc=$?
set -e
[[ $rc -eq 0 ]] && grep -q 'verdict: seeds-only' "$tmp/diag.txt" \
  || fail "packaged binary: diagnose rc=$rc: $(cat "$tmp/diag.txt")"
echo "ok: the packaged binary runs"

out=$(dpkg --dry-run -i "$deb" 2>&1) || fail "dpkg --dry-run -i (dependencies on this system): $out"
echo "ok: dpkg --dry-run -i"
