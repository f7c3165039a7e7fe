#!/usr/bin/env bash
# libduplex.so exports exactly the public API: every defined dynamic symbol
# (nm -D) is a dx_ function declared with DX_API in include/duplex/, and
# every DX_API declaration is exported (a missing DX_API hides a public
# function). Also: every public function declaration carries DX_API, and
# the SONAME is libduplex.so.<soversion>.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"

lib="$DX_BUILD_DIR/libduplex.so"
[ -e "$lib" ] || fail "$lib is missing (the shared library is built by default)"
command -v nm >/dev/null || fail "nm is missing (binutils)"

nm -D --defined-only "$lib" >"$DX_TMP/nm.out" || fail "nm -D failed on $lib"
# Symbols the toolchain itself may define in any shared object.
awk '{print $NF}' "$DX_TMP/nm.out" |
  grep -Ev '^(_init|_fini|_edata|_end|__bss_start|__(asan|ubsan|lsan|sancov|odr_asan)[A-Za-z0-9_.]*)$' |
  sort -u >"$DX_TMP/exported"

# The public headers of libduplex (hub.h belongs to libduplex_hub) plus the
# generated version.h.
headers=()
for h in "$DX_SOURCE_DIR"/include/duplex/*.h "$DX_BUILD_DIR"/include/duplex/version.h; do
  [ "$(basename "$h")" = hub.h ] && continue
  headers+=("$h")
done

"$PY" - "$DX_TMP" "${headers[@]}" <<'PYEOF' || check_fail "scanning the headers failed"
import re, sys
tmp, headers = sys.argv[1], sys.argv[2:]
declared, bare = set(), []
for path in headers:
    text = open(path).read()
    # Blank out comments (keeping line numbers) and preprocessor lines.
    text = re.sub(r'/\*.*?\*/', lambda m: re.sub(r'[^\n]', ' ', m.group(0)), text, flags=re.S)
    depth = 0
    for n, line in enumerate(text.split('\n'), 1):
        if line.startswith('#'):
            continue
        if depth == 0 and line[:1].isalpha() and not line.startswith(('typedef', 'static', 'extern "C"')):
            m = re.search(r'\b(dx_\w+)\s*\(', line)
            if m and not line.startswith(('struct', 'enum', 'union')):
                if line.startswith('DX_API '):
                    declared.add(m.group(1))
                else:
                    bare.append(f'{path.split("/include/")[-1]}:{n}: {m.group(1)}')
        if not line.startswith('extern "C"'):
            depth += line.count('{') - line.count('}')
open(f'{tmp}/declared', 'w').write(''.join(f'{d}\n' for d in sorted(declared)))
open(f'{tmp}/bare', 'w').write(''.join(f'{b}\n' for b in bare))
PYEOF

ndecl=$(wc -l <"$DX_TMP/declared")
[ "$ndecl" -gt 50 ] && pass "found $ndecl DX_API declarations" ||
  check_fail "only $ndecl DX_API declarations found: is the scan broken?"

if [ -s "$DX_TMP/bare" ]; then
  check_fail "public functions declared without DX_API (hidden in libduplex.so): $(tr '\n' ' ' <"$DX_TMP/bare")"
else
  pass "every public function declaration carries DX_API"
fi

extra=$(comm -23 "$DX_TMP/exported" "$DX_TMP/declared")
if [ -n "$extra" ]; then
  check_fail "libduplex.so exports names that are not public API: $(echo $extra)"
else
  pass "libduplex.so exports only DX_API names ($(wc -l <"$DX_TMP/exported") symbols)"
fi

missing=$(comm -13 "$DX_TMP/exported" "$DX_TMP/declared")
if [ -n "$missing" ]; then
  check_fail "declared with DX_API but not exported (undefined, or hidden): $(echo $missing)"
else
  pass "every DX_API function is exported"
fi

grep -Eq '^(dx__|dx_stream_|dx_wq_|dx_listener_|dx_tls_stream)' "$DX_TMP/exported" &&
  check_fail "private names exported: $(grep -E '^(dx__|dx_stream_)' "$DX_TMP/exported" | head)" ||
  pass "no dx__*, dx_stream_* or other private names"

# SONAME: libduplex.so.MAJOR, or libduplex.so.0.MINOR before 1.0.
ver=$(sed -n 's/^#define DX_VERSION_STRING "\(.*\)"$/\1/p' "$DX_BUILD_DIR/include/duplex/version.h")
IFS=. read -r major minor _ <<<"$ver"
if [ "$major" = 0 ]; then want="libduplex.so.0.$minor"; else want="libduplex.so.$major"; fi
soname=$(objdump -p "$lib" | awk '$1 == "SONAME" {print $2}')
[ "$soname" = "$want" ] && pass "SONAME $soname" || check_fail "SONAME '$soname', expected $want"

finish
