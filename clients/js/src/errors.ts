/**
 * Error codes, named like the C++ `msgtrans::errc` (include/msgtrans/error.hpp), so a
 * code means the same thing on both sides.
 */
export type ErrorCode =
  // packet decoding (the receiver rules of the wire format)
  | 'short_header'
  | 'bad_version'
  | 'bad_compression'
  | 'bad_packet_type'
  | 'truncated'
  | 'trailing_bytes'
  | 'ext_header_too_large'
  | 'message_too_large'
  | 'decompress_failed'
  | 'decompressed_too_large'
  // connections and requests
  | 'connection_closed'
  | 'not_connected'
  | 'timeout'
  | 'queue_full'
  | 'protocol_error'
  | 'limit_reached'
  | 'shutting_down'
  | 'invalid_argument'
  | 'tls_error'
  | 'address_error'
  | 'cancelled'
  | 'unauthenticated';

/** Every failure of this package: `err.code` says what, `err.message` says what to change. */
export class MsgtransError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message?: string, options?: { cause?: unknown }) {
    super(message ?? code, options);
    this.name = 'MsgtransError';
    this.code = code;
  }
}
