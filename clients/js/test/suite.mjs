// The client's test suite, run by node.test.mjs (node:test) and by browser.test.mjs (in
// headless Chromium), against the real C++ runtime: `msgtrans serve` (echo) and
// tests/js/js_peer_server (push, server requests, closing, never answering, counting).
// Plain ES module with its own small assertions, so it runs unchanged in both.
//
// ctx: { sdk, runtime: 'node'|'browser', urls: { serve, peer, auth, token, closed }, fixtures, restartPeer(), codecs? }
// where urls are of one transport (ws:// or tcp://), `auth` checks tokens (`token` is one
// it accepts), `closed` refuses connections, and
// codecs (browser) holds the zstd codec the page made from @bokuweb/zstd-wasm.

export class AssertionError extends Error {}

export function ok(v, what) { if (!v) throw new AssertionError(what ?? 'expected a true value'); }
export function equal(a, b, what) {
  if (a !== b) throw new AssertionError(`${what ?? 'values differ'}: got ${JSON.stringify(a)}, want ${JSON.stringify(b)}`);
}
export function bytesEqual(a, b, what) {
  equal(a.length, b.length, `${what}: length`);
  for (let i = 0; i < a.length; ++i) if (a[i] !== b[i]) throw new AssertionError(`${what}: byte ${i} is ${a[i]}, want ${b[i]}`);
}
export async function rejectsWith(promise, code, what) {
  try {
    await promise;
  } catch (e) {
    equal(e?.name, 'MsgtransError', `${what}: error type (${e})`);
    equal(e.code, code, `${what}: code (${e.message})`);
    return e;
  }
  throw new AssertionError(`${what}: resolved, want a ${code} rejection`);
}
export function throwsWith(f, code, what) {
  try {
    f();
  } catch (e) {
    equal(e?.name, 'MsgtransError', `${what}: error type (${e})`);
    equal(e.code, code, `${what}: code (${e.message})`);
    return e;
  }
  throw new AssertionError(`${what}: returned, want a ${code} throw`);
}
/** Resolves with the first event `name` of client `c`, or rejects after `ms`. */
export function nextEvent(c, name, ms = 5000) {
  return new Promise((resolve, reject) => {
    const f = (v) => { clearTimeout(t); c.off(name, f); resolve(v); };
    const t = setTimeout(() => { c.off(name, f); reject(new AssertionError(`no '${name}' event within ${ms} ms`)); }, ms);
    c.on(name, f);
  });
}
/** Polls an observable condition that has no event (a count on the server), with a deadline. */
export async function until(f, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > deadline) throw new AssertionError(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const hex = (s) => Uint8Array.from(s.match(/../g) ?? [], (h) => parseInt(h, 16));
const TYPES = ['oneway', 'request', 'response'];
const PEER = { push: 100, ask: 101, close: 102, hang: 103, inflate: 104, count: 105, counted: 106 };
const fast = { reconnect: false };
const algorithms = ({ runtime, codecs }) => (runtime === 'node' || codecs?.zstd ? ['zlib', 'zstd'] : ['zlib']);
const counted = async (c, key) => Number((await c.request(key, { bizType: PEER.counted })).text());

export const tests = [
  ['codec: wire fixtures 01-08 encode and decode byte for byte', async ({ sdk, fixtures }) => {
    equal(fixtures.length, 8, 'fixtures found');
    for (const { name, json, bin } of fixtures) {
      const want = hex(bin);
      const init = {
        type: TYPES[json.packet_type], messageId: json.message_id, bizType: json.biz_type,
        flags: json.reserved, compression: json.compression, ext: hex(json.ext_header_hex), payload: hex(json.payload_hex),
      };
      bytesEqual(sdk.encode(init), want, `${name} encode`);
      const p = sdk.decode(want);
      equal(p.type, TYPES[json.packet_type], `${name} type`);
      equal(p.messageId, json.message_id, `${name} messageId`);
      equal(p.bizType, json.biz_type, `${name} bizType`);
      equal(p.flags, json.reserved, `${name} flags`);
      equal(p.compression, 'none', `${name} compression`);
      bytesEqual(p.ext, hex(json.ext_header_hex), `${name} ext`);
      bytesEqual(p.payload, hex(json.payload_hex), `${name} payload`);
      throwsWith(() => sdk.decode(want.subarray(0, want.length - 1)), want.length > 16 ? 'truncated' : 'short_header', `${name} truncated`);
    }
  }],

  ['codec: random and truncated frames throw MsgtransError', async ({ sdk }) => {
    let seed = 12345;
    const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
    for (let i = 0; i < 2000; ++i) {
      const b = Uint8Array.from({ length: Math.floor(rand() * 40) }, () => Math.floor(rand() * 256));
      if (rand() < 0.5 && b.length >= 3) { b[0] = 1; b[1] = b[1] % 3; b[2] = b[2] % 3; }
      try { sdk.decode(b); } catch (e) { equal(e.name, 'MsgtransError', `frame ${i}`); }
    }
  }],

  ['request/response carries biz_type and the extension header', async ({ sdk, urls }) => {
    const c = await sdk.connect(urls.serve, fast);
    try {
      const r = await c.request('What time is it?', { bizType: 7, ext: 'trace:1', timeout: 2000 });
      equal(r.type, 'response', 'type');
      equal(r.text(), 'What time is it?', 'payload');
      equal(r.bizType, 7, 'bizType');
      equal(r.extText(), 'trace:1', 'ext');
      ok(r.payload instanceof Uint8Array, 'payload is a Uint8Array');
      const hp = await c.request(new Uint8Array([1, 2, 3]), { highPriority: true });
      equal(hp.flags & sdk.Flags.HIGH_PRIORITY, sdk.Flags.HIGH_PRIORITY, 'high-priority flag echoed');
    } finally { await c.close(); }
  }],

  ['1 MiB messages both ways', async ({ sdk, urls }) => {
    const c = await sdk.connect(urls.serve, fast);
    try {
      const big = Uint8Array.from({ length: 1 << 20 }, (_, i) => (i * 7) & 0xff);
      for (let i = 0; i < 3; ++i) bytesEqual((await c.request(big)).payload, big, `1 MiB echo ${i}`);
    } finally { await c.close(); }
  }],

  ['1,000 requests in flight, each matched to its own response', async ({ sdk, urls }) => {
    const c = await sdk.connect(urls.serve, fast);
    try {
      const replies = await Promise.all(Array.from({ length: 1000 }, (_, i) => c.request(`n${i}`)));
      replies.forEach((r, i) => equal(r.text(), `n${i}`, `reply ${i}`));
    } finally { await c.close(); }
  }],

  ['server push arrives as message events and through messages()', async ({ sdk, urls }) => {
    const c = await sdk.connect(urls.peer, fast);
    try {
      const seen = [];
      c.on('message', (m) => seen.push(m.text()));
      const it = c.messages();
      const r = await c.request('5', { bizType: PEER.push });
      equal(r.text(), 'pushed 5', 'response');
      equal(seen.join(','), 'push 0,push 1,push 2,push 3,push 4', 'pushes before the response, in order');
      const streamed = [];
      for await (const m of it) {
        streamed.push(m.text());
        equal(m.type, 'oneway', 'pushed type');
        equal(m.bizType, PEER.push, 'pushed bizType');
        if (streamed.length === 5) break;
      }
      equal(streamed.join(','), seen.join(','), 'messages() saw the same');
      c.send('one-way echo', { bizType: 3 });
      const m = await nextEvent(c, 'message');
      equal(m.text(), 'one-way echo', 'one-way echoed');
      equal(m.bizType, 3, 'one-way bizType');
    } finally { await c.close(); }
  }],

  ['a server-to-client request is answered by onRequest (a Promise) or respond()', async ({ sdk, urls }) => {
    const c = await sdk.connect(urls.peer, fast);
    try {
      c.onRequest(async (req) => {
        equal(req.type, 'request', 'request type');
        await new Promise((r) => setTimeout(r, 10));
        return `answer to ${req.text()}`;
      });
      equal((await c.request('what is up?', { bizType: PEER.ask })).text(), 'client said: answer to what is up?', 'async handler');
      c.onRequest((req) => ({ payload: req.payload, bizType: 9 }));
      equal((await c.request('sync', { bizType: PEER.ask })).text(), 'client said: sync', 'sync handler');
      c.onRequest(undefined);
      c.on('message', (m) => { if (m.type === 'request') m.respond(`late ${m.text()}`); });
      equal((await c.request('q', { bizType: PEER.ask })).text(), 'client said: late q', 'respond() on the message');
    } finally { await c.close(); }
  }],

  ['compression both ways: zlib, zstd, autoCompress', async (ctx) => {
    const { sdk, urls } = ctx;
    const c = await sdk.connect(urls.serve, { reconnect: false, codecs: ctx.codecs });
    try {
      const text = 'compress me '.repeat(20000);
      for (const alg of algorithms(ctx)) {
        const r = await c.request(text, { compress: alg });
        equal(r.compression, alg, `${alg}: the server answered compressed`);
        equal(r.text(), text, `${alg}: round trip`);
      }
    } finally { await c.close(); }
    const a = await sdk.connect(urls.serve, { reconnect: false, autoCompress: 'zlib', autoCompressMin: 1000 });
    try {
      equal((await a.request('x'.repeat(999))).compression, 'none', 'under autoCompressMin: plain');
      equal((await a.request('x'.repeat(1000))).compression, 'zlib', 'at autoCompressMin: compressed');
      equal((await a.request('x'.repeat(5000), { compress: false })).compression, 'none', 'compress: false overrides');
    } finally { await a.close(); }
  }],

  ['a payload that inflates past maxMessageSize is refused', async (ctx) => {
    const { sdk, urls } = ctx;
    for (const alg of algorithms(ctx)) {
      const c = await sdk.connect(urls.peer, { reconnect: false, maxMessageSize: 10000, codecs: ctx.codecs });
      const errored = nextEvent(c, 'error');
      const closed = nextEvent(c, 'closed');
      equal((await c.request('9000', { bizType: PEER.inflate, ext: alg })).payload.length, 9000, `${alg}: under the limit`);
      await rejectsWith(c.request('100000', { bizType: PEER.inflate, ext: alg }), 'connection_closed', `${alg}: request fails`);
      equal((await errored).code, 'decompressed_too_large', `${alg}: error event`);
      ok((await closed).error, `${alg}: closed with an error`);
      equal(c.connected, false, `${alg}: disconnected`);
    }
  }],

  ['reconnect after a server restart: pending requests fail, then it comes back', async ({ sdk, urls, restartPeer }) => {
    const c = await sdk.connect(urls.peer, { reconnect: { initialDelay: 50, maxDelay: 200, maxAttempts: 100 } });
    try {
      equal((await c.request('before')).text(), 'before', 'first connection works');
      const failed = rejectsWith(c.request('never answered', { bizType: PEER.hang, timeout: 30000 }),
                                 'connection_closed', 'pending request');
      const closed = nextEvent(c, 'closed', 10000);
      const connected = nextEvent(c, 'connected', 20000);
      await restartPeer();
      await failed;
      const why = await closed;
      equal(why.reconnecting, true, 'closed says it reconnects');
      await connected;
      equal(c.connected, true, 'connected again');
      equal((await c.request('after')).text(), 'after', 'the new connection works');
    } finally { await c.close(); }
  }],

  ['close() flushes what send() accepted', async ({ sdk, urls }) => {
    const key = `flush-${Math.random()}`;
    const c = await sdk.connect(urls.peer, { reconnect: false, highWater: 64 << 20 });
    const chunk = new Uint8Array(1024).fill(7);
    for (let i = 0; i < 2000; ++i) c.send(chunk, { bizType: PEER.count, ext: key });
    await c.close();
    equal(c.connected, false, 'closed');
    throwsWith(() => c.send('after close'), 'not_connected', 'send after close');
    const probe = await sdk.connect(urls.peer, fast);
    try {
      equal(await until(async () => (await counted(probe, key)) === 2000, 5000, 'all 2000 arrived'), true, 'count');
    } finally { await probe.close(); }
  }],

  ['a request times out; an aborted one is cancelled', async ({ sdk, urls }) => {
    const c = await sdk.connect(urls.peer, { reconnect: false, timeout: 300 });
    try {
      const t0 = Date.now();
      await rejectsWith(c.request('x', { bizType: PEER.hang, timeout: 200 }), 'timeout', 'per-request timeout');
      ok(Date.now() - t0 >= 190, 'not before its time');
      await rejectsWith(c.request('x', { bizType: PEER.hang }), 'timeout', 'the connection default timeout');
      const ac = new AbortController();
      const aborted = rejectsWith(c.request('x', { bizType: PEER.hang, signal: ac.signal }), 'cancelled', 'aborted');
      ac.abort();
      await aborted;
      await rejectsWith(c.request('x', { signal: ac.signal }), 'cancelled', 'already aborted');
      for (const timeout of [0, Infinity]) {  // no timeout at all: only the abort ends them
        const untimed = new AbortController();
        const t1 = Date.now();
        const ended = rejectsWith(c.request('x', { bizType: PEER.hang, timeout, signal: untimed.signal }), 'cancelled', `timeout ${timeout}`);
        setTimeout(() => untimed.abort(), 400);  // past the connection's 300 ms default
        await ended;
        ok(Date.now() - t1 >= 390, `timeout ${timeout} is no timeout`);
      }
      equal((await c.request('still fine')).text(), 'still fine', 'the connection carries on');
    } finally { await c.close(); }
  }],

  ['a too-large message: refused locally, and the server closes for it', async ({ sdk, urls }) => {
    const small = await sdk.connect(urls.serve, { reconnect: false, maxMessageSize: 1000, maxExtHeader: 100 });
    try {
      throwsWith(() => small.send(new Uint8Array(1000)), 'message_too_large', 'send over maxMessageSize');
      await rejectsWith(small.request(new Uint8Array(2000)), 'message_too_large', 'request over maxMessageSize');
      equal((await small.request(new Uint8Array(984))).payload.length, 984, 'at the limit');
      throwsWith(() => small.send('x', { ext: new Uint8Array(101) }), 'ext_header_too_large', 'ext over maxExtHeader');
      equal((await small.request('x', { ext: new Uint8Array(100) })).ext.length, 100, 'ext at maxExtHeader');
      throwsWith(() => small.send('x', { bizType: 256 }), 'invalid_argument', 'bizType over 255');
    } finally { await small.close(); }
    const c = await sdk.connect(urls.peer, fast);  // the peer's limit is 256 KiB
    const closed = nextEvent(c, 'closed');
    await rejectsWith(c.request(new Uint8Array(300 * 1024)), 'connection_closed', 'request over the server limit');
    const why = await closed;
    equal(why.reconnecting, false, 'no reconnect asked for');
    if (urls.peer.startsWith('ws')) equal(why.code, 1009, 'WebSocket close code 1009 (too big)');
  }],

  ['a server that closes with a WebSocket close code: code and reason in the closed event', async ({ sdk, urls }) => {
    const c = await sdk.connect(urls.peer, fast);
    const closed = nextEvent(c, 'closed');
    c.send('bye now', { bizType: PEER.close });
    const why = await closed;
    if (urls.peer.startsWith('ws')) {
      equal(why.code, 1000, 'close code');
      equal(why.reason, 'bye now', 'close reason');
    }
    equal(why.reconnecting, false, 'reconnecting');
    equal(c.connected, false, 'disconnected');
    throwsWith(() => c.send('x'), 'not_connected', 'send after the close');
  }],

  ['back-pressure: send refuses with queue_full past highWater', async ({ sdk, urls }) => {
    const c = await sdk.connect(urls.serve, { reconnect: false, highWater: 1 << 20 });  // echoes, so the peer's writes back up
    try {
      const chunk = new Uint8Array(200 * 1024);
      let refused;
      for (let i = 0; i < 500 && !refused; ++i) {
        try { c.send(chunk); } catch (e) { refused = e; }
      }
      ok(refused, 'refused before 100 MB were buffered');
      equal(refused.code, 'queue_full', 'code');
      ok(c.bufferedAmount > 0, 'bytes are buffered');
      equal((await c.request('after the pressure', { timeout: 10000 })).text(), 'after the pressure', 'the connection carries on');
    } finally { await c.close(); }
  }],

  ['heartbeats are sent when idle, and received ones are swallowed', async ({ sdk, urls }) => {
    const hb = await sdk.connect(urls.peer, { reconnect: false, heartbeat: { bizType: PEER.count, interval: 50 } });
    const probe = await sdk.connect(urls.peer, fast);
    try {
      const before = await counted(probe, '');
      await until(async () => (await counted(probe, '')) >= before + 3, 5000, 'three heartbeats');
    } finally { await hb.close(); }
    const sw = await sdk.connect(urls.peer, { reconnect: false, heartbeat: { bizType: PEER.push, interval: 60000 } });
    try {
      let seen = 0;
      sw.on('message', () => ++seen);
      equal((await sw.request('3', { bizType: PEER.push })).text(), 'pushed 3', 'response still arrives');
      sw.send('not a heartbeat', { bizType: 1 });
      await nextEvent(sw, 'message');
      equal(seen, 1, 'the three heartbeat-typed pushes were swallowed');
    } finally { await sw.close(); await probe.close(); }
  }],

  ['connect gives up after reconnect.maxAttempts with a MsgtransError', async ({ sdk, urls }) => {
    const t0 = Date.now();
    await rejectsWith(sdk.connect(urls.closed, { reconnect: { maxAttempts: 3, initialDelay: 100, jitter: 0 } }), 'not_connected', 'refused');
    ok(Date.now() - t0 >= 300, `three attempts, 100 + 200 ms apart (${Date.now() - t0} ms)`);
    await rejectsWith(sdk.connect(urls.closed, fast), 'not_connected', 'one attempt');
  }],

  ['bad URLs are refused with address_error; a token to a server that does not check them', async ({ sdk, urls, runtime }) => {
    await rejectsWith(sdk.connect('gopher://127.0.0.1:1/', fast), 'address_error', 'unknown scheme');
    if (runtime === 'browser') await rejectsWith(sdk.connect('tcp://127.0.0.1:1', fast), 'address_error', 'tcp:// in a browser');
    else await rejectsWith(sdk.connect('tcp://127.0.0.1', fast), 'address_error', 'no port');
    await rejectsWith(sdk.connect('not a url', fast), 'address_error', 'not a URL');
    if (urls.serve.startsWith('ws')) {  // a WebSocket upgrade's token is ignored by a server without authentication
      const c = await sdk.connect(urls.serve, { reconnect: false, token: 'secret token' });
      try {
        equal((await c.request('with a token')).text(), 'with a token', 'request');
      } finally { await c.close(); }
    } else {  // the echo service echoes the authentication request: not an answer
      await rejectsWith(sdk.connect(urls.serve, { reconnect: false, token: 'secret token' }), 'protocol_error', 'tcp echo');
    }
  }],

  ['a token is sent the documented way and accepted; without one the server refuses', async ({ sdk, urls, runtime }) => {
    // browsers: the token query parameter; Node: a bearer header (ws) or the first packet (tcp)
    const c = await sdk.connect(urls.auth, { reconnect: false, token: urls.token });
    try {
      equal((await c.request('with credentials')).text(), 'with credentials', 'accepted');
    } finally { await c.close(); }
    if (urls.auth.startsWith('tcp')) {
      const bare = await sdk.connect(urls.auth, fast);
      await rejectsWith(bare.request('x'), 'unauthenticated', 'tcp without a token');
    } else {
      // A browser is not told the HTTP status of a refused upgrade.
      await rejectsWith(sdk.connect(urls.auth, fast), runtime === 'browser' ? 'not_connected' : 'unauthenticated', 'ws without a token');
    }
    await rejectsWith(sdk.connect(urls.auth, { reconnect: false, token: urls.token + 'x' }),
                      runtime === 'browser' ? 'not_connected' : 'unauthenticated', 'a forged token');
  }],

  ['messages() ends when the client closes', async ({ sdk, urls }) => {
    const c = await sdk.connect(urls.serve, fast);
    const it = c.messages();
    const done = it.next();
    await c.close();
    equal((await done).done, true, 'the iterator ended');
    throwsWith(() => c.send('x'), 'not_connected', 'send after close');
  }],
];
