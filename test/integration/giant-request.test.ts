// One giant request is not a server failure (issue 25 item 4): a get of 200,000
// keys takes memcached longer than mcrelay's timeout to answer, while other
// clients keep reading and writing through the same worker. It must be answered
// whole, the servers stay up, nothing is flushed, and the other clients get
// their values.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startMemcached, startProxy, type Proc } from '../helpers/procs.js';
import { WireClient } from '../helpers/wire.js';
import { setMany } from '../helpers/mc.js';
import { serverStats } from '../helpers/cluster.js';

const procs: Proc[] = [];

test('a 200,000-key get slower than the timeout, beside a small load: answered whole, both servers up, no flush, the others served', async () => {
  const clients: WireClient[] = [];
  try {
    const [master, backup] = await Promise.all([startMemcached(), startMemcached()]);
    procs.push(master, backup);
    // The prober's own stats probes, on new connections, may wait behind the giant
    // get on a loaded machine (memcached -t 1): its failure limit is raised so that
    // only the request path is judged, by its timeout count below.
    const proxy = await startProxy(['-s', master.addr, '-b', backup.addr, '--workers', '1', '--timeout', '300', '--retry-interval', '200', '--failure-limit', '30']);
    procs.push(proxy);
    const [big, small] = [await WireClient.connect(proxy.port), await WireClient.connect(proxy.port)];
    clients.push(big, small);
    const data = Array.from({ length: 10_000 }, (_, i): [string, string] => [`g${i}`, `value${i % 1000}`]);
    assert.equal(await setMany(big, data), [], 'stored');
    const N = 200_000;
    const line = `get ${Array.from({ length: N }, (_, i) => `g${i % 10_000}`).join(' ')}\r\n`;
    const t0 = Date.now();
    big.write(line);
    const giant = big.readUntil((b) => b.length >= 5 && b.subarray(b.length - 5).toString() === 'END\r\n', 120_000);
    // The small load: its own keys, a write then a read, until the giant get is answered (bounded).
    const wrong: string[] = [];
    let done = false;
    void giant.then(() => { done = true; }, () => { done = true; });
    for (let i = 0; !done && i < 2000; i++) {
      const k = `s${i % 50}`;
      const v = `v${i}`;
      const set = await small.request(`set ${k} 0 0 ${v.length}\r\n${v}\r\n`, '\r\n', 60_000);
      const get = await small.request(`get ${k}\r\n`, 'END\r\n', 60_000);
      if (set !== 'STORED\r\n' || get !== `VALUE ${k} 0 ${v.length}\r\n${v}\r\nEND\r\n`) wrong.push(`${k}: ${JSON.stringify(set)} ${JSON.stringify(get)}`);
    }
    const reply = (await giant).toString('latin1');
    const took = Date.now() - t0;
    const values = reply.split('\r\n').filter((l) => l.startsWith('VALUE ')).length;
    assert.is(values, N, `every key answered (took ${took} ms against a 300 ms timeout)`);
    assert.equal(wrong, [], 'the small load got its values');
    assert.not.match(proxy.output, /server marked down/, `no server marked down: ${proxy.output.split('\n').filter((l) => l.includes('marked down')).join('\n')}`);
    const table = (await serverStats(proxy.port)).table;
    for (const s of [master, backup]) {
      assert.is(table.get(s.addr)?.get('state'), 'up', `${s.addr} up`);
      assert.is(table.get(s.addr)?.get('flushes'), '0', `${s.addr} not flushed`);
      assert.is(table.get(s.addr)?.get('timeouts'), '0', `no request to ${s.addr} counted as timed out`);
    }
    assert.ok(took > 300, `the get took longer than the timeout (${took} ms): what makes this test able to fail`);
  } finally {
    for (const c of clients) c.close();
    await Promise.all(procs.splice(0).map((p) => p.stop()));
  }
});

test.run();
