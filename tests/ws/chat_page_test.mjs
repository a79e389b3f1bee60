// examples/chat.html (built on @msgtrans/client) in headless Chromium against
// `msgtrans serve --mode chat --ws`: two tabs connect and join "lobby" through the page's
// own buttons, and so does a C++ client (tests/js/chat_cpp_client); a line typed in one
// tab appears in the other's log and reaches the C++ client, whose answer appears in both
// tabs. Usage: node chat_page_test.mjs PATH/TO/msgtrans PATH/TO/chat_cpp_client
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { launchChromium, serveFiles, startFixture, stopFixture } from './fixture.mjs';

const fx = await startFixture(process.argv[2], '/chat', ['--mode', 'chat', '--quiet']);
const http = await serveFiles(['/examples/', '/clients/js/dist/']);
const profile = mkdtempSync(join(tmpdir(), 'msgtrans-chat-'));
let context;
let failed = false;
try {
  context = await launchChromium(profile);
  const url = `http://127.0.0.1:${http.address().port}/examples/chat.html?ws=${encodeURIComponent(fx.url)}`;
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
  // The C++ member joins, waits for the tab's line, and answers it.
  const cpp = spawn(process.argv[3], [fx.url, 'lobby', 'hello from tab one', 'hello from C++'],
                    { stdio: ['ignore', 'pipe', 'inherit'] });
  const cppLines = [];
  const cppExit = new Promise((resolve) => cpp.on('exit', (code) => resolve(code)));
  const lineSeen = (want) => new Promise((resolve, reject) => {
    createInterface({ input: cpp.stdout }).on('line', (l) => {
      cppLines.push(l);
      if (l.startsWith(want)) resolve(l);
    });
    cppExit.then((code) => reject(new Error(`chat_cpp_client exited with ${code} before '${want}'`)));
  });
  await lineSeen('joined lobby');
  await tabs[0].fill('#text', 'hello from tab one');
  await tabs[0].click('#send-btn');
  await tabs[1].waitForFunction(
      () => [...document.querySelectorAll('#log div')].some((d) => /^\[lobby\] session-\d+: hello from tab one$/.test(d.textContent)),
      null, { timeout: 10000 });
  const log = await tabs[1].textContent('#log');
  assert.match(log, /hello from tab one/);
  for (const tab of tabs) {
    await tab.waitForFunction(
        () => [...document.querySelectorAll('#log div')].some((d) => /^\[lobby\] session-\d+: hello from C\+\+$/.test(d.textContent)),
        null, { timeout: 10000 });
  }
  assert.equal(await cppExit, 0, 'chat_cpp_client exit code');
  assert.ok(cppLines.some((l) => /^got: \[lobby\] session-\d+: hello from tab one$/.test(l)), cppLines.join(' | '));
  console.log('chat page: message delivered between two tabs and a C++ client, both ways');
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
