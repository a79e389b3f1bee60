// zlib (RFC 1950, the "deflate" format of the Compression Streams API) in browsers.
// zstd has no browser API: pass a codec in options.codecs.zstd (see README).
import { MsgtransError } from './errors.js';
import type { Codecs, CompressionCodec } from './transport.js';

async function collect(readable: ReadableStream<Uint8Array>, maxSize: number): Promise<Uint8Array> {
  const reader = readable.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > maxSize) {
      await reader.cancel().catch(() => {});
      throw new MsgtransError('decompressed_too_large', `the payload inflates past maxMessageSize (${maxSize})`);
    }
    chunks.push(value);
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) { out.set(c, off); off += c.length; }
  return out;
}

async function run(stream: CompressionStream | DecompressionStream, data: Uint8Array, maxSize: number): Promise<Uint8Array> {
  const writer = stream.writable.getWriter();
  writer.write(data as Uint8Array<ArrayBuffer>).catch(() => {});
  writer.close().catch(() => {});
  return collect(stream.readable, maxSize);
}

export const browserZlib: CompressionCodec = {
  compress: (data) => run(new CompressionStream('deflate'), data, Infinity),
  decompress: async (data, maxSize) => {
    try {
      return await run(new DecompressionStream('deflate'), data, maxSize);
    } catch (e) {
      if (e instanceof MsgtransError) throw e;
      throw new MsgtransError('decompress_failed', `not valid zlib data: ${String(e)}`, { cause: e });
    }
  },
};

export const browserCodecs: Codecs = typeof CompressionStream === 'function' ? { zlib: browserZlib } : {};
