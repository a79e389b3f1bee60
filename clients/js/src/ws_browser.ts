// A WebSocket transport on the platform's WebSocket (browsers; Node 22+ has one too).
import { MsgtransError } from './errors.js';
import { timerFor, withToken, type ResolvedOptions } from './options.js';
import type { Transport, TransportEvents } from './transport.js';

export function dialBrowserWebSocket(url: URL, o: ResolvedOptions, ev: TransportEvents): Promise<Transport> {
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') {
    return Promise.reject(new MsgtransError('address_error', `${url.protocol}// is not available in a browser: use ws:// or wss://`));
  }
  return new Promise((resolve, reject) => {
    let ws: WebSocket;
    try {
      // A browser's WebSocket cannot set headers: the token goes in the query string.
      ws = new WebSocket(withToken(url, o.token).href);
    } catch (e) {
      reject(new MsgtransError('address_error', `cannot open ${url.href}: ${String(e)}`, { cause: e }));
      return;
    }
    ws.binaryType = 'arraybuffer';
    let open = false;
    let closed = false;
    const timer = timerFor(o.connectTimeout, () => {
      reject(new MsgtransError('timeout', `no WebSocket handshake with ${url.host} within ${o.connectTimeout} ms`));
      ws.close();
    });
    ws.onopen = () => {
      clearTimeout(timer);
      open = true;
      resolve(transport);
    };
    ws.onmessage = (m: MessageEvent) => {
      if (typeof m.data === 'string') return;  // text messages are not part of the protocol
      ev.onPacket(new Uint8Array(m.data as ArrayBuffer));
    };
    ws.onclose = (c: CloseEvent) => {
      clearTimeout(timer);
      if (closed) return;
      closed = true;
      if (!open) {
        // Browsers do not say why a handshake failed (an HTTP 401 looks like any refusal).
        reject(new MsgtransError('not_connected', `cannot connect to ${url.host}${url.pathname} (WebSocket ${c.code})`));
        return;
      }
      ev.onClose({ code: c.code, reason: c.reason });
    };
    const transport: Transport = {
      send: (b) => ws.send(b),
      get bufferedAmount() { return ws.bufferedAmount; },
      close: (code, reason) => {
        // The API has no drain event: poll bufferedAmount, bounded by closeTimeout.
        const deadline = o.closeTimeout > 0 ? Date.now() + o.closeTimeout : Infinity;
        const tryClose = () => {
          if (ws.bufferedAmount > 0 && Date.now() < deadline) setTimeout(tryClose, 5);
          else ws.close(code, reason);
        };
        tryClose();
      },
      abort: (reason) => {
        ws.close(4000, reason.slice(0, 120));
        if (!closed) {
          closed = true;
          ev.onClose({ code: 4000, reason, error: new MsgtransError('protocol_error', reason) });
        }
      },
    };
  });
}
