// deflate_client: a Node `ws` client with permessage-deflate for
// bench/tls_deflate.sh. Two jobs:
//
//   hold  open N connections, send M messages on each (one at a time, each
//         waiting for its echo, so the server has compressed and inflated
//         on every connection), print "READY {json}" and keep them open until
//         standard input reaches EOF (or exit right after READY if it already
//         has). For memory-per-connection measurements.
//   echo  closed-loop echo load, 1 message in flight per connection, for
//         --warmup then --duration seconds; one progress line per measured
//         second on stderr ("deflate_client: Ns N msg/s") and a JSON summary
//         on stdout. A load generator that offers what browsers and ws
//         clients offer (context takeover), unlike `duplex bench --deflate`.
//
// Both report bytes on the wire (TCP payload counted by the sockets after the
// upgrade, so frame headers are included and the HTTP handshake is not)
// against message bytes, per direction.
//
//   node deflate_client.mjs URL [--job hold|echo] [-c N] [--messages M]
//        [--size BYTES] [--payload json|x] [--offer takeover|no-takeover]
//        [--duration S] [--warmup S]
//
// --payload json (default): JSON-like text, a different pseudo-random record
// list in each message (seeded, so every run sends the same bytes).
// --payload x: what `duplex bench` sends: 16 hex digits and then 'x's.
import net from 'node:net';
import { cli, loadWs } from './common.mjs';

const { args, opt } = cli('usage: node deflate_client.mjs URL [--job hold|echo] [-c N] [--messages M] [--size BYTES]\n' +
  '       [--payload json|x] [--offer takeover|no-takeover] [--duration S] [--warmup S]\n' +
  'hold: open N compressed connections, M echoes each, print READY {json}, wait for stdin EOF.\n' +
  'echo: closed-loop echo load for --duration s after --warmup s; JSON summary on stdout.',
{ needArgs: true });
const url = args[0];
const job = opt(['--job'], 'hold');
const nconns = Number(opt(['-c', '--connections'], '1000'));
const nmsgs = Number(opt(['--messages'], '3'));
const size = Number(opt(['--size', '-s'], '4096'));
const payloadKind = opt(['--payload'], 'json');
const offer = opt(['--offer'], 'takeover');
const duration = Number(opt(['--duration', '-d'], '5'));
const warmup = Number(opt(['--warmup', '-w'], '1'));
const WebSocket = loadWs('deflate_client');

// --- payloads ---------------------------------------------------------------
let seed = 0x2545f491;
const rnd = (n) => {
  seed ^= seed << 13; seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5; seed >>>= 0;
  return seed % n;
};
const words = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india',
  'juliet', 'kilo', 'lima', 'mike', 'november', 'oscar', 'papa', 'quebec', 'romeo'];
const states = ['open', 'closed', 'pending', 'shipped', 'cancelled'];
function jsonMessage(i) {
  let s = `{"type":"update","seq":${i},"ts":${1700000000000 + i * 1337},"items":[`;
  for (let k = 0; ; k++) {
    const rec = `${k ? ',' : ''}{"id":${100000 + rnd(900000)},"user":"${words[rnd(words.length)]}_${rnd(10000)}",` +
      `"price":${rnd(100000) / 100},"qty":${rnd(50)},"status":"${states[rnd(states.length)]}",` +
      `"tags":["${words[rnd(words.length)]}","${words[rnd(words.length)]}"],"active":${rnd(2) ? 'true' : 'false'}}`;
    if (s.length + rec.length + 2 > size) break;
    s += rec;
  }
  s += ']}';
  return s + ' '.repeat(Math.max(0, size - s.length)); // exact size; JSON allows trailing blanks
}
function xMessage(i) {
  return i.toString(16).padStart(16, '0') + 'x'.repeat(Math.max(0, size - 16));
}
const pool = [];
for (let i = 0; i < 64; i++) pool.push(payloadKind === 'x' ? xMessage(i) : jsonMessage(i));
const payloadBytes = Buffer.byteLength(pool[0]);

// --- connections ------------------------------------------------------------
const pmd = offer === 'no-takeover'
  ? { serverNoContextTakeover: true, clientNoContextTakeover: true }
  : true;
const conns = []; // {ws, sock, base: [read, written], sent, got}
const extensions = new Set();
let errors = 0, lastError = '';

function connect(onOpen) {
  const c = { sent: 0, got: 0, sock: null, base: null };
  c.ws = new WebSocket(url, {
    perMessageDeflate: pmd,
    maxPayload: 64 << 20,
    createConnection: (o) => (c.sock = net.createConnection(o)),
  });
  c.ws.on('upgrade', (res) => extensions.add(res.headers['sec-websocket-extensions'] || '(none)'));
  c.ws.on('open', () => {
    c.base = [c.sock.bytesRead, c.sock.bytesWritten];
    onOpen(c);
  });
  c.ws.on('error', (e) => { errors++; lastError = e.message; });
  conns.push(c);
  return c;
}

function wire() { // bytes since each connection's upgrade: [server->client, client->server]
  let r = 0, w = 0;
  for (const c of conns) {
    if (!c.base) continue;
    r += c.sock.bytesRead - c.base[0];
    w += c.sock.bytesWritten - c.base[1];
  }
  return [r, w];
}

if (job === 'hold') {
  let next = 0, inProgress = 0, ready = 0, reported = false, eof = false;
  const t0 = Date.now();
  const finish = () => {
    for (const c of conns) c.ws.terminate();
    process.exit(0);
  };
  const done = () => {
    reported = true;
    const [rd, wr] = wire();
    const msgBytes = ready * nmsgs * payloadBytes;
    console.log('READY ' + JSON.stringify({
      connections: ready, messages_each: nmsgs, size: payloadBytes, payload: payloadKind,
      extensions: [...extensions], open_s: (Date.now() - t0) / 1000, errors, last_error: lastError,
      wire_server_to_client: rd, wire_client_to_server: wr, message_bytes_each_way: msgBytes,
      ratio_server_to_client: rd ? msgBytes / rd : 0, ratio_client_to_server: wr ? msgBytes / wr : 0,
    }));
    if (eof) finish(); // input ended early: report, then go
  };
  const startMore = () => {
    while (next < nconns && inProgress < 100) {
      next++; inProgress++;
      const c = connect((c) => {
        c.ws.on('message', () => {
          c.got++;
          if (c.got < nmsgs) c.ws.send(pool[(c.got) % pool.length]);
          else { inProgress--; ready++; if (ready === nconns) done(); else startMore(); }
        });
        c.ws.send(pool[0]);
      });
      c.ws.on('close', () => {
        if (c.got < nmsgs) { errors++; lastError = lastError || 'closed early'; inProgress--; startMore(); }
      });
    }
    if (next === nconns && inProgress === 0 && ready < nconns) done(); // some failed
  };
  startMore();
  process.stdin.resume();
  process.stdin.on('end', () => {
    eof = true;
    if (reported) finish();
  });
} else if (job === 'echo') {
  let measuring = false, msgs = 0, lastMsgs = 0, seconds = 0, base = [0, 0], tMeasure = 0;
  for (let i = 0; i < nconns; i++) {
    connect((c) => {
      c.ws.on('message', () => {
        if (measuring) msgs++;
        c.ws.send(pool[c.sent++ % pool.length]);
      });
      c.ws.send(pool[c.sent++ % pool.length]);
    });
  }
  setTimeout(() => {
    measuring = true;
    tMeasure = process.hrtime.bigint();
    base = wire();
    const tick = setInterval(() => {
      seconds++;
      console.error(`deflate_client: ${String(seconds).padStart(3)}s ${String(msgs - lastMsgs).padStart(9)} msg/s  errors ${errors}`);
      lastMsgs = msgs;
      if (seconds < duration) return;
      clearInterval(tick);
      measuring = false;
      const secs = Number(process.hrtime.bigint() - tMeasure) / 1e9;
      const [rd, wr] = wire();
      const drd = rd - base[0], dwr = wr - base[1];
      console.log(JSON.stringify({
        mode: 'echo', connections: nconns, size: payloadBytes, payload: payloadKind, seconds: secs,
        messages: msgs, msgs_per_sec: msgs / secs, extensions: [...extensions], errors, last_error: lastError,
        wire_server_to_client: drd, wire_client_to_server: dwr,
        ratio_server_to_client: drd ? (msgs * payloadBytes) / drd : 0,
        ratio_client_to_server: dwr ? (msgs * payloadBytes) / dwr : 0,
      }));
      for (const c of conns) c.ws.terminate();
      process.exit(0);
    }, 1000);
  }, warmup * 1000);
} else {
  console.error(`deflate_client: unknown --job ${job}`);
  process.exit(2);
}
