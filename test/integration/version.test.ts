// `version` through mcrelay says what the servers behind it are (issue 14 item 1):
// client libraries parse it (libmemcached refuses a 0.x server, memccapable picks
// its expectations from it), so mcrelay's own version would break them.
//
//   client --version/stats--> mcrelay --> memcached (1.6.x)
//                                    \--> fake server (says what the test wants)
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FakeBackend } from '../helpers/fake-backend.js';
import { sleep, startMemcached, startProxy, ROOT, type Proc } from '../helpers/procs.js';
import { WireClient } from '../helpers/wire.js';
import { readFileSync } from 'node:fs';
import path from 'node:path';

const OWN = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

/** Asks `version` until the reply matches, for at most `tries` rounds of 50 ms. */
async function versionBecomes(c: WireClient, want: string, tries = 100): Promise<string> {
  let got = '';
  for (let i = 0; i < tries; i++) {
    got = await c.request('version\r\n');
    if (got === want) return got;
    await sleep(50);
  }
  return got;
}

function stat(reply: string, name: string): string | undefined {
  return new RegExp(`^STAT ${name} (\\S+)\\r$`, 'm').exec(reply)?.[1];
}

test('version: memcached\'s own before any server answered, then the lowest any server gave', async () => {
  const mc = await startMemcached();
  // Its stats give no version at first (and its `version` says "fake"): the prober learns nothing from it.
  let say: string | null = null;
  const fake = await new FakeBackend((line, socket) => {
    if (line === 'stats') socket.write(`STAT pid 1\r\nSTAT uptime 10\r\nSTAT time 100\r\n${say === null ? '' : `STAT version ${say}\r\n`}END\r\n`);
  }).listen();
  let proxy: Proc | undefined;
  let c: WireClient | undefined;
  try {
    const direct = await WireClient.connect(mc.port);
    const mcVersion = await direct.request('version\r\n');
    direct.close();
    assert.match(mcVersion, /^VERSION 1\.6\.\d+\r\n$/);
    // The fake goes first: with it silent, nothing is known until memcached answers.
    proxy = await startProxy(['-s', fake.addr, '-b', mc.addr, '--workers', '1', '--retry-interval', '100', '--timeout', '200']);
    c = await WireClient.connect(proxy.port);
    const first = await c.request('version\r\n');
    assert.ok(first === 'VERSION 1.6.0\r\n' || first === mcVersion, `a 1.6 version, not mcrelay's: ${first}`);
    assert.is(await versionBecomes(c, mcVersion), mcVersion, 'memcached\'s version once it answered');

    say = '1.5.22';
    assert.is(await versionBecomes(c, 'VERSION 1.5.22\r\n'), 'VERSION 1.5.22\r\n', 'the lowest of the two');
    const stats = await c.request('stats\r\n', 'END\r\n');
    assert.is(stat(stats, 'version'), '1.5.22');
    assert.is(stat(stats, 'mcrelay_version'), OWN);
    // memcached 1.6 accepts arguments after version (memccapable checks it).
    assert.is(await c.request('version foo bar\r\n'), 'VERSION 1.5.22\r\n');
  } finally {
    c?.close();
    await Promise.all([proxy?.stop(), mc.stop(), fake.close()]);
  }
});

test.run();
