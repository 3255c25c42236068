// Conformance: mcrelay must answer like memcached, byte for byte.
//
//   client --row--> memcached A                      (the reference)
//   client --row--> mcrelay --> memcached B          (one master, no backup)
//
// Every row of the table is a literal byte sequence (often a pipeline of several
// commands), sent to A and to mcrelay the same way; the replies must be the same
// bytes. test/helpers/differential.ts does the sending: whole, byte by byte, and
// split in two writes at every offset (a sample for long rows), each send from
// the same state on A and B (flushed, cas counters level, the row's setup), the
// end of a reply found with a sentinel request (or the close, for rows that
// close the connection).
//
// Deliberate differences are asserted literally against mcrelay alone: stats,
// verbosity (answered by the proxy) and keys with control characters
// (refused by the proxy, accepted by memcached 1.6).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ROOT, startMemcached, startProxy, type Proc } from '../helpers/procs.js';
import { WireClient } from '../helpers/wire.js';
import { Differential, exchange, show } from '../helpers/differential.js';
import { S, textRows } from '../helpers/text-rows.js';

const VERSION = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

let A: Proc | undefined;
let B: Proc | undefined;
let proxy: Proc | undefined;
let adminA: WireClient | undefined;
let adminB: WireClient | undefined;
let diff: Differential;

test.before(async () => {
  [A, B] = await Promise.all([startMemcached(), startMemcached()]);
  // memcached's default item size limit is 1 MiB (-I 1m); the proxy is told the same.
  proxy = await startProxy(['-s', B.addr, '--workers', '1', '--max-item-size', '1m']);
  [adminA, adminB] = await Promise.all([WireClient.connect(A.port), WireClient.connect(B.port)]);
  diff = new Differential(A.port, proxy.port, adminA, adminB);
});

test.after(async () => {
  adminA?.close();
  adminB?.close();
  await Promise.all([proxy?.stop(), A?.stop(), B?.stop()]);
});

const ROWS = textRows(checkStats);

function checkStats(r: string): void {
  assert.ok(r.endsWith('END\r\n'), `ends with END: ${JSON.stringify(r)}`);
  const lines = r.slice(0, -5).split('\r\n').filter((l) => l !== '');
  const stats = new Map<string, string>();
  for (const l of lines) {
    const m = /^STAT (\S+) (\S+)$/.exec(l);
    if (m === null) assert.unreachable(`not a STAT line: ${JSON.stringify(l)}`);
    stats.set(m![1]!, m![2]!);
  }
  for (const name of ['pid', 'uptime', 'curr_connections', 'total_connections', 'cmd_get', 'cmd_set', 'get_hits', 'get_misses', 'bytes_read', 'bytes_written']) {
    assert.ok(stats.has(name), `STAT ${name} present in ${JSON.stringify(r)}`);
    assert.match(stats.get(name)!, /^\d+$/, `STAT ${name} is a number`);
  }
  assert.is(stats.get('pid'), String(proxy!.pid), 'pid is the proxy\'s');
  assert.match(stats.get('version')!, /^1\.6\.\d+$/, 'version is memcached\'s');
  assert.is(stats.get('mcrelay_version'), VERSION);
  assert.ok(Number(stats.get('curr_connections')) >= 1, 'this connection counts');
}

for (const row of ROWS) {
  test(row.name, () => diff.runRow(row));
}

// A line mcrelay forwards but memcached refuses makes memcached parse the data
// block as a command: one reply too many on the shared backend connection, and
// every later reply on it goes to the wrong request, whichever client sent it.
test('a set line memcached refuses (flags 2^64) does not disturb another client\'s get', async () => {
  // Y's get either queues behind X's set on the shared backend connection (and
  // would take memcached's extra reply), or comes just after it.
  const seen: string[] = [];
  for (const delayMs of [0, 20]) {
    await diff.reset(S('y', 'yes', 0, 0, true));
    await diff.settle();
    const x = await WireClient.connect(proxy!.port);
    const y = await WireClient.connect(proxy!.port);
    try {
      x.write('set k 18446744073709551616 0 1\r\na\r\n');
      await new Promise((r) => setTimeout(r, delayMs));
      y.write('get y\r\n');
      const got = (await y.readUntil((b) => b.includes('END\r\n') || b.includes('ERROR'), 2000)).toString('latin1');
      seen.push(`get ${delayMs} ms after: ${JSON.stringify(got)}`);
    } finally {
      x.close();
      y.close();
    }
  }
  await diff.settle();
  const want = 'VALUE y 0 3\r\nyes\r\nEND\r\n';
  assert.ok(seen.every((s) => s.endsWith(JSON.stringify(want))), `client Y must get ${JSON.stringify(want)}; got:\n  ${seen.join('\n  ')}`);
});

test('a 10,000-key get through the proxy returns every present value in order', async () => {
  const keys = Array.from({ length: 10_000 }, (_, i) => `key:${i}`);
  const present = (i: number): boolean => i % 10 < 7;
  const valueOf = (i: number): string => `v${i}:${'x'.repeat(i % 50)}`;
  let setup = '';
  let expected = '';
  for (let i = 0; i < keys.length; i++) {
    if (!present(i)) continue;
    setup += S(keys[i]!, valueOf(i), i, 0, true);
    expected += `VALUE ${keys[i]} ${i} ${valueOf(i).length}\r\n${valueOf(i)}\r\n`;
  }
  expected += 'END\r\n';
  await diff.reset(setup);
  const line = Buffer.from(`get ${keys.join(' ')}\r\n`, 'latin1');
  const [want, got] = await Promise.all([
    exchange(A!.port, line, { kind: 'whole' }, 'sentinel'),
    exchange(proxy!.port, line, { kind: 'whole' }, 'sentinel'),
  ]);
  assert.is(want, expected, 'memcached A agrees with the expected reply');
  if (got !== expected) assert.unreachable(`mcrelay: ${show(got)}\nexpected: ${show(expected)}`);
  // and split where the line is long but unterminated for a while
  for (const at of [2049, 40_000, line.length - 1]) {
    const again = await exchange(proxy!.port, line, { kind: 'cut', at }, 'sentinel');
    if (again !== expected) assert.unreachable(`split at ${at}: mcrelay: ${show(again)}`);
  }
});

test.run();
