// What both entries (browser, node) export besides connect().
export { encode, decode, decodeHeader, FrameDecoder, Flags, HEADER_SIZE, DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_MAX_EXT_HEADER } from './codec.js';
export type { Packet, PacketInit, PacketType, Compression, Header, Limits } from './codec.js';
export { MsgtransError, type ErrorCode } from './errors.js';
export { Message, IncomingRequest, type Reply } from './message.js';
export { Client, type SendOptions, type RequestOptions, type ClosedEvent, type ClientEvents, type RequestHandler } from './client.js';
export type { ConnectOptions, ReconnectOptions, HeartbeatOptions } from './options.js';
export type { CloseInfo, CompressionCodec, Codecs } from './transport.js';
export { zstdCodec, type ZstdModule } from './zstd_codec.js';
