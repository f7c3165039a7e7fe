// A Node `ws` server for testing duplex's client (`duplex connect`).
//   node client_peer_node.mjs          → prints "listening PORT", then one
//                                         line per event (open, close, pong)
// Behaviour by path:
//   /echo       echo every message with its type; subprotocols chat.v2, chat.v1
//   /header     send "X-Test=<value of the X-Test request header>"
//   /binary     send the bytes 0..255
//   /large      send 4 MiB of binary, byte i = (i * 7 + 3) & 255
//   /frag       a text message in 3 fragments (a ping between two of them),
//               then a binary one in 2 fragments
//   /ping       ping "are you there"; on the pong send "pong:<payload>"
//   /close4005  close with 4005 "bye"
//   /close1000  close with 1000 "done"
// Ends on SIGTERM/SIGINT.
import { WebSocketServer } from 'ws';

const SUPPORTED = ['chat.v2', 'chat.v1'];
const log = (s) => process.stdout.write(`${s}\n`);

const wss = new WebSocketServer({
  host: '127.0.0.1',
  port: 0,
  maxPayload: 64 << 20,
  perMessageDeflate: false,
  handleProtocols: (offered) => {
    for (const p of SUPPORTED) if (offered.has(p)) return p;
    return false;
  },
});

wss.on('listening', () => log(`listening ${wss.address().port}`));

wss.on('connection', (ws, req) => {
  const path = new URL(req.url, 'http://x').pathname;
  log(`open ${path} protocol=${ws.protocol || '-'}`);
  ws.on('close', (code, reason) => log(`close ${path} code=${code} reason=${reason}`));
  ws.on('error', (e) => log(`error ${path} ${e.message}`));
  switch (path) {
    case '/echo':
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
      break;
    case '/header':
      ws.send(`X-Test=${req.headers['x-test'] ?? ''}`);
      break;
    case '/binary':
      ws.send(Buffer.from(Array.from({ length: 256 }, (_, i) => i)), { binary: true });
      break;
    case '/large': {
      const n = 4 << 20;
      const b = Buffer.alloc(n);
      for (let i = 0; i < n; i++) b[i] = (i * 7 + 3) & 255;
      ws.send(b, { binary: true });
      break;
    }
    case '/frag':
      // ws keeps the message open while fin is false: the next sends are
      // continuation frames.
      ws.send('frag', { fin: false });
      ws.ping('mid-message');
      ws.send('ment', { fin: false });
      ws.send('ed!', { fin: true });
      ws.send(Buffer.from([0xde, 0xad]), { binary: true, fin: false });
      ws.send(Buffer.from([0xbe, 0xef]), { binary: true, fin: true });
      break;
    case '/ping':
      ws.on('pong', (data) => {
        log(`pong ${data}`);
        ws.send(`pong:${data}`);
      });
      ws.ping('are you there');
      break;
    case '/close4005':
      ws.close(4005, 'bye');
      break;
    case '/close1000':
      ws.close(1000, 'done');
      break;
    default:
      ws.close(4404, 'no such path');
  }
});

const stop = () => {
  for (const c of wss.clients) c.terminate();
  wss.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
