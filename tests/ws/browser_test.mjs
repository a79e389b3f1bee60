// A real browser as a peer: headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core from package-lock.json) loads browser_page.html from a local HTTP
// server; the page's JavaScript talks to `msgtrans serve --ws` and leaves its verdict in
// window.result. Usage: node browser_test.mjs PATH/TO/msgtrans
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launchChromium, serveFiles, startFixture, stopFixture } from './fixture.mjs';

const fx = await startFixture(process.argv[2], '/browser');
const http = await serveFiles(['/tests/ws/browser_page.html', '/clients/js/dist/']);
const profile = mkdtempSync(join(tmpdir(), 'msgtrans-chromium-'));
let context;
let failed = false;
try {
  context = await launchChromium(profile);
  const tab = context.pages()[0] ?? await context.newPage();
  tab.on('console', (m) => console.log(`[page] ${m.text()}`));
  const pageUrl = `http://127.0.0.1:${http.address().port}/tests/ws/browser_page.html?ws=${encodeURIComponent(fx.url)}`;
  await tab.goto(pageUrl);
  await tab.waitForFunction(() => window.result !== undefined, null, { timeout: 30000 });
  const result = await tab.evaluate(() => window.result);
  console.log(`chromium ${context.browser()?.version() ?? ''}: ${result.detail}`);
  assert.equal(result.ok, true, result.detail);
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
