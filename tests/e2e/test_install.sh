#!/usr/bin/env bash
# `cmake --install` into a temporary prefix puts libduplex (shared with its
# SONAME links, and static), the headers, the duplex command, its man page,
# duplex.pc and the CMake package in place; examples/echo_server.c builds
# against that copy with pkg-config and with find_package(duplex) (shared
# and static), and each build answers the installed `duplex connect`.
# `cpack -G DEB` makes a package holding the same files.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"

prefix="$DX_TMP/prefix"
cmake --install "$DX_BUILD_DIR" --prefix "$prefix" >"$DX_TMP/install.log" 2>&1 ||
  fail "cmake --install failed: $(tail -5 "$DX_TMP/install.log")"
pass "cmake --install into a temporary prefix"

# ---- the files -------------------------------------------------------------
pc=$(find "$prefix" -name duplex.pc -path '*/pkgconfig/*' | head -1)
[[ -n "$pc" ]] || fail "no duplex.pc installed"
libdir=$(dirname "$(dirname "$pc")")
ver=$(sed -n 's/^#define DX_VERSION_STRING "\(.*\)"$/\1/p' "$prefix/include/duplex/version.h")
[[ -n "$ver" ]] || fail "no include/duplex/version.h with DX_VERSION_STRING"
IFS=. read -r major minor _ <<<"$ver"
if [[ $major == 0 ]]; then soversion="0.$minor"; else soversion=$major; fi

missing=()
for f in "$libdir/libduplex.so.$ver" "$libdir/libduplex.a" "$prefix/include/duplex/duplex.h" \
  "$prefix/include/duplex/common.h" "$prefix/include/duplex/log.h" "$prefix/bin/duplex" \
  "$prefix/share/man/man1/duplex.1" "$libdir/cmake/duplex/duplexConfig.cmake" \
  "$libdir/cmake/duplex/duplexConfigVersion.cmake" "$libdir/cmake/duplex/duplexTargets.cmake"; do
  [[ -e "$f" ]] || missing+=("${f#"$prefix"/}")
done
((${#missing[@]} == 0)) && pass "library, headers, duplex, man page, pkg-config and CMake files" ||
  check_fail "missing: ${missing[*]}"
[[ "$(readlink "$libdir/libduplex.so.$soversion")" == "libduplex.so.$ver" &&
  "$(readlink "$libdir/libduplex.so")" == "libduplex.so.$soversion" ]] &&
  pass "libduplex.so -> libduplex.so.$soversion -> libduplex.so.$ver" ||
  check_fail "SONAME links: $(ls -l "$libdir"/libduplex.so*)"
soname=$(objdump -p "$libdir/libduplex.so.$ver" | awk '$1 == "SONAME" {print $2}')
[[ "$soname" == "libduplex.so.$soversion" ]] && pass "SONAME $soname" ||
  check_fail "SONAME '$soname', expected libduplex.so.$soversion"
[[ ! -e "$prefix/include/duplex/hub.h" ]] && pass "no hub.h (libduplex_hub is not installed)" ||
  check_fail "hub.h installed without its library"
head -5 "$prefix/share/man/man1/duplex.1" | grep -q '^\.TH DUPLEX 1' && pass "man page duplex(1)" ||
  check_fail "the man page has no .TH DUPLEX 1 line"
out=$("$prefix/bin/duplex" --version 2>&1)
[[ "$out" == "duplex $ver" ]] && pass "installed duplex --version: $out" ||
  check_fail "duplex --version printed '$out', expected 'duplex $ver'"

# ---- building against it -------------------------------------------------
# Use the build's compiler, and its sanitizers: an instrumented libduplex
# needs an instrumented program to provide the runtime.
cache="$DX_BUILD_DIR/CMakeCache.txt"
cc=$(sed -n 's/^CMAKE_C_COMPILER:[A-Z]*=//p' "$cache")
[[ -n "$cc" ]] || cc=cc
san=()
grep -q '^DX_SANITIZE:BOOL=ON' "$cache" && san=(-fsanitize=address,undefined)
grep -q '^DX_FUZZ:BOOL=ON' "$cache" && san=(-fsanitize=address,undefined,fuzzer-no-link)
example="$DX_SOURCE_DIR/examples/echo_server.c"

# run_echo NAME BINARY: start it on a free port, send one message through the
# installed `duplex connect`, expect it back, stop it with SIGTERM.
run_echo() {
  local name=$1 bin=$2 log="$DX_TMP/$1.out" port="" pid rc=0
  "$bin" 0 >"$log" 2>&1 &
  pid=$!
  DX_SERVER_PIDS+=("$pid")
  DX_SERVER_LOGS+=("$log")
  for _ in $(seq 100); do
    port=$(grep -m1 -oE 'ws://127\.0\.0\.1:[0-9]+' "$log" | grep -oE '[0-9]+$' || true)
    [[ -n "$port" ]] && break
    sleep 0.05
  done
  if [[ -z "$port" ]]; then
    check_fail "$name: no listening line: $(cat "$log")"
    return
  fi
  local got
  got=$(echo "hello $name" | timeout 10 "$prefix/bin/duplex" connect -q -n 1 "ws://127.0.0.1:$port/")
  [[ "$got" == "hello $name" ]] && pass "$name echoes" || check_fail "$name answered '$got'"
  kill -TERM "$pid"
  wait "$pid" || rc=$?
  DX_SERVER_PIDS=()
  DX_SERVER_LOGS=()
  [[ $rc == 0 ]] && pass "$name exits 0 on SIGTERM" || check_fail "$name exited $rc"
}

# needs BINARY LIB: the binary loads the installed shared library, or (with
# LIB = static) does not load libduplex at all.
needs() {
  local deps
  deps=$(readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
  if [[ $2 == static ]]; then
    [[ "$deps" != *libduplex* ]] && pass "$(basename "$1") has libduplex built in" ||
      check_fail "$(basename "$1") needs $deps"
  else
    [[ "$deps" == *"libduplex.so.$soversion"* ]] && pass "$(basename "$1") needs libduplex.so.$soversion" ||
      check_fail "$(basename "$1") needs $deps"
  fi
}

export PKG_CONFIG_PATH="$libdir/pkgconfig"
flags=$(pkg-config --cflags --libs duplex) || fail "pkg-config --cflags --libs duplex failed"
[[ $(pkg-config --modversion duplex) == "$ver" ]] && pass "pkg-config: duplex $ver ($flags)" ||
  check_fail "pkg-config --modversion: $(pkg-config --modversion duplex)"
# shellcheck disable=SC2086 # the flags are words
if "$cc" "${san[@]}" -std=c11 -Wall -Werror -o "$DX_TMP/echo_pc" "$example" $flags \
  -Wl,-rpath,"$libdir" 2>"$DX_TMP/pc.err"; then
  pass "examples/echo_server.c builds with pkg-config"
  needs "$DX_TMP/echo_pc" shared
  run_echo echo_pc "$DX_TMP/echo_pc"
else
  check_fail "build with pkg-config: $(cat "$DX_TMP/pc.err")"
fi
# The umbrella header alone, from the installed tree.
printf '#include <duplex/duplex.h>\n#include <stdio.h>\nint main(void) { puts(dx_version()); return DX_VERSION_MAJOR; }\n' \
  >"$DX_TMP/umbrella.c"
# shellcheck disable=SC2086
"$cc" "${san[@]}" -std=c11 -Wall -Werror -o "$DX_TMP/umbrella" "$DX_TMP/umbrella.c" $flags \
  -Wl,-rpath,"$libdir" 2>"$DX_TMP/umbrella.err" && [[ $("$DX_TMP/umbrella") == "$ver" ]] &&
  pass "<duplex/duplex.h> alone; dx_version() is $ver" ||
  check_fail "umbrella header: $(cat "$DX_TMP/umbrella.err")"

proj="$DX_TMP/cmake-project"
mkdir -p "$proj"
cp "$example" "$proj/"
cat >"$proj/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.18)
project(uses_duplex C)
find_package(duplex 0.1 REQUIRED)
add_executable(echo_shared echo_server.c)
target_link_libraries(echo_shared PRIVATE duplex::duplex)
add_executable(echo_static echo_server.c)
target_link_libraries(echo_static PRIVATE duplex::duplex_static)
EOF
if cmake -S "$proj" -B "$proj/build" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_COMPILER="$cc" \
  -DCMAKE_C_FLAGS="${san[*]}" -DCMAKE_EXE_LINKER_FLAGS="${san[*]}" >"$DX_TMP/cmake.log" 2>&1 &&
  cmake --build "$proj/build" >>"$DX_TMP/cmake.log" 2>&1; then
  pass "examples/echo_server.c builds with find_package(duplex)"
  needs "$proj/build/echo_shared" shared
  needs "$proj/build/echo_static" static
  run_echo echo_shared "$proj/build/echo_shared"
  run_echo echo_static "$proj/build/echo_static"
else
  check_fail "CMake project: $(tail -20 "$DX_TMP/cmake.log")"
fi
# A version the package does not promise to be compatible with is refused.
sed -i 's/find_package(duplex 0.1 REQUIRED)/find_package(duplex 99 REQUIRED)/' "$proj/CMakeLists.txt"
cmake -S "$proj" -B "$proj/build99" -DCMAKE_PREFIX_PATH="$prefix" >"$DX_TMP/cmake99.log" 2>&1 &&
  check_fail "find_package(duplex 99) succeeded" || pass "find_package(duplex 99) is refused"

# ---- cpack -G DEB ----------------------------------------------------------
if command -v dpkg-deb >/dev/null && command -v dpkg-shlibdeps >/dev/null; then
  if (cd "$DX_BUILD_DIR" && cpack -G DEB -B "$DX_TMP/deb") >"$DX_TMP/cpack.log" 2>&1; then
    deb=$(find "$DX_TMP/deb" -maxdepth 1 -name 'duplex_*.deb' | head -1)
    [[ -n "$deb" ]] && pass "cpack -G DEB made $(basename "$deb")" || check_fail "no .deb in $DX_TMP/deb"
    if [[ -n "$deb" ]]; then
      dpkg-deb -c "$deb" >"$DX_TMP/deb.list"
      n=0
      for f in "bin/duplex" "libduplex.so.$ver" "libduplex.a" "include/duplex/duplex.h" \
        "include/duplex/version.h" "pkgconfig/duplex.pc" "cmake/duplex/duplexConfig.cmake" \
        "man1/duplex.1"; do
        grep -q "/$f\$" "$DX_TMP/deb.list" && n=$((n + 1)) || check_fail "the .deb lacks $f"
      done
      ((n == 8)) && pass "the .deb holds the library, headers, duplex, man page, pkg-config and CMake files"
      depends=$(dpkg-deb -f "$deb" Depends)
      [[ "$depends" == *libssl3* && "$depends" == *zlib1g* ]] && pass "Depends: $depends" ||
        check_fail "Depends: '$depends' (expected libssl3 and zlib1g)"
    fi
  else
    check_fail "cpack -G DEB failed: $(tail -20 "$DX_TMP/cpack.log")"
  fi
else
  check_fail "dpkg-deb or dpkg-shlibdeps is missing (dpkg-dev; scripts/deps.sh installs it)"
fi

finish
