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
import { cli, echoAll, exitOnSignals, loadWs } from './common.mjs';

const { opt } = cli('usage: node node_deflate_echo.mjs [--mode default|no-takeover|off] [--host ADDR] [--port N]\n' +
  'WebSocket echo server on Node ws with permessage-deflate. Default 127.0.0.1:9003, mode default.');
const mode = opt('--mode', 'default');
const pmd = { default: true, 'no-takeover': { serverNoContextTakeover: true, clientNoContextTakeover: true }, off: false }[mode];
if (pmd === undefined) {
  console.error(`node_deflate_echo: unknown --mode ${mode}`);
  process.exit(2);
}
const { WebSocketServer } = loadWs('node_deflate_echo');
const host = opt('--host', '127.0.0.1');
const port = Number(opt('--port', '9003'));
const wss = new WebSocketServer({ host, port, perMessageDeflate: pmd, maxPayload: 64 << 20 });
echoAll(wss);
wss.on('listening', () => console.error(`node_deflate_echo: listening on ${host}:${port}, mode ${mode}`));
exitOnSignals();
