// The browser entry of @msgtrans/client (also the default for other runtimes with a
// global WebSocket). It never loads ws, net or tls.
import { connectWith, type Client } from './client.js';
import { browserCodecs } from './compression_browser.js';
import type { ConnectOptions } from './options.js';
import type { Runtime } from './transport.js';
import { dialBrowserWebSocket } from './ws_browser.js';

export * from './common.js';

const runtime: Runtime = { dial: dialBrowserWebSocket, codecs: browserCodecs };

/** Connects to `ws://` or `wss://`; rejects with MsgtransError after reconnect.maxAttempts tries. */
export function connect(url: string | URL, options?: ConnectOptions): Promise<Client> {
  return connectWith(runtime, url, options);
}
