#!/usr/bin/env bash
# docs/deploy/duplex.service and docs/deploy/duplex.env: systemd-analyze
# verify accepts the unit (its ExecStart pointed at the binary under test),
# its hardening rates OK in systemd-analyze security, it names the variables
# duplex reads, and the ExecStart command with the env file's settings and
# the example configuration passes --check-config with the secrets masked.
# (The unit is not started: tests do not run under systemd as PID 1.)
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
command -v systemd-analyze >/dev/null || fail "no systemd-analyze: run scripts/deps.sh --test (package systemd)"
unit="$DX_SOURCE_DIR/docs/deploy/duplex.service"
envf="$DX_SOURCE_DIR/docs/deploy/duplex.env"

grep -q '^ExecStart=/usr/local/bin/duplex serve --config /etc/duplex/duplex.json$' "$unit" &&
  pass "ExecStart runs duplex serve --config /etc/duplex/duplex.json" || check_fail "ExecStart: $(grep ExecStart "$unit")"
copy="$DX_TMP/duplex.service"
sed "s#^ExecStart=/usr/local/bin/duplex #ExecStart=$DUPLEX #" "$unit" >"$copy"
if out=$(systemd-analyze verify --man=no "$copy" 2>&1) && [[ -z "$out" ]]; then
  pass "systemd-analyze verify: no complaint"
else
  check_fail "systemd-analyze verify: $out"
fi
for want in DynamicUser=yes NoNewPrivileges=yes ProtectSystem=strict Restart=on-failure \
  'LimitNOFILE=1048576' 'EnvironmentFile=-/etc/duplex/duplex.env' 'CapabilityBoundingSet=$'; do
  grep -q "^$want" "$unit" || check_fail "the unit lacks $want"
done
pass "hardening and restart settings present"
exposure=$(systemd-analyze security --offline=yes "$copy" 2>/dev/null | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
if [[ -n "$exposure" ]] && awk -v e="$exposure" 'BEGIN { exit !(e <= 2.0) }'; then
  pass "systemd-analyze security: exposure $exposure (at most 2.0)"
else
  check_fail "systemd-analyze security: exposure '${exposure}'"
fi

# The env file's variables are the ones duplex reads.
vars=$(grep -o '^#\{0,1\}DUPLEX_[A-Z_]*' "$envf" | tr -d '#' | sort -u | xargs)
[[ "$vars" == "DUPLEX_API_KEY DUPLEX_REDIS_URL DUPLEX_TOKEN_SECRET" ]] &&
  pass "duplex.env names DUPLEX_API_KEY, DUPLEX_REDIS_URL, DUPLEX_TOKEN_SECRET" || check_fail "env vars: $vars"
for v in $vars; do
  grep -q "getenv(\"$v\")" "$DX_SOURCE_DIR/app/cmd_serve.c" || check_fail "duplex serve does not read $v"
done

# As systemd would run it: only the env file's settings (uncommented, plus a
# Redis URL and a token secret), the example configuration.
mapfile -t env_lines < <(grep -E '^DUPLEX_[A-Z_]+=' "$envf")
cfg="$DX_TMP/effective.json"
rc=0
env -i PATH=/usr/bin:/bin "${env_lines[@]}" DUPLEX_REDIS_URL='redis://:hunter2@10.0.0.5:6379/0' \
  DUPLEX_TOKEN_SECRET=sekrit-sekrit-sekrit-sekrit-sekrit \
  "$DUPLEX" serve --check-config "$DX_SOURCE_DIR/docs/duplex.example.json" >"$cfg" 2>&1 || rc=$?
if ((rc == 0)); then
  pass "the example configuration with the env file passes --check-config"
else
  check_fail "--check-config exited $rc: $(head -5 "$cfg")"
fi
grep -q 'replace-with-a-long-random-key\|hunter2\|sekrit' "$cfg" && check_fail "a secret is printed: $(cat "$cfg")" ||
  pass "no secret in the effective configuration"
grep -q '"redis"' "$cfg" && pass "DUPLEX_REDIS_URL reaches the configuration" || check_fail "no redis in: $(cat "$cfg")"
finish
