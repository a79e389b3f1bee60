// The suite (suite.mjs) in headless Chromium (Debian's /usr/bin/chromium driven by
// playwright-core): a page imports the package's browser entry through an import map,
// no bundler, and runs every test against `msgtrans serve --ws` and js_peer_server.
// Run by ctest (js_client_browser); prints one line per test and "N passed, N failed".
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { loadFixtures, startServers } from './servers.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const types = { '.wasm': 'application/wasm', '.js': 'text/javascript', '.mjs': 'text/javascript', '.html': 'text/html', '.json': 'application/json', '.map': 'application/json' };

const page = `<!doctype html><meta charset="utf-8"><title>@msgtrans/client suite</title>
<script type="importmap">{"imports": {"@msgtrans/client": "/dist/browser.js"}}</script>
<script type="module">
import * as sdk from '@msgtrans/client';
import { tests } from '/test/suite.mjs';
const config = await (await fetch('/config.json')).json();
const results = [];
// zstd has no browser API: the page brings @bokuweb/zstd-wasm's web build, as an app would.
let codecs;
try {
  const zstd = await import('/zstd/index.web.js');
  await zstd.init();
  codecs = { zstd: sdk.zstdCodec(zstd) };
} catch (e) {
  results.push({ name: 'load @bokuweb/zstd-wasm', ok: false, ms: 0, error: String(e?.stack ?? e) });
}
for (const [name, run] of tests) {
  const t0 = performance.now();
  try {
    await run({ sdk, runtime: 'browser', fixtures: config.fixtures, urls: config.urls, restartPeer: () => window.restartPeer(), codecs });
    results.push({ name, ok: true, ms: performance.now() - t0 });
  } catch (e) {
    results.push({ name, ok: false, ms: performance.now() - t0, error: String(e?.stack ?? e) });
  }
}
window.results = results;
</script>`;

const fixtures = loadFixtures();
const servers = await startServers();
const config = { fixtures, urls: servers.urls('ws') };
const http = createServer((req, res) => {
  const path = new URL(req.url, 'http://x').pathname;
  if (path === '/page.html') return res.writeHead(200, { 'content-type': 'text/html' }).end(page);
  if (path === '/config.json') return res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(config));
  // /zstd/ is @bokuweb/zstd-wasm's web build; its imports name no extension, which
  // bundlers resolve to .js, and so does this server.
  const zstdWeb = join(root, 'node_modules', '@bokuweb', 'zstd-wasm', 'dist', 'web');
  let file = path.startsWith('/zstd/') ? normalize(join(zstdWeb, path.slice(6))) : normalize(join(root, path));
  if (path.startsWith('/zstd/') && !extname(file)) {
    // a folder: its index.js, redirected so that its own relative imports resolve from there
    if (existsSync(file)) return res.writeHead(302, { location: `${path}/index.js` }).end();
    file += '.js';
  }
  const allowed = path.startsWith('/dist/') || path === '/test/suite.mjs' || (path.startsWith('/zstd/') && file.startsWith(zstdWeb));
  if (!allowed || !file.startsWith(root)) {
    if (path !== '/favicon.ico') console.log(`404 ${path}`);
    return res.writeHead(404).end();
  }
  let body;
  try {
    body = readFileSync(file);
  } catch {
    console.log(`404 ${path}`);
    return res.writeHead(404).end();
  }
  res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream' }).end(body);
});
await new Promise((r) => http.listen(0, '127.0.0.1', r));

const profile = mkdtempSync(join(tmpdir(), 'msgtrans-js-client-'));
let context;
let passed = 0;
let failed = 0;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    timeout: 60000,
  });
  const tab = context.pages()[0] ?? await context.newPage();
  tab.on('console', (m) => console.log(`[page] ${m.text()}`));
  tab.on('pageerror', (e) => console.log(`[page error] ${e}`));
  await tab.exposeFunction('restartPeer', () => servers.restartPeer());
  await tab.goto(`http://127.0.0.1:${http.address().port}/page.html`);
  await tab.waitForFunction(() => window.results !== undefined, null, { timeout: 150000, polling: 100 });
  const results = await tab.evaluate(() => window.results);
  console.log(`chromium ${context.browser()?.version() ?? ''}`);
  for (const r of results) {
    console.log(`${r.ok ? 'ok' : 'FAIL'} - ${r.name} (${r.ms.toFixed(0)} ms)${r.ok ? '' : '\n' + r.error}`);
    if (r.ok) ++passed; else ++failed;
  }
  if (results.length === 0) ++failed;
} catch (e) {
  console.error(e);
  ++failed;
} finally {
  await context?.close().catch(() => {});
  http.close();
  rmSync(profile, { recursive: true, force: true });
  if (!(await servers.stopAll())) {
    console.error('a server did not exit cleanly');
    ++failed;
  }
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
