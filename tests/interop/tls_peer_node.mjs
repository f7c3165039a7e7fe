// A Node `ws` server over https (the test CA's server certificate), for
// testing `duplex connect wss://...`.
//   node tls_peer_node.mjs CERT_DIR [mtls]
// prints "listening PORT", then one line per event:
//   open PATH sni=NAME alpn=PROTO client=CN|-      (on each upgrade)
//   close PATH code=N
// With "mtls" the server requires a client certificate signed by the test CA.
// Paths: /echo echoes; /large sends 2 MiB of binary (byte i = i*7+3 & 255);
// /close4005 closes with 4005 "bye". Ends on SIGTERM/SIGINT.
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { WebSocketServer } from 'ws';

const dir = process.argv[2];
const mtls = process.argv[3] === 'mtls';
const log = (s) => process.stdout.write(`${s}\n`);

const server = https.createServer({
  cert: readFileSync(`${dir}/server.pem`),
  key: readFileSync(`${dir}/server.key`),
  ca: readFileSync(`${dir}/ca.pem`),
  ALPNProtocols: ['http/1.1'],
  requestCert: mtls,
  rejectUnauthorized: mtls,
});
server.on('tlsClientError', (err) => log(`tls-error ${err.code || ''} ${err.message}`));
const wss = new WebSocketServer({ server, maxPayload: 64 << 20, perMessageDeflate: false });

wss.on('connection', (ws, req) => {
  const path = new URL(req.url, 'https://x').pathname;
  const s = req.socket;
  const cert = s.getPeerCertificate();
  const cn = cert && cert.subject ? cert.subject.CN : '-';
  log(`open ${path} sni=${s.servername || '-'} alpn=${s.alpnProtocol || '-'} client=${cn}`);
  ws.on('close', (code) => log(`close ${path} code=${code}`));
  ws.on('error', (e) => log(`error ${path} ${e.message}`));
  if (path === '/echo') {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  } else if (path === '/large') {
    const b = Buffer.alloc(2 << 20);
    for (let i = 0; i < b.length; i++) b[i] = (i * 7 + 3) & 255;
    ws.send(b, { binary: true });
  } else if (path === '/close4005') {
    ws.close(4005, 'bye');
  } else {
    ws.close(4404, 'no such path');
  }
});

server.listen(0, '127.0.0.1', () => log(`listening ${server.address().port}`));

const stop = () => {
  for (const c of wss.clients) c.terminate();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
