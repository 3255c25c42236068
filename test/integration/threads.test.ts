// Worker threads, in-process: mcrelay started with start() inside this test
// process (4 workers, 1 real memcached), so the supervisor's view (load per
// worker) and the process's descriptor table can be read directly.
//
//   test clients --> main thread (accept, least-connections hand-off) --> worker 0..3 --> memcached
//
// The tests run in order and share the proxy.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import net from 'node:net';
import { start, type Running } from '../../src/main/start.js';
import { parseArgv } from '../../src/config/argv.js';
import { freePort, sleep, startMemcached, type Proc } from '../helpers/procs.js';
import { WireClient } from '../helpers/wire.js';
import { eventually, roundTrip } from '../helpers/mc.js';

const WORKERS = 4;
let mc: Proc | undefined;
let running: Running | undefined;
let port = 0;
const open: WireClient[] = [];

test.before(async () => {
  mc = await startMemcached();
  port = await freePort();
  const parsed = parseArgv(['-l', '127.0.0.1', '-p', String(port), '-s', mc.addr, '--workers', String(WORKERS), '--admin', 'off']);
  if (parsed.kind !== 'run') throw new Error(`argv: ${JSON.stringify(parsed)}`);
  running = await start(parsed.config);
});

test.after(async () => {
  for (const c of open) c.close();
  await running?.stop();
  running = undefined;
  await mc?.stop();
});

function fds(): number { return fs.readdirSync('/proc/self/fd').length; }
function sum(xs: number[]): number { return xs.reduce((a, x) => a + x, 0); }
function load(): number[] { return running!.supervisor.load(); }

async function connectMany(n: number): Promise<WireClient[]> {
  const cs: WireClient[] = [];
  for (let i = 0; i < n; i++) cs.push(await WireClient.connect(port));
  open.push(...cs);
  return cs;
}

function closeAll(cs: WireClient[]): void {
  for (const c of cs) {
    c.close();
    const i = open.indexOf(c);
    if (i >= 0) open.splice(i, 1);
  }
}

async function settleLoad(total: number, timeoutMs = 3000): Promise<number[]> {
  await eventually(async () => sum(load()) === total, timeoutMs, 10);
  return load();
}

/** One short client life: connect, version, then close (client side, or server side after quit). */
function cycle(serverCloses: boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let got = '';
    const timer = setTimeout(() => { s.destroy(); reject(new Error(`cycle timed out; got ${JSON.stringify(got)}`)); }, 5000);
    s.on('connect', () => s.write(serverCloses ? 'version\r\nquit\r\n' : 'version\r\n'));
    s.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      if (!serverCloses && got.endsWith('\r\n')) s.destroy();
    });
    s.on('error', (err) => { clearTimeout(timer); reject(err); });
    s.on('close', () => {
      clearTimeout(timer);
      if (got.startsWith('VERSION ') && got.endsWith('\r\n')) resolve();
      else reject(new Error(`bad reply ${JSON.stringify(got)}`));
    });
  });
}

test('64 clients spread over 4 workers: each holds 15..17', async () => {
  const cs = await connectMany(64);
  const l = await settleLoad(64);
  assert.is(l.length, WORKERS);
  assert.ok(l.every((n) => n >= 15 && n <= 17), `load per worker ${JSON.stringify(l)}`);
  // every one of them is served
  for (const c of cs) assert.match(await c.request('version\r\n'), /^VERSION /);
  closeAll(cs);
  const after = await settleLoad(0);
  assert.equal(after, [0, 0, 0, 0], 'closed clients are no longer counted');
});

test('20,000 connect/version/close cycles leave no descriptor behind', async () => {
  await sleep(300);
  const baseline = fds();
  const total = 20_000;
  const concurrency = 50;
  let next = 0;
  let failures = 0;
  let firstError = '';
  const t0 = Date.now();
  const lane = async (): Promise<void> => {
    while (next < total) {
      const i = next++;
      try {
        await cycle(i % 2 === 1);
      } catch (err) {
        failures++;
        if (firstError === '') firstError = (err as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  const ms = Date.now() - t0;
  console.log(`    ${total} cycles in ${ms} ms (${Math.round(total / (ms / 1000))}/s)`);
  assert.is(failures, 0, `failed cycles, first: ${firstError}`);
  const l = await settleLoad(0, 5000);
  assert.equal(l, [0, 0, 0, 0], 'every client counted as closed');
  let now = fds();
  await eventually(async () => { now = fds(); return now <= baseline + 4; }, 3000, 50);
  console.log(`    descriptors: ${baseline} before, ${now} after`);
  assert.ok(now <= baseline + 4, `descriptors: ${baseline} before, ${now} after`);
});

test('a killed worker: its clients are dropped, the others keep working, a replacement serves new clients', async () => {
  const sup = running!.supervisor;
  const cs = await connectMany(64);
  const before = await settleLoad(64);
  assert.ok(before.every((n) => n >= 15 && n <= 17), `load ${JSON.stringify(before)}`);
  for (let i = 0; i < cs.length; i++) {
    assert.is((await roundTrip(cs[i]!, `set thr:${i} 0 0 ${String(i).length}\r\n${i}\r\n`)).line, 'STORED');
  }
  const victim = 1;
  const oldThread = sup.workerThreadIds()[victim]!;
  assert.ok(oldThread >= 0);
  await sup.killWorker(victim);

  // exactly that worker's clients see their connection end
  await eventually(async () => cs.filter((c) => c.closed).length >= before[victim]!, 3000, 20);
  await sleep(200);
  const dropped = cs.filter((c) => c.closed);
  const alive = cs.filter((c) => !c.closed);
  assert.is(dropped.length, before[victim], `dropped ${dropped.length}, worker held ${before[victim]}`);
  for (const c of alive) {
    const i = cs.indexOf(c);
    const r = await roundTrip(c, `get thr:${i}\r\n`);
    assert.is(r.values[0]?.data.toString(), String(i), `client ${i} still served`);
  }

  // the replacement
  await eventually(async () => { const t = sup.workerThreadIds()[victim]!; return t >= 0 && t !== oldThread; }, 5000, 20);
  const newThread = sup.workerThreadIds()[victim]!;
  assert.ok(newThread >= 0 && newThread !== oldThread, `worker ${victim}: thread ${oldThread} -> ${newThread}`);
  assert.is(sup.workerThreadIds().length, WORKERS);
  assert.is(load()[victim], 0, 'the dead worker\'s clients are no longer counted');
  await sleep(300); // its hand-off pipe connects
  const fresh = await connectMany(16);
  const l = await settleLoad(alive.length + 16);
  assert.is(l.length, WORKERS);
  assert.ok(l[victim]! >= 14, `new clients go to the empty replacement: load ${JSON.stringify(l)}`);
  for (let i = 0; i < fresh.length; i++) {
    assert.is((await roundTrip(fresh[i]!, `get thr:${i}\r\n`)).values[0]?.data.toString(), String(i), `new client ${i}`);
  }
  for (const c of alive) assert.match(await c.request('version\r\n'), /^VERSION /);
  const stats = await fresh[0]!.request('stats\r\n', 'END\r\n');
  assert.match(stats, new RegExp(`STAT curr_connections ${alive.length + 16}\\r\\n`), 'stats counts only live clients');
  closeAll(dropped);
});

test('stop(): listener closed, remaining clients disconnected, workers gone', async () => {
  const r = running!;
  const clients = open.slice();
  assert.ok(clients.length > 0);
  const t0 = Date.now();
  await r.stop();
  running = undefined;
  console.log(`    stop() took ${Date.now() - t0} ms`);
  assert.ok(Date.now() - t0 < 5000);
  await eventually(async () => clients.every((c) => c.closed), 3000, 20);
  assert.is(clients.filter((c) => !c.closed).length, 0, 'every client connection ended');
  const refused = await new Promise<boolean>((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.on('connect', () => { s.destroy(); resolve(false); });
    s.on('error', () => resolve(true));
  });
  assert.ok(refused, 'nothing listens any more');
  closeAll(clients);
});

test.run();
