// The Node entry of @msgtrans/client: ws:// and wss:// through npm ws, tcp:// through
// net, tls:// through tls; zlib and zstd (see compression_node.ts).
import * as net from 'node:net';
import * as tls from 'node:tls';
import WebSocket from 'ws';
import { connectWith, type Client } from './client.js';
import { FrameDecoder } from './codec.js';
import { nodeCodecs } from './compression_node.js';
import { MsgtransError } from './errors.js';
import { timerFor, type ConnectOptions, type ResolvedOptions } from './options.js';
import type { Runtime, Transport, TransportEvents } from './transport.js';

export * from './common.js';

function hostPort(url: URL): { host: string; port: number } {
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = Number(url.port);
  if (!host || !url.port || !(port > 0 && port < 65536)) {
    throw new MsgtransError('address_error', `${url.href}: a ${url.protocol}// URL needs a host and a port`);
  }
  return { host, port };
}

/**
 * Corks a socket for the rest of this tick: every packet sent in one turn of the event
 * loop leaves in one write (writev), as the C++ runtime does. Uncorked by process.nextTick,
 * which runs after the promise continuations that send in reaction to the same input.
 */
function corker(socket: () => net.Socket | undefined): () => void {
  let corked: net.Socket | undefined;
  const uncork = () => {
    const s = corked;
    corked = undefined;
    s?.uncork();
  };
  return () => {
    if (corked) return;
    const s = socket();
    if (!s) return;
    s.cork();
    corked = s;
    process.nextTick(uncork);
  };
}

const BINARY = { binary: true } as const;

function dialWs(url: URL, o: ResolvedOptions, ev: TransportEvents): Promise<Transport> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url.href, {
      handshakeTimeout: o.connectTimeout > 0 && o.connectTimeout <= 2 ** 31 - 1 ? o.connectTimeout : undefined,
      maxPayload: o.maxMessageSize,
      perMessageDeflate: false,
      // The token as a bearer header (kept out of URLs, which end up in logs).
      headers: o.token === undefined ? o.headers : { ...o.headers, Authorization: `Bearer ${o.token}` },
      ...(url.protocol === 'wss:' ? {
        ca: o.tlsCa === undefined ? undefined : Buffer.from(o.tlsCa),
        servername: o.tlsServerName,
        rejectUnauthorized: !o.tlsInsecureSkipVerify,
      } : {}),
    });
    let open = false;
    let closed = false;
    let failure: MsgtransError | undefined;
    ws.on('unexpected-response', (_req, res) => {
      // The reason is the body (a few KiB at most); a body that never ends is cut after 1 s.
      const status = res.statusCode ?? 0;
      let body = '';
      const done = () => {
        clearTimeout(bound);
        failure ??= new MsgtransError(status === 401 || status === 403 ? 'unauthenticated' : 'not_connected',
          `WebSocket upgrade refused: HTTP ${status} ${res.statusMessage ?? ''}${body ? ': ' + body.trim() : ''}`);
        ws.terminate();
      };
      const bound = setTimeout(done, 1000);
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
        if (body.length > 4096) { body = body.slice(0, 4096); done(); }
      });
      res.on('end', done);
      res.on('error', done);
    });
    ws.on('error', (e: Error & { code?: string }) => {
      if (!open) {
        failure ??= /certificate|self.signed|verify|SSL|TLS/i.test(`${e.code} ${e.message}`)
          ? new MsgtransError('tls_error', `wss ${url.host}: ${e.message}`, { cause: e })
          : /timed out|timeout/i.test(e.message)
            ? new MsgtransError('timeout', `no WebSocket handshake with ${url.host} within ${o.connectTimeout} ms`, { cause: e })
            : new MsgtransError('not_connected', `cannot connect to ${url.host}: ${e.message}`, { cause: e });
      } else {
        failure ??= new MsgtransError('connection_closed', e.message, { cause: e });
      }
    });
    ws.on('open', () => {
      open = true;
      resolve(transport);
    });
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) ev.onPacket(data);
    });
    ws.on('close', (code: number, reason: Buffer) => {
      if (closed) return;
      closed = true;
      if (!open) {
        reject(failure ?? new MsgtransError('not_connected', `cannot connect to ${url.host} (WebSocket ${code})`));
        return;
      }
      const r = reason.toString();
      ev.onClose(failure && code === 1006 ? { code, reason: r || failure.message, error: failure } : { code, reason: r });
    });
    // ws keeps its socket in a private field; without it packets simply go one write each.
    const cork = corker(() => (ws as unknown as { _socket?: net.Socket })._socket);
    const transport: Transport = {
      send: (b) => {
        cork();
        ws.send(b, BINARY);
      },
      get bufferedAmount() { return ws.bufferedAmount; },
      close: (code, reason) => ws.close(code, reason),  // ws sends the close frame after queued data
      abort: (reason) => {
        if (closed) return;
        closed = true;
        ws.close(1002, reason.slice(0, 120));
        ev.onClose({ code: 1002, reason, error: new MsgtransError('protocol_error', reason) });
      },
    };
  });
}

function dialStream(url: URL, o: ResolvedOptions, ev: TransportEvents): Promise<Transport> {
  let hp: { host: string; port: number };
  try {
    hp = hostPort(url);
  } catch (e) {
    return Promise.reject(e);
  }
  const secure = url.protocol === 'tls:';
  return new Promise((resolve, reject) => {
    const socket: net.Socket = secure
      ? tls.connect({
          host: hp.host, port: hp.port,
          servername: o.tlsServerName ?? (net.isIP(hp.host) ? undefined : hp.host),
          ca: o.tlsCa === undefined ? undefined : Buffer.from(o.tlsCa),
          rejectUnauthorized: !o.tlsInsecureSkipVerify,
        })
      : net.connect({ host: hp.host, port: hp.port });
    socket.setNoDelay(true);
    const decoder = new FrameDecoder(o);
    let open = false;
    let closed = false;
    let failure: MsgtransError | undefined;
    const timer = timerFor(o.connectTimeout, () => {
      failure = new MsgtransError('timeout', `no ${secure ? 'TLS' : 'TCP'} connection to ${url.host} within ${o.connectTimeout} ms`);
      socket.destroy();
    });
    socket.once(secure ? 'secureConnect' : 'connect', () => {
      clearTimeout(timer);
      open = true;
      resolve(transport);
    });
    socket.on('data', (chunk: Buffer) => {
      let packets: Uint8Array[];
      try {
        packets = decoder.push(chunk);
      } catch (e) {
        transport.abort(`packet rejected: ${(e as Error).message}`);
        return;
      }
      for (const p of packets) {
        if (closed) return;
        ev.onPacket(p);
      }
    });
    socket.on('error', (e: Error & { code?: string }) => {
      failure ??= secure && !open && !/ECONNREFUSED|ENOTFOUND|EHOSTUNREACH/.test(e.code ?? '')
        ? new MsgtransError('tls_error', `tls ${url.host}: ${e.message}`, { cause: e })
        : new MsgtransError(open ? 'connection_closed' : 'not_connected', `${open ? '' : 'cannot connect to '}${url.host}: ${e.message}`, { cause: e });
    });
    socket.on('close', () => {
      clearTimeout(timer);
      if (closed) return;
      closed = true;
      if (!open) {
        reject(failure ?? new MsgtransError('not_connected', `cannot connect to ${url.host}`));
        return;
      }
      ev.onClose(failure ? { code: 0, reason: failure.message, error: failure } : { code: 0, reason: 'closed by the peer' });
    });
    let closeTimer: ReturnType<typeof setTimeout> | undefined;
    const cork = corker(() => socket);
    const transport: Transport = {
      send: (b) => {
        cork();
        socket.write(b);
      },
      get bufferedAmount() { return socket.writableLength; },
      close: () => {
        socket.end();  // FIN after what is queued; then wait for the peer's FIN
        closeTimer = timerFor(o.closeTimeout, () => socket.destroy());
        socket.once('close', () => clearTimeout(closeTimer));
      },
      abort: (reason) => {
        if (closed) return;
        closed = true;
        socket.destroy();
        ev.onClose({ code: 0, reason, error: new MsgtransError('protocol_error', reason) });
      },
    };
  });
}

function dial(url: URL, o: ResolvedOptions, ev: TransportEvents): Promise<Transport> {
  switch (url.protocol) {
    case 'ws:': case 'wss:': return dialWs(url, o, ev);
    case 'tcp:': case 'tls:': return dialStream(url, o, ev);
    default: return Promise.reject(new MsgtransError('address_error', `unknown scheme ${url.protocol}// (ws, wss, tcp, tls)`));
  }
}

const runtime: Runtime = { dial, codecs: nodeCodecs };

/** Connects to `ws://`, `wss://`, `tcp://` or `tls://`; rejects with MsgtransError after reconnect.maxAttempts tries. */
export function connect(url: string | URL, options?: ConnectOptions): Promise<Client> {
  return connectWith(runtime, url, options);
}
