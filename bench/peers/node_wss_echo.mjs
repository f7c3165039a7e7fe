// node_wss_echo: a WebSocket echo server on Node `ws` over https.createServer
// (wss://), the Node peer of the TLS part of bench/tls_deflate.sh. No
// permessage-deflate; every message goes back whole with its opcode, as
// `duplex echo` does.
//
//   node bench/peers/node_wss_echo.mjs --cert FILE --key FILE [--host ADDR] [--port N]
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { cli, echoAll, exitOnSignals, loadWs } from './common.mjs';

const { opt } = cli('usage: node node_wss_echo.mjs --cert FILE --key FILE [--host ADDR] [--port N]\n' +
  'wss:// echo server on Node https + ws, no extensions. Default 127.0.0.1:9443.');
const cert = opt('--cert'), key = opt('--key');
if (!cert || !key) {
  console.error('node_wss_echo: --cert and --key are required');
  process.exit(2);
}
const { WebSocketServer } = loadWs('node_wss_echo');
const host = opt('--host', '127.0.0.1');
const port = Number(opt('--port', '9443'));
const server = https.createServer({ cert: readFileSync(cert), key: readFileSync(key) });
server.on('tlsClientError', () => {}); // a client that resets mid-handshake is not our problem
const wss = new WebSocketServer({ server, perMessageDeflate: false, maxPayload: 64 << 20 });
echoAll(wss);
server.listen(port, host, () => console.error(`node_wss_echo: listening on wss://${host}:${port}`));
exitOnSignals();
