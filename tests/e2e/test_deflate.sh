#!/usr/bin/env bash
# End to end: permessage-deflate (RFC 7692) over raw sockets with zlib on
# our side: negotiation, compressed/fragmented/empty messages, context
# takeover, window sizes, protocol errors and decompression bombs.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=SCRIPTDIR/../lib.sh
source "$here/../lib.sh"

start_echo --deflate
run_helper "deflate shared" "$PY" "$here/deflate_raw.py" shared "$PORT"
start_echo --deflate --deflate-mode takeover
run_helper "deflate takeover" "$PY" "$here/deflate_raw.py" takeover "$PORT"
start_echo --deflate --max-message 64K
run_helper "deflate bomb" "$PY" "$here/deflate_raw.py" bomb "$PORT"
finish
