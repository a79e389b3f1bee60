// The types of @msgtrans/client: the same API in browsers (browser.ts) and Node (node.ts).
import type { Client } from './client.js';
import type { ConnectOptions } from './options.js';

export * from './common.js';

/**
 * Connects to a msgtrans server: `ws://` and `wss://` everywhere, `tcp://` and `tls://`
 * in Node. Rejects with a MsgtransError after `reconnect.maxAttempts` tries.
 */
export declare function connect(url: string | URL, options?: ConnectOptions): Promise<Client>;
