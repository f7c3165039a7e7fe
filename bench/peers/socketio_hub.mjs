// socketio_hub: a Socket.IO 4 pub/sub hub, the Socket.IO peer of
// bench/hub.sh. One process, WebSocket transport only, no compression.
//
//   clients:    engine.io v4 over WebSocket (/socket.io/?EIO=4&transport=websocket);
//               emit "join" with a topic (and an ack callback) to enter that room;
//               publications arrive as "msg" events: 42["msg",<data>]
//   publishers: POST /publish with {"topic": t, "data": any}
//               -> io.to(t).emit("msg", data); answers 200 {"ok":true}
//
//   node bench/peers/socketio_hub.mjs [--host ADDR] [--port N]
import { createRequire } from 'node:module';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cli, exitOnSignals } from './common.mjs';

const { opt } = cli('usage: node socketio_hub.mjs [--host ADDR] [--port N]\n' +
  'Socket.IO 4 hub: rooms joined with a "join" event, POST /publish {"topic","data"}.\n' +
  'Default 127.0.0.1:9003.');
const here = path.dirname(fileURLToPath(import.meta.url));
let Server;
try {
  ({ Server } = createRequire(path.join(here, '..', 'package.json'))('socket.io'));
} catch {
  console.error('socketio_hub: socket.io not found; run npm install in bench/');
  process.exit(1);
}
const host = opt('--host', '127.0.0.1');
const port = Number(opt('--port', '9003'));
const ok = Buffer.from('{"ok":true}');

const server = http.createServer((req, res) => {
  if (req.method !== 'POST' || req.url !== '/publish') {
    res.writeHead(404, { 'Content-Length': 0 }).end();
    return;
  }
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    let msg;
    try {
      msg = JSON.parse(Buffer.concat(chunks).toString());
    } catch {
      res.writeHead(400, { 'Content-Length': 0 }).end();
      return;
    }
    if (typeof msg?.topic !== 'string') {
      res.writeHead(400, { 'Content-Length': 0 }).end();
      return;
    }
    io.to(msg.topic).emit('msg', msg.data);
    res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': ok.length });
    res.end(ok);
  });
});
// Publishers keep their connection for the whole run.
server.keepAliveTimeout = 600_000;
server.headersTimeout = 601_000;
server.maxRequestsPerSocket = 0;

const io = new Server(server, {
  transports: ['websocket'],
  serveClient: false,
  perMessageDeflate: false,
  httpCompression: false,
});
io.on('connection', (socket) => {
  socket.on('join', (topic, ack) => {
    if (typeof topic === 'string') socket.join(topic);
    if (typeof ack === 'function') ack();
  });
});
exitOnSignals();
server.listen(port, host, () => console.error(`socketio_hub: listening on ${host}:${port}`));
