// Authentication (docs/wire-format.md) against `msgtrans serve --jwt-secret-file`, in
// Node: the token as the first packet on tcp://, as a bearer header on ws://; accepted
// (the user id arrives on tcp://), refused (expired, wrong key: unauthenticated with the
// server's reason, no retry), and missing. HS256 tokens are made here with node:crypto.
// Run by ctest: js_client_auth. (The token query parameter of browsers: js_client_browser.)
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';
import { connect, MsgtransError } from '@msgtrans/client';

const dir = mkdtempSync(join(tmpdir(), 'msgtrans-js-auth-'));
const secret = randomBytes(32).toString('base64');
const b64 = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
export function jwt(key, claims) {
  const head = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  return `${head}.${createHmac('sha256', key).update(head).digest('base64url')}`;
}
const now = () => Math.floor(Date.now() / 1000);
const good = jwt(secret, { sub: 'alice', exp: now() + 600 });
const expired = jwt(secret, { sub: 'alice', exp: now() - 120 });
const forged = jwt(randomBytes(32).toString('base64'), { sub: 'mallory', exp: now() + 600 });
const isCode = (code, text) => (e) => e instanceof MsgtransError && e.code === code && (!text || e.message.toLowerCase().includes(text));
let serve;
const urls = {};

before(async () => {
  writeFileSync(join(dir, 'secret'), secret + '\n');
  serve = spawn(process.env.MSGTRANS_BIN, ['serve', '--tcp', '127.0.0.1:0', '--ws', '127.0.0.1:0/ws', '--threads', '1',
                                           '--quiet', '--jwt-secret-file', join(dir, 'secret')],
                { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((resolve, reject) => {
    serve.on('exit', (code) => reject(new Error(`msgtrans serve exited with ${code}`)));
    createInterface({ input: serve.stdout }).on('line', (l) => {
      const m = /^listening (tcp|ws) (\S+)$/.exec(l);
      if (m) urls[m[1]] = `${m[1]}://${m[2]}`;
      if (urls.tcp && urls.ws) resolve();
    });
  });
  serve.removeAllListeners('exit');
});

after(async () => {
  const code = await new Promise((resolve) => { serve.on('exit', resolve); serve.kill('SIGTERM'); });
  rmSync(dir, { recursive: true, force: true });
  assert.equal(code, 0, 'msgtrans serve exit code');
});

for (const scheme of ['tcp', 'ws']) {
  test(`${scheme}://: a valid token is accepted`, async () => {
    const c = await connect(urls[scheme], { reconnect: false, token: good });
    try {
      assert.equal((await c.request('authenticated')).text(), 'authenticated');
      if (scheme === 'tcp') assert.equal(c.userId, 'alice');
    } finally { await c.close(); }
  });

  test(`${scheme}://: an expired or forged token is refused with the reason, and not retried`, async () => {
    const t0 = Date.now();
    await assert.rejects(connect(urls[scheme], { token: expired, reconnect: { maxAttempts: 5, initialDelay: 5000, jitter: 0 } }),
                         isCode('unauthenticated', 'expired'));
    assert.ok(Date.now() - t0 < 4000, 'no second attempt (it would wait 5 s first)');
    await assert.rejects(connect(urls[scheme], { reconnect: false, token: forged }), isCode('unauthenticated'));
  });
}

test('tcp:// without a token: the first request is refused as unauthenticated', async () => {
  const c = await connect(urls.tcp, { reconnect: false });
  const closed = new Promise((r) => c.on('closed', r));
  await assert.rejects(c.request('who am I?'), isCode('unauthenticated', 'authentication required'));
  await closed;
  assert.equal(c.connected, false);
});

test('ws:// without a token: the upgrade is refused (HTTP 401)', async () => {
  await assert.rejects(connect(urls.ws, { reconnect: false }), isCode('unauthenticated', 'http 401'));
});
