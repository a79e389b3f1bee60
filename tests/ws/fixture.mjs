// Starts `msgtrans serve --ws 127.0.0.1:0/PATH` (the echo service of the real runtime)
// and resolves once it prints "listening ws HOST:PORT/PATH" (or wss).
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

export function startFixture(msgtrans, path, args = []) {
  return new Promise((resolve, reject) => {
    const proc = spawn(msgtrans, ['serve', '--ws', `127.0.0.1:0${path}`, '--threads', '1', ...args],
                       { stdio: ['ignore', 'pipe', 'inherit'] });
    const lines = createInterface({ input: proc.stdout });
    const timer = setTimeout(() => reject(new Error('msgtrans serve did not start within 10 s')), 10000);
    proc.on('exit', (code) => reject(new Error(`msgtrans serve exited early with ${code}`)));
    lines.on('line', (line) => {
      const m = /^listening (wss?) (\S+):(\d+)(\/\S*)$/.exec(line);
      if (!m) return;
      clearTimeout(timer);
      const [, scheme, host, port, path] = m;
      resolve({ proc, scheme, host, port: Number(port), path, url: `${scheme}://${host}:${port}${path}` });
    });
  });
}

// Stops the server with SIGTERM and resolves with its exit code.
export function stopFixture(fx) {
  return new Promise((resolve) => {
    if (fx.proc.exitCode !== null) return resolve(fx.proc.exitCode);
    fx.proc.removeAllListeners('exit');
    fx.proc.on('exit', (code) => resolve(code));
    fx.proc.kill('SIGTERM');
  });
}

// A msgtrans request packet (wire format v1): 16-byte header, then the payload.
export function requestPacket(id, payload, bizType = 0) {
  const body = Buffer.from(payload);
  const p = Buffer.alloc(16 + body.length);
  p.writeUInt8(1, 0);        // version
  p.writeUInt8(0, 1);        // compression: none
  p.writeUInt8(1, 2);        // packet_type: request
  p.writeUInt8(bizType, 3);
  p.writeUInt32BE(id, 4);
  p.writeUInt16BE(0, 8);     // ext_header_len
  p.writeUInt32BE(body.length, 10);
  p.writeUInt16BE(0, 14);    // flags
  body.copy(p, 16);
  return p;
}

// Serves files of the repository at http://127.0.0.1:PORT/PATH, for PATH under one of
// `prefixes` (e.g. '/examples/', '/clients/js/dist/'); anything else: 404. Pages that
// import @msgtrans/client need its dist/ (built by npm ci in clients/js, or ctest's
// js_client_typecheck).
export async function serveFiles(prefixes) {
  const { createServer } = await import('node:http');
  const { once } = await import('node:events');
  const { readFile } = await import('node:fs/promises');
  const { extname, join, normalize, dirname } = await import('node:path');
  const { fileURLToPath } = await import('node:url');
  const root = normalize(join(dirname(fileURLToPath(import.meta.url)), '..', '..'));
  const types = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript', '.map': 'application/json' };
  const http = createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    const file = normalize(join(root, path));
    if (!prefixes.some((p) => path.startsWith(p)) || !file.startsWith(root)) return res.writeHead(404).end();
    try {
      const body = await readFile(file);
      res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream' }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  http.listen(0, '127.0.0.1');
  await once(http, 'listening');
  return http;
}

// Headless Debian Chromium through playwright-core, with the flags this machine needs
// (no sandbox as root, no background networking) and a fresh profile directory.
export async function launchChromium(profile) {
  const { chromium } = await import('playwright-core');
  return chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    timeout: 60000,
  });
}
