#!/usr/bin/env bash
# The hub is an ordinary user of the library: src/hub/ includes only public
# headers (duplex/...), its own (hub/...), system and Debian library headers
# (jansson, OpenSSL, hiredis) — never a private header of the library's layers.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
bad=$(grep -HnE '^#include "' "$DX_SOURCE_DIR"/src/hub/*.[ch] | grep -vE '#include "(duplex|hub)/' || true)
if [[ -z "$bad" ]]; then
  pass "src/hub includes only duplex/ and hub/ headers"
else
  check_fail "src/hub includes private library headers: $bad"
fi
lib=$(grep -HnE '#include "hub/' "$DX_SOURCE_DIR"/src/{common,io,proto,ws,server,client}/*.[ch] 2>/dev/null || true)
[[ -z "$lib" ]] && pass "the library does not include hub headers" ||
  check_fail "the library includes hub headers: $lib"
finish
