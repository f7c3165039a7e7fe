// node_ws_echo: a WebSocket echo server on Node `ws`, the Node peer in
// bench/compare.sh. No permessage-deflate; every message goes back whole with
// its opcode, as `duplex echo` does.
//
//   node bench/peers/node_ws_echo.mjs [--host ADDR] [--port N]
//
// `ws` comes from bench/node_modules (npm install in bench/) or, failing
// that, tests/interop/node_modules.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
if (args.includes('-h') || args.includes('--help')) {
  console.log('usage: node node_ws_echo.mjs [--host ADDR] [--port N]\n' +
    'WebSocket echo server on Node ws, no extensions. Default 127.0.0.1:9002.');
  process.exit(0);
}
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};

function loadWs() {
  for (const dir of ['..', '../../tests/interop']) {
    try {
      return createRequire(path.join(here, dir, 'package.json'))('ws');
    } catch {
      // try the next place
    }
  }
  console.error('node_ws_echo: ws not found; run npm install in bench/');
  process.exit(1);
}

const { WebSocketServer } = loadWs();
const host = opt('--host', '127.0.0.1');
const port = Number(opt('--port', '9002'));
const wss = new WebSocketServer({ host, port, perMessageDeflate: false, maxPayload: 64 << 20 });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {}); // a client that resets mid-run is not our problem
});
wss.on('listening', () => console.error(`node_ws_echo: listening on ${host}:${port}`));
const stop = () => process.exit(0); // the benchmark needs no graceful close
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
