// node_deflate_echo: a WebSocket echo server on Node `ws` with
// permessage-deflate, the Node peer of the compression part of
// bench/tls_deflate.sh. Every message goes back whole with its opcode.
//
//   node bench/peers/node_deflate_echo.mjs [--mode MODE] [--host ADDR] [--port N]
//
// MODE: default     perMessageDeflate: true, ws's defaults (context takeover
//                   when the client does not ask otherwise, threshold 1024 B,
//                   zlib level/memLevel/windowBits defaults, 10 zlib jobs at once)
//       no-takeover serverNoContextTakeover and clientNoContextTakeover: true
//       off         no permessage-deflate
//
// `ws` comes from bench/node_modules (npm install in bench/) or, failing
// that, tests/interop/node_modules.
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
if (args.includes('-h') || args.includes('--help')) {
  console.log('usage: node node_deflate_echo.mjs [--mode default|no-takeover|off] [--host ADDR] [--port N]\n' +
    'WebSocket echo server on Node ws with permessage-deflate. Default 127.0.0.1:9003, mode default.');
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
  console.error('node_deflate_echo: ws not found; run npm install in bench/');
  process.exit(1);
}

const mode = opt('--mode', 'default');
const pmd = { default: true, 'no-takeover': { serverNoContextTakeover: true, clientNoContextTakeover: true }, off: false }[mode];
if (pmd === undefined) {
  console.error(`node_deflate_echo: unknown --mode ${mode}`);
  process.exit(2);
}
const { WebSocketServer } = loadWs();
const host = opt('--host', '127.0.0.1');
const port = Number(opt('--port', '9003'));
const wss = new WebSocketServer({ host, port, perMessageDeflate: pmd, maxPayload: 64 << 20 });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});
});
wss.on('listening', () => console.error(`node_deflate_echo: listening on ${host}:${port}, mode ${mode}`));
const stop = () => process.exit(0);
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
