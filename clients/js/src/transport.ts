// What the client needs from a connection, whatever carries it (browser WebSocket,
// npm ws, net, tls), and what a runtime (browser or Node) provides.
import type { MsgtransError } from './errors.js';
import type { ResolvedOptions } from './options.js';

/** How a connection ended: a WebSocket close code and reason, or 0 and what failed. */
export interface CloseInfo {
  /** the WebSocket close code (1000 normal, 1001 going away, 1009 too big, ...); 0 for TCP/TLS */
  code: number;
  reason: string;
  /** set when the connection failed rather than closed cleanly */
  error?: MsgtransError;
}

export interface TransportEvents {
  /** exactly one packet's bytes: a WebSocket message, or one packet cut from a stream */
  onPacket(bytes: Uint8Array): void;
  /** called exactly once, after which the transport is dead */
  onClose(info: CloseInfo): void;
}

export interface Transport {
  send(bytes: Uint8Array): void;
  /** bytes accepted by send() and not yet handed to the network */
  readonly bufferedAmount: number;
  /** a graceful close: what send() accepted goes first; onClose follows */
  close(code: number, reason: string): void;
  /** ends the connection at once; onClose follows */
  abort(reason: string): void;
}

/** Opens one connection; rejects with a MsgtransError. */
export type Dialer = (url: URL, options: ResolvedOptions, events: TransportEvents) => Promise<Transport>;

/** Compresses and decompresses one algorithm. Either may answer synchronously. */
export interface CompressionCodec {
  compress(data: Uint8Array): Uint8Array | Promise<Uint8Array>;
  /**
   * Decompresses, producing at most `maxSize` bytes: more is a MsgtransError
   * `decompressed_too_large`, bad input `decompress_failed`.
   */
  decompress(data: Uint8Array, maxSize: number): Uint8Array | Promise<Uint8Array>;
}

export interface Codecs {
  zstd?: CompressionCodec;
  zlib?: CompressionCodec;
}

export interface Runtime {
  dial: Dialer;
  codecs: Codecs;
}
