#!/usr/bin/env bash
# Run every fuzz target in BUILD_DIR/tests/fuzz for SECONDS each, two at a
# time, starting from the seed corpus in tests/fuzz/corpus/<target>/ (new
# inputs go to a scratch copy, not the repo). Fails if any target crashes;
# the crashing input is kept in build dir for reproduction.
#   scripts/fuzz.sh build/fuzz 60
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:?usage: fuzz.sh BUILD_DIR SECONDS}" && pwd)
secs=${2:-60}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pids=() names=()
status=0
wait_one() {
  local pid=$1 name=$2
  if wait "$pid"; then
    echo "fuzz: $name ok ($(grep -Eo 'Done [0-9]+ runs' "$work/$name.log" | head -1))"
  else
    echo "fuzz: $name FAILED — log tail:" >&2
    tail -40 "$work/$name.log" >&2
    status=1
  fi
}
for bin in "$build"/tests/fuzz/fuzz_*; do
  [[ -x "$bin" ]] || continue
  name=$(basename "$bin")
  mkdir -p "$work/$name"
  [[ -d "$here/tests/fuzz/corpus/$name" ]] && cp -r "$here/tests/fuzz/corpus/$name/." "$work/$name/"
  echo "fuzz: $name for ${secs}s"
  (cd "$build" && "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
     -print_final_stats=1 "$work/$name" >"$work/$name.log" 2>&1) &
  pids+=($!) names+=("$name")
  if ((${#pids[@]} == 2)); then
    wait_one "${pids[0]}" "${names[0]}"; wait_one "${pids[1]}" "${names[1]}"
    pids=() names=()
  fi
done
((${#pids[@]})) && wait_one "${pids[0]}" "${names[0]}"
exit $status
