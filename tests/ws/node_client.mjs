// Node's `ws` (npm, pinned in package-lock.json) as an independent client of
// `msgtrans serve --ws`. Usage: node node_client.mjs PATH/TO/msgtrans
import assert from 'node:assert/strict';
import { once } from 'node:events';
import WebSocket from 'ws';
import { startFixture, stopFixture, requestPacket } from './fixture.mjs';

const fx = await startFixture(process.argv[2], '/msg',
                              ['--max-message-size', '65536', '--ws-keep-alive-interval', '0.1', '--ws-keep-alive-timeout', '2']);
let passed = 0;
const check = async (name, fn) => {
  await fn();
  passed++;
  console.log(`ok - ${name}`);
};

function open(url = fx.url, opts = {}) {
  const ws = new WebSocket(url, { perMessageDeflate: false, ...opts });
  ws.binaryType = 'nodebuffer';
  return ws;
}

// Resolves with the next n binary messages.
function nextMessages(ws, n) {
  return new Promise((resolve, reject) => {
    const got = [];
    ws.on('message', (data, isBinary) => {
      if (!isBinary) return reject(new Error('text message from the server'));
      got.push(data);
      if (got.length === n) resolve(got);
    });
    ws.on('close', (code) => reject(new Error(`closed with ${code} after ${got.length} messages`)));
  });
}

try {
  const bystander = open();
  await once(bystander, 'open');

  await check('echo: 200 requests sent back to back come back as responses, in order', async () => {
    const ws = open();
    await once(ws, 'open');
    const replies = nextMessages(ws, 200);
    for (let id = 1; id <= 200; id++) ws.send(requestPacket(id, 'n'.repeat(id % 2 ? 64 : 3000)));
    const got = await replies;
    got.forEach((buf, i) => {
      assert.equal(buf.readUInt8(0), 1);
      assert.equal(buf.readUInt8(2), 2, 'packet_type response');
      assert.equal(buf.readUInt32BE(4), i + 1, 'message_id');
      assert.equal(buf.readUInt32BE(10), buf.length - 16, 'payload_len');
    });
    ws.close(1000, 'done');
    const [code] = await once(ws, 'close');
    assert.equal(code, 1000);
  });

  await check('server pings (every 100 ms) are answered by ws, and the connection keeps working', async () => {
    const ws = open();
    await once(ws, 'open');
    let pings = 0;
    ws.on('ping', () => pings++);
    while (pings < 3) await once(ws, 'ping');
    const reply = nextMessages(ws, 1);
    ws.send(requestPacket(77, 'still there'));
    assert.equal((await reply)[0].readUInt32BE(4), 77);
    ws.terminate();
  });

  await check('wrong path: HTTP 404', async () => {
    const ws = open(fx.url.replace(/\/msg$/, '/nope'));
    const [, res] = await once(ws, 'unexpected-response');
    assert.equal(res.statusCode, 404);
    ws.on('error', () => {});
    res.destroy();
  });

  await check('text message: close 1003 with a reason', async () => {
    const ws = open();
    await once(ws, 'open');
    ws.send('hello');
    const [code, reason] = await once(ws, 'close');
    assert.equal(code, 1003);
    assert.match(reason.toString(), /text/);
  });

  await check('binary message that is not a packet: close 1002', async () => {
    const ws = open();
    await once(ws, 'open');
    ws.send(Buffer.from('not a packet'));
    const [code, reason] = await once(ws, 'close');
    assert.equal(code, 1002);
    assert.match(reason.toString(), /packet rejected/);
  });

  await check('oversized message: close 1009', async () => {
    const ws = open();
    await once(ws, 'open');
    ws.send(requestPacket(1, Buffer.alloc(70000)));
    const [code] = await once(ws, 'close');
    assert.equal(code, 1009);
  });

  await check('our close code and reason are echoed', async () => {
    const ws = open();
    await once(ws, 'open');
    ws.close(4001, 'see you');
    const [code] = await once(ws, 'close');
    assert.equal(code, 4001);
  });

  await check('the bystander connection was not disturbed', async () => {
    const reply = nextMessages(bystander, 1);
    bystander.send(requestPacket(5, 'bystander'));
    assert.equal((await reply)[0].readUInt32BE(4), 5);
  });

  await check('server shutdown: close 1001, and msgtrans serve exits 0', async () => {
    const closed = once(bystander, 'close');
    const exit = stopFixture(fx);
    const [code, reason] = await closed;
    assert.equal(code, 1001);
    assert.match(reason.toString(), /stopping/);
    assert.equal(await exit, 0);
  });
  console.log(`${passed} passed, 0 failed`);
} catch (e) {
  console.error(e);
  console.log(`${passed} passed, 1 failed`);
  await stopFixture(fx);
  process.exit(1);
}
