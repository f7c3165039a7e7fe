// Shared by the Node peers in bench/peers/: command-line options and where
// `ws` comes from (bench/node_modules after `npm install` in bench/, or
// else the pinned test peers in tests/interop/node_modules).
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

// The command line: `opt(names, default)` takes one name or a list of
// aliases; `-h`/`--help` prints `usage` and exits 0 (and so does running
// with no arguments at all when `needArgs`, but with status 2).
export function cli(usage, { needArgs = false } = {}) {
  const args = process.argv.slice(2);
  if ((needArgs && !args.length) || args.includes('-h') || args.includes('--help')) {
    console.log(usage);
    process.exit(args.length ? 0 : 2);
  }
  const opt = (names, dflt) => {
    for (const n of [].concat(names)) {
      const i = args.indexOf(n);
      if (i >= 0) return args[i + 1];
    }
    return dflt;
  };
  return { args, opt };
}

// The `ws` module, or exit 1 naming `who` and what to do.
export function loadWs(who) {
  for (const dir of ['..', '../../tests/interop']) {
    try {
      return createRequire(path.join(here, dir, 'package.json'))('ws');
    } catch {
      // try the next place
    }
  }
  console.error(`${who}: ws not found; run npm install in bench/`);
  process.exit(1);
}

// Echo every message whole with its opcode, as `duplex echo` does; a
// client that resets mid-run is not the server's problem.
export function echoAll(wss) {
  wss.on('connection', (ws) => {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    ws.on('error', () => {});
  });
}

// The benchmark needs no graceful close.
export function exitOnSignals() {
  const stop = () => process.exit(0);
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
