// One load point for bench/js_client.sh, in Node: C connections, each keeping K requests
// of S bytes in flight against a msgtrans echo server, for D seconds after W of warm-up.
//   sdk: @msgtrans/client's request() (encoding, id allocation, matching, timers)
//   raw: bare npm ws sending one pre-encoded request packet again and again, counting
//        the replies in order (the floor: no codec, no request table)
// Prints one JSON line: messages_per_sec, p50_us, p99_us, messages.
//   node bench/js_client_bench.mjs sdk|raw URL C K S D W
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const [mode, url, c, k, s, d, w] = process.argv.slice(2);
const conns = Number(c), inflight = Number(k), size = Number(s), dur = Number(d) * 1000, warm = Number(w) * 1000;
const js = join(dirname(fileURLToPath(import.meta.url)), '..', 'clients', 'js');
const sdk = await import(join(js, 'dist', 'node.js'));
const WebSocket = createRequire(join(js, 'package.json'))('ws');
const payload = new Uint8Array(size).fill(0x61);

let measuring = false;
let stopped = false;
let count = 0;
const lat = [];
const record = (t0) => {
  if (!measuring) return;
  ++count;
  if (lat.length < 2_000_000) lat.push(performance.now() - t0);
};

async function sdkConnection() {
  const cl = await sdk.connect(url, { reconnect: false, timeout: 30_000 });
  const loop = async () => {
    while (!stopped) {
      const t0 = performance.now();
      await cl.request(payload);
      record(t0);
    }
  };
  return { done: Promise.all(Array.from({ length: inflight }, loop)), close: () => cl.close() };
}

async function rawConnection() {
  const packet = sdk.encode({ type: 'request', messageId: 1, payload });
  const ws = new WebSocket(url, { perMessageDeflate: false });
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  const sent = [];  // send times, in order: an echo answers in order
  let finish;
  const done = new Promise((r) => { finish = r; });
  ws.on('message', () => {
    record(sent.shift());
    if (stopped) {
      if (sent.length === 0) finish();
      return;
    }
    sent.push(performance.now());
    ws.send(packet);
  });
  for (let i = 0; i < inflight; ++i) {
    sent.push(performance.now());
    ws.send(packet);
  }
  return { done, close: () => new Promise((r) => { ws.once('close', r); ws.close(); }) };
}

const all = await Promise.all(Array.from({ length: conns }, () => (mode === 'sdk' ? sdkConnection() : rawConnection())));
await new Promise((r) => setTimeout(r, warm));
measuring = true;
const t0 = performance.now();
await new Promise((r) => setTimeout(r, dur));
measuring = false;
const elapsed = (performance.now() - t0) / 1000;
stopped = true;
await Promise.all(all.map((x) => x.done));
await Promise.all(all.map((x) => x.close()));
lat.sort((a, b) => a - b);
const q = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] * 1000 : 0);
console.log(JSON.stringify({ mode, connections: conns, inflight, size, messages: count,
  messages_per_sec: Math.round(count / elapsed), p50_us: Math.round(q(0.5)), p99_us: Math.round(q(0.99)) }));
