// duplex serve --config: a topic rule from the file is enforced, and SIGHUP
// reloads changed rules without dropping open connections (a bad file keeps
// the rules in force). Run by tests/e2e/test_serve_config.sh.
//   node serve_config.mjs PORT SERVE_PID CONFIG_FILE SERVE_LOG
// The server starts with CONFIG_FILE holding one rule (ticker/* publish=api)
// and an origin allowlist (https://file.example).
import { readFileSync, writeFileSync } from 'node:fs';
import { Hub, check, group, finish, watchdog, waitFor, isError, show } from './hub_common.mjs';

const [port, pid, configFile, logFile] = process.argv.slice(2);
watchdog(60_000);
const config = JSON.parse(readFileSync(configFile, 'utf8'));
const logText = () => readFileSync(logFile, 'utf8');
const open = (name) => Hub.open(port, { name, ws: { origin: 'https://file.example' } });

// Rewrite the file, send SIGHUP and wait (bounded) for the server's verdict.
async function reload(newConfig, expect, what) {
  const before = logText().length;
  writeFileSync(configFile, typeof newConfig === 'string' ? newConfig : JSON.stringify(newConfig, null, 2));
  process.kill(Number(pid), 'SIGHUP');
  await waitFor(() => expect.test(logText().slice(before)), 5000, what);
  return logText().slice(before);
}

let a;
let b;
await group('a rule from the file', async () => {
  let st = 0;
  await Hub.open(port, { name: 'stranger', ws: { origin: 'https://elsewhere.example' } }).catch((e) => {
    st = e.status;
  });
  check("an Origin outside the file's \"origin\" list is refused with 403", st === 403, `status ${st}`);
  a = await open('a');
  const r = await a.req({ op: 'publish', topic: 'ticker/AAPL', data: { price: 1 } });
  check('a client publish to ticker/* (publish=api in the file) is forbidden', isError(r, 'forbidden'), show(r));
  const r2 = await a.req({ op: 'publish', topic: 'news:1', data: 1 });
  check('a topic no rule matches takes client publishes', r2.ok === true, show(r2));
});

await group('SIGHUP reloads the rules', async () => {
  b = await open('b');
  await b.must({ op: 'subscribe', topic: 'news:1' });
  const log = await reload({ ...config, rules: [{ pattern: 'news:*', publish: 'api' }] },
    /rules reloaded: 1 rule \(1 added, 1 removed\)/, 'the "rules reloaded" log line');
  check('the log says what changed', /rules reloaded: 1 rule \(1 added, 1 removed\)/.test(log), log);
  const r = await a.req({ op: 'publish', topic: 'ticker/AAPL', data: { price: 2 } });
  check('after the reload, the same connection may publish to ticker/*', r.ok === true, show(r));
  const r2 = await a.req({ op: 'publish', topic: 'news:1', data: 2 });
  check('and the new rule forbids client publishes to news:*', isError(r2, 'forbidden'), show(r2));
  await b.sync();
  check('no connection was dropped by the reload', !a.closeInfo && !b.closeInfo,
    show([a.closeInfo, b.closeInfo]));
});

await group('a bad file keeps the rules in force', async () => {
  const log = await reload('{\n  "rules": [{"pattern": "news:*", "publish": "api"}],\n  "bogus": 1\n}\n',
    /reload failed/, 'the "reload failed" log line');
  check('the reload error names the key and its position', /:3:3: unknown key 'bogus'/.test(log), log);
  const r = await a.req({ op: 'publish', topic: 'news:1', data: 3 });
  check('the rules in force stay (news:* still api-only)', isError(r, 'forbidden'), show(r));
  const r2 = await a.req({ op: 'publish', topic: 'ticker/AAPL', data: { price: 3 } });
  check('and ticker/* still open', r2.ok === true, show(r2));
  const log2 = await reload({ ...config, port: 1, rules: [{ pattern: 'news:*', publish: 'api' }] },
    /rules reloaded/, 'the "rules reloaded" log line');
  check('a later good reload reports unchanged rules and settings that need a restart',
    /rules reloaded: 1 rule \(unchanged\)/.test(log2) && /the change to port takes effect at the next start/.test(log2),
    log2);
  await b.sync();
  check('connections still open after three reloads', !a.closeInfo && !b.closeInfo);
});

if (a) await a.close();
if (b) await b.close();
finish();
