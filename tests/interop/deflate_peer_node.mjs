// A Node `ws` echo server with permessage-deflate, for testing
// `duplex connect --deflate`.
//   node deflate_peer_node.mjs 'PERMESSAGE_DEFLATE_OPTIONS_AS_JSON'
// e.g. '{"threshold":0,"serverMaxWindowBits":10}'. Prints "listening PORT",
// then per connection:
//   offer EXTENSIONS_REQUEST_HEADER
//   accept EXTENSIONS_RESPONSE_HEADER          (or "accept -")
//   close code=N messages=N payload=BYTES wire=BYTES
// where payload counts the (inflated) message bytes received and wire the
// bytes read from the socket, so the test can tell that the client really
// compressed. Every message is echoed with its type. Ends on SIGTERM/SIGINT.
import http from 'node:http';
import { WebSocketServer } from 'ws';

const options = JSON.parse(process.argv[2] || '{}');
const log = (s) => process.stdout.write(`${s}\n`);

const server = http.createServer((req, res) => {
  res.writeHead(404);
  res.end();
});
const wss = new WebSocketServer({ server, maxPayload: 64 << 20, perMessageDeflate: options });
wss.on('headers', (headers, req) => {
  log(`offer ${req.headers['sec-websocket-extensions'] || '-'}`);
  const ext = headers.find((h) => /^sec-websocket-extensions:/i.test(h));
  log(`accept ${ext ? ext.replace(/^[^:]*:\s*/, '') : '-'}`);
});
wss.on('connection', (ws, req) => {
  let messages = 0;
  let payload = 0;
  const sock = req.socket;
  const start = sock.bytesRead;
  ws.on('message', (data, isBinary) => {
    messages++;
    payload += data.length;
    ws.send(data, { binary: isBinary });
  });
  ws.on('error', (e) => log(`error ${e.message}`));
  ws.on('close', (code) =>
    log(`close code=${code} messages=${messages} payload=${payload} wire=${sock.bytesRead - start}`),
  );
});
server.listen(0, '127.0.0.1', () => log(`listening ${server.address().port}`));

const stop = () => {
  for (const c of wss.clients) c.terminate();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
