// zlib through node:zlib; zstd through @bokuweb/zstd-wasm (Node 20 has no zstd of its own),
// loaded on first use.
import { deflateSync, inflateSync } from 'node:zlib';
import { MsgtransError } from './errors.js';
import type { Codecs, CompressionCodec } from './transport.js';
import { zstdContentSize } from './zstd_frame.js';

export const nodeZlib: CompressionCodec = {
  compress: (data) => deflateSync(data),
  decompress: (data, maxSize) => {
    try {
      return inflateSync(data, { maxOutputLength: Math.max(1, maxSize) });
    } catch (e) {
      if ((e as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') {
        throw new MsgtransError('decompressed_too_large', `the payload inflates past maxMessageSize (${maxSize})`);
      }
      throw new MsgtransError('decompress_failed', `not valid zlib data: ${String(e)}`, { cause: e });
    }
  },
};

interface ZstdWasm {
  init(path?: string): Promise<void>;
  compress(buf: Uint8Array, level?: number): Uint8Array;
  decompress(buf: Uint8Array, opts?: { defaultHeapSize: number }): Uint8Array;
}

let zstd: ZstdWasm | undefined;
let loading: Promise<ZstdWasm> | undefined;

function loadZstd(): Promise<ZstdWasm> {
  loading ??= import('@bokuweb/zstd-wasm').then(async (m) => {
    const z = ((m as { default?: ZstdWasm }).default ?? m) as ZstdWasm;
    await z.init();
    zstd = z;
    return z;
  });
  return loading;
}

function zstdDecompress(z: ZstdWasm, data: Uint8Array, maxSize: number): Uint8Array {
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

export const nodeZstd: CompressionCodec = {
  compress: (data) => (zstd ? zstd.compress(data, 3) : loadZstd().then((z) => z.compress(data, 3))),
  decompress: (data, maxSize) => (zstd ? zstdDecompress(zstd, data, maxSize) : loadZstd().then((z) => zstdDecompress(z, data, maxSize))),
};

export const nodeCodecs: Codecs = { zlib: nodeZlib, zstd: nodeZstd };
