// The chat demo (web/chat.html) in real Chromium: two browser contexts (a
// laptop and a phone) chat and see each other in presence and typing; the
// network drops (a proxy between the pages and the hub cuts and refuses
// connections) and comes back: nothing lost or doubled; the hub process is
// killed and restarted while messages are published through the HTTP API:
// both pages show the reconnecting state, reconnect by themselves, see the
// epoch change, reload the new history and show every line once.
//
//   node web_chat.mjs SCREENSHOT_DIR      (DUPLEX names the binary)
import path from 'node:path';
import {
  api, chatLines as lines, chatSend as send, Checks, expectChatOnce as expectOnce, LAPTOP, launchChromium, PHONE, Serve,
  SOURCE_DIR, TcpProxy, waitOpen,
} from './web_common.mjs';

const shots = process.argv[2];
const KEY = 'web-chat-key';
const ROOM = `e2e${process.pid}`;
const TOPIC = `chat:${ROOM}`;
const checks = new Checks();
const hub = await new Serve(['--static', path.join(SOURCE_DIR, 'web'), '--api-key', KEY]).start();
const proxy = await new TcpProxy(hub.port).start();
const browser = await launchChromium();
const base = `http://127.0.0.1:${proxy.port}`;

const state = (page) => page.getAttribute('#status', 'data-state');
async function shot(page, name) {
  await page.screenshot({ path: path.join(shots, name) });
}

let a;
let b;
try {
  await checks.step('two contexts (laptop, phone) open the chat and connect', async () => {
    a = await checks.page(browser, LAPTOP, 'ana (laptop)');
    b = await checks.page(browser, PHONE, 'bo (phone)');
    await a.goto(`${base}/chat.html?name=ana#${ROOM}`);
    await b.goto(`${base}/chat.html?name=bo#${ROOM}`);
    await Promise.all([waitOpen(a), waitOpen(b)]);
  });

  await checks.step('each sees the other in presence', async () => {
    await a.waitForFunction(() => [...document.querySelectorAll('#people li')].some((li) => li.textContent.startsWith('bo')));
    await b.waitForFunction(() => [...document.querySelectorAll('#people li')].some((li) => li.textContent.startsWith('ana')));
  });

  await checks.step('typing shows on the other page', async () => {
    await a.click('#text');
    await a.keyboard.type('hel', { delay: 30 });
    await b.waitForFunction(() => document.querySelector('#typing').textContent.includes('ana is typing'));
  });

  await checks.step('messages both ways, with time and name', async () => {
    await send(a, 'hello from ana');
    await expectOnce(b, 'bo', ['hello from ana']);
    await send(b, 'hi ana, bo here 👋');
    await expectOnce(a, 'ana', ['hello from ana', 'hi ana, bo here 👋']);
    const meta = await b.textContent('#log .msg .meta');
    if (!/ana\s*\d{1,2}:\d{2}/.test(meta)) throw new Error(`name and time not shown: ${meta}`);
    await b.waitForFunction(() => document.querySelector('#typing').textContent === '', null, { timeout: 5000 });
  });

  await checks.step('network drop: both pages show the reconnecting banner', async () => {
    checks.allowNetworkErrors = true;
    proxy.mode = 'refuse';
    proxy.kill();
    await a.waitForSelector('#banner:not([hidden])');
    await b.waitForSelector('#banner:not([hidden])');
    if (await state(a) !== 'reconnecting' || await state(b) !== 'reconnecting') throw new Error('status is not "reconnecting"');
    await shot(a, 'chat-reconnecting-laptop.png');
  });

  await checks.step('while offline: the API publishes, ana sends (queued)', async () => {
    for (const t of ['api 1 during the drop', 'api 2 during the drop', 'api 3 during the drop']) {
      await api(hub.http, KEY, 'publish', { topic: TOPIC, data: { name: 'backend', text: t, time: Date.now() } });
    }
    await send(a, 'ana wrote this offline');
    await a.waitForSelector('.msg.pending >> text=queued');
  });

  await checks.step('network back: both reconnect by themselves; nothing lost or doubled', async () => {
    proxy.mode = 'pass';
    await Promise.all([waitOpen(a, 20000), waitOpen(b, 20000)]);
    checks.allowNetworkErrors = false;
    const want = ['hello from ana', 'hi ana, bo here 👋', 'api 1 during the drop', 'api 2 during the drop', 'api 3 during the drop', 'ana wrote this offline'];
    await expectOnce(a, 'ana', want);
    await expectOnce(b, 'bo', want);
    await a.waitForFunction(() => !document.querySelector('.msg.pending'));
    if (await a.isVisible('#banner')) throw new Error('banner still shown');
  });

  await checks.step('hub killed: both pages show reconnecting', async () => {
    checks.allowNetworkErrors = true;
    proxy.mode = 'refuse'; // keep the pages away until the API has published
    await hub.stop('SIGKILL');
    proxy.kill();
    await a.waitForFunction(() => document.querySelector('#status').dataset.state === 'reconnecting');
    await b.waitForFunction(() => document.querySelector('#status').dataset.state === 'reconnecting');
  });

  await checks.step('hub restarted (new epoch); the API publishes meanwhile', async () => {
    await hub.start(); // same port, empty in-memory history, new epoch
    await api(hub.http, KEY, 'publish', { topic: TOPIC, data: { name: 'backend', text: 'after restart 1', time: Date.now() } });
    await api(hub.http, KEY, 'publish', { topic: TOPIC, data: { name: 'backend', text: 'after restart 2', time: Date.now() } });
    proxy.mode = 'pass';
  });

  await checks.step('both reconnect by themselves, reload the new history, no duplicate lines', async () => {
    await Promise.all([waitOpen(a, 20000), waitOpen(b, 20000)]);
    checks.allowNetworkErrors = false;
    const want = ['hello from ana', 'api 3 during the drop', 'after restart 1', 'after restart 2'];
    await expectOnce(a, 'ana', want);
    await expectOnce(b, 'bo', want);
    for (const [p, who] of [[a, 'ana'], [b, 'bo']]) {
      const secs = await lines(p);
      if (secs.length !== 2) throw new Error(`${who}: ${secs.length} epoch sections, expected 2`);
      if (JSON.stringify(secs[1].lines.map((l) => l[1])) !== JSON.stringify(['after restart 1', 'after restart 2'])) {
        throw new Error(`${who}: new epoch shows ${JSON.stringify(secs[1].lines)}`);
      }
      await p.waitForSelector('.sys >> text=/server restarted/');
      await p.waitForSelector('.divider');
    }
  });

  await checks.step('after the restart: chat goes on, presence is back', async () => {
    await send(b, 'still here after the restart');
    await expectOnce(a, 'ana', ['still here after the restart']);
    await a.waitForFunction(() => [...document.querySelectorAll('#people li')].some((li) => li.textContent.startsWith('bo')));
    await b.waitForFunction(() => [...document.querySelectorAll('#people li')].some((li) => li.textContent.startsWith('ana')));
  });

  await checks.step('the phone goes offline (navigator.onLine false): noticed; back online: reconnects at once, caught up', async () => {
    checks.allowNetworkErrors = true;
    await b.context().setOffline(true);
    await b.waitForFunction(() => navigator.onLine === false);
    // On 'offline' the client pings at once; no answer within the heartbeat timeout: reconnecting.
    await b.waitForFunction(() => document.body.dataset.connection === 'reconnecting', null, { timeout: 12000 });
    await send(a, 'sent while bo was offline');
    await b.waitForTimeout(1500); // a few failed attempts: the backoff grows
    const t0 = Date.now();
    await b.context().setOffline(false); // 'online': try now, whatever the backoff
    await waitOpen(b, 8000);
    const took = Date.now() - t0;
    checks.allowNetworkErrors = false;
    await expectOnce(b, 'bo', ['still here after the restart', 'sent while bo was offline']);
    if (took > 3000) throw new Error(`reconnected ${took} ms after coming online`);
  });

  await checks.step('screenshots', async () => {
    await shot(a, 'chat-laptop.png');
    await shot(b, 'chat-phone.png');
  });
} finally {
  checks.pagesClean();
  await browser.close();
  await proxy.close();
  try {
    await hub.stop();
    checks.ok('the hub exits cleanly, no sanitizer report');
  } catch (e) {
    checks.bad('the hub exits cleanly, no sanitizer report', e.message);
  }
}
process.exit(checks.failed ? 1 : 0);
