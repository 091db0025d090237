#!/usr/bin/env bash
# csumfix(8) and the bash completion, both generated at build time from the command table
# (csumfix-gendoc): the man page renders without a groff warning and holds every command and
# option that `csumfix --help` and `csumfix COMMAND --help` print; the completion completes
# commands, subcommands and options as a user types them.
# usage: manpage_test.sh CSUMFIX_BINARY GEN_DIR   (GEN_DIR: build/userspace/gen)
set -euo pipefail
bin=$1; gen=$2
man=$gen/csumfix.8; comp=$gen/completions/csumfix
fail() { echo "FAIL: $*" >&2; exit 1; }
for t in groff man; do command -v $t >/dev/null || fail "$t missing: run scripts/deps.sh"; done
[[ -s $man && -s $comp ]] || fail "missing $man or $comp (built by the csumfix_docs target)"

warn=$(LC_ALL=C.UTF-8 groff -man -ww -z "$man" 2>&1 || true)
[[ -z $warn ]] || fail "groff warnings in $man: $warn"
text=$(LC_ALL=C MANWIDTH=200 man -l "$man" 2>/dev/null | col -b)
[[ -n $text ]] || fail "man -l $man rendered nothing"
echo "ok: csumfix(8) renders without warnings ($(wc -l <<<"$text") lines)"

# Every command of `csumfix --help` and every option each command's --help lists.
cmds=$("$bin" --help | awk '/^Subcommands:/{on=1; next} on && /^  [a-z]/{print $1} on && /^$/{on=0}')
[[ $(wc -w <<<"$cmds") -ge 10 ]] || fail "could not read the commands of csumfix --help: $cmds"
n=0
check_cmd() {  # check_cmd "policy add"
  local path=$1 opts
  grep -qF "csumfix $path" <<<"$text" || fail "man page lacks the command 'csumfix $path'"
  opts=$("$bin" $path --help | grep -oE '^ +(-[a-zA-Z], ?)?--[a-z][a-z0-9.-]*' | grep -oE -- '--[a-z][a-z0-9.-]*$' || true)
  for o in $opts; do
    [[ $o == --help ]] && continue
    grep -qF -- "$o" <<<"$text" || fail "man page lacks $o of 'csumfix $path'"
    n=$((n + 1))
  done
}
for c in $cmds; do
  check_cmd "$c"
  subs=$("$bin" $c --help | awk '/^Subcommands:/{on=1; next} on && /^  [a-z]/{print $1} on && /^$/{on=0}')
  for s in $subs; do check_cmd "$c $s"; done
done
for g in --json --pretty --netns --bpffs --version; do
  grep -qF -- "$g" <<<"$text" || fail "man page lacks the global option $g"
done
echo "ok: every command and option of --help is in the man page ($n command options)"

# The completion, as bash runs it.
complete_words() {  # complete_words WORD... : what <TAB> offers after those words
  bash -c '
    source "$1"; shift
    COMP_WORDS=(csumfix "$@"); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
    _csumfix; printf "%s\n" "${COMPREPLY[@]}"' _ "$comp" "$@"
}
expect() {  # expect "WORDS" WANTED...
  local words=$1; shift
  local got; got=$(complete_words $words)
  for w in "$@"; do grep -qxF -- "$w" <<<"$got" || fail "completing 'csumfix $words' lacks $w: $(tr '\n' ' ' <<<"$got")"; done
}
expect "at" attach
expect "st" status stats
expect "-j st" status stats
expect "attach --eg" --egress
expect "policy a" add
expect "policy add --dp" --dport
expect "serve --web." --web.listen-address --web.telemetry-path --web.config.file
got=$(complete_words attach l)
grep -qx lo <<<"$got" || fail "completing 'csumfix attach l' does not offer the interface lo: $got"
got=$(complete_words at --zz)
[[ -z $got ]] || fail "completing an unknown option offered: $got"
echo "ok: bash completion completes commands, subcommands, options and interface names"
