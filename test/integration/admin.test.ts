// The admin HTTP listener, in-process: shared tables built here and filled by
// hand (as the main thread and two workers would), the listener started on a
// free loopback port, and what a scraper sees asserted line by line.
//
//   this test --writes--> Counters(3) / ServerStats(2 workers, 2 servers) / HealthTable(2)
//   fetch /metrics --> startAdmin --collect() at scrape time--> reads the same tables
import { spawnSync } from 'node:child_process';
import net from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { startAdmin, type Admin, type AdminSources } from '../../src/main/admin.js';
import { C, Counters } from '../../src/shared/counters.js';
import { DOWN, HealthTable, UP } from '../../src/shared/health.js';
import { ERROR_CODES, recordLatency, S, ServerStats } from '../../src/shared/server-stats.js';
import { Code } from '../../src/errors.js';
import { freePort, startMemcached, startProxy, type Proc } from '../helpers/procs.js';
import { WireClient } from '../helpers/wire.js';
import { eventually, roundTrip } from '../helpers/mc.js';
import { serverStats as statsServers } from '../helpers/cluster.js';
import { FakeBackend } from '../helpers/fake-backend.js';
import { ServerFigures } from '../../src/shared/server-figures.js';

const counters = new Counters(3);
const serverStats = new ServerStats(2, 2);
const health = new HealthTable(2);
const figures = new ServerFigures(2);
let live = 2;
let draining = false;

const sources: AdminSources = {
  counters,
  serverStats,
  health,
  figures,
  backupCoverageWarn: 0.95,
  servers: [{ name: '127.0.0.1:11211', role: 'master' }, { name: '127.0.0.1:12002', role: 'backup' }],
  distribution: 'jump',
  workers: 2,
  liveWorkers: () => live,
  draining: () => draining,
  drains: () => null,
};

let admin: Admin | undefined;
let base = '';

test.before(async () => {
  const main = counters.row(0);
  main[C.TOTAL_CONNECTIONS] = 12;
  main[C.REJECTED_CONNECTIONS] = 2;
  const w0 = counters.row(1);
  const w1 = counters.row(2);
  w0[C.HANDED_CONNECTIONS] = 7; w0[C.CLOSED_CONNECTIONS] = 4;
  w1[C.HANDED_CONNECTIONS] = 5; w1[C.CLOSED_CONNECTIONS] = 5;
  w0[C.CMD_GET] = 100; w1[C.CMD_GET] = 50;
  w0[C.CMD_SET] = 30; w1[C.CMD_SET] = 3;
  w0[C.CMD_TOUCH] = 4; w1[C.CMD_FLUSH] = 1;
  w0[C.GET_HITS] = 90; w1[C.GET_HITS] = 40;
  w0[C.GET_MISSES] = 10; w1[C.GET_MISSES] = 10;
  w1[C.GET_FAILOVER] = 6;
  w0[C.BYTES_READ] = 4096; w1[C.BYTES_READ] = 1024;
  w0[C.BYTES_WRITTEN] = 8192;
  w0[C.BACKEND_ERRORS] = 1; w1[C.BACKEND_TIMEOUTS] = 2; w1[C.BACKUP_REPAIRS] = 3;

  const m0 = serverStats.block(0, 0);
  const m1 = serverStats.block(1, 0);
  m0[S.REQUESTS] = 80; m1[S.REQUESTS] = 20;
  m0[S.ERRORS] = 1; m1[S.TIMEOUTS] = 2;
  m0[S.ERRORS_BY_CODE + ERROR_CODES.indexOf(Code.BACKEND_UNPARSEABLE)] = 1;
  m0[S.INFLIGHT] = 3; m1[S.INFLIGHT] = 1;
  m1[S.BACKUP_READS] = 5; m0[S.WARM_FILLS] = 9;
  // Every reply of the master took 0.5 ms: all in the [256, 512) us bucket.
  for (let i = 0; i < 100; i++) recordLatency(m0, 0.5);
  serverStats.block(0, 1)[S.REQUESTS] = 7;
  serverStats.block(1, 1)[S.BACKUP_DIVERGENCES] = 2;
  health.setState(1, DOWN);

  admin = await startAdmin({ admin: { host: '127.0.0.1', port: 0 } }, sources);
  base = `http://127.0.0.1:${admin.address.port}`;
});

test.after(async () => {
  await admin?.close();
});

async function get(path: string, init?: RequestInit): Promise<{ status: number; type: string | null; body: string }> {
  const res = await fetch(base + path, init);
  return { status: res.status, type: res.headers.get('content-type'), body: await res.text() };
}

async function metrics(): Promise<string> {
  const r = await get('/metrics');
  assert.is(r.status, 200);
  return r.body;
}

/** What `promtool check metrics` finds wrong with an exposition ('' when nothing). */
function promtoolCheck(body: string): string {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: body, encoding: 'utf8', timeout: 30_000 });
  if (r.error !== undefined) throw new Error(`promtool: ${r.error.message} (Debian: apt-get install -y prometheus)`);
  const out = `${r.stdout}${r.stderr}`.trim();
  return r.status === 0 ? out : `exit ${r.status}: ${out}`;
}

function has(body: string, line: string): void {
  assert.ok(body.split('\n').includes(line), `/metrics lacks the line: ${line}`);
}

test('/metrics: process totals, summed over the main thread and the workers', async () => {
  const r = await get('/metrics');
  assert.is(r.status, 200);
  assert.match(r.type ?? '', /^text\/plain; version=0\.0\.4/);
  const body = r.body;
  for (const line of [
    '# TYPE mcrelay_cmd_get_total counter',
    'mcrelay_connections_current 3',
    'mcrelay_connections_total 12',
    'mcrelay_connections_rejected_total 2',
    'mcrelay_cmd_get_total 150',
    'mcrelay_cmd_set_total 33',
    'mcrelay_cmd_touch_total 4',
    'mcrelay_cmd_flush_total 1',
    'mcrelay_get_hits_total 130',
    'mcrelay_get_misses_total 20',
    'mcrelay_get_failover_total 6',
    'mcrelay_bytes_read_total 5120',
    'mcrelay_bytes_written_total 8192',
    'mcrelay_backend_errors_total 1',
    'mcrelay_backend_timeouts_total 2',
    'mcrelay_backup_repairs_total 3',
    'mcrelay_workers 2',
    'mcrelay_workers_live 2',
    'mcrelay_draining 0',
  ]) has(body, line);
  assert.match(body, /^mcrelay_build_info\{version="[^"]+"\} 1$/m);
});

test('/metrics: per worker', async () => {
  const body = await metrics();
  for (const line of [
    'mcrelay_worker_cmd_get_total{worker="0"} 100',
    'mcrelay_worker_cmd_get_total{worker="1"} 50',
    'mcrelay_worker_cmd_set_total{worker="0"} 30',
    'mcrelay_worker_cmd_set_total{worker="1"} 3',
    'mcrelay_worker_connections{worker="0"} 3',
    'mcrelay_worker_connections{worker="1"} 0',
  ]) has(body, line);
  assert.not.match(body, /worker="2"/);
});

test('/metrics: per server, with its role and state', async () => {
  const body = await metrics();
  const m = 'server="127.0.0.1:11211",role="master"';
  const b = 'server="127.0.0.1:12002",role="backup"';
  for (const line of [
    `mcrelay_server_requests_total{${m}} 100`,
    `mcrelay_server_requests_total{${b}} 7`,
    `mcrelay_server_errors_total{${m}} 1`,
    `mcrelay_server_errors_by_code_total{${m},code="MCRELAY_BACKEND_UNPARSEABLE"} 1`,
    `mcrelay_server_errors_by_code_total{${m},code="MCRELAY_CONNECT_FAILED"} 0`,
    `mcrelay_server_errors_by_code_total{${b},code="MCRELAY_BACKEND_UNPARSEABLE"} 0`,
    `mcrelay_server_timeouts_total{${m}} 2`,
    `mcrelay_server_inflight{${m}} 4`,
    `mcrelay_server_inflight{${b}} 0`,
    `mcrelay_server_backup_reads_total{${m}} 5`,
    `mcrelay_server_warm_fills_total{${m}} 9`,
    `mcrelay_server_backup_divergences_total{${b}} 2`,
    `mcrelay_server_backup_divergences_total{${m}} 0`,
    // 100 replies of 0.5 ms, in the log2 bucket [256, 512) us: cumulative from le 512 us on.
    `mcrelay_server_latency_seconds_bucket{${m},le="0.000016"} 0`,
    `mcrelay_server_latency_seconds_bucket{${m},le="0.000256"} 0`,
    `mcrelay_server_latency_seconds_bucket{${m},le="0.000512"} 100`,
    `mcrelay_server_latency_seconds_bucket{${m},le="8.388608"} 100`,
    `mcrelay_server_latency_seconds_bucket{${m},le="+Inf"} 100`,
    `mcrelay_server_latency_seconds_sum{${m}} 0.05`,
    `mcrelay_server_latency_seconds_count{${m}} 100`,
    `mcrelay_server_latency_seconds_bucket{${b},le="+Inf"} 0`,
    `mcrelay_server_latency_seconds_count{${b}} 0`,
    `mcrelay_server_state{${m},state="up"} 1`,
    `mcrelay_server_state{${m},state="down"} 0`,
    `mcrelay_server_state{${b},state="up"} 0`,
    `mcrelay_server_state{${b},state="down"} 1`,
    `mcrelay_server_state{${m},state="warming"} 0`,
  ]) has(body, line);
});

test("/metrics: a server's own figures from the last stats poll, absent while there is none", async () => {
  figures.publishStats(1, 'STAT pid 9\r\nSTAT curr_items 1770\r\nSTAT bytes 1900000\r\nSTAT limit_maxbytes 2097152\r\nSTAT evictions 18230\r\nSTAT store_no_memory 4\r\nEND\r\n', Date.now());
  const body = await metrics();
  const b = 'server="127.0.0.1:12002",role="backup"';
  for (const line of [
    `mcrelay_server_current_items{${b}} 1770`,
    `mcrelay_server_current_bytes{${b}} 1900000`,
    `mcrelay_server_limit_bytes{${b}} 2097152`,
    `mcrelay_server_items_evicted_total{${b}} 18230`,
    `mcrelay_server_store_no_memory_total{${b}} 4`,
    `mcrelay_server_items_total{${b}} 0`,
  ]) has(body, line);
  assert.not.match(body, /^mcrelay_server_current_items\{server="127\.0\.0\.1:11211"/m);
  figures.forget(1);
  assert.not.match(await metrics(), /^mcrelay_server_current_items\{/m);
});

test('/metrics: read from the tables at each scrape', async () => {
  counters.row(2)[C.CMD_GET]! += 25;
  health.setState(1, UP);
  const body = await metrics();
  has(body, 'mcrelay_cmd_get_total 175');
  has(body, 'mcrelay_worker_cmd_get_total{worker="1"} 75');
  has(body, 'mcrelay_server_state{server="127.0.0.1:12002",role="backup",state="up"} 1');
});

test('/metrics: process and Node.js metrics', async () => {
  const body = await metrics();
  assert.match(body, /^process_cpu_user_seconds_total \d/m);
  assert.match(body, /^process_start_time_seconds \d+$/m);
  assert.match(body, /^nodejs_heap_size_used_bytes \d+$/m);
});

test('/metrics: every sample line is valid exposition text', async () => {
  const body = await metrics();
  assert.ok(body.endsWith('\n'));
  for (const line of body.split('\n')) {
    if (line === '' || line.startsWith('# HELP ') || line.startsWith('# TYPE ')) continue;
    // prom-client writes NaN as "Nan": Prometheus reads special values case-insensitively.
    assert.match(line, /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"\n]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"\n]*")*\})? (-?[0-9.e+-]+|NaN|Nan|[+-]Inf)$/, line);
  }
});

test('/metrics passes promtool check metrics (types, names, histogram buckets)', async () => {
  assert.is(promtoolCheck(await metrics()), '');
});

test('/metrics of a running mcrelay passes promtool check metrics', async () => {
  const mc = await startMemcached();
  let proxy: Proc | undefined;
  try {
    const adminPort = await freePort();
    proxy = await startProxy(['-s', mc.addr, '--workers', '1', '--admin', `127.0.0.1:${adminPort}`]);
    const c = await WireClient.connect(proxy.port);
    try {
      assert.is((await roundTrip(c, 'set k 0 0 1\r\nv\r\n')).line, 'STORED');
      assert.is((await roundTrip(c, 'get k\r\n')).line, 'END');
    } finally {
      c.close();
    }
    const res = await fetch(`http://127.0.0.1:${adminPort}/metrics`);
    const body = await res.text();
    assert.is(res.status, 200);
    // The replies above are in the scrape: it is a live one, not an empty registry.
    const count = Number(new RegExp(`^mcrelay_server_latency_seconds_count\\{server="${mc.addr}",role="master"\\} (\\d+)$`, 'm').exec(body)?.[1]);
    assert.ok(count >= 2, `latency count ${count}`);
    assert.is(promtoolCheck(body), '');
  } finally {
    await Promise.all([proxy?.stop(), mc.stop()]);
  }
});

test('garbage from a master: one error under MCRELAY_BACKEND_UNPARSEABLE, in /metrics and in stats servers', async () => {
  // The master answers every request but version (the prober's) with garbage;
  // the backup, a real memcached, answers the read. A long retry interval keeps
  // the master down (no more traffic) once the error has marked it so.
  const fake = await new FakeBackend((_line, s) => s.write('HELLO WORLD\r\n')).listen();
  const backup = await startMemcached();
  let proxy: Proc | undefined;
  try {
    const adminPort = await freePort();
    proxy = await startProxy(['-s', fake.addr, '-b', backup.addr, '--workers', '1', '--retry-interval', '60000', '--admin', `127.0.0.1:${adminPort}`]);
    const c = await WireClient.connect(proxy.port);
    try {
      assert.is(await c.request('get k\r\n', 'END\r\n'), 'END\r\n');
    } finally {
      c.close();
    }
    assert.ok(fake.lines.includes('get k'), `the fake saw ${JSON.stringify(fake.lines)}`);

    const res = await fetch(`http://127.0.0.1:${adminPort}/metrics`);
    const body = await res.text();
    assert.is(res.status, 200);
    // Each server's errors, and each of its codes, as /metrics and stats servers show them.
    const scraped = (addr: string, role: string): Record<string, string | undefined> => {
      const sample = (name: string, code?: string): string | undefined => new RegExp(
        `^mcrelay_server_${name}\\{server="${addr}",role="${role}"${code === undefined ? '' : `,code="${code}"`}\\} (\\S+)$`, 'm').exec(body)?.[1];
      return Object.fromEntries([['errors', sample('errors_total')], ...ERROR_CODES.map((code) => [`errors_${code}`, sample('errors_by_code_total', code)])]);
    };
    const { table } = await statsServers(proxy.port);
    const listed = (addr: string): Record<string, string | undefined> =>
      Object.fromEntries(['errors', ...ERROR_CODES.map((code) => `errors_${code}`)].map((f) => [f, table.get(addr)?.get(f)]));
    const master = {
      errors: '1', errors_MCRELAY_CONNECT_FAILED: '0', errors_MCRELAY_BACKEND_CONNECTION_LIMIT: '0', errors_MCRELAY_BACKEND_CLOSED: '0',
      errors_MCRELAY_BACKEND_UNPARSEABLE: '1', errors_MCRELAY_BACKEND_UNEXPECTED_REPLY: '0', errors_MCRELAY_BACKEND_AUTH: '0',
    };
    const none = { ...master, errors: '0', errors_MCRELAY_BACKEND_UNPARSEABLE: '0' };
    assert.equal(scraped(fake.addr, 'master'), master);
    assert.equal(listed(fake.addr), master);
    assert.equal(scraped(backup.addr, 'backup'), none);
    assert.equal(listed(backup.addr), none);
    has(body, 'mcrelay_backend_errors_total 1');
    has(body, `mcrelay_server_state{server="${fake.addr}",role="master",state="down"} 1`);
    // Neither a timeout nor a reconnect: the garbage is one protocol error.
    assert.equal([table.get(fake.addr)?.get('timeouts'), table.get(fake.addr)?.get('reconnects')], ['0', '0']);
    assert.is(promtoolCheck(body), '');
  } finally {
    await Promise.all([proxy?.stop(), backup.stop(), fake.close()]);
  }
});

test('/health: 200 while a worker is live, else 503', async () => {
  assert.equal(await get('/health'), { status: 200, type: 'text/plain; charset=utf-8', body: 'ok\n' });
  live = 0;
  assert.equal(await get('/health'), { status: 503, type: 'text/plain; charset=utf-8', body: 'no live worker\n' });
  live = 2;
});

test('/ready: degraded redundancy in its JSON body while a backup holds too little, still 200', async () => {
  const b = 'server="127.0.0.1:12002",role="backup"';
  assert.equal(await get('/ready'), { status: 200, type: 'application/json', body: '{"status":"ready","redundancy":"full","backups":[{"server":"127.0.0.1:12002","state":"up","coverage":null}]}\n' });
  assert.not.match(await metrics(), /^mcrelay_server_backup_coverage\{/m);
  figures.publishCoverage(1, 0.25, 40);
  assert.equal(await get('/ready'), { status: 200, type: 'application/json', body: '{"status":"ready","redundancy":"degraded","backups":[{"server":"127.0.0.1:12002","state":"up","coverage":0.25}]}\n' });
  has(await metrics(), `mcrelay_server_backup_coverage{${b}} 0.25`);
  figures.publishCoverage(1, 0.96, 40);
  assert.match((await get('/ready')).body, /"redundancy":"full"/);
  health.setState(1, DOWN);
  assert.match((await get('/ready')).body, /"redundancy":"degraded","backups":\[\{"server":"127\.0\.0\.1:12002","state":"down"/);
  health.setState(1, UP);
});

test('/ready: 200 until draining, and not without a live worker', async () => {
  assert.is((await get('/ready')).status, 200);
  live = 0;
  assert.is((await get('/ready')).status, 503);
  live = 2;
  draining = true;
  assert.equal(await get('/ready'), { status: 503, type: 'application/json', body: '{"status":"draining"}\n' });
  // Draining is not dead: the process still answers for what is in flight.
  assert.is((await get('/health')).status, 200);
  has(await metrics(), 'mcrelay_draining 1');
  draining = false;
});

test('/config: the running server lists and distribution; a rebuilt list shows at the next request', async () => {
  assert.equal(await get('/config'), {
    status: 200, type: 'application/json', body: '{"masters":["127.0.0.1:11211"],"backups":["127.0.0.1:12002"],"distribution":"jump"}\n',
  });
  admin!.setSources({
    ...sources,
    distribution: 'magent',
    servers: [{ name: 'mc9:11211', role: 'master' }, { name: '[::1]:11300', role: 'master' }, { name: '/run/mc.sock', role: 'backup' }],
  });
  try {
    assert.equal(JSON.parse((await get('/config')).body), { masters: ['mc9:11211', '[::1]:11300'], backups: ['/run/mc.sock'], distribution: 'magent' });
    admin!.setSources({ ...sources, servers: [{ name: 'mc9:11211', role: 'master' }] });
    assert.equal(JSON.parse((await get('/config')).body), { masters: ['mc9:11211'], backups: [], distribution: 'jump' });
  } finally {
    admin!.setSources(sources);
  }
  const post = await fetch(`${base}/config`, { method: 'POST', body: 'x' });
  assert.is(post.status, 405);
  await post.text();
});

test('other paths: 404; other methods: 405; HEAD: no body; a query string is ignored', async () => {
  assert.equal(await get('/'), { status: 404, type: 'text/plain; charset=utf-8', body: 'not found\n' });
  assert.is((await get('/metricsx')).status, 404);
  assert.is((await get('/metrics/')).status, 404);
  const post = await fetch(`${base}/metrics`, { method: 'POST', body: 'x' });
  assert.is(post.status, 405);
  assert.is(post.headers.get('allow'), 'GET, HEAD');
  await post.text();
  const head = await get('/health', { method: 'HEAD' });
  assert.is(head.status, 200);
  assert.is(head.body, '');
  assert.is((await get('/health?verbose=1')).status, 200);
});

test('setSources: a rebuilt server list shows at the next scrape; old servers go', async () => {
  const stats = new ServerStats(2, 1);
  stats.block(1, 0)[S.REQUESTS] = 42;
  admin!.setSources({ ...sources, serverStats: stats, health: new HealthTable(1), servers: [{ name: 'mc9:11211', role: 'master' }] });
  const body = await metrics();
  has(body, 'mcrelay_server_requests_total{server="mc9:11211",role="master"} 42');
  assert.not.match(body, /127\.0\.0\.1:11211/);
  admin!.setSources(sources);
});

/** A raw connection to the admin port: what it received, and whether the server closed it. */
async function rawConnect(port: number): Promise<{ socket: net.Socket; closed: () => boolean; received: () => string }> {
  const socket = net.connect(port, '127.0.0.1');
  let closed = false;
  let received = '';
  socket.on('data', (d: Buffer) => { received += d.toString('latin1'); });
  socket.on('close', () => { closed = true; });
  socket.on('error', () => { /* seen as close */ });
  await new Promise((r) => socket.once('connect', r));
  return { socket, closed: () => closed, received: () => received };
}

test('a client that never finishes its headers is dropped after the header timeout', async () => {
  const slow = await startAdmin({ admin: { host: '127.0.0.1', port: 0 } }, sources, { headersTimeoutMs: 300, maxConnections: 64 });
  const c = await rawConnect(slow.address.port);
  try {
    c.socket.write('GET /metrics HTTP/1.1\r\nHost: x\r\n');
    // Node's default check interval (30 s) would keep it open far past 300 ms.
    const dropped = await eventually(async () => c.closed(), 5000, 50);
    assert.ok(dropped, `still open after 5 s; received ${JSON.stringify(c.received())}`);
    assert.match(c.received(), /^HTTP\/1\.1 408 /);
  } finally {
    c.socket.destroy();
    await slow.close();
  }
});

test('connections past the cap are closed at once; the listener serves again once one leaves', async () => {
  const capped = await startAdmin({ admin: { host: '127.0.0.1', port: 0 } }, sources, { headersTimeoutMs: 10_000, maxConnections: 3 });
  const port = capped.address.port;
  const held = await Promise.all([1, 2, 3].map(() => rawConnect(port)));
  try {
    const extra = await rawConnect(port);
    extra.socket.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.ok(await eventually(async () => extra.closed(), 3000, 20), 'the fourth connection is closed');
    assert.is(extra.received(), '', 'and not answered');
    assert.ok(held.every((h) => !h.closed()), 'the three held connections stay open');
    held[0]!.socket.destroy();
    assert.ok(await eventually(async () => {
      try { return (await fetch(`http://127.0.0.1:${port}/health`)).status === 200; } catch { return false; }
    }, 3000, 50), '/health answers once a connection left');
  } finally {
    for (const h of held) h.socket.destroy();
    await capped.close();
  }
});

test('a port already taken: startAdmin rejects', async () => {
  try {
    const second = await startAdmin({ admin: { host: '127.0.0.1', port: admin!.address.port } }, sources);
    await second.close();
    assert.unreachable('bound a port already in use');
  } catch (err) {
    assert.is((err as NodeJS.ErrnoException).code, 'EADDRINUSE');
  }
});

test('close: stops listening even with a keep-alive connection open', async () => {
  await get('/health');
  const port = admin!.address.port;
  await admin!.close();
  admin = undefined;
  let refused = false;
  try {
    await fetch(`http://127.0.0.1:${port}/health`);
  } catch {
    refused = true;
  }
  assert.ok(refused);
});

test.run();
