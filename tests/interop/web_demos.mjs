// The demo pages other than the chat in real Chromium, each in two browser
// contexts (a laptop and a phone): the index, the live ticker (prices
// update, the chart draws), the whiteboard (a stroke drawn in one page
// appears in the other, and in a newcomer's), live comments (a comment flies
// on the other page; a flood meets the visible rate limit) and the map (a
// marker moves on the other page and leaves with its owner). Screenshots of
// every page on both.
//
//   node web_demos.mjs PORT SCREENSHOT_DIR   (a `duplex serve --demo --static web` on PORT)
import path from 'node:path';
import { Checks, LAPTOP, launchChromium, PHONE, sleep, waitOpen } from './web_common.mjs';

const [port, shots] = process.argv.slice(2);
const base = `http://127.0.0.1:${port}`;
const checks = new Checks();
const browser = await launchChromium();
const run = `${process.pid}`;

async function pair(url, names = ['ana', 'bo']) {
  const a = await checks.page(browser, LAPTOP, `${url} (laptop)`);
  const b = await checks.page(browser, PHONE, `${url} (phone)`);
  const sep = url.includes('?') ? '&' : '?';
  const [u, hash = ''] = url.split('#');
  await a.goto(`${base}/${u}${sep}name=${names[0]}${hash && `#${hash}`}`);
  await b.goto(`${base}/${u}${sep}name=${names[1]}${hash && `#${hash}`}`);
  await Promise.all([waitOpen(a), waitOpen(b)]);
  return [a, b];
}
async function shoot(a, b, name) {
  await a.screenshot({ path: path.join(shots, `${name}-laptop.png`) });
  await b.screenshot({ path: path.join(shots, `${name}-phone.png`) });
}
async function done(...pages) {
  for (const p of pages) await p.context().close();
}

try {
  await checks.step('index: links to every demo, live quotes on the tape', async () => {
    const [a, b] = await pair('index.html');
    const links = await a.$$eval('a.demo', (els) => els.map((e) => e.getAttribute('href')));
    for (const want of ['chat.html', 'ticker.html', 'whiteboard.html', 'comments.html', 'map.html']) {
      if (!links.includes(want)) throw new Error(`no link to ${want}: ${links}`);
    }
    await a.waitForFunction(() => document.querySelectorAll('#tape .q').length >= 5);
    await b.waitForFunction(() => document.querySelectorAll('#tape .q').length >= 5);
    for (const href of links) {
      const res = await a.request.get(`${base}/${href}`);
      if (res.status() !== 200) throw new Error(`${href}: HTTP ${res.status()}`);
    }
    await sleep(300);
    await shoot(a, b, 'index');
    if (process.env.DX_README_SHOT) { // docs/img/demos.png: DX_README_SHOT=docs/img/demos.png
      await a.setViewportSize({ width: 1200, height: 1020 });
      await sleep(300);
      await a.screenshot({ path: process.env.DX_README_SHOT });
    }
    await done(a, b);
  });

  await checks.step('ticker: prices update and flash, the chart and sparklines draw', async () => {
    const [a, b] = await pair('ticker.html#ACME');
    for (const p of [a, b]) {
      await p.waitForFunction(() => window.demo.updates > 0);
      const first = await p.evaluate(() => window.demo.updates);
      const price = await p.textContent('.sym[data-symbol=ACME] .price');
      await p.waitForFunction((n) => window.demo.updates >= n + 8, first, { timeout: 8000 });
      await p.waitForFunction((old) => document.querySelector('#sel-price').textContent !== '—', price);
      const pts = await p.evaluate(() => window.demo.state.get('ACME').points.length);
      if (pts < 5) throw new Error(`only ${pts} ACME points`);
      // The chart canvas has ink in it.
      const inked = await p.evaluate(() => {
        const c = document.querySelector('#chart');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 3; i < d.length; i += 4 * 16) if (d[i] > 0) n++;
        return n;
      });
      if (inked < 50) throw new Error(`chart looks empty (${inked} samples)`);
    }
    await a.waitForSelector('.price.flash-up, .price.flash-down', { timeout: 8000 });
    await sleep(400);
    await shoot(a, b, 'ticker');
    await done(a, b);
  });

  await checks.step('whiteboard: a stroke drawn on the laptop appears on the phone and for a newcomer', async () => {
    const [a, b] = await pair(`whiteboard.html#e2e${run}`);
    const box = await a.locator('#board').boundingBox();
    const strokes = [
      { color: 4, pts: Array.from({ length: 40 }, (_, i) => [0.08 + i * 0.018, 0.35 + Math.sin(i / 5) * 0.15]) },
      { color: 1, pts: Array.from({ length: 30 }, (_, i) => [0.2 + 0.12 * Math.cos(i / 4.6), 0.7 + 0.12 * Math.sin(i / 4.6)]) },
      { color: 3, pts: Array.from({ length: 25 }, (_, i) => [0.55 + i * 0.014, 0.75 - i * 0.018]) },
    ];
    for (const s of strokes) {
      await a.click(`#swatches button:nth-child(${s.color + 1})`);
      const [x0, y0] = s.pts[0];
      await a.mouse.move(box.x + x0 * box.width, box.y + y0 * box.height);
      await a.mouse.down();
      for (const [x, y] of s.pts.slice(1)) await a.mouse.move(box.x + x * box.width, box.y + y * box.height);
      await a.mouse.up();
    }
    const want = await a.evaluate(() => [...window.demo.strokes.values()].map((s) => s.pts.length));
    await b.waitForFunction((w) => JSON.stringify([...window.demo.strokes.values()].map((s) => s.pts.length)) === JSON.stringify(w), want, { timeout: 8000 });
    const c = await checks.page(browser, LAPTOP, 'whiteboard (newcomer)');
    await c.goto(`${base}/whiteboard.html?name=cy#e2e${run}`);
    await waitOpen(c);
    await c.waitForFunction((w) => JSON.stringify([...window.demo.strokes.values()].map((s) => s.pts.length)) === JSON.stringify(w), want, { timeout: 8000 });
    await shoot(a, b, 'whiteboard');
    await done(a, b, c);
  });

  await checks.step('live comments: a comment flies on the other page; a flood meets the visible rate limit', async () => {
    const [a, b] = await pair('comments.html');
    const text = `hello from the laptop ${run} 👋`;
    await a.fill('#text', text);
    await a.click('#send');
    await b.waitForFunction((t) => [...document.querySelectorAll('.danmaku')].some((d) => d.textContent === t), text);
    await b.waitForFunction((t) => [...document.querySelectorAll('#recent li')].some((d) => d.textContent.endsWith(t)), text);
    await b.fill('#text', '弹幕 from the phone');
    await b.click('#send');
    await a.waitForFunction(() => [...document.querySelectorAll('.danmaku')].some((d) => d.textContent === '弹幕 from the phone'));
    const before = await b.evaluate(() => document.querySelectorAll('#recent li').length);
    const sentBefore = await a.evaluate(() => window.demo.sent);
    await a.click('#flood');
    await a.waitForSelector('#slow:not([hidden])');
    const slow = await a.textContent('#slow');
    if (!/held back/.test(slow)) throw new Error(`limit notice: ${slow}`);
    if (!(await a.isDisabled('#send'))) throw new Error('send is not disabled at the limit');
    const [sent, held] = await a.evaluate(() => [window.demo.sent, window.demo.heldBack]);
    const passed = sent - sentBefore;
    if (passed < 1 || passed > 3 || held !== 10 - passed) throw new Error(`${passed} of 10 passed, ${held} held back (burst 3)`);
    await b.waitForFunction((n) => document.querySelectorAll('#recent li').length >= n, before + passed);
    await sleep(500);
    const got = await b.evaluate(() => document.querySelectorAll('#recent li').length);
    if (got - before !== passed) throw new Error(`the phone got ${got - before} flood comments, expected ${passed}`);
    await sleep(300);
    await shoot(a, b, 'comments');
    await done(a, b);
  });

  await checks.step('map: a marker moves on the other page and leaves with its owner', async () => {
    const [a, b] = await pair('map.html');
    const uid = await a.evaluate(() => window.demo.uid);
    await a.evaluate(() => window.demo.moveTo(5, 5));
    await b.waitForFunction((u) => { const m = window.demo.markers.get(u); return m && m.x === 5 && m.y === 5; }, uid);
    await a.keyboard.press('ArrowRight');
    await a.keyboard.press('ArrowRight');
    await a.keyboard.press('ArrowDown');
    await b.waitForFunction((u) => { const m = window.demo.markers.get(u); return m && m.x === 7 && m.y === 6; }, uid);
    const t = await b.$eval(`g.marker[data-uid="${uid}"]`, (g) => g.style.transform);
    if (!t.includes('7.5px') || !t.includes('6.5px')) throw new Error(`marker transform ${t}`);
    // The phone walks with the pad; the laptop sees it.
    const uidB = await b.evaluate(() => window.demo.uid);
    const p0 = await b.evaluate(() => ({ ...window.demo.pos }));
    await b.click(p0.x < 20 ? '.pad .right' : '.pad .left');
    const x1 = p0.x < 20 ? p0.x + 1 : p0.x - 1;
    await a.waitForFunction(([u, x]) => window.demo.markers.get(u)?.x === x, [uidB, x1]);
    await sleep(300);
    await shoot(a, b, 'map');
    await a.context().close();
    await b.waitForFunction((u) => !window.demo.markers.has(u), uid, { timeout: 8000 });
    await done(b);
  });
} finally {
  checks.pagesClean();
  await browser.close();
}
process.exit(checks.failed ? 1 : 0);
