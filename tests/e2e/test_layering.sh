#!/usr/bin/env bash
# The layering rule of docs/ARCHITECTURE.md: each layer of src/ includes only
# its own headers and those of the layers below it
#   common < proto < io < ws < server, client < hub
# and a public header counts as the layer it belongs to (duplex/ws.h is
# ws/, duplex/server.h and duplex/http.h are server/, ...), so ws/ cannot
# reach for a role's options through duplex/server.h. Public headers obey
# the same rule among themselves.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"

out=$("$PY" - "$DX_SOURCE_DIR" <<'PYEOF'
import glob, os, re, sys
root = sys.argv[1]
rank = {'common': 0, 'proto': 1, 'io': 2, 'ws': 3, 'server': 4, 'client': 4, 'hub': 5}
public = {'common': 'common', 'error': 'common', 'log': 'common', 'version': 'common',
          'frame': 'proto', 'utf8': 'proto', 'handshake': 'proto', 'proto': 'proto',
          'deflate': 'proto', 'loop': 'io', 'tls': 'io', 'ws': 'ws', 'server': 'server',
          'http': 'server', 'client': 'client', 'hub': 'hub', 'duplex': 'hub'}
bad, checked = [], 0

def layer_of(inc):
    d, _, name = inc.partition('/')
    if d == 'duplex':
        name = name[:-2] if name.endswith('.h') else name
        if name not in public:
            bad.append(f'duplex/{name}.h: not in the layer map of test_layering.sh')
            return None
        return public[name]
    return d if d in rank else None

def check(path, layer):
    global checked
    for n, line in enumerate(open(path), 1):
        m = re.match(r'\s*#\s*include\s+"([^"]+)"', line)
        if not m or '/' not in m.group(1):
            continue
        checked += 1
        to = layer_of(m.group(1))
        if to is None or to == layer:
            continue
        if rank[to] >= rank[layer]:
            bad.append(f'{os.path.relpath(path, root)}:{n}: {layer}/ includes {m.group(1)} ({to}/)')

for path in sorted(glob.glob(f'{root}/src/*/*.[ch]')):
    layer = path.split('/')[-2]
    if layer in rank:
        check(path, layer)
for path in sorted(glob.glob(f'{root}/include/duplex/*.h')):
    name = os.path.basename(path)[:-2]
    if name in public:
        check(path, public[name])
    else:
        bad.append(f'include/duplex/{name}.h: not in the layer map of test_layering.sh')
print(f'checked {checked}')
print('\n'.join(bad))
PYEOF
) || fail "the include scan failed"
checked=$(head -1 <<<"$out")
violations=$(tail -n +2 <<<"$out")
[[ "$checked" =~ ^checked\ [1-9][0-9]+$ ]] || fail "scan found no includes: $out"
[[ -z "$violations" ]] && pass "every layer includes only itself and the layers below ($checked includes)" ||
  check_fail "layering: $violations"
finish
