import { DEFAULT_MAX_EXT_HEADER, DEFAULT_MAX_MESSAGE_SIZE } from './codec.js';
import { MsgtransError } from './errors.js';
import type { Codecs } from './transport.js';

export interface ReconnectOptions {
  /** connection attempts in a row before giving up (the first connect and each reconnect); default 10 */
  maxAttempts?: number;
  /** delay before the second attempt, ms; default 100 */
  initialDelay?: number;
  /** the delay's ceiling, ms; default 10 000 */
  maxDelay?: number;
  /** growth of the delay per attempt; default 2 */
  multiplier?: number;
  /** each delay is moved at random by up to this fraction of itself; default 0.2 */
  jitter?: number;
}

export interface HeartbeatOptions {
  /** the biz_type both sides agree on; received one-way packets with it are swallowed */
  bizType: number;
  /** a heartbeat is sent after this much silence on the way out, ms; default 30 000 */
  interval?: number;
}

export interface ConnectOptions {
  /**
   * Credentials (a JWT for `msgtrans serve --jwt-...`), sent as docs/wire-format.md says:
   * on WebSocket in the upgrade (browsers: the `token` query parameter, as their WebSocket
   * cannot set headers; Node: `Authorization: Bearer`), on tcp:// and tls:// as the first
   * packet, whose answer `connect` waits for. A refusal is `unauthenticated`, not retried.
   */
  token?: string;
  /** default timeout of request(), ms; default 10 000 */
  timeout?: number;
  /** bound on one connection attempt (TCP connect, TLS and WebSocket handshakes), ms; default 10 000 */
  connectTimeout?: number;
  /** bound on close(): flushing, then the close handshake, ms; default 5 000 */
  closeTimeout?: number;
  /** retry policy; `false`: one attempt, and no reconnection after a drop */
  reconnect?: ReconnectOptions | false;
  heartbeat?: HeartbeatOptions;
  /** send() and request() refuse with queue_full past this many buffered outgoing bytes; default 4 MiB */
  highWater?: number;
  /** largest packet sent or accepted (also caps decompression); default 16 MiB */
  maxMessageSize?: number;
  /** largest extension header sent or accepted; default 4 KiB */
  maxExtHeader?: number;
  /** compress payloads of at least `autoCompressMin` bytes with this algorithm */
  autoCompress?: 'zstd' | 'zlib';
  /** default 1024 */
  autoCompressMin?: number;
  /** replaces or adds compression codecs (e.g. zstd in a browser) */
  codecs?: Codecs;
  /** tls:// and wss:// in Node: PEM CA certificates to trust instead of the system's */
  tlsCa?: string | Uint8Array;
  /** tls:// and wss:// in Node: the name to send (SNI) and verify; default the URL's host */
  tlsServerName?: string;
  /** tls:// and wss:// in Node: accept any certificate. Insecure: for tests only */
  tlsInsecureSkipVerify?: boolean;
  /** ws:// and wss:// in Node: extra HTTP headers of the upgrade request */
  headers?: Record<string, string>;
}

export interface ResolvedOptions {
  token: string | undefined;
  timeout: number;
  connectTimeout: number;
  closeTimeout: number;
  reconnect: Required<ReconnectOptions> & { enabled: boolean };
  heartbeat: Required<HeartbeatOptions> | undefined;
  highWater: number;
  maxMessageSize: number;
  maxExtHeader: number;
  autoCompress: 'zstd' | 'zlib' | undefined;
  autoCompressMin: number;
  codecs: Codecs;
  tlsCa: string | Uint8Array | undefined;
  tlsServerName: string | undefined;
  tlsInsecureSkipVerify: boolean;
  headers: Record<string, string>;
}

function num(name: string, v: number | undefined, dflt: number, min = 0): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || Number.isNaN(v) || v < min) {
    throw new MsgtransError('invalid_argument', `${name} must be a number >= ${min}, got ${String(v)}`);
  }
  return v;
}

export function resolveOptions(o: ConnectOptions = {}): ResolvedOptions {
  const r = o.reconnect === false ? undefined : (o.reconnect ?? {});
  const jitter = num('reconnect.jitter', r?.jitter, 0.2);
  if (jitter > 1) throw new MsgtransError('invalid_argument', `reconnect.jitter must be from 0 to 1, got ${jitter}`);
  if (o.autoCompress !== undefined && o.autoCompress !== 'zstd' && o.autoCompress !== 'zlib') {
    throw new MsgtransError('invalid_argument', `autoCompress must be 'zstd' or 'zlib', got ${String(o.autoCompress)}`);
  }
  if (o.heartbeat && (!Number.isInteger(o.heartbeat.bizType) || o.heartbeat.bizType < 0 || o.heartbeat.bizType > 255)) {
    throw new MsgtransError('invalid_argument', `heartbeat.bizType must be 0..255, got ${String(o.heartbeat.bizType)}`);
  }
  return {
    token: o.token,
    timeout: num('timeout', o.timeout, 10_000),
    connectTimeout: num('connectTimeout', o.connectTimeout, 10_000),
    closeTimeout: num('closeTimeout', o.closeTimeout, 5_000),
    reconnect: {
      enabled: r !== undefined,
      maxAttempts: r === undefined ? 1 : num('reconnect.maxAttempts', r.maxAttempts, 10, 1),
      initialDelay: num('reconnect.initialDelay', r?.initialDelay, 100),
      maxDelay: num('reconnect.maxDelay', r?.maxDelay, 10_000),
      multiplier: num('reconnect.multiplier', r?.multiplier, 2, 1),
      jitter,
    },
    heartbeat: o.heartbeat ? { bizType: o.heartbeat.bizType, interval: num('heartbeat.interval', o.heartbeat.interval, 30_000, 1) } : undefined,
    highWater: num('highWater', o.highWater, 4 << 20),
    maxMessageSize: num('maxMessageSize', o.maxMessageSize, DEFAULT_MAX_MESSAGE_SIZE, 16),
    maxExtHeader: num('maxExtHeader', o.maxExtHeader, DEFAULT_MAX_EXT_HEADER),
    autoCompress: o.autoCompress,
    autoCompressMin: num('autoCompressMin', o.autoCompressMin, 1024),
    codecs: o.codecs ?? {},
    tlsCa: o.tlsCa,
    tlsServerName: o.tlsServerName,
    tlsInsecureSkipVerify: o.tlsInsecureSkipVerify ?? false,
    headers: o.headers ?? {},
  };
}

/** The delay before attempt `n` (2, 3, ...), with jitter. */
export function backoffDelay(r: ResolvedOptions['reconnect'], n: number, random: () => number = Math.random): number {
  const base = Math.min(r.maxDelay, r.initialDelay * Math.pow(r.multiplier, Math.max(0, n - 2)));
  return Math.max(0, base * (1 + r.jitter * (2 * random() - 1)));
}

/** ws:// and wss:// URLs carry the token as a query parameter. */
export function withToken(url: URL, token: string | undefined): URL {
  if (token === undefined || (url.protocol !== 'ws:' && url.protocol !== 'wss:')) return url;
  const u = new URL(url.href);
  u.searchParams.set('token', token);
  return u;
}

/** The longest delay timers keep (a longer one would fire at once). */
const MAX_TIMER = 2 ** 31 - 1;

/**
 * A timer for a duration option: 0 means "off" (no timer), as every duration of msgtrans
 * does, and so does anything past what timers can hold (Infinity).
 */
export function timerFor(ms: number, f: () => void): ReturnType<typeof setTimeout> | undefined {
  return ms > 0 && ms <= MAX_TIMER ? setTimeout(f, ms) : undefined;
}
