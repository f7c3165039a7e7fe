// node_ws_echo: a WebSocket echo server on Node `ws`, the Node peer in
// bench/compare.sh. No permessage-deflate; every message goes back whole with
// its opcode, as `duplex echo` does.
//
//   node bench/peers/node_ws_echo.mjs [--host ADDR] [--port N]
import { cli, echoAll, loadWs } from './common.mjs';

const { opt } = cli('usage: node node_ws_echo.mjs [--host ADDR] [--port N]\n' +
  'WebSocket echo server on Node ws, no extensions. Default 127.0.0.1:9002.');
const { WebSocketServer } = loadWs('node_ws_echo');
const host = opt('--host', '127.0.0.1');
const port = Number(opt('--port', '9002'));
const wss = new WebSocketServer({ host, port, perMessageDeflate: false, maxPayload: 64 << 20 });
echoAll(wss);
wss.on('listening', () => console.error(`node_ws_echo: listening on ${host}:${port}`));
