// The chat demo in real Chromium through nginx (docs/nginx/duplex.conf, run
// by tests/e2e/test_hub_nginx.sh): a WebSocket page, an SSE page (no
// window.WebSocket) and a long-poll page (no EventSource either) load the
// page from nginx, each sends a line, and all three show the same lines in
// the same order.
//
//   node web_nginx.mjs NGINX_PORT
import {
  chatLines, chatSend, Checks, expectChatOnce, expectTransport, LAPTOP, launchChromium, openChatOn,
} from './web_common.mjs';

const port = Number(process.argv[2]);
const ROOM = `nginx${process.pid}`;
const checks = new Checks();
const browser = await launchChromium();
const kinds = ['websocket', 'sse', 'poll'];
const pages = [];
try {
  await checks.step('through nginx: the chat page on WebSocket, on SSE and on long-polling', async () => {
    for (const kind of kinds) {
      const page = await openChatOn(browser, checks, kind, `http://127.0.0.1:${port}/chat.html?name=${kind}#${ROOM}`, LAPTOP);
      await expectTransport(page, kind);
      pages.push(page);
    }
  });

  await checks.step('through nginx: each sends, all three show the same lines in the same order', async () => {
    const texts = kinds.map((k) => `${k} via nginx`);
    for (let i = 0; i < kinds.length; i++) await chatSend(pages[i], texts[i]);
    for (let i = 0; i < kinds.length; i++) await expectChatOnce(pages[i], kinds[i], texts, 15000);
    const seen = await Promise.all(pages.map((p) => chatLines(p)));
    if (new Set(seen.map((s) => JSON.stringify(s))).size !== 1) throw new Error(`the pages differ: ${JSON.stringify(seen)}`);
    for (const p of pages) await p.waitForFunction(() => !document.querySelector('.msg.pending'));
  });
} finally {
  checks.pagesClean();
  await browser.close();
}
process.exit(checks.failed ? 1 : 0);
