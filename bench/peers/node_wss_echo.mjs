// node_wss_echo: a WebSocket echo server on Node `ws` over https.createServer
// (wss://), the Node peer of the TLS part of bench/tls_deflate.sh. No
// permessage-deflate; every message goes back whole with its opcode, as
// `duplex echo` does.
//
//   node bench/peers/node_wss_echo.mjs --cert FILE --key FILE [--host ADDR] [--port N]
//
// `ws` comes from bench/node_modules (npm install in bench/) or, failing
// that, tests/interop/node_modules.
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
if (args.includes('-h') || args.includes('--help')) {
  console.log('usage: node node_wss_echo.mjs --cert FILE --key FILE [--host ADDR] [--port N]\n' +
    'wss:// echo server on Node https + ws, no extensions. Default 127.0.0.1:9443.');
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
  console.error('node_wss_echo: ws not found; run npm install in bench/');
  process.exit(1);
}

const cert = opt('--cert'), key = opt('--key');
if (!cert || !key) {
  console.error('node_wss_echo: --cert and --key are required');
  process.exit(2);
}
const { WebSocketServer } = loadWs();
const host = opt('--host', '127.0.0.1');
const port = Number(opt('--port', '9443'));
const server = https.createServer({ cert: readFileSync(cert), key: readFileSync(key) });
server.on('tlsClientError', () => {}); // a client that resets mid-handshake is not our problem
const wss = new WebSocketServer({ server, perMessageDeflate: false, maxPayload: 64 << 20 });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});
});
server.listen(port, host, () => console.error(`node_wss_echo: listening on wss://${host}:${port}`));
const stop = () => process.exit(0); // the benchmark needs no graceful close
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
