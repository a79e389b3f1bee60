// The client: one connection at a time, request/response matching, server push,
// server-to-client requests, compression, back-pressure, heartbeats, reconnection.
// Transport-neutral: the runtime (browser.ts, node.ts) gives it a dialer and codecs.
import { decode, encodeParts, Flags, HEADER_SIZE, toBytes, type Compression, type PacketType } from './codec.js';
import { MsgtransError } from './errors.js';
import { IncomingRequest, Message, MessageQueue, type Reply } from './message.js';
import { backoffDelay, resolveOptions, timerFor, type ConnectOptions, type ResolvedOptions } from './options.js';
import type { CloseInfo, CompressionCodec, Runtime, Transport } from './transport.js';

export interface SendOptions {
  bizType?: number;
  ext?: string | Uint8Array;
  /** sets the HIGH_PRIORITY flag (a scheduling hint for the peer) */
  highPriority?: boolean;
  /** the whole flags field (HIGH_PRIORITY is or-ed in) */
  flags?: number;
  /** compress the payload; `false` overrides autoCompress */
  compress?: 'zstd' | 'zlib' | false;
}

export interface RequestOptions extends SendOptions {
  /** ms; default the connection's `timeout` */
  timeout?: number;
  /** aborting rejects the request with `cancelled` */
  signal?: AbortSignal;
}

/** What the `closed` event carries. */
export interface ClosedEvent extends CloseInfo {
  /** true when the client is about to reconnect */
  reconnecting: boolean;
}

export interface ClientEvents {
  message: (m: Message) => void;
  connected: () => void;
  closed: (why: ClosedEvent) => void;
  error: (e: MsgtransError) => void;
}

export type RequestHandler = (req: Message) => Reply | Promise<Reply>;

type State = 'connecting' | 'open' | 'reconnecting' | 'closing' | 'closed';

interface Pending {
  resolve: (m: Message) => void;
  reject: (e: MsgtransError) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
  unlisten: (() => void) | undefined;
}

/** An outgoing packet waiting for its compression, kept in send order. */
interface Queued { bytes: Uint8Array | undefined; size: number }

const TYPE_CODE = { oneway: 0, request: 1, response: 2 } as const;

/** The extension header of the authentication packets (docs/wire-format.md, Authentication). */
const AUTH_EXT = new TextEncoder().encode('msgtrans.auth/1');
const isAuthExt = (ext: Uint8Array) => ext.length === AUTH_EXT.length && ext.every((b, i) => b === AUTH_EXT[i]);
const utf8 = new TextDecoder();

/** Intercepts a new connection's events while its credentials are checked. */
interface Handshake {
  packet(bytes: Uint8Array): void;
  closed(info: CloseInfo): void;
}

export class Client {
  private readonly opts: ResolvedOptions;
  private readonly url: URL;
  private transport: Transport | undefined;
  private state: State = 'connecting';
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly listeners: { [K in keyof ClientEvents]: Set<ClientEvents[K]> } =
    { message: new Set(), connected: new Set(), closed: new Set(), error: new Set() };
  private requestHandler: RequestHandler | undefined;
  private readonly queues = new Set<MessageQueue>();
  private outQueue: Queued[] = [];
  private outQueuedBytes = 0;
  private inChain: Promise<void> | undefined;
  private inPending = 0;
  private lastSent = 0;
  private heartbeatTimer: ReturnType<typeof setInterval> | undefined;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private closeWaiters: (() => void)[] = [];
  private drainWaiters: (() => void)[] = [];
  private generation = 0;
  private handshake: Handshake | undefined;
  private user: string | undefined;

  /** @internal use connect() */
  constructor(private readonly runtime: Runtime, url: string | URL, options: ConnectOptions = {}) {
    this.opts = resolveOptions(options);
    try {
      this.url = new URL(url);
    } catch {
      throw new MsgtransError('address_error', `not a URL: ${String(url)}`);
    }
  }

  /** The user id the server accepted the token for (tcp:// and tls://; a WebSocket upgrade does not say). */
  get userId(): string | undefined { return this.user; }
  /** true while a connection is up */
  get connected(): boolean { return this.state === 'open'; }
  /** bytes accepted by send() and not yet handed to the network */
  get bufferedAmount(): number { return this.outQueuedBytes + (this.transport?.bufferedAmount ?? 0); }

  on<K extends keyof ClientEvents>(event: K, f: ClientEvents[K]): this {
    this.listeners[event].add(f);
    return this;
  }
  off<K extends keyof ClientEvents>(event: K, f: ClientEvents[K]): this {
    this.listeners[event].delete(f);
    return this;
  }

  /** Answers the server's requests: return the reply (or a Promise of it). */
  onRequest(handler: RequestHandler | undefined): this {
    this.requestHandler = handler;
    return this;
  }

  /** The messages the server pushes, as a stream; it ends when the client closes for good. */
  messages(): AsyncIterableIterator<Message> {
    const q = new MessageQueue((done) => this.queues.delete(done));
    if (this.state === 'closed') q.end();
    else this.queues.add(q);
    return q;
  }

  /** Sends a one-way message. Throws MsgtransError (not_connected, queue_full, message_too_large). */
  send(payload: string | Uint8Array | ArrayBuffer, options: SendOptions = {}): void {
    this.sendPacket('oneway', this.allocateId(), payload, options);
  }

  /** Sends a request and resolves with its response. */
  request(payload: string | Uint8Array | ArrayBuffer, options: RequestOptions = {}): Promise<Message> {
    const signal = options.signal;
    if (signal?.aborted) return Promise.reject(new MsgtransError('cancelled', 'the request was aborted', { cause: signal.reason }));
    let id: number;
    try {
      id = this.allocateId();
      this.sendPacket('request', id, payload, options);
    } catch (e) {
      return Promise.reject(e);
    }
    const timeout = options.timeout ?? this.opts.timeout;
    return new Promise<Message>((resolve, reject) => {
      const timer = timerFor(timeout, () => {
        this.settle(id)?.reject(new MsgtransError('timeout', `no response within ${timeout} ms`));
      });
      let unlisten: (() => void) | undefined;
      if (signal) {
        const onAbort = () => this.settle(id)?.reject(new MsgtransError('cancelled', 'the request was aborted', { cause: signal.reason }));
        signal.addEventListener('abort', onAbort, { once: true });
        unlisten = () => signal.removeEventListener('abort', onAbort);
      }
      this.pending.set(id, { resolve, reject, timer, unlisten });
    });
  }

  /**
   * Closes for good: what send() accepted is sent first, then the connection closes
   * (bounded by closeTimeout). Pending requests fail with connection_closed.
   */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    const wasOpen = this.state === 'open';
    this.state = 'closing';
    if (this.reconnectTimer !== undefined) clearTimeout(this.reconnectTimer);
    const t = this.transport;
    if (!wasOpen || !t) {
      this.finish();
      return;
    }
    const done = new Promise<void>((resolve) => this.closeWaiters.push(resolve));
    const bound = timerFor(this.opts.closeTimeout, () => t.abort('close timed out'));
    await this.flushQueue();
    t.close(1000, 'client closed');
    await done;
    clearTimeout(bound);
  }

  // ---- connection life ----

  /** @internal first connection, with retries */
  async start(): Promise<void> {
    await this.attempt(1, false);
  }

  /**
   * Connection attempt `n` of a run. The first connection tries at once, then waits
   * initialDelay, 2x, 4x ...; after a drop the first attempt already waited initialDelay.
   */
  private async attempt(n: number, afterDrop: boolean): Promise<void> {
    const gen = ++this.generation;
    try {
      const t = await this.runtime.dial(this.url, this.opts, {
        onPacket: (b) => {
          if (gen !== this.generation) return;
          if (this.handshake) this.handshake.packet(b);
          else this.onPacket(b);
        },
        onClose: (info) => {
          if (gen !== this.generation) return;
          if (this.handshake) this.handshake.closed(info);
          else this.onTransportClosed(info);
        },
      });
      // WebSocket carries the token in its upgrade; streams send it as their first packet.
      if (this.opts.token !== undefined && (this.url.protocol === 'tcp:' || this.url.protocol === 'tls:')) {
        this.user = await this.authenticate(t, this.opts.token);
      }
      if (this.stopping()) {
        t.abort('client closed');
        this.finish();
        return;
      }
      this.transport = t;
      this.state = 'open';
      this.nextId = 1;
      this.lastSent = Date.now();
      this.startHeartbeat();
      this.emit('connected');
    } catch (e) {
      const err = e instanceof MsgtransError ? e : new MsgtransError('not_connected', String(e), { cause: e });
      const r = this.opts.reconnect;
      // The same credentials would be refused again: no retry.
      if (this.stopping() || n >= r.maxAttempts || err.code === 'unauthenticated') {
        if (this.state !== 'connecting') {
          this.finish();
          this.emit('error', new MsgtransError(err.code, `gave up reconnecting after ${n} attempts: ${err.message}`, { cause: err }));
        } else {
          this.finish();
        }
        throw err;
      }
      await new Promise<void>((resolve) => { this.reconnectTimer = setTimeout(resolve, backoffDelay(r, n + (afterDrop ? 2 : 1))); });
      if (this.stopping()) {
        this.finish();
        throw new MsgtransError('shutting_down', 'the client was closed while reconnecting');
      }
      return this.attempt(n + 1, afterDrop);
    }
  }

  /**
   * The authentication request (docs/wire-format.md): the token as the first packet, then
   * the server's answer: 1 and the user id, or 0 and the reason (then it closes).
   */
  private authenticate(t: Transport, token: string): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      const fail = (e: MsgtransError) => {
        this.handshake = undefined;
        clearTimeout(timer);
        ++this.generation;  // this transport's later events are not the client's business
        t.abort(e.message);
        reject(e);
      };
      const timer = timerFor(this.opts.connectTimeout, () =>
        fail(new MsgtransError('timeout', `no answer to the authentication request within ${this.opts.connectTimeout} ms`)));
      this.handshake = {
        packet: (bytes) => {
          let p;
          try {
            p = decode(bytes, this.opts);
          } catch (e) {
            return fail(e as MsgtransError);
          }
          if (p.type !== 'response' || !isAuthExt(p.ext) || p.compression !== 'none' || p.payload.length < 1 || p.payload[0]! > 1) {
            return fail(new MsgtransError('protocol_error', 'the server did not answer the authentication request (does it check tokens?)'));
          }
          const text = utf8.decode(p.payload.subarray(1));
          if (p.payload[0] !== 1) return fail(new MsgtransError('unauthenticated', `authentication rejected: ${text}`));
          this.handshake = undefined;
          clearTimeout(timer);
          resolve(text);
        },
        closed: (info) => {
          this.handshake = undefined;
          clearTimeout(timer);
          ++this.generation;
          reject(new MsgtransError('connection_closed', `the connection closed during authentication${info.reason ? ': ' + info.reason : ''}`));
        },
      };
      t.send(encodeParts(TYPE_CODE.request, 1, 0, 0, 0, AUTH_EXT, toBytes(token)));
    });
  }

  /** close() was called (a method, so that TypeScript does not narrow across awaits) */
  private stopping(): boolean { return this.state === 'closing' || this.state === 'closed'; }

  private onTransportClosed(info: CloseInfo): void {
    this.transport = undefined;
    this.stopHeartbeat();
    this.outQueue = [];
    this.outQueuedBytes = 0;
    this.failPending(new MsgtransError('connection_closed',
      `the connection closed${info.code ? ` (${info.code}${info.reason ? ' ' + info.reason : ''})` : info.reason ? ': ' + info.reason : ''}`));
    this.wakeDrainWaiters();
    const closing = this.state === 'closing';
    const reconnecting = !closing && this.state === 'open' && this.opts.reconnect.enabled;
    this.emit('closed', { ...info, reconnecting });
    if (reconnecting) {
      this.state = 'reconnecting';
      this.reconnectTimer = setTimeout(() => {
        this.attempt(1, true).catch(() => {});  // attempt() reports giving up as an 'error' event
      }, backoffDelay(this.opts.reconnect, 2));
    } else {
      this.finish();
    }
  }

  private finish(): void {
    this.state = 'closed';
    this.transport = undefined;
    this.stopHeartbeat();
    this.failPending(new MsgtransError('connection_closed', 'the client is closed'));
    for (const q of this.queues) q.end();
    this.queues.clear();
    for (const w of this.closeWaiters.splice(0)) w();
  }

  private failPending(e: MsgtransError): void {
    const all = [...this.pending.keys()];
    for (const id of all) this.settle(id)?.reject(e);
  }

  private settle(id: number): Pending | undefined {
    const p = this.pending.get(id);
    if (!p) return undefined;
    this.pending.delete(id);
    clearTimeout(p.timer);
    p.unlisten?.();
    return p;
  }

  private allocateId(): number {
    if (this.state !== 'open') throw new MsgtransError('not_connected', `not connected (${this.state})`);
    for (;;) {
      const id = this.nextId;
      this.nextId = id === 0xffffffff ? 1 : id + 1;
      if (!this.pending.has(id)) return id;
    }
  }

  // ---- sending ----

  private sendPacket(type: PacketType, id: number, payload: string | Uint8Array | ArrayBuffer, o: SendOptions | Exclude<Reply, string | Uint8Array | ArrayBuffer | void | undefined>): void {
    const t = this.transport;
    if (this.state !== 'open' || !t) throw new MsgtransError('not_connected', `not connected (${this.state})`);
    const body = toBytes(payload);
    const ext = toBytes(o.ext);
    const size = HEADER_SIZE + ext.length + body.length;
    if (size > this.opts.maxMessageSize) {
      throw new MsgtransError('message_too_large', `a packet of ${size} bytes is over maxMessageSize (${this.opts.maxMessageSize})`);
    }
    if (t.bufferedAmount + this.outQueuedBytes + size > this.opts.highWater) {
      throw new MsgtransError('queue_full', `${t.bufferedAmount + this.outQueuedBytes} bytes are buffered; highWater is ${this.opts.highWater}`);
    }
    const flags = ((o.flags ?? 0) | (o.highPriority ? Flags.HIGH_PRIORITY : 0)) & 0xffff;
    const bizType = o.bizType ?? 0;
    if (!Number.isInteger(bizType) || bizType < 0 || bizType > 255) {
      throw new MsgtransError('invalid_argument', `bizType must be an integer from 0 to 255, got ${String(bizType)}`);
    }
    if (ext.length > this.opts.maxExtHeader || ext.length > 0xffff) {
      throw new MsgtransError('ext_header_too_large', `an extension header of ${ext.length} bytes is over maxExtHeader (${this.opts.maxExtHeader})`);
    }
    const algorithm = o.compress === false ? undefined
      : o.compress ?? (this.opts.autoCompress && body.length >= this.opts.autoCompressMin ? this.opts.autoCompress : undefined);
    const typeCode = TYPE_CODE[type];
    if (!algorithm) {
      this.write(encodeParts(typeCode, id, bizType, flags, 0, ext, body), size);
      return;
    }
    const codec = this.codec(algorithm);
    let compressed: Uint8Array | Promise<Uint8Array>;
    try {
      compressed = codec.compress(body);
    } catch (e) {
      throw new MsgtransError('invalid_argument', `${algorithm} compression failed: ${String(e)}`, { cause: e });
    }
    const pack = (c: Uint8Array) => encodeParts(typeCode, id, bizType, flags, algorithm === 'zstd' ? 1 : 2, ext, c);
    if (!(compressed instanceof Promise)) {
      this.write(pack(compressed), size);
      return;
    }
    const entry: Queued = { bytes: undefined, size };
    this.outQueue.push(entry);
    this.outQueuedBytes += size;
    const gen = this.generation;
    compressed.then((c) => { entry.bytes = pack(c); },
      (e) => {
        entry.bytes = new Uint8Array(0);
        this.emit('error', new MsgtransError('invalid_argument', `${algorithm} compression failed: ${String(e)}`, { cause: e }));
      }).then(() => { if (gen === this.generation) this.pump(); });
  }

  private write(bytes: Uint8Array, size: number): void {
    if (this.outQueue.length > 0) {
      this.outQueue.push({ bytes, size });
      this.outQueuedBytes += size;
      return;
    }
    this.transport!.send(bytes);
    this.lastSent = Date.now();
  }

  private pump(): void {
    while (this.outQueue.length > 0 && this.outQueue[0]!.bytes !== undefined) {
      const e = this.outQueue.shift()!;
      this.outQueuedBytes -= e.size;
      if (e.bytes!.length > 0 && this.transport) {
        this.transport.send(e.bytes!);
        this.lastSent = Date.now();
      }
    }
    if (this.outQueue.length === 0) this.wakeDrainWaiters();
  }

  private flushQueue(): Promise<void> {
    if (this.outQueue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  private wakeDrainWaiters(): void {
    for (const w of this.drainWaiters.splice(0)) w();
  }

  private codec(algorithm: Compression): CompressionCodec {
    const c = algorithm === 'zstd' ? this.opts.codecs.zstd ?? this.runtime.codecs.zstd
      : algorithm === 'zlib' ? this.opts.codecs.zlib ?? this.runtime.codecs.zlib : undefined;
    if (!c) throw new MsgtransError('invalid_argument', `no ${algorithm} codec in this runtime: pass one in options.codecs`);
    return c;
  }

  private startHeartbeat(): void {
    const hb = this.opts.heartbeat;
    if (!hb) return;
    this.heartbeatTimer = setInterval(() => {
      if (this.state !== 'open' || Date.now() - this.lastSent < hb.interval) return;
      try {
        this.sendPacket('oneway', this.allocateId(), new Uint8Array(0), { bizType: hb.bizType });
      } catch { /* queue full: the traffic itself shows the link is alive */ }
    }, Math.max(1, Math.floor(hb.interval / 4)));
  }

  private stopHeartbeat(): void {
    if (this.heartbeatTimer !== undefined) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = undefined;
  }

  // ---- receiving ----

  private onPacket(bytes: Uint8Array): void {
    let p;
    try {
      p = decode(bytes, this.opts);
    } catch (e) {
      this.protocolError(e as MsgtransError);
      return;
    }
    const hb = this.opts.heartbeat;
    if (hb && p.type === 'oneway' && p.bizType === hb.bizType) return;
    const q = p;
    const make = (payload: Uint8Array) => q.type === 'request'
      ? new IncomingRequest(q.type, q.messageId, q.bizType, q.flags, q.compression, q.ext, payload)
      : new Message(q.type, q.messageId, q.bizType, q.flags, q.compression, q.ext, payload);
    if (p.compression === 'none' && this.inPending === 0) {
      this.dispatch(make(p.payload));
      return;
    }
    // Decompression may be asynchronous (browsers): later packets wait their turn.
    const gen = this.generation;
    let out: Uint8Array | Promise<Uint8Array>;
    try {
      out = p.compression === 'none' ? p.payload : this.codec(p.compression).decompress(p.payload, this.opts.maxMessageSize);
    } catch (e) {
      this.protocolError(asDecompressError(e));
      return;
    }
    if (!(out instanceof Promise) && this.inPending === 0) {
      this.dispatch(make(out));
      return;
    }
    ++this.inPending;
    const prev = this.inChain ?? Promise.resolve();
    this.inChain = Promise.all([prev, out]).then(([, payload]) => {
      if (gen === this.generation) this.dispatch(make(payload));
    }, (e) => {
      if (gen === this.generation) this.protocolError(asDecompressError(e));
    }).finally(() => { if (--this.inPending === 0) this.inChain = undefined; });
  }

  private protocolError(e: MsgtransError): void {
    this.emit('error', e);
    this.transport?.abort(`packet rejected: ${e.message}`);
  }

  private dispatch(m: Message): void {
    if (m.type === 'response') {
      const p = this.settle(m.messageId);  // a late response (after a timeout) is dropped
      // A server that wants credentials answers a first request with a refusal.
      if (p && isAuthExt(m.ext) && m.payload[0] === 0) {
        p.reject(new MsgtransError('unauthenticated', `authentication required: ${utf8.decode(m.payload.subarray(1))}`));
      } else {
        p?.resolve(m);
      }
      return;
    }
    if (m instanceof IncomingRequest) {
      const gen = this.generation;
      const respond = (reply: Reply) => {
        if (gen !== this.generation || this.state !== 'open') return;  // that connection is gone
        try {
          const r = typeof reply === 'object' && reply !== null && !(reply instanceof Uint8Array) && !(reply instanceof ArrayBuffer) ? reply : { payload: reply ?? undefined };
          this.sendPacket('response', m.messageId, r.payload ?? new Uint8Array(0), { ...r, bizType: r.bizType ?? m.bizType });
        } catch (e) {
          this.emit('error', e instanceof MsgtransError ? e : new MsgtransError('invalid_argument', String(e)));
        }
      };
      if (this.requestHandler) {
        const h = this.requestHandler;
        Promise.resolve().then(() => h(m)).then(respond, (e) => {
          this.emit('error', new MsgtransError('invalid_argument', `the request handler failed, request ${m.messageId} is not answered: ${String(e)}`, { cause: e }));
        });
        return;
      }
      m.responder = respond;
    }
    this.emit('message', m);
    for (const q of this.queues) q.push(m);
  }

  private emit<K extends keyof ClientEvents>(event: K, ...args: Parameters<ClientEvents[K]>): void {
    for (const f of [...this.listeners[event]]) {
      try {
        (f as (...a: Parameters<ClientEvents[K]>) => void)(...args);
      } catch (e) {
        if (event !== 'error') this.emit('error', new MsgtransError('invalid_argument', `a '${event}' listener threw: ${String(e)}`, { cause: e }));
      }
    }
  }
}

function asDecompressError(e: unknown): MsgtransError {
  return e instanceof MsgtransError ? e : new MsgtransError('decompress_failed', `decompression failed: ${String(e)}`, { cause: e });
}

/** Connects with a runtime's dialer and codecs; rejects with MsgtransError after reconnect.maxAttempts tries. */
export async function connectWith(runtime: Runtime, url: string | URL, options?: ConnectOptions): Promise<Client> {
  const c = new Client(runtime, url, options);
  await c.start();
  return c;
}
