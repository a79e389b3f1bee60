import type { Compression, PacketType } from './codec.js';

const utf8 = new TextDecoder();

/** A received packet, decompressed. */
export class Message {
  constructor(
    readonly type: PacketType,
    readonly messageId: number,
    readonly bizType: number,
    readonly flags: number,
    /** how it travelled; `payload` is already decompressed */
    readonly compression: Compression,
    readonly ext: Uint8Array,
    readonly payload: Uint8Array,
  ) {}

  /** the payload as UTF-8 text */
  text(): string { return utf8.decode(this.payload); }
  /** the extension header as UTF-8 text */
  extText(): string { return utf8.decode(this.ext); }
}

/** What a request handler may return: a payload, or a payload with options. */
export type Reply =
  | string
  | Uint8Array
  | ArrayBuffer
  | void
  | undefined
  | { payload?: string | Uint8Array | ArrayBuffer; bizType?: number; ext?: string | Uint8Array; highPriority?: boolean; flags?: number; compress?: 'zstd' | 'zlib' };

/** A request from the server delivered as a message (when no onRequest handler is set). */
export class IncomingRequest extends Message {
  /** @internal */
  responder: ((reply: Reply) => void) | undefined;
  /** Answers the request, once. */
  respond(reply: Reply): void {
    const r = this.responder;
    this.responder = undefined;
    if (r) r(reply);
  }
}

/** The queue behind one messages() iterator. */
export class MessageQueue implements AsyncIterableIterator<Message> {
  private items: Message[] = [];
  private waiters: ((r: IteratorResult<Message>) => void)[] = [];
  private ended = false;

  constructor(private readonly onDone: (q: MessageQueue) => void) {}

  push(m: Message): void {
    const w = this.waiters.shift();
    if (w) w({ value: m, done: false });
    else this.items.push(m);
  }

  end(): void {
    this.ended = true;
    for (const w of this.waiters.splice(0)) w({ value: undefined, done: true });
  }

  next(): Promise<IteratorResult<Message>> {
    const m = this.items.shift();
    if (m) return Promise.resolve({ value: m, done: false });
    if (this.ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  return(): Promise<IteratorResult<Message>> {
    this.items = [];
    this.end();
    this.onDone(this);
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): this { return this; }
}
