// Starts the servers the suite talks to (Node only): `msgtrans serve` (echo) and
// tests/js/js_peer_server, each on ws:// and tcp://, and restarts the peer on its ports.
import { spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

// Whatever happens to the test process, its servers do not outlive it.
const started = new Set();
process.on('exit', () => { for (const p of started) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL'); });

function start(bin, args) {
  return new Promise((resolve, reject) => {
    const proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    started.add(proc);
    const lines = createInterface({ input: proc.stdout });
    const found = {};
    const timer = setTimeout(() => reject(new Error(`${bin} did not start within 10 s`)), 10000);
    proc.on('exit', (code) => reject(new Error(`${bin} exited early with ${code}`)));
    lines.on('line', (line) => {
      const m = /^listening (\w+) (\S+)$/.exec(line);
      if (!m) return;
      found[m[1]] = m[2];
      if (found.ws && found.tcp) {
        clearTimeout(timer);
        proc.removeAllListeners('exit');
        resolve({ proc, ws: `ws://${found.ws}`, tcp: `tcp://${found.tcp}`, wsAddr: found.ws, tcpAddr: found.tcp });
      }
    });
  });
}

function stop(s) {
  return new Promise((resolve) => {
    if (s.proc.exitCode !== null || s.proc.signalCode !== null) return resolve(s.proc.exitCode);
    s.proc.on('exit', (code) => resolve(code));
    s.proc.kill('SIGTERM');
  });
}

/** A loopback port with nothing listening (bound, then released). */
async function closedPort() {
  const srv = createServer();
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

export function loadFixtures() {
  const dir = join(process.env.MSGTRANS_SHARED_DIR ?? '../../../shared', 'fixtures', 'wire');
  return readdirSync(dir).filter((f) => /^0[1-8]_.*\.json$/.test(f)).sort().map((f) => ({
    name: f.replace(/\.json$/, ''),
    json: JSON.parse(readFileSync(join(dir, f), 'utf8')),
    bin: readFileSync(join(dir, f.replace(/\.json$/, '.bin'))).toString('hex'),
  }));
}

export async function startServers() {
  const msgtrans = process.env.MSGTRANS_BIN;
  const peerBin = process.env.JS_PEER_SERVER;
  if (!msgtrans || !peerBin) throw new Error('set MSGTRANS_BIN and JS_PEER_SERVER (ctest does)');
  const serve = await start(msgtrans, ['serve', '--ws', '127.0.0.1:0/ws', '--tcp', '127.0.0.1:0', '--threads', '1', '--quiet']);
  const peerArgs = (ws, tcp) => ['--ws', `${ws}/peer`, '--tcp', tcp, '--max-message-size', String(256 * 1024)];
  let peer = await start(peerBin, peerArgs('127.0.0.1:0', '127.0.0.1:0'));
  // A server that checks HS256 tokens (--jwt-secret-file), and a token it accepts.
  const dir = mkdtempSync(join(tmpdir(), 'msgtrans-js-suite-'));
  const secret = randomBytes(32).toString('base64');
  writeFileSync(join(dir, 'secret'), secret);
  const auth = await start(msgtrans, ['serve', '--ws', '127.0.0.1:0/auth', '--tcp', '127.0.0.1:0', '--threads', '1', '--quiet',
                                      '--jwt-secret-file', join(dir, 'secret')]);
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const head = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub: 'alice', exp: Math.floor(Date.now() / 1000) + 3600 })}`;
  const token = `${head}.${createHmac('sha256', secret).update(head).digest('base64url')}`;
  const closed = await closedPort();
  const urls = (scheme) => ({ serve: serve[scheme], peer: peer[scheme], auth: auth[scheme], token,
                              closed: `${scheme}://127.0.0.1:${closed}${scheme === 'ws' ? '/' : ''}` });
  return {
    urls,
    /** stops the peer (it closes WebSockets with 1001) and starts it again on the same ports */
    async restartPeer() {
      const old = peer;
      const code = await stop(old);
      if (code !== 0) throw new Error(`js_peer_server exited with ${code}`);
      peer = await start(peerBin, peerArgs(old.wsAddr.replace(/\/.*$/, ''), old.tcpAddr));
    },
    async stopAll() {
      const codes = [await stop(serve), await stop(peer), await stop(auth)];
      rmSync(dir, { recursive: true, force: true });
      return codes.every((c) => c === 0);
    },
  };
}
