// Authentication on `duplex serve` (docs/PROTOCOL.md "Authentication"),
// through Node `ws`: tokens in connect, query and subprotocol; every
// refusal with its 4001 reason; grants; refresh; expiry; anonymous mode.
//   node hub_auth.mjs HS_PORT RS_PORT ANON_PORT SECRET RSA_PRIVATE_PEM_FILE
import { createHmac, createSign, generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Hub, check, group, finish, watchdog, sleep, isError } from './hub_common.mjs';

const [hsPort, rsPort, anonPort, secret, rsaFile] = process.argv.slice(2);
const rsaKey = readFileSync(rsaFile, 'utf8');
watchdog(60_000);

const b64u = (x) => Buffer.from(typeof x === 'string' ? x : JSON.stringify(x)).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);
function jwt(claims, { alg = 'HS256', key = secret } = {}) {
  const head = b64u({ alg, typ: 'JWT' }) + '.' + b64u(claims);
  if (alg === 'none') return head + '.';
  if (alg === 'HS256') return head + '.' + createHmac('sha256', key).update(head).digest('base64url');
  const s = createSign('SHA256').update(head);
  return head + '.' + s.sign({ key, dsaEncoding: 'ieee-p1363' }).toString('base64url');
}
const valid = (extra = {}) => jwt({ sub: 'alice', exp: now() + 600, ...extra });

// A connection that authenticates with `connect`; returns [hub, reply].
async function withConnect(port, token) {
  const c = await Hub.open(port);
  const r = await c.req({ op: 'connect', token });
  return [c, r];
}

async function refusedWith(port, token, reason, how = 'connect') {
  let c, closeInfo;
  if (how === 'connect') {
    c = await Hub.open(port);
    const r = await c.req({ op: 'connect', token });
    check(`connect (${reason}): unauthorized error reply`, isError(r, 'unauthorized'), JSON.stringify(r));
  } else {
    c = await Hub.open(port, how === 'query' ? { path: `/ws?token=${token}`, welcome: false }
      : { protocols: ['duplex.v1', `duplex.token.${token}`], welcome: false });
  }
  closeInfo = await c.closed;
  check(`${how}: ${reason} → close 4001 "${reason}"`, closeInfo.code === 4001 && closeInfo.reason === reason,
    JSON.stringify(closeInfo));
}

await group('valid tokens, three ways', async () => {
  const [a, r] = await withConnect(hsPort, valid());
  check('welcome before connect says auth "required"', a.welcome.auth === 'required', JSON.stringify(a.welcome));
  check('connect replies ok with user and exp', r.ok && r.user === 'alice' && r.exp > now(), JSON.stringify(r));
  const s = await a.req({ op: 'subscribe', topic: 'chat:1', presence: true });
  check('an authenticated client subscribes', s.ok, JSON.stringify(s));
  const b = await Hub.open(hsPort, { path: `/ws?token=${valid({ sub: 'bob' })}` });
  check('token in the query: welcome auth "token" with the user', b.welcome.auth === 'token' && b.welcome.user === 'bob',
    JSON.stringify(b.welcome));
  const c = await Hub.open(hsPort, { protocols: ['duplex.v1', `duplex.token.${valid({ sub: 'carol' })}`] });
  check('token as a subprotocol: authenticated, duplex.v1 selected', c.welcome.user === 'carol' && c.ws.protocol === 'duplex.v1',
    `${JSON.stringify(c.welcome)} protocol ${c.ws.protocol}`);
  await c.must({ op: 'subscribe', topic: 'chat:1' });
  const p = await a.must({ op: 'presence', topic: 'chat:1' });
  check('presence shows user ids from the tokens', p.presence.map((e) => e.user).sort().join() === 'alice,carol', JSON.stringify(p));
  for (const x of [a, b, c]) await x.close();
});

await group('refusals', async () => {
  await refusedWith(hsPort, valid({ exp: now() - 30 }), 'token expired');
  await refusedWith(hsPort, valid({ nbf: now() + 60 }), 'token not yet valid');
  await refusedWith(hsPort, jwt({ sub: 'alice' }, { key: 'another-secret-of-enough-length' }), 'bad signature');
  await refusedWith(hsPort, jwt({ sub: 'mallory', exp: now() + 60 }, { alg: 'none' }), 'token algorithm not allowed');
  await refusedWith(hsPort, 'garbage', 'malformed token');
  await refusedWith(hsPort, valid({ sub: '' }), 'token without a user: "sub" must be a string of 1-128 bytes');
  await refusedWith(hsPort, valid({ exp: now() - 30 }), 'token expired', 'query');
  await refusedWith(hsPort, jwt({ sub: 'x' }, { key: 'another-secret-of-enough-length' }), 'bad signature', 'protocol');
});

await group('before authenticating', async () => {
  const c = await Hub.open(hsPort);
  const r = await c.req({ op: 'subscribe', topic: 't' });
  check('a subscribe before connect gets unauthorized and the connection stays', isError(r, 'unauthorized'), JSON.stringify(r));
  await c.must({ op: 'ping' });
  const info = await c.closed;
  check('no token within --auth-timeout: close 4001 "authentication timeout"',
    info.code === 4001 && info.reason === 'authentication timeout', JSON.stringify(info));
});

await group('grants', async () => {
  const [c] = await withConnect(hsPort, valid({ subscribe: ['chat:*', 'news'], publish: ['chat:lobby'] }));
  check('subscribe within a prefix grant', (await c.req({ op: 'subscribe', topic: 'chat:x' })).ok);
  check('subscribe to an exact grant', (await c.req({ op: 'subscribe', topic: 'news' })).ok);
  check('subscribe outside the grants: forbidden', isError(await c.req({ op: 'subscribe', topic: 'secret' }), 'forbidden'));
  check('publish within the grant', (await c.req({ op: 'publish', topic: 'chat:lobby', data: 1 })).ok);
  const r = await c.req({ op: 'publish', topic: 'chat:x', data: 1 });
  check('publish outside the grant: forbidden, connection stays', isError(r, 'forbidden'), JSON.stringify(r));
  await c.must({ op: 'ping' });
  await c.close();
});

await group('refresh and expiry', async () => {
  const [c] = await withConnect(hsPort, valid({ exp: now() + 2 }));
  const other = await c.req({ op: 'refresh', token: valid({ sub: 'bob' }) });
  check('refresh with another user\'s token: unauthorized', isError(other, 'unauthorized'), JSON.stringify(other));
  const exp = now() + 600;
  const r = await c.req({ op: 'refresh', token: valid({ exp }) });
  check('refresh with a new token for the same user: ok, new exp', r.ok && r.exp === exp, JSON.stringify(r));
  await sleep(3500);
  await c.must({ op: 'ping' });
  check('still open after the old exp passed', !c.closeInfo);
  await c.close();
  const [d] = await withConnect(hsPort, valid({ exp: now() + 1 }));
  const info = await d.closed;
  check('without a refresh: close 4001 "token expired" after exp', info.code === 4001 && info.reason === 'token expired',
    JSON.stringify(info));
});

await group('RS256 server', async () => {
  const pub = null; // the server holds the public key of rsaKey
  const tok = jwt({ sub: 'rita', exp: now() + 60 }, { alg: 'RS256', key: rsaKey });
  const [c, r] = await withConnect(rsPort, tok);
  check('an RS256 token signed with the private key is accepted', r.ok && r.user === 'rita', JSON.stringify(r));
  await c.close();
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  await refusedWith(rsPort, jwt({ sub: 'm' }, { alg: 'RS256', key: privateKey }), 'bad signature');
  // HS256 "signed" with the server's public key (the algorithm confusion).
  const pubPem = (await import('node:crypto')).createPublicKey(rsaKey).export({ type: 'spki', format: 'pem' });
  await refusedWith(rsPort, jwt({ sub: 'm', exp: now() + 60 }, { alg: 'HS256', key: pubPem }), 'token algorithm not allowed');
  void pub;
});

await group('anonymous mode', async () => {
  const a = await Hub.open(anonPort);
  check('--allow-anonymous: welcome auth "anonymous", user ""', a.welcome.auth === 'anonymous' && a.welcome.user === '',
    JSON.stringify(a.welcome));
  check('an anonymous client subscribes', (await a.req({ op: 'subscribe', topic: 't' })).ok);
  const b = await Hub.open(anonPort, { path: `/ws?token=${valid()}` });
  check('a token is still honoured', b.welcome.user === 'alice');
  await refusedWith(anonPort, valid({ exp: now() - 30 }), 'token expired', 'query');
  await a.close();
  await b.close();
});
finish();
