// The load generator against a real memcached: what it counts must be what the
// server saw (memcached's own stats), and its summary must be self-consistent.
// Over TLS too: memcached -Z, its stats read on a plain (notls:) listener.
import { rmSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runLoad, type LoadResult } from '../../bench/loadgen/run.js';
import { toMemtierJson } from '../../bench/loadgen/report.js';
import { parseArgs } from '../../bench/loadgen/options.js';
import { makeCerts } from '../helpers/certs.js';
import { freePort, startMemcached, type Proc } from '../helpers/procs.js';
import { WireClient } from '../helpers/wire.js';

let mc: Proc | undefined;

test.before(async () => {
  mc = await startMemcached({ memoryMb: 64 });
});

test.after(async () => {
  await mc?.stop();
  mc = undefined;
});

async function serverStats(port: number): Promise<Record<string, number>> {
  const c = await WireClient.connect(port);
  try {
    const reply = await c.request('stats\r\n', 'END\r\n');
    const out: Record<string, number> = {};
    for (const m of reply.matchAll(/^STAT (\S+) (\d+)\r$/gm)) out[m[1]!] = Number(m[2]);
    return out;
  } finally {
    c.socket.destroy();
  }
}

function assertConsistent(r: LoadResult): void {
  assert.is(r.interrupted, false, 'run was not interrupted');
  assert.is(r.errors, 0, 'no error replies');
  assert.is(r.connectionErrors, 0, 'no lost connections');
  assert.ok(r.totals.ops > 0, 'ops > 0');
  assert.is(r.totals.ops, r.sets.ops + r.gets.ops);
  assert.ok(r.sets.ops > 0, 'sets counted');
  assert.ok(r.gets.ops > 0, 'gets counted');
  assert.ok(r.gets.hits > 0, 'hits > 0');
  for (const t of [r.sets, r.gets, r.totals]) {
    const l = t.latency;
    assert.ok(l.p50 > 0, `p50 ${l.p50} > 0`);
    assert.ok(l.p50 <= l.p99, `p50 ${l.p50} <= p99 ${l.p99}`);
    assert.ok(l.p99 <= l.p999, `p99 ${l.p99} <= p99.9 ${l.p999}`);
    assert.ok(l.p999 <= l.max, `p99.9 ${l.p999} <= max ${l.max}`);
    assert.ok(t.opsPerSec > 0 && t.kbPerSec > 0);
  }
  const json = toMemtierJson(r) as { 'ALL STATS': Record<string, Record<string, unknown>> };
  const totals = json['ALL STATS']['Totals']!;
  assert.ok((totals['Ops/sec'] as number) > 0);
  const pct = totals['Percentile Latencies'] as Record<string, number>;
  assert.ok(pct['p50.00']! <= pct['p99.00']! && pct['p99.00']! <= pct['p99.90']!);
}

test('1 second of --ratio 1:1: sets and gets counted as memcached counted them, hits, ordered percentiles', async () => {
  const port = mc!.port;
  const before = await serverStats(port);
  const t0 = Date.now();
  const r = await runLoad({
    port, threads: 2, clients: 4, testTime: 1, ratioSet: 1, ratioGet: 1,
    dataSize: 100, keyMinimum: 1, keyMaximum: 1000, hideHistogram: true,
  });
  const wall = Date.now() - t0;
  const after = await serverStats(port);
  assertConsistent(r);
  // memtier's 1:1 cycle is one set then one get per connection
  assert.ok(Math.abs(r.sets.ops - r.gets.ops) <= 2 * 4, `sets ${r.sets.ops} ~ gets ${r.gets.ops}`);
  assert.ok(r.durationMs >= 990 && r.durationMs < 3000, `duration ${r.durationMs} ms`);
  assert.ok(wall < 10_000, `bounded run, took ${wall} ms`);
  assert.is(after['cmd_set']! - before['cmd_set']!, r.sets.ops, 'server saw every set');
  assert.is(after['get_hits']! - before['get_hits']!, r.gets.hits, 'server hits = our hits');
  assert.is(after['cmd_get']! - before['cmd_get']!, r.gets.hits + r.gets.misses, 'server gets = our keys');
});

test('--multi-key-get 10 --pipeline 4: every get carries 10 keys; -n bounds each connection', async () => {
  const port = mc!.port;
  const before = await serverStats(port);
  const { options } = parseArgs([
    '-p', String(port), '-t', '2', '-c', '3', '--pipeline=4', '--multi-key-get=10', '--ratio=1:10',
    '-d', '32', '--key-minimum=1', '--key-maximum=500', '--key-pattern=R:R', '--distinct-client-seed',
    '--test-time=1', '--hide-histogram',
  ]);
  const r = await runLoad(options);
  const after = await serverStats(port);
  assertConsistent(r);
  assert.is(r.gets.hits + r.gets.misses, 10 * r.gets.ops, 'hits + misses = 10 keys per get');
  assert.is(after['cmd_get']! - before['cmd_get']!, 10 * r.gets.ops);
  assert.is(after['cmd_set']! - before['cmd_set']!, r.sets.ops);
  assert.ok(Math.abs(r.sets.ops - r.gets.ops) <= 2 * 6 * 4, 'one set per 10-key get');

  // the bounded alternative: exactly -n requests per connection
  const n = await runLoad({ port, threads: 2, clients: 3, pipeline: 4, multiKeyGet: 10, requests: 200, keyMaximum: 500 });
  assert.is(n.totals.ops, 2 * 3 * 200);
  assert.is(n.interrupted, false);
});

test('--protocol=memcache_binary --pipeline 8: GetK and Set counted as memcached counted them, hits as it found them', async () => {
  const port = mc!.port;
  const before = await serverStats(port);
  const { options } = parseArgs([
    '-p', String(port), '-P', 'memcache_binary', '-t', '1', '-c', '4', '--pipeline=8', '--ratio=1:4',
    '-d', '200', '--key-minimum=1', '--key-maximum=300', '--key-pattern=R:R', '--test-time=1', '--hide-histogram',
  ]);
  const r = await runLoad(options);
  const after = await serverStats(port);
  assertConsistent(r);
  assert.is(after['cmd_set']! - before['cmd_set']!, r.sets.ops, 'server saw every set');
  assert.is(after['get_hits']! - before['get_hits']!, r.gets.hits, 'server hits = our hits');
  assert.is(after['cmd_get']! - before['cmd_get']!, r.gets.hits + r.gets.misses, 'server gets = our gets');
  assert.throws(() => parseArgs(['-P', 'memcache_binary', '--multi-key-get=4']), /not supported with memcache_binary/);
});

test('--tls --cacert against memcached -Z: counted as memcached counted them; an unverifiable server is refused, --tls-skip-verify takes it', async () => {
  const certs = await makeCerts();
  let tlsMc: Proc | undefined;
  try {
    const plain = await freePort();
    tlsMc = await startMemcached({
      memoryMb: 64,
      extraArgs: ['-Z', '-o', `ssl_chain_cert=${certs.serverCert},ssl_key=${certs.serverKey}`, '-l', `notls:127.0.0.1:${plain}`],
    });
    const port = tlsMc.port;
    const args = ['-p', String(port), '-t', '1', '-c', '4', '--pipeline=2', '--ratio=1:4', '-d', '100',
      '--key-minimum=1', '--key-maximum=300', '--test-time=1', '--hide-histogram'];
    const before = await serverStats(plain);
    const r = await runLoad(parseArgs([...args, '--tls', `--cacert=${certs.caCert}`]).options);
    const after = await serverStats(plain);
    assertConsistent(r);
    assert.is(after['cmd_set']! - before['cmd_set']!, r.sets.ops, 'server saw every set');
    assert.is(after['get_hits']! - before['get_hits']!, r.gets.hits, 'server hits = our hits');
    assert.is(after['cmd_get']! - before['cmd_get']!, r.gets.hits + r.gets.misses, 'server gets = our gets');

    // The CA that did not sign the server's certificate: the connect fails, naming the reason.
    const wrongCa = runLoad(parseArgs([...args, '--tls', `--cacert=${certs.otherCaCert}`]).options);
    await wrongCa.then(() => assert.unreachable('a server the CA did not sign was accepted'),
      (err: Error) => assert.match(err.message, /certificate/));
    const skip = await runLoad(parseArgs([...args, '--tls', '--tls-skip-verify']).options);
    assert.is(skip.connectionErrors + skip.errors, 0);
    assert.ok(skip.totals.ops > 0);
    assert.throws(() => parseArgs([...args, `--cacert=${certs.caCert}`]), /need --tls/);
    assert.throws(() => parseArgs([...args, '--tls', `--key=${certs.clientKey}`]), /--key needs --cert/);
  } finally {
    await tlsMc?.stop();
    rmSync(certs.dir, { recursive: true, force: true });
  }
});

test.run();
