// Drives web/echo.html (the echo demo page) in headless Chromium as a
// person would: wait for "open", type three messages, check the echoes
// and read the round-trip time it shows.
import { chromium } from 'playwright-core';

const [port, shot] = process.argv.slice(2);
const ok = (name) => console.log(`ok - ${name}`);
const bad = (name, why) => console.log(`not ok - ${name}: ${why}`);
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${port}/echo.html`);
  ok('page loads from duplex echo --static web');
  await page.waitForSelector('#status.open', { timeout: 10000 });
  ok('the page connects (status "open")');
  const ext = await page.textContent('#log');
  ext.includes('permessage-deflate') ? ok('compression negotiated with Chromium')
    : bad('compression negotiated with Chromium', ext);
  const msgs = ['hello duplex', 'héllo ✓ 😀', 'x'.repeat(2000)];
  for (const m of msgs) {
    await page.fill('#text', m);
    await page.click('#send');
  }
  await page.waitForFunction(() => document.querySelectorAll('#log .in').length === 3,
    null, { timeout: 10000 });
  const echoed = await page.$$eval('#log .in', (els) => els.map((e) => e.textContent.slice(2)));
  JSON.stringify(echoed) === JSON.stringify(msgs) ? ok('three messages echoed in order')
    : bad('three messages echoed in order', JSON.stringify(echoed).slice(0, 200));
  const rtt = await page.textContent('#rtt');
  /round trip [0-9.]+ ms/.test(rtt) ? ok('round trip shown') : bad('round trip shown', rtt);
  await page.screenshot({ path: shot });
  ok(`screenshot saved`);
} catch (e) {
  bad('demo page', e.message);
} finally {
  await browser.close();
}
