// zlib through node:zlib; zstd through @bokuweb/zstd-wasm (Node 20 has no zstd of its own),
// loaded on first use.
import { deflateSync, inflateSync } from 'node:zlib';
import { MsgtransError } from './errors.js';
import type { Codecs, CompressionCodec } from './transport.js';
import { zstdCodec, type ZstdModule } from './zstd_codec.js';

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

interface ZstdWasm extends ZstdModule {
  init(path?: string): Promise<void>;
}

let zstd: CompressionCodec | undefined;
let loading: Promise<CompressionCodec> | undefined;

function loadZstd(): Promise<CompressionCodec> {
  loading ??= import('@bokuweb/zstd-wasm').then(async (m) => {
    const z = ((m as { default?: ZstdWasm }).default ?? m) as ZstdWasm;
    await z.init();
    zstd = zstdCodec(z);
    return zstd;
  });
  return loading;
}

export const nodeZstd: CompressionCodec = {
  compress: (data) => (zstd ? zstd.compress(data) : loadZstd().then((z) => z.compress(data))),
  decompress: (data, maxSize) => (zstd ? zstd.decompress(data, maxSize) : loadZstd().then((z) => z.decompress(data, maxSize))),
};

export const nodeCodecs: Codecs = { zlib: nodeZlib, zstd: nodeZstd };
