// wss:// and tls:// in Node with certificate verification: `msgtrans serve --ws
// --tls-cert` (a certificate from `msgtrans cert`) for wss://, and for tls:// the same
// certificate on a Node TLS terminator in front of `msgtrans serve --tcp` (until the
// server speaks TLS over TCP itself). Run by ctest: js_client_tls.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';
import { createServer as createTlsServer } from 'node:tls';
import { connect, MsgtransError } from '@msgtrans/client';

const msgtrans = process.env.MSGTRANS_BIN;
const dir = mkdtempSync(join(tmpdir(), 'msgtrans-js-tls-'));
const certFile = join(dir, 'cert.pem');
const keyFile = join(dir, 'key.pem');
const otherCert = join(dir, 'other.pem');
let serve;
let terminator;
let urls;

const isCode = (code) => (e) => e instanceof MsgtransError && e.code === code;

before(async () => {
  execFileSync(msgtrans, ['cert', '--out-cert', certFile, '--out-key', keyFile, '--name', 'localhost', '--name', '127.0.0.1']);
  execFileSync(msgtrans, ['cert', '--out-cert', otherCert, '--out-key', join(dir, 'other.key'), '--name', 'localhost']);
  serve = spawn(msgtrans, ['serve', '--ws', '127.0.0.1:0/wss', '--tcp', '127.0.0.1:0', '--tls-cert', certFile,
                           '--tls-key', keyFile, '--threads', '1', '--quiet'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const found = await new Promise((resolve, reject) => {
    const seen = {};
    serve.on('exit', (code) => reject(new Error(`msgtrans serve exited with ${code}`)));
    createInterface({ input: serve.stdout }).on('line', (l) => {
      const m = /^listening (\w+) (\S+)$/.exec(l);
      if (m) seen[m[1]] = m[2];
      if (seen.wss && seen.tcp) resolve(seen);
    });
  });
  serve.removeAllListeners('exit');
  const [tcpHost, tcpPort] = found.tcp.split(':');
  terminator = createTlsServer({ cert: readFileSync(certFile), key: readFileSync(keyFile) }, (tlsSocket) => {
    const plain = netConnect(Number(tcpPort), tcpHost);
    tlsSocket.pipe(plain).pipe(tlsSocket);
    plain.on('error', () => tlsSocket.destroy());
    tlsSocket.on('error', () => plain.destroy());
  });
  await new Promise((r) => terminator.listen(0, '127.0.0.1', r));
  urls = { wss: `wss://${found.wss}`, tls: `tls://127.0.0.1:${terminator.address().port}` };
});

after(async () => {
  terminator?.close();
  if (serve && serve.exitCode === null) {
    const code = await new Promise((resolve) => { serve.on('exit', resolve); serve.kill('SIGTERM'); });
    assert.equal(code, 0, 'msgtrans serve exit code');
  }
  rmSync(dir, { recursive: true, force: true });
});

for (const scheme of ['wss', 'tls']) {
  test(`${scheme}://: an unknown certificate is refused with tls_error`, async () => {
    await assert.rejects(connect(urls[scheme], { reconnect: false }), isCode('tls_error'));
    await assert.rejects(connect(urls[scheme], { reconnect: false, tlsCa: readFileSync(otherCert) }), isCode('tls_error'));
  });

  test(`${scheme}://: trusted through tlsCa, requests go through`, async () => {
    const c = await connect(urls[scheme], { reconnect: false, tlsCa: readFileSync(certFile, 'utf8') });
    try {
      const replies = await Promise.all(Array.from({ length: 200 }, (_, i) => c.request(`secure ${i}`)));
      replies.forEach((r, i) => assert.equal(r.text(), `secure ${i}`));
      assert.equal((await c.request('z'.repeat(100000), { compress: 'zstd' })).text(), 'z'.repeat(100000));
    } finally { await c.close(); }
  });

  test(`${scheme}://: the name checked is tlsServerName`, async () => {
    const ca = readFileSync(certFile);
    await assert.rejects(connect(urls[scheme], { reconnect: false, tlsCa: ca, tlsServerName: 'wrong.example' }), isCode('tls_error'));
    const c = await connect(urls[scheme], { reconnect: false, tlsCa: ca, tlsServerName: 'localhost' });
    assert.equal((await c.request('by name')).text(), 'by name');
    await c.close();
  });

  test(`${scheme}://: tlsInsecureSkipVerify accepts any certificate`, async () => {
    const c = await connect(urls[scheme], { reconnect: false, tlsInsecureSkipVerify: true });
    assert.equal((await c.request('unverified')).text(), 'unverified');
    await c.close();
  });
}
