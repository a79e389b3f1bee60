// Node only: how a WebSocket connection that never becomes one fails. An upgrade refused
// by `msgtrans serve` (a wrong path: 404; an Origin not allowed: 403) and a listener that
// accepts and then says nothing (connectTimeout). Run by ctest: js_client_upgrade.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';
import { connect, MsgtransError } from '@msgtrans/client';

let serve;
let addr;
const isCode = (code, text) => (e) => e instanceof MsgtransError && e.code === code && (!text || e.message.includes(text));

before(async () => {
  serve = spawn(process.env.MSGTRANS_BIN, ['serve', '--ws', '127.0.0.1:0/ws', '--ws-origin', 'https://app.example',
                                           '--threads', '1', '--quiet'], { stdio: ['ignore', 'pipe', 'inherit'] });
  addr = await new Promise((resolve, reject) => {
    serve.on('exit', (code) => reject(new Error(`msgtrans serve exited with ${code}`)));
    createInterface({ input: serve.stdout }).on('line', (l) => {
      const m = /^listening ws (\S+?)\/ws$/.exec(l);
      if (m) resolve(m[1]);
    });
  });
  serve.removeAllListeners('exit');
});

after(async () => {
  const code = await new Promise((resolve) => { serve.on('exit', resolve); serve.kill('SIGTERM'); });
  assert.equal(code, 0, 'msgtrans serve exit code');
});

test('an allowed Origin connects', async () => {
  const c = await connect(`ws://${addr}/ws`, { reconnect: false, headers: { Origin: 'https://app.example' } });
  assert.equal((await c.request('hi')).text(), 'hi');
  await c.close();
});

test('a refused Origin (HTTP 403) is unauthenticated, naming the status', async () => {
  await assert.rejects(connect(`ws://${addr}/ws`, { reconnect: false, headers: { Origin: 'https://evil.example' } }),
                       isCode('unauthenticated', 'HTTP 403'));
});

test('a wrong path (HTTP 404) is not_connected, naming the status', async () => {
  await assert.rejects(connect(`ws://${addr}/other`, { reconnect: false, headers: { Origin: 'https://app.example' } }),
                       isCode('not_connected', 'HTTP 404'));
});

test('a listener that never answers the handshake: timeout after connectTimeout', async () => {
  const silent = createServer(() => {});  // accepts, never speaks
  await new Promise((r) => silent.listen(0, '127.0.0.1', r));
  try {
    const t0 = Date.now();
    await assert.rejects(connect(`ws://127.0.0.1:${silent.address().port}/`, { reconnect: false, connectTimeout: 300 }),
                         isCode('timeout'));
    const took = Date.now() - t0;
    assert.ok(took >= 290 && took < 5000, `took ${took} ms`);
  } finally {
    silent.close();
  }
});
