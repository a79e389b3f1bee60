// examples/chat.html in headless Chromium against `msgtrans serve --mode chat --ws`:
// two tabs connect and join "lobby" through the page's own buttons; a line typed in one
// appears in the other's log. Usage: node chat_page_test.mjs PATH/TO/msgtrans
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchChromium, servePage, startFixture, stopFixture } from './fixture.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const page = readFileSync(join(here, '..', '..', 'examples', 'chat.html'));
const fx = await startFixture(process.argv[2], '/chat', ['--mode', 'chat', '--quiet']);
const http = await servePage('chat.html', page);
const profile = mkdtempSync(join(tmpdir(), 'msgtrans-chat-'));
let context;
let failed = false;
try {
  context = await launchChromium(profile);
  const url = `http://127.0.0.1:${http.address().port}/chat.html?ws=${encodeURIComponent(fx.url)}`;
  const tabs = [context.pages()[0] ?? await context.newPage(), await context.newPage()];
  for (const tab of tabs) {
    tab.on('console', (m) => console.log(`[page] ${m.text()}`));
    await tab.goto(url);
    await tab.click('#connect-btn');
    await tab.waitForSelector('#join-btn:not([disabled])', { timeout: 10000 });
    await tab.click('#join-btn');
    await tab.waitForFunction(() => document.getElementById('log').textContent.includes('joined lobby'), null,
                              { timeout: 10000 });
  }
  await tabs[0].fill('#text', 'hello from tab one');
  await tabs[0].click('#send-btn');
  await tabs[1].waitForFunction(
      () => [...document.querySelectorAll('#log div')].some((d) => /^\[lobby\] session-\d+: hello from tab one$/.test(d.textContent)),
      null, { timeout: 10000 });
  const log = await tabs[1].textContent('#log');
  assert.match(log, /hello from tab one/);
  console.log('chat page: message delivered between two tabs');
  console.log('1 passed, 0 failed');
} catch (e) {
  console.error(e);
  console.log('0 passed, 1 failed');
  failed = true;
} finally {
  await context?.close().catch(() => {});
  http.close();
  rmSync(profile, { recursive: true, force: true });
  const code = await stopFixture(fx);
  if (code !== 0) {
    console.error(`msgtrans serve exited with ${code}`);
    failed = true;
  }
}
process.exit(failed ? 1 : 0);
