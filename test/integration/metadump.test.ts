// backend/metadump.ts against a real memcached (-t 1): two dumps of one server
// by one process run one after another. While a dump's reader is paused (a
// restore pacing its copies), a second `lru_crawler metadump` would block the
// server's worker thread for a second at a time; here the server keeps
// answering, and both dumps list every key.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Proc, sleep, startMemcached } from '../helpers/procs.js';
import { WireClient } from '../helpers/wire.js';
import { metadump } from '../../src/backend/metadump.js';
import { parseServerAddress, type ServerAddress } from '../../src/config/config.js';

const procs: Proc[] = [];
test.after.each(async () => { await Promise.all(procs.splice(0).map((p) => p.stop())); });

/** Keys long enough that the dump outgrows the loopback socket buffers, so the crawler waits on a paused reader. */
const KEYS = 20_000;
const key = (i: number): string => `md-${String(i).padStart(6, '0')}-${'k'.repeat(200)}`;

test('two dumps of one server: the second waits for the first, the server keeps answering, both list every key', async () => {
  const m = await startMemcached({ memoryMb: 256 });
  procs.push(m);
  const c = await WireClient.connect(m.port);
  try {
    for (let i = 0; i < KEYS; i += 1000) {
      const n = Math.min(1000, KEYS - i);
      c.write(Array.from({ length: n }, (_, j) => `set ${key(i + j)} 0 0 1 noreply\r\nx\r\n`).join(''));
    }
    assert.is(await c.request('mn\r\n'), 'MN\r\n');
    const address = parseServerAddress(`127.0.0.1:${m.port}`) as ServerAddress;
    let release!: () => void;
    const held = new Promise<void>((r) => { release = r; });
    let first = 0;
    let second = 0;
    let secondBeforeFirstEnded = false;
    let firstEnded = false;
    const a = metadump(address, async () => { if (first++ === 0) await held; return true; });
    await sleep(300); // the crawler fills the paused socket and waits on it
    const b = metadump(address, () => { if (!firstEnded) secondBeforeFirstEnded = true; second++; return true; });
    // The server answers while the first dump is paused and the second is asked for.
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      assert.match(await c.request('version\r\n'), /^VERSION \S+\r\n$/);
      const ms = performance.now() - t0;
      assert.ok(ms < 500, `version answered in ${ms.toFixed(0)} ms while a dump is paused`);
      await sleep(300);
    }
    release();
    const ra = await a;
    firstEnded = true;
    const rb = await b;
    assert.equal([ra.end, rb.end], ['done', 'done']);
    assert.is(first, KEYS, 'the first dump listed every key');
    assert.is(second, KEYS, 'the second dump listed every key');
    assert.not.ok(secondBeforeFirstEnded, 'the second dump began after the first ended');
  } finally {
    c.close();
  }
});

test.run();
