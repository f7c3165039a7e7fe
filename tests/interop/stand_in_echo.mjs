// A development aid, not used by any test: an echo server on Node `ws` that
// takes the same basic command line as `duplex echo`, so the test scripts'
// mechanics can be checked before (or besides) the real server:
//
//   DX_ECHO_CMD="node tests/interop/stand_in_echo.mjs" bash tests/e2e/test_x.sh
//
// Node ws differs from duplex in status codes, close codes and timeouts, so
// only some checks are expected to pass against it.
import http from 'node:http';
import { WebSocketServer } from 'ws';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const size = (s) => {
  const m = /^(\d+)([kKmMgG]?)/.exec(s);
  return Number(m[1]) * { '': 1, k: 1024, m: 1 << 20, g: 1 << 30 }[m[2].toLowerCase()];
};
const dur = (s) => {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(s);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60000, undefined: 1 }[m[2]];
};

const host = opt('--host', '127.0.0.1');
const maxPayload = size(opt('--max-message', '16M'));
const pingInterval = opt('--ping-interval') ? dur(opt('--ping-interval')) : 0;
const maxBuffered = size(opt('--max-buffered', '4M'));

const hsTimeout = opt('--handshake-timeout') ? dur(opt('--handshake-timeout')) : 10000;
const idleTimeout = opt('--idle-timeout') ? dur(opt('--idle-timeout')) : 0;
const server = http.createServer({ headersTimeout: hsTimeout, requestTimeout: hsTimeout,
  connectionsCheckingInterval: 100 }, (req, res) => {
  if (req.url === '/healthz') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok');
    return;
  }
  res.writeHead(426, { upgrade: 'websocket' });
  res.end('upgrade required');
});
const wss = new WebSocketServer({ server, maxPayload, perMessageDeflate: false });
wss.on('connection', (ws) => {
  ws.on('error', () => {});
  if (idleTimeout) {
    let t;
    const arm = () => {
      clearTimeout(t);
      t = setTimeout(() => ws.close(1001, 'idle'), idleTimeout);
    };
    arm();
    ws.on('message', arm);
    ws.on('close', () => clearTimeout(t));
  }
  ws.on('message', (data, isBinary) => {
    if (ws.bufferedAmount > maxBuffered) {
      ws.close(1008, 'slow');
      setTimeout(() => ws.terminate(), 2000);
      return;
    }
    ws.send(data, { binary: isBinary });
  });
  ws.isAlive = true;
  ws.on('pong', () => (ws.isAlive = true));
});
if (pingInterval) {
  setInterval(() => {
    for (const ws of wss.clients) {
      if (!ws.isAlive) ws.terminate();
      ws.isAlive = false;
      ws.ping();
    }
  }, pingInterval);
}
const stop = () => {
  for (const ws of wss.clients) ws.close(1001, 'going away');
  server.close();
  setTimeout(() => process.exit(0), 1000).unref();
  const t = setInterval(() => {
    if (wss.clients.size === 0) process.exit(0);
  }, 20);
  t.unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
server.listen(Number(opt('--port', '0')), host, () => {
  console.error(`stand-in echo: listening on ws://${host}:${server.address().port}`);
});
