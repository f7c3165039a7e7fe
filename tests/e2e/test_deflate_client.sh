#!/usr/bin/env bash
# End to end: the client side of permessage-deflate negotiation, against a
# fake server (deflate_fake_server.py) that answers with chosen responses:
#   - the offer: shared mode, takeover, takeover with --deflate-window-bits N
#     (client_max_window_bits=N);
#   - responses the client must refuse (exit 1, a clear message, nothing
#     sent): more than one extension (one header or two), a value-less
#     client_max_window_bits, duplicate or unknown parameters, a bad value,
#     a larger client window than offered, an extension never offered;
#   - responses it accepts: client_max_window_bits=8 (then it sends
#     uncompressed, RSV1 clear, and still inflates the server's messages),
#     client_max_window_bits=10 as offered, and none at all.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=SCRIPTDIR/../lib.sh
source "$here/../lib.sh"

[[ -x "$DUPLEX" ]] || fail "no duplex binary at $DUPLEX"
SRV_LOG="$DX_TMP/fake.log"
"$PY" "$here/deflate_fake_server.py" >"$SRV_LOG" 2>&1 &
DX_SERVER_PIDS+=("$!")
DX_SERVER_LOGS+=("$SRV_LOG")
wait_port=
for ((i = 0; i < 200; i++)); do
  wait_port=$(grep -m1 -oE '^port [0-9]+' "$SRV_LOG" | grep -oE '[0-9]+$' || true)
  [[ -n "$wait_port" ]] && break
  sleep 0.05
done
[[ -n "$wait_port" ]] || fail "deflate_fake_server.py printed no port: $(cat "$SRV_LOG")"
U="ws://127.0.0.1:$wait_port"

# A compressible line: long enough to be compressed (over the threshold).
IN="$DX_TMP/in"
"$PY" -c 'print(" ".join(["{\"id\": %d, \"name\": \"duplex\", \"ok\": true}" % i for i in range(40)]))' >"$IN"
len=$(($(wc -c <"$IN") - 1))

# dxc NAME ARGS...: `duplex connect ARGS` with $IN on stdin; sets OUT, ERR, RC.
dxc() { local n=$1; shift; capture "$n" "$IN" 30 "$DUPLEX" connect "$@"; }

# logged ERE: the fake server logged a matching line (waits up to 5 s).
logged() {
  local t0
  t0=$(now_us)
  until grep -qE -- "$1" "$SRV_LOG"; do
    (($(now_us) - t0 < 5000000)) || return 1
    sleep 0.05
  done
}

# ---- what the client offers ----
dxc offer_shared --deflate "$U/ok/plain" -n 1
logged '^offer /ok/plain permessage-deflate; client_no_context_takeover; server_no_context_takeover; client_max_window_bits, permessage-deflate; client_max_window_bits$' &&
  pass "shared mode offer" || check_fail "shared mode offer: $(grep '^offer /ok/plain' "$SRV_LOG")"
dxc offer_w10 --deflate --deflate-mode takeover --deflate-window-bits 10 "$U/ok/cmwb10" -n 1
logged '^offer /ok/cmwb10 permessage-deflate; client_max_window_bits=10$' &&
  pass "--deflate-window-bits 10 offers client_max_window_bits=10" ||
  check_fail "offer with --deflate-window-bits 10: $(grep '^offer /ok/cmwb10' "$SRV_LOG")"
if [[ $RC == 0 ]] && cmp -s "$OUT" "$IN" && logged "^recv /ok/cmwb10 rsv1=1 len=$len\$"; then
  pass "client_max_window_bits=10 accepted: compressed both ways"
else
  check_fail "client_max_window_bits=10: rc $RC, $(head -c 300 "$ERR"); $(grep '^recv /ok/cmwb10' "$SRV_LOG")"
fi
dxc bad_window --deflate --deflate-window-bits 16 "$U/ok/plain" -n 1
[[ $RC == 2 ]] && pass "--deflate-window-bits 16: usage error" ||
  check_fail "--deflate-window-bits 16: exit $RC: $(head -c 300 "$ERR")"
grep -q -- '--deflate-window-bits' <("$DUPLEX" connect --help 2>&1) && pass "connect --help lists --deflate-window-bits" ||
  check_fail "connect --help lacks --deflate-window-bits"

# ---- responses the client refuses ----
for case in two two-lines cmwb-no-value duplicate duplicate-cmwb unknown smwb-range larger not-offered; do
  args=(--deflate)
  [[ $case == larger ]] && args=(--deflate --deflate-mode takeover --deflate-window-bits 10)
  dxc "bad_$case" "${args[@]}" "$U/bad/$case" -n 1
  if [[ $RC != 1 ]]; then
    check_fail "response '$case': exit $RC, expected 1; stderr: $(head -c 500 "$ERR")"
  elif [[ -s "$OUT" ]]; then
    check_fail "response '$case': output on stdout"
  elif ! grep -qE '^duplex: error: .*(permessage-deflate|extension)' "$ERR"; then
    check_fail "response '$case': unclear message: $(head -c 500 "$ERR")"
  elif grep -q "^recv /bad/$case " "$SRV_LOG"; then
    check_fail "response '$case': the client sent a message anyway"
  else
    pass "response '$case' refused ($(grep -m1 'error:' "$ERR" | cut -c1-120))"
  fi
done

# ---- client_max_window_bits=8: agreed, we send uncompressed ----
dxc cmwb8 --deflate "$U/ok/cmwb8" -n 1
if [[ $RC == 0 ]] && cmp -s "$OUT" "$IN"; then
  pass "client_max_window_bits=8 accepted; the server's compressed echo inflated"
else
  check_fail "client_max_window_bits=8: rc $RC, stdout $(head -c 100 "$OUT"); stderr $(head -c 500 "$ERR")"
fi
logged "^recv /ok/cmwb8 rsv1=0 len=$len\$" && pass "... and the client sent its message uncompressed (RSV1 clear)" ||
  check_fail "client_max_window_bits=8: $(grep '^recv /ok/cmwb8' "$SRV_LOG")"
dxc cmwb8_takeover --deflate --deflate-mode takeover "$U/ok/cmwb8" -n 1
[[ $RC == 0 ]] && cmp -s "$OUT" "$IN" && pass "client_max_window_bits=8 in takeover mode too" ||
  check_fail "client_max_window_bits=8, takeover: rc $RC, $(head -c 500 "$ERR")"
dxc offer_w8 --deflate --deflate-mode takeover --deflate-window-bits 8 "$U/ok/cmwb8" -n 1
logged '^offer /ok/cmwb8 permessage-deflate; client_max_window_bits=8$' && [[ $RC == 0 ]] &&
  cmp -s "$OUT" "$IN" && pass "--deflate-window-bits 8 offers client_max_window_bits=8 and works" ||
  check_fail "--deflate-window-bits 8: rc $RC, $(grep '^offer /ok/cmwb8' "$SRV_LOG"); $(head -c 300 "$ERR")"

# ---- no parameters: compressed both ways ----
dxc plain --deflate "$U/ok/plain" -n 1
[[ $RC == 0 ]] && cmp -s "$OUT" "$IN" && logged "^recv /ok/plain rsv1=1 len=$len\$" &&
  pass "plain permessage-deflate: compressed both ways" ||
  check_fail "plain: rc $RC, $(head -c 500 "$ERR"); $(grep '^recv /ok/plain' "$SRV_LOG")"

finish
