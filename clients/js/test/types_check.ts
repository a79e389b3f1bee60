// Type-checked, never run (js_client_typecheck: tsc --noEmit): the API of issue 18 and
// the README, written as a user would, against the published types (dist/index.d.ts).
import { connect, decode, encode, MsgtransError, type ClosedEvent, type Message } from '@msgtrans/client';

export async function tour(signal: AbortSignal): Promise<void> {
  const token = 'secret';
  const c = await connect('ws://127.0.0.1:8002/ws', {
    token, timeout: 10_000, reconnect: { maxAttempts: Infinity, initialDelay: 100, maxDelay: 10_000, jitter: 0.2 },
    heartbeat: { bizType: 255, interval: 30_000 }, highWater: 4 << 20,
  });
  const reply: Message = await c.request('What time is it?', { timeout: 2000, bizType: 7, ext: 'trace:1', signal });
  const p: Uint8Array = reply.payload;
  const t: string = reply.text();
  const b: number = reply.bizType;
  const e: Uint8Array = reply.ext;
  void [p, t, b, e];
  c.send(new Uint8Array([1, 2, 3]), { bizType: 3, highPriority: true });
  c.on('message', (m: Message) => { void m; });
  c.on('connected', () => {});
  c.on('closed', (why: ClosedEvent) => { const n: number = why.code; const r: string = why.reason; void [n, r]; });
  c.on('error', (err: MsgtransError) => { const code: string = err.code; void code; });
  c.onRequest((req) => 'answer');
  c.onRequest(async (req) => ({ payload: req.payload, bizType: 9 }));
  for await (const m of c.messages()) { void m.text(); break; }
  await c.close();
  const bytes: Uint8Array = encode({ type: 'request', messageId: 9, bizType: 7, ext: 'trace:1', payload: 'hi', flags: 0 });
  const d = decode(bytes);
  const fields: [string, number, number, number, Uint8Array, Uint8Array] = [d.type, d.messageId, d.bizType, d.flags, d.ext, d.payload];
  void fields;
  await connect('tcp://127.0.0.1:8001', { reconnect: false, autoCompress: 'zstd', autoCompressMin: 1024 });
  await connect('tls://example.test:8443', { tlsCa: '-----BEGIN CERTIFICATE-----', tlsServerName: 'example.test' });
  try {
    c.send('x');
  } catch (err) {
    if (err instanceof MsgtransError && err.code === 'queue_full') { /* slow down */ }
  }
  // @ts-expect-error: bizType is a number
  c.send('x', { bizType: '3' });
}
