// A CompressionCodec over a zstd module with @bokuweb/zstd-wasm's simple API, in any
// runtime: Node loads that package itself; a browser app passes it in options.codecs
// (`codecs: { zstd: zstdCodec(await import('@bokuweb/zstd-wasm')) }` after its init()).
import { MsgtransError } from './errors.js';
import type { CompressionCodec } from './transport.js';
import { zstdContentSize } from './zstd_frame.js';

/** The part of @bokuweb/zstd-wasm (after `await init()`) that the codec uses. */
export interface ZstdModule {
  compress(buf: Uint8Array, level?: number): Uint8Array;
  decompress(buf: Uint8Array, opts?: { defaultHeapSize: number }): Uint8Array;
}

/** Wraps a zstd module: level 3, and the decompressed size checked against the limit first. */
export function zstdCodec(z: ZstdModule, level = 3): CompressionCodec {
  return {
    compress: (data) => z.compress(data, level),
    decompress: (data, maxSize) => zstdDecompress(z, data, maxSize),
  };
}

export function zstdDecompress(z: ZstdModule, data: Uint8Array, maxSize: number): Uint8Array {
  // The frame header says how big the output is: an over-limit payload is refused
  // before anything is inflated. A frame that does not say gets at most maxSize bytes.
  const declared = zstdContentSize(data);
  if (declared > maxSize) {
    throw new MsgtransError('decompressed_too_large', `the zstd frame declares ${declared} bytes, over maxMessageSize (${maxSize})`);
  }
  try {
    return z.decompress(data, { defaultHeapSize: maxSize });
  } catch (e) {
    throw new MsgtransError('decompress_failed', `not valid zstd data (or it inflates past maxMessageSize): ${String(e)}`, { cause: e });
  }
}
