// The suite (suite.mjs) in Node 20 through node:test, over ws:// and tcp://, against
// `msgtrans serve` and js_peer_server (run by ctest: js_client_node).
import { after, before, describe, test } from 'node:test';
import * as sdk from '@msgtrans/client';
import { loadFixtures, startServers } from './servers.mjs';
import { tests } from './suite.mjs';

let servers;
let fixtures;
before(async () => {
  fixtures = loadFixtures();
  servers = await startServers();
});
after(async () => {
  if (servers && !(await servers.stopAll())) throw new Error('a server did not exit cleanly');
});

for (const scheme of ['ws', 'tcp']) {
  describe(`${scheme}://`, () => {
    for (const [name, run] of tests) {
      if (name.startsWith('codec:') && scheme === 'tcp') continue;  // no transport involved
      test(name, { timeout: 60000 }, () => run({
        sdk, runtime: 'node', fixtures, urls: servers.urls(scheme), restartPeer: () => servers.restartPeer(),
      }));
    }
  });
}
