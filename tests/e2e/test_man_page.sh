#!/usr/bin/env bash
# docs/duplex.1 (written by hand) keeps up with the command: it describes
# every command `duplex --help` lists, and every long option of the echo,
# connect and bench --help texts (serve and token refer to their --help).
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"

[[ -x "$DUPLEX" ]] || fail "no duplex binary at $DUPLEX"
man_src="$DX_SOURCE_DIR/docs/duplex.1"
# The page's text with roff's escaped hyphens made plain.
man_text=$(sed 's/\\-/-/g' "$man_src")

cmds=$("$DUPLEX" --help | sed -n '/^Commands:/,/^$/p' | sed -n 's/^  \([a-z][a-z]*\) .*/\1/p')
[[ -n "$cmds" ]] || fail "no commands in duplex --help"
for c in $cmds; do
  grep -qx ".B $c" <<<"$man_text" && pass "duplex.1 describes '$c'" || check_fail "duplex.1 lacks the command '$c'"
done

for c in echo connect bench; do
  missing=()
  for opt in $("$DUPLEX" "$c" --help | grep -oE -- '--[a-z][a-z-]+' | sort -u); do
    grep -qE -- "${opt}([^a-z-]|$)" <<<"$man_text" || missing+=("$opt")
  done
  ((${#missing[@]} == 0)) && pass "duplex.1 has every option of duplex $c" ||
    check_fail "duplex.1 lacks options of duplex $c: ${missing[*]}"
done

if command -v man >/dev/null; then
  warnings=$(MANWIDTH=80 man --warnings -l "$man_src" 2>&1 >/dev/null)
  [[ -z "$warnings" ]] && pass "man formats duplex.1 without warnings" || check_fail "man: $warnings"
fi
finish
