// The chat demo (web/chat.html) in real Chromium on duplex.js's fallback
// transports (issue 13): with window.WebSocket removed before the page
// loads it chats over Server-Sent Events (+ POST /http/request), with
// EventSource removed too over long-polling, and the top bar says which. A
// mixed room (a WebSocket page, an SSE page and a long-poll page; each
// publishes, and so does the HTTP API) shows the same lines in the same
// order everywhere, the hub's own order. A network cut and then a hub
// restart (SIGTERM, same port, new epoch) with the API publishing and the
// SSE page sending meanwhile: every page comes back on its own transport,
// nothing lost, nothing doubled. Presence and typing are the same on every
// transport: each page's "Here now" lists the three names (not client or
// session ids), typing on one page shows on the other two and not on
// itself; a closed page leaves the others' lists at once, and a page gone
// offline within the hub's --session-idle (short here).
//
//   node web_fallback.mjs SCREENSHOT_DIR      (DUPLEX names the binary)
import path from 'node:path';
import {
  api, chatLines, chatSend, Checks, expectChatOnce, expectTransport, LAPTOP, launchChromium, openChatOn, PHONE, Serve,
  sleep, SOURCE_DIR, TcpProxy, waitFor,
} from './web_common.mjs';

const shots = process.argv[2];
const KEY = 'web-fallback-key';
const ROOM = `fb${process.pid}`;
const TOPIC = `chat:${ROOM}`;
const IDLE_S = 3; // --session-idle: a closed SSE or long-poll page leaves after it
const checks = new Checks();
const hub = await new Serve(['--static', path.join(SOURCE_DIR, 'web'), '--api-key', KEY, '--session-idle', `${IDLE_S}s`]).start();
const proxy = await new TcpProxy(hub.port).start();
const browser = await launchChromium();
const base = `http://127.0.0.1:${proxy.port}`;

// A chat page of this room in its own context, on `kind`'s transport.
const openChat = (kind, name, device) => openChatOn(browser, checks, kind, `${base}/chat.html?name=${name}#${ROOM}`, device);

// The ordered [offset, text] lines of the current epoch (the last section).
async function current(page) {
  const secs = await chatLines(page);
  return secs.length ? secs[secs.length - 1] : { epoch: null, lines: [] };
}

// The hub's own order of the topic: [offset, text] of every retained publication.
async function hubOrder() {
  const h = await api(hub.http, KEY, `history?topic=${encodeURIComponent(TOPIC)}&limit=1000`);
  return { epoch: h.epoch, lines: h.publications.map((p) => [p.offset, p.data.text]) };
}

// Once the hub has `count` lines: every page shows exactly those, in its order.
async function sameAsHub(pages, count, ms = 15000) {
  let want;
  await waitFor(async () => (want = await hubOrder()).lines.length >= count, ms,
    () => `the hub to have ${count} lines (has ${want && want.lines.length})`);
  const texts = want.lines.map((l) => l[1]);
  for (const [label, p] of pages) await expectChatOnce(p, label, texts, ms);
  for (const [label, p] of pages) {
    const got = await current(p);
    if (got.epoch !== want.epoch || JSON.stringify(got.lines) !== JSON.stringify(want.lines)) {
      const i = got.lines.findIndex((l, k) => JSON.stringify(l) !== JSON.stringify(want.lines[k]));
      throw new Error(`${label} (epoch ${got.epoch}, ${got.lines.length} lines) differs from the hub (epoch ${want.epoch}, ` +
        `${want.lines.length} lines) at line ${i}: ${JSON.stringify(got.lines[i])} vs ${JSON.stringify(want.lines[i])}`);
    }
  }
  return want;
}

// "Here now" of a page: [{name, client, you}] as shown.
const herePeople = (page) => page.evaluate(() => [...document.querySelectorAll('#people li')].map((li) => ({
  name: li.childNodes[1]?.textContent, client: li.dataset.client, you: !!li.querySelector('.you'),
})));

// Every page lists exactly `names` by name (presence info, never an id), itself as "(you)".
async function expectHere(pages, names, ms = 10000) {
  const want = [...names].sort();
  for (const [label, p] of pages) {
    let got;
    const me = label.split(' ')[0];
    try {
      await waitFor(async () => {
        got = await herePeople(p);
        return JSON.stringify(got.map((x) => x.name).sort()) === JSON.stringify(want);
      }, ms, `${label} to list ${JSON.stringify(want)} in "Here now"`);
    } catch (e) {
      throw new Error(`${e.message} (lists ${JSON.stringify(got)})`);
    }
    const ids = got.filter((x) => x.name === x.client || /^[0-9a-f]{32}$/.test(x.name));
    if (ids.length) throw new Error(`${label} shows ids for names: ${JSON.stringify(ids)}`);
    const you = got.filter((x) => x.you).map((x) => x.name);
    if (JSON.stringify(you) !== JSON.stringify([me])) throw new Error(`${label} marks ${JSON.stringify(you)} as "(you)"`);
    const id = await p.evaluate(() => window.demo.client.id);
    if (got.find((x) => x.you).client !== id) throw new Error(`${label}: "(you)" is not its client id ${id}`);
  }
}

const typingText = (page) => page.evaluate(() => document.querySelector('#typing').textContent);

const publish = (text) => api(hub.http, KEY, 'publish', { topic: TOPIC, data: { name: 'backend', text, time: Date.now() } });
const state = (page) => page.evaluate(() => document.body.dataset.connection);

let ws;
let sse;
let poll;
let all;
let oldEpoch; // the SSE page's lines before the restart
try {
  await checks.step('WebSocket removed: the chat page connects over SSE and says so', async () => {
    sse = await openChat('sse', 'sia', LAPTOP);
    await expectTransport(sse, 'sse');
    if (sse.requests.ws) throw new Error(`${sse.requests.ws} WebSocket connections`);
    // Its first POST (the presence list) follows the subscribe reply.
    await waitFor(() => sse.requests.sse && sse.requests.post, 5000, `an SSE stream and a POST (${JSON.stringify(sse.requests)})`);
  });

  await checks.step('EventSource removed too: the chat page connects over long-polling and says so', async () => {
    poll = await openChat('poll', 'pol', PHONE);
    await expectTransport(poll, 'poll');
    if (poll.requests.ws || poll.requests.sse) throw new Error(`requests: ${JSON.stringify(poll.requests)}`);
    if (!poll.requests.poll) throw new Error('no GET /poll');
  });

  await checks.step('a third page keeps WebSocket', async () => {
    ws = await openChat('websocket', 'wes', LAPTOP);
    await expectTransport(ws, 'websocket');
    if (!ws.requests.ws || ws.requests.sse || ws.requests.poll) throw new Error(`requests: ${JSON.stringify(ws.requests)}`);
    all = [['wes (websocket)', ws], ['sia (sse)', sse], ['pol (poll)', poll]];
  });

  await checks.step('SSE page sends and receives', async () => {
    await chatSend(sse, 'hello over SSE');
    await expectChatOnce(sse, 'sia', ['hello over SSE']);
    await sse.waitForFunction(() => !document.querySelector('.msg.pending'));
    await publish('from the backend to SSE');
    await expectChatOnce(sse, 'sia', ['from the backend to SSE']);
  });

  await checks.step('long-poll page sends and receives', async () => {
    await chatSend(poll, 'hello over long-polling');
    await expectChatOnce(poll, 'pol', ['hello over SSE', 'from the backend to SSE', 'hello over long-polling']);
    await poll.waitForFunction(() => !document.querySelector('.msg.pending'));
    await expectChatOnce(sse, 'sia', ['hello over long-polling']);
  });

  await checks.step('mixed room: each page and the API publish at once; all three show the hub\'s order', async () => {
    const sends = [];
    for (let i = 1; i <= 4; i++) {
      for (const [label, p] of all) sends.push(chatSend(p, `${label.split(' ')[0]} #${i}`));
      sends.push(publish(`api #${i}`));
      await Promise.all(sends.splice(0));
    }
    const want = await sameAsHub(all, 3 + 16);
    if (want.lines.length !== 3 + 16) throw new Error(`the hub has ${want.lines.length} lines, expected 19`);
    for (const [, p] of all) await p.waitForFunction(() => !document.querySelector('.msg.pending'));
  });

  await checks.step('mixed room: every page\'s "Here now" lists the three names, itself as (you)', async () => {
    await expectHere(all, ['wes', 'sia', 'pol']);
  });

  await checks.step('mixed room: typing on one page shows on the other two, never on itself', async () => {
    // Every page records each text its typing line shows from now on.
    for (const [, p] of all) {
      await p.evaluate(() => {
        window.typingSeen = [];
        const box = document.querySelector('#typing');
        new MutationObserver(() => window.typingSeen.push(box.textContent)).observe(box, { childList: true, subtree: true, characterData: true });
      });
    }
    // The chat lines above were typed too: wait until those indicators are gone (3.5 s).
    for (const [label, p] of all) await waitFor(async () => !(await typingText(p)), 10000, `${label}'s typing line to clear`);
    for (const [label, p] of all) {
      const name = label.split(' ')[0];
      await p.fill('#text', '');
      await p.type('#text', 'typ');
      for (const [other, q] of all) {
        if (q === p) continue;
        await waitFor(async () => (await typingText(q)).includes(name), 5000, `${other} to show "${name} … typing"`);
      }
      await p.fill('#text', '');
    }
    await sleep(500); // an echo of its own typing would have come by now
    for (const [label, p] of all) {
      const name = label.split(' ')[0];
      const seen = await p.evaluate(() => window.typingSeen);
      if (seen.some((t) => t.includes(name))) throw new Error(`${label} showed its own typing: ${JSON.stringify(seen)}`);
      if (!seen.some((t) => /typing/.test(t))) throw new Error(`${label} showed no typing at all`);
    }
  });

  await checks.step('screenshots of the fallback pages (transport in the top bar)', async () => {
    await sse.screenshot({ path: path.join(shots, 'fallback-sse-laptop.png') });
    await poll.screenshot({ path: path.join(shots, 'fallback-poll-phone.png') });
  });

  await checks.step('network cut: every page reconnecting; the API publishes, the SSE page sends (queued)', async () => {
    checks.allowNetworkErrors = true;
    proxy.mode = 'refuse';
    proxy.kill();
    for (const [, p] of all) await waitFor(async () => await state(p) === 'reconnecting', 15000, 'reconnecting');
    await publish('api during the cut 1');
    await publish('api during the cut 2');
    await chatSend(sse, 'sse queued during the cut');
    await sse.waitForSelector('.msg.pending >> text=queued');
  });

  await checks.step('network back: each page resumes on its own transport; same epoch, nothing lost or doubled', async () => {
    const before = await current(sse);
    proxy.mode = 'pass';
    await expectTransport(ws, 'websocket');
    await expectTransport(sse, 'sse');
    await expectTransport(poll, 'poll');
    checks.allowNetworkErrors = false;
    const want = await sameAsHub(all, 19 + 3);
    if (want.epoch !== before.epoch) throw new Error('the epoch changed');
    const texts = want.lines.map((l) => l[1]);
    for (const t of ['api during the cut 1', 'api during the cut 2', 'sse queued during the cut']) {
      if (!texts.includes(t)) throw new Error(`the hub lacks "${t}"`);
    }
    for (const [label, p] of all) {
      if ((await chatLines(p)).length !== 1) throw new Error(`${label}: more than one epoch section`);
      if (await p.$('.sys')) throw new Error(`${label}: a reset was reported: ${await p.textContent('.sys')}`);
    }
  });

  await checks.step('hub restarted (SIGTERM, new epoch): the API publishes and the SSE page sends meanwhile', async () => {
    oldEpoch = await current(sse);
    checks.allowNetworkErrors = true;
    proxy.mode = 'refuse'; // keep the pages away until the API has published
    await hub.stop();
    proxy.kill();
    for (const [, p] of all) await waitFor(async () => await state(p) === 'reconnecting', 15000, 'reconnecting');
    await chatSend(sse, 'sse queued across the restart');
    await hub.start(); // same port, empty in-memory history, new epoch
    await publish('after restart 1');
    await publish('after restart 2');
    proxy.mode = 'pass';
  });

  await checks.step('after the restart: each page back on its transport, new history once, old lines kept', async () => {
    const old = oldEpoch;
    await expectTransport(ws, 'websocket');
    await expectTransport(sse, 'sse');
    await expectTransport(poll, 'poll');
    checks.allowNetworkErrors = false;
    const want = await sameAsHub(all, 3);
    const texts = want.lines.map((l) => l[1]);
    if (JSON.stringify(texts.slice(0, 2)) !== JSON.stringify(['after restart 1', 'after restart 2']) ||
      !texts.includes('sse queued across the restart') || texts.length !== 3) {
      throw new Error(`the new epoch has ${JSON.stringify(texts)}`);
    }
    for (const [label, p] of all) {
      const secs = await chatLines(p);
      if (secs.length !== 2 || JSON.stringify(secs[0]) !== JSON.stringify(old)) {
        throw new Error(`${label}: ${secs.length} sections; the old one ${JSON.stringify(secs[0]) === JSON.stringify(old) ? 'kept' : 'changed'}`);
      }
      await p.waitForSelector('.sys >> text=/server restarted/');
      await p.waitForFunction(() => !document.querySelector('.msg.pending'));
    }
  });

  await checks.step('after the restart: the mixed room goes on in one order', async () => {
    await Promise.all(all.map(([label, p]) => chatSend(p, `${label.split(' ')[0]} after the restart`)));
    const want = await sameAsHub(all, 6);
    if (want.lines.length !== 6) throw new Error(`the hub has ${want.lines.length} lines, expected 6`);
    await expectHere(all, ['wes', 'sia', 'pol']);
    await sse.screenshot({ path: path.join(shots, 'fallback-sse-after-restart.png') });
  });

  // Closed, a page leaves at once (duplex.js asks its session to leave on
  // pagehide, as a WebSocket's close does); a client gone without a word
  // (offline) leaves --session-idle after its last request ended (expiry
  // is checked every second).
  await checks.step(`SSE page closed: the others drop "sia" at once (well within --session-idle, ${IDLE_S} s)`, async () => {
    const t0 = Date.now();
    await sse.close(); // its context stays, as a browser does when a tab closes (the keepalive request finishes)
    all = all.filter(([, p]) => p !== sse);
    await expectHere(all, ['wes', 'pol'], IDLE_S * 1000 - 1000);
    console.log(`# sia left the other pages after ${Date.now() - t0} ms`);
  });

  await checks.step(`long-poll page gone offline, then closed: the WebSocket page drops "pol" within --session-idle (${IDLE_S} s) + slack`, async () => {
    checks.allowNetworkErrors = true;
    const t0 = Date.now();
    await poll.context().setOffline(true);
    await poll.close();
    await poll.context().close();
    all = all.filter(([, p]) => p !== poll);
    await expectHere(all, ['wes'], (IDLE_S + 4) * 1000);
    const ms = Date.now() - t0;
    console.log(`# pol left the WebSocket page after ${ms} ms`);
    if (ms < IDLE_S * 1000 - 500) throw new Error(`it left after ${ms} ms: before its session could expire (did the page still reach the hub?)`);
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
