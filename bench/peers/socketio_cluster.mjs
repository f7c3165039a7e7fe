// socketio_cluster: one node of a Socket.IO 4 hub scaled out with the
// official Redis adapter (@socket.io/redis-adapter on the `redis` client),
// the Socket.IO peer of bench/scale.sh. Run it once per node, all with the
// same --redis; a publication on any node reaches the room's members on
// every node (the adapter PUBLISHes each broadcast; every node SUBSCRIBEs).
//
//   clients:    engine.io v4 over WebSocket (/socket.io/?EIO=4&transport=websocket);
//               emit "join" with a topic (and an ack callback) to enter that room;
//               publications arrive as "msg" events: 42["msg",<data>]
//   publishers: POST /publish with {"topic": t, "data": any}
//               -> io.to(t).emit("msg", data); answers 200 {"ok":true}
//
//   node bench/peers/socketio_cluster.mjs --redis redis://127.0.0.1:6379 [--host ADDR] [--port N]
import { createRequire } from 'node:module';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cli, exitOnSignals } from './common.mjs';

const { opt } = cli(
  'usage: node socketio_cluster.mjs --redis URL [--host ADDR] [--port N]\n' +
    'A Socket.IO 4 hub node on the Redis adapter: rooms joined with a "join" event,\n' +
    'POST /publish {"topic","data"}. Default 127.0.0.1:9003.',
  { needArgs: true },
);
const here = path.dirname(fileURLToPath(import.meta.url));
const need = createRequire(path.join(here, '..', 'package.json'));
let Server, createAdapter, createClient;
try {
  ({ Server } = need('socket.io'));
  ({ createAdapter } = need('@socket.io/redis-adapter'));
  ({ createClient } = need('redis'));
} catch {
  console.error('socketio_cluster: socket.io, @socket.io/redis-adapter or redis not found; ' +
    'run npm ci in bench/');
  process.exit(1);
}
const host = opt('--host', '127.0.0.1');
const port = Number(opt('--port', '9003'));
const redisUrl = opt('--redis');
if (!redisUrl) {
  console.error('socketio_cluster: --redis URL is required');
  process.exit(2);
}
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
server.keepAliveTimeout = 600_000;
server.headersTimeout = 601_000;
server.maxRequestsPerSocket = 0;

const pub = createClient({ url: redisUrl });
const sub = pub.duplicate();
for (const c of [pub, sub]) c.on('error', (e) => console.error('socketio_cluster: redis:', e.message));
await Promise.all([pub.connect(), sub.connect()]);

const io = new Server(server, {
  transports: ['websocket'],
  serveClient: false,
  perMessageDeflate: false,
  httpCompression: false,
  adapter: createAdapter(pub, sub),
});
io.on('connection', (socket) => {
  socket.on('join', (topic, ack) => {
    if (typeof topic === 'string') socket.join(topic);
    if (typeof ack === 'function') ack();
  });
});
exitOnSignals();
server.listen(port, host, () =>
  console.error(`socketio_cluster: listening on ${host}:${port}, Redis ${redisUrl}`),
);
