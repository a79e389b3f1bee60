// The msgtrans wire format, version 1 (docs/wire-format.md): a 16-byte big-endian
// header, the extension header, the payload. Pure functions, no I/O.
import { MsgtransError } from './errors.js';

export const HEADER_SIZE = 16;
export const VERSION = 1;

export type PacketType = 'oneway' | 'request' | 'response';
export type Compression = 'none' | 'zstd' | 'zlib';

/** Flag bits of the header's u16 flags field. Unknown bits are passed through untouched. */
export const Flags = {
  FRAGMENTED: 0x0001,
  HIGH_PRIORITY: 0x0002,
  HAS_ROUTE_TAG: 0x0004,
} as const;

const TYPES: readonly PacketType[] = ['oneway', 'request', 'response'];
const COMPRESSIONS: readonly Compression[] = ['none', 'zstd', 'zlib'];

/** A decoded packet. `payload` is as on the wire: still compressed if `compression` is not 'none'. */
export interface Packet {
  type: PacketType;
  messageId: number;
  bizType: number;
  flags: number;
  compression: Compression;
  ext: Uint8Array;
  payload: Uint8Array;
}

/** What `encode` takes; strings are sent as UTF-8. */
export interface PacketInit {
  type: PacketType | 0 | 1 | 2;
  messageId: number;
  bizType?: number;
  flags?: number;
  compression?: Compression | 0 | 1 | 2;
  ext?: string | Uint8Array;
  payload?: string | Uint8Array;
}

/** Receiver limits, checked from the header before any body byte is looked at. */
export interface Limits {
  /** largest packet (header + ext + payload) accepted; default 16 MiB */
  maxMessageSize?: number;
  /** largest extension header accepted; default 4 KiB */
  maxExtHeader?: number;
}

export const DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024;
export const DEFAULT_MAX_EXT_HEADER = 4096;

const utf8 = new TextEncoder();

const EMPTY = new Uint8Array(0);

export function toBytes(v: string | Uint8Array | ArrayBuffer | ArrayBufferView | undefined): Uint8Array {
  if (v === undefined) return EMPTY;
  if (typeof v === 'string') return utf8.encode(v);
  if (v instanceof Uint8Array) return v;
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  throw new MsgtransError('invalid_argument', `payload must be a string, Uint8Array or ArrayBuffer, got ${typeof v}`);
}

function typeCode(t: PacketInit['type']): number {
  const n = typeof t === 'number' ? t : TYPES.indexOf(t);
  if (n < 0 || n > 2) throw new MsgtransError('invalid_argument', `type must be oneway, request or response, got ${String(t)}`);
  return n;
}

function compressionCode(c: PacketInit['compression']): number {
  if (c === undefined) return 0;
  const n = typeof c === 'number' ? c : COMPRESSIONS.indexOf(c);
  if (n < 0 || n > 2) throw new MsgtransError('invalid_argument', `compression must be none, zstd or zlib, got ${String(c)}`);
  return n;
}

function checkInt(name: string, v: number, max: number): number {
  if (!Number.isInteger(v) || v < 0 || v > max) {
    throw new MsgtransError('invalid_argument', `${name} must be an integer from 0 to ${max}, got ${v}`);
  }
  return v;
}

/** Encodes one packet (the payload is written as given: compress it first if `compression` says so). */
export function encode(p: PacketInit): Uint8Array {
  const ext = toBytes(p.ext);
  const payload = toBytes(p.payload);
  if (ext.length > 0xffff) throw new MsgtransError('ext_header_too_large', `extension header of ${ext.length} bytes is over 65535`);
  if (payload.length > 0xffffffff) throw new MsgtransError('message_too_large', 'payload over 2^32-1 bytes');
  return encodeParts(typeCode(p.type), checkInt('messageId', p.messageId, 0xffffffff), checkInt('bizType', p.bizType ?? 0, 0xff),
    checkInt('flags', p.flags ?? 0, 0xffff), compressionCode(p.compression), ext, payload);
}

/** @internal encode() without the argument checks, for the client's send path */
export function encodeParts(type: number, id: number, bizType: number, flags: number, compression: number,
                            ext: Uint8Array, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(HEADER_SIZE + ext.length + payload.length);
  out[0] = VERSION;
  out[1] = compression;
  out[2] = type;
  out[3] = bizType;
  out[4] = id >>> 24; out[5] = (id >>> 16) & 0xff; out[6] = (id >>> 8) & 0xff; out[7] = id & 0xff;
  out[8] = ext.length >>> 8; out[9] = ext.length & 0xff;
  const n = payload.length;
  out[10] = n >>> 24; out[11] = (n >>> 16) & 0xff; out[12] = (n >>> 8) & 0xff; out[13] = n & 0xff;
  out[14] = flags >>> 8; out[15] = flags & 0xff;
  if (ext.length) out.set(ext, HEADER_SIZE);
  out.set(payload, HEADER_SIZE + ext.length);
  return out;
}

/** The header's fields and the packet's total length, every receiver rule checked. */
export interface Header {
  type: PacketType;
  compression: Compression;
  bizType: number;
  messageId: number;
  extLength: number;
  payloadLength: number;
  flags: number;
  /** 16 + extLength + payloadLength */
  totalLength: number;
}

/** Reads and checks a header (the first 16 bytes of `b`); the body need not be there yet. */
export function decodeHeader(b: Uint8Array, limits: Limits = {}): Header {
  if (b.length < HEADER_SIZE) throw new MsgtransError('short_header', `a packet needs 16 header bytes, got ${b.length}`);
  if (b[0] !== VERSION) throw new MsgtransError('bad_version', `version ${b[0]} (only 1 is known)`);
  const compression = COMPRESSIONS[b[1]!];
  if (compression === undefined) throw new MsgtransError('bad_compression', `compression ${b[1]} (0 none, 1 zstd, 2 zlib)`);
  const type = TYPES[b[2]!];
  if (type === undefined) throw new MsgtransError('bad_packet_type', `packet type ${b[2]} (0 one-way, 1 request, 2 response)`);
  const messageId = ((b[4]! << 24) | (b[5]! << 16) | (b[6]! << 8) | b[7]!) >>> 0;
  const extLength = (b[8]! << 8) | b[9]!;
  const payloadLength = ((b[10]! << 24) | (b[11]! << 16) | (b[12]! << 8) | b[13]!) >>> 0;
  const flags = (b[14]! << 8) | b[15]!;
  const maxExt = limits.maxExtHeader ?? DEFAULT_MAX_EXT_HEADER;
  if (extLength > maxExt) throw new MsgtransError('ext_header_too_large', `extension header of ${extLength} bytes is over the limit of ${maxExt}`);
  const totalLength = HEADER_SIZE + extLength + payloadLength;
  const maxMsg = limits.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE;
  if (totalLength > maxMsg) throw new MsgtransError('message_too_large', `packet of ${totalLength} bytes is over the limit of ${maxMsg} (maxMessageSize)`);
  return { type, compression, bizType: b[3]!, messageId, extLength, payloadLength, flags, totalLength };
}

/**
 * Decodes exactly one packet (a WebSocket message). Throws MsgtransError on any broken
 * rule, a short body (`truncated`) or bytes past the packet (`trailing_bytes`). The views
 * returned share `bytes`' memory.
 */
export function decode(bytes: Uint8Array | ArrayBuffer, limits: Limits = {}): Packet {
  const b = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  const h = decodeHeader(b, limits);
  if (b.length < h.totalLength) throw new MsgtransError('truncated', `the header declares ${h.totalLength} bytes, the message has ${b.length}`);
  if (b.length > h.totalLength) throw new MsgtransError('trailing_bytes', `${b.length - h.totalLength} bytes after the packet's ${h.totalLength}`);
  const extEnd = HEADER_SIZE + h.extLength;
  return {
    type: h.type,
    messageId: h.messageId,
    bizType: h.bizType,
    flags: h.flags,
    compression: h.compression,
    ext: b.subarray(HEADER_SIZE, extEnd),
    payload: b.subarray(extEnd, h.totalLength),
  };
}

/**
 * Cuts a byte stream (TCP, TLS) into packets: push chunks, get whole packets back. An
 * over-limit length is refused from the header, before its body is buffered.
 */
export class FrameDecoder {
  private chunks: Uint8Array[] = [];
  private buffered = 0;
  private need = 0;  // total length of the packet being gathered, 0 = header not read yet

  constructor(private readonly limits: Limits = {}) {}

  push(chunk: Uint8Array): Uint8Array[] {
    const out: Uint8Array[] = [];
    if (chunk.length === 0) return out;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    for (;;) {
      if (this.need === 0) {
        if (this.buffered < HEADER_SIZE) break;
        this.need = decodeHeader(this.peek(HEADER_SIZE), this.limits).totalLength;
      }
      if (this.buffered < this.need) break;
      out.push(this.take(this.need));
      this.need = 0;
    }
    return out;
  }

  /** Bytes of a partial packet still held. */
  get pending(): number { return this.buffered; }

  private peek(n: number): Uint8Array {
    const first = this.chunks[0]!;
    if (first.length >= n) return first.subarray(0, n);
    const merged = this.concat();
    return merged.subarray(0, n);
  }

  private concat(): Uint8Array {
    if (this.chunks.length === 1) return this.chunks[0]!;
    const all = new Uint8Array(this.buffered);
    let off = 0;
    for (const c of this.chunks) { all.set(c, off); off += c.length; }
    this.chunks = [all];
    return all;
  }

  private take(n: number): Uint8Array {
    const first = this.chunks[0]!;
    let packet: Uint8Array;
    if (first.length >= n) {
      packet = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      const all = this.concat();
      packet = all.subarray(0, n);
      this.chunks = all.length > n ? [all.subarray(n)] : [];
    }
    this.buffered -= n;
    return packet;
  }
}
