// The codec alone (no server): the receiver rules, the stream framing, and a fuzz of
// the decoders (random, truncated and mutated frames throw MsgtransError, never hang).
// Also the pure helpers behind the options: backoff, token URL, zstd frame size.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decode, decodeHeader, encode, FrameDecoder, MsgtransError } from '@msgtrans/client';
import { backoffDelay, resolveOptions, withToken } from '../dist/options.js';
import { zstdContentSize } from '../dist/zstd_frame.js';
import { nodeZstd } from '../dist/compression_node.js';
import { loadFixtures } from './servers.mjs';

const fixtures = loadFixtures().map((f) => Buffer.from(f.bin, 'hex'));
const isCode = (code) => (e) => e instanceof MsgtransError && e.code === code;

let seed = 0x9e3779b9;
function rand() {  // xorshift32: reproducible
  seed ^= seed << 13; seed >>>= 0; seed ^= seed >>> 17; seed ^= seed << 5; seed >>>= 0;
  return seed / 2 ** 32;
}
const randomBytes = (n) => Uint8Array.from({ length: n }, () => Math.floor(rand() * 256));

test('every receiver rule has its code', () => {
  const good = encode({ type: 'request', messageId: 5, payload: 'hi' });
  const bad = (i, v) => { const b = Uint8Array.from(good); b[i] = v; return b; };
  assert.throws(() => decode(good.subarray(0, 15)), isCode('short_header'));
  assert.throws(() => decode(bad(0, 2)), isCode('bad_version'));
  assert.throws(() => decode(bad(1, 3)), isCode('bad_compression'));
  assert.throws(() => decode(bad(2, 3)), isCode('bad_packet_type'));
  assert.throws(() => decode(good.subarray(0, good.length - 1)), isCode('truncated'));
  assert.throws(() => decode(Uint8Array.of(...good, 0)), isCode('trailing_bytes'));
  // From the header alone: a declared 1 GiB body is refused before any of it exists.
  const huge = encode({ type: 'oneway', messageId: 1 }).subarray(0, 16);
  huge[10] = 0x40;
  assert.throws(() => decodeHeader(huge), isCode('message_too_large'));
  assert.throws(() => decodeHeader(good, { maxMessageSize: good.length - 1 }), isCode('message_too_large'));
  assert.equal(decodeHeader(good, { maxMessageSize: good.length }).totalLength, good.length);
  const ext = encode({ type: 'oneway', messageId: 1, ext: new Uint8Array(5000) });
  assert.throws(() => decode(ext), isCode('ext_header_too_large'));
  assert.equal(decode(ext, { maxExtHeader: 5000 }).ext.length, 5000);
  // Unknown flag bits are kept, never rejected.
  assert.equal(decode(encode({ type: 'oneway', messageId: 1, flags: 0xfff8 })).flags, 0xfff8);
  assert.throws(() => encode({ type: 'oneway', messageId: 2 ** 32 }), isCode('invalid_argument'));
  assert.throws(() => encode({ type: 'other', messageId: 1 }), isCode('invalid_argument'));
  assert.throws(() => encode({ type: 'oneway', messageId: 1, bizType: 256 }), isCode('invalid_argument'));
});

test('FrameDecoder cuts any chunking of a stream into the same packets', () => {
  const stream = Buffer.concat(fixtures);
  for (let round = 0; round < 200; ++round) {
    const d = new FrameDecoder();
    const out = [];
    for (let off = 0; off < stream.length;) {
      const n = 1 + Math.floor(rand() * 40);
      out.push(...d.push(stream.subarray(off, off + n)));
      off += n;
    }
    assert.equal(d.pending, 0);
    assert.deepEqual(out.map((p) => Buffer.from(p).toString('hex')), fixtures.map((f) => f.toString('hex')));
  }
});

test('FrameDecoder refuses an over-limit length from the header, before the body', () => {
  const d = new FrameDecoder({ maxMessageSize: 1024 });
  const h = encode({ type: 'oneway', messageId: 1, payload: new Uint8Array(2000) }).subarray(0, 16);
  assert.throws(() => d.push(h), isCode('message_too_large'));
});

test('fuzz: random, truncated and mutated frames throw MsgtransError or decode', () => {
  const deadline = Date.now() + 20000;
  let decoded = 0;
  let refused = 0;
  const check = (b) => {
    try {
      decode(b);
      ++decoded;
    } catch (e) {
      assert.ok(e instanceof MsgtransError, `not a MsgtransError: ${e}`);
      ++refused;
    }
  };
  for (let i = 0; i < 50000; ++i) check(randomBytes(Math.floor(rand() * 64)));
  for (const f of fixtures) for (let n = 0; n < f.length; ++n) {
    assert.throws(() => decode(f.subarray(0, n)), (e) => e instanceof MsgtransError);
  }
  for (let i = 0; i < 50000; ++i) {
    const b = Uint8Array.from(fixtures[i % fixtures.length]);
    for (let k = 0; k < 1 + Math.floor(rand() * 3); ++k) b[Math.floor(rand() * b.length)] = Math.floor(rand() * 256);
    check(b);
  }
  for (let i = 0; i < 2000; ++i) {
    const d = new FrameDecoder({ maxMessageSize: 4096 });
    try {
      for (let k = 0; k < 20; ++k) d.push(randomBytes(Math.floor(rand() * 100)));
    } catch (e) {
      assert.ok(e instanceof MsgtransError, `FrameDecoder: not a MsgtransError: ${e}`);
    }
  }
  assert.ok(Date.now() < deadline, 'the fuzz finished in time');
  assert.ok(decoded > 0 && refused > 0, `both outcomes seen (${decoded} decoded, ${refused} refused)`);
});

test('reconnect backoff: doubling, capped, jittered within bounds', () => {
  const r = resolveOptions({ reconnect: { initialDelay: 100, maxDelay: 1000, jitter: 0.2 } }).reconnect;
  assert.equal(backoffDelay(r, 2, () => 0.5), 100);
  assert.equal(backoffDelay(r, 3, () => 0.5), 200);
  assert.equal(backoffDelay(r, 6, () => 0.5), 1000);
  assert.equal(backoffDelay(r, 2, () => 0), 80);
  assert.equal(backoffDelay(r, 2, () => 1), 120);
  assert.equal(resolveOptions({ reconnect: false }).reconnect.maxAttempts, 1);
  assert.throws(() => resolveOptions({ reconnect: { jitter: 2 } }), isCode('invalid_argument'));
  assert.throws(() => resolveOptions({ highWater: -1 }), isCode('invalid_argument'));
});

test('the token goes in the query string of ws:// and wss:// URLs only', () => {
  assert.equal(withToken(new URL('ws://h:1/p?a=1'), 't k').href, 'ws://h:1/p?a=1&token=t+k');
  assert.equal(withToken(new URL('wss://h:1/p'), 'x').searchParams.get('token'), 'x');
  assert.equal(withToken(new URL('tcp://h:1'), 'x').href, 'tcp://h:1');
  assert.equal(withToken(new URL('ws://h:1/'), undefined).href, 'ws://h:1/');
});

test('zstd: the declared content size is read before decompressing', async () => {
  const data = new Uint8Array(100000);
  const z = await nodeZstd.compress(data);
  assert.equal(zstdContentSize(z), 100000);
  assert.equal(zstdContentSize(Uint8Array.of(1, 2, 3, 4, 5)), -1);
  assert.throws(() => nodeZstd.decompress(z, 99999), isCode('decompressed_too_large'));
  assert.equal((await nodeZstd.decompress(z, 100000)).length, 100000);
  assert.throws(() => nodeZstd.decompress(randomBytes(50), 1000), isCode('decompress_failed'));
});
