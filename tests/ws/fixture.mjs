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

// Serves `body` as text/html at http://127.0.0.1:PORT/NAME (anything else: 404).
export async function servePage(name, body) {
  const { createServer } = await import('node:http');
  const { once } = await import('node:events');
  const http = createServer((req, res) => {
    if (req.url.startsWith(`/${name}`)) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(body);
    } else {
      res.writeHead(404);
      res.end();
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
