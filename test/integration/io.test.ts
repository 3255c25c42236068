// The I/O layer (src/io/) as a client sees it:
//
//   --io portable      serves text clients through every worker (reusePort), counts
//                      and limits connections, closes idle connections both ways
//   fallback           under node --permission (process.binding refused) and on a
//                      Node whose tcp_wrap lacks TCP: one warning line, then portable
//   refusals           what portable cannot do (-f, -u) stops the start, naming it
import { spawn } from 'node:child_process';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CLI, freePort, Proc, ROOT, startMemcached, startProxy, waitForPort } from '../helpers/procs.js';
import { WireClient } from '../helpers/wire.js';
import { readReplies, roundTrip } from '../helpers/mc.js';
import { serverStats } from '../helpers/cluster.js';

const HIDE_TCP = path.join(ROOT, 'dist/test/helpers/hide-internal.js');
const started: Proc[] = [];
const clients: WireClient[] = [];

test.after.each(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.all(started.splice(0).map((p) => p.stop()));
});

async function mc(extra: string[] = []): Promise<Proc> {
  const p = await startMemcached({ extraArgs: extra });
  started.push(p);
  return p;
}

async function connect(port: number): Promise<WireClient> {
  const c = await WireClient.connect(port);
  clients.push(c);
  return c;
}

/** mcrelay started by hand: node flags before the CLI, and an environment of its own. */
async function launch(nodeFlags: string[], flags: string[], env: NodeJS.ProcessEnv = {}, port?: number): Promise<Proc> {
  port ??= await freePort();
  const child = spawn(process.execPath, [...nodeFlags, CLI, '-l', '127.0.0.1', '-p', String(port), '--admin', 'off', ...flags], {
    stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env },
  });
  const p = new Proc(child, port);
  started.push(p);
  return p;
}

/**
 * Waits until a launched mcrelay serves: it says 'mcrelay started' once every
 * listener is up (in --io portable the data port answers for a moment before
 * the workers listen), then the port; an exit on the way fails with its output.
 */
async function serving(p: Proc): Promise<void> {
  await Promise.race([
    p.waitForOutput('mcrelay started', 10000).then(() => waitForPort(p.port, 10000)),
    p.wait().then((code) => { throw new Error(`exited ${code}: ${p.output}`); }),
  ]);
}

/** The proxy's `stats` value of one field. */
async function stat(port: number, name: string): Promise<number> {
  const c = await connect(port);
  const raw = await c.request('stats\r\n', 'END\r\n');
  c.close();
  const m = new RegExp(`STAT ${name} (\\d+)`).exec(raw);
  assert.ok(m, `stats has ${name}`);
  return Number(m[1]);
}

/** Polls `probe` until it returns true, for at most `ms`. */
async function until(probe: () => Promise<boolean>, ms = 5000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await probe()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return false;
}

/** Writes and reads 40 keys through `port`, over 8 connections at once. */
async function setAndGet(port: number, prefix: string): Promise<void> {
  await Promise.all(Array.from({ length: 8 }, async (_, i) => {
    const c = await connect(port);
    for (let k = 0; k < 5; k++) {
      const key = `${prefix}:${i}:${k}`;
      assert.is((await roundTrip(c, `set ${key} 3 0 ${key.length}\r\n${key}\r\n`)).line, 'STORED');
      const r = await roundTrip(c, `get ${key}\r\n`);
      assert.is(r.line, 'END');
      assert.equal(r.values.map((v) => [v.key, v.flags, v.data.toString()]), [[key, 3, key]]);
    }
  }));
}

/** mcrelay's warning lines (JSON log, level warn). */
function warnings(p: Proc): string[] {
  return p.output.split('\n').filter((l) => l.includes('"level":"warn"'));
}

test('--io portable: 3 workers serve 8 clients at once, each reading its own writes', async () => {
  const m = await mc();
  const p = await startProxy(['--io', 'portable', '--workers', '3', '-s', m.addr]);
  started.push(p);
  assert.ok(await p.waitForOutput('"io":"portable"'), 'the start line says portable');
  await setAndGet(p.port, 'portable');
  assert.is(await stat(p.port, 'total_connections'), 10, "startProxy's port check, 8 clients and this stats connection");
});

test('--io portable: -n is the limit over all workers; the client past it reads memcached\'s refusal', async () => {
  const m = await mc();
  const p = await startProxy(['--io', 'portable', '--workers', '2', '-n', '3', '-s', m.addr]);
  started.push(p);
  // The first client, once no earlier connection (startProxy's port check) is still being closed.
  const alone: WireClient[] = [];
  assert.ok(await until(async () => {
    const c = await connect(p.port);
    // Closes the proxy has not yet seen count against -n: this client may be the one refused.
    const stats = await c.request('stats\r\n', 'END\r\n').catch(() => '');
    const open = /STAT curr_connections (\d+)/.exec(stats)?.[1];
    if (open === '1') alone.push(c);
    else c.close();
    return alone.length > 0;
  }), 'a client alone on the proxy');
  // Two more served: on a loaded machine a worker may see a probe's close after
  // another worker counted the proxy's clients, so a refused one is tried again.
  const held = [alone[0]!];
  for (let i = 0; i < 2; i++) {
    assert.ok(await until(async () => {
      const c = await connect(p.port);
      c.write('version\r\n');
      const r = await c.readUntil((x) => x.includes('\r\n') || c.closed, 2000).catch(() => Buffer.alloc(0));
      if (r.toString().startsWith('VERSION ')) held.push(c);
      else c.close();
      return held.length === i + 2;
    }), `client ${i + 2} of 3 served`);
  }
  assert.match(await held[0]!.request('stats\r\n', 'END\r\n'), /STAT curr_connections 3\r\n/);
  const fourth = await connect(p.port);
  const b = await fourth.readUntil(() => fourth.closed, 3000);
  assert.is(b.toString(), 'ERROR Too many open connections\r\n');
  held[0]!.close();
  // Once one of the three has gone, a new client is served.
  assert.ok(await until(async () => {
    const c = await connect(p.port);
    c.write('version\r\n');
    const r = await c.readUntil((x) => x.includes('\r\n') || c.closed, 2000).catch(() => Buffer.alloc(0));
    c.close();
    return r.toString().startsWith('VERSION ');
  }), 'a client is served after one closed');
});

test('--io portable: idle connections closed by the client and by memcached (idle_timeout)', async () => {
  const m = await mc(['-o', 'idle_timeout=1']);
  const p = await startProxy(['--io', 'portable', '--workers', '2', '-s', m.addr]);
  started.push(p);
  const a = await connect(p.port);
  const b = await connect(p.port);
  assert.is((await roundTrip(a, 'set idle 0 0 1\r\nx\r\n')).line, 'STORED');
  assert.is((await roundTrip(b, 'get idle\r\n')).values.length, 1);
  // The client closes: the proxy sees it (curr_connections counts this stats connection).
  b.close();
  assert.ok(await until(async () => await stat(p.port, 'curr_connections') === 2), 'curr_connections back to 2');
  // The client half-closes after a request: it still reads the reply, then the proxy closes.
  const c = await connect(p.port);
  c.write('get idle\r\n');
  c.socket.end();
  const tail = await c.readUntil(() => c.closed, 3000);
  assert.is(tail.toString(), 'VALUE idle 0 1\r\nx\r\nEND\r\n');
  // memcached closes the proxy's quiet connection; the next request reconnects.
  assert.ok(await until(async () => {
    const s = await serverStats(p.port);
    return Number(s.table.get(m.addr)?.get('reconnects') ?? 0) >= 1;
  }, 8000), 'the proxy saw memcached close its idle connection');
  const r = await roundTrip(a, 'get idle\r\n');
  assert.equal(r.values.map((v) => v.data.toString()), ['x']);
  assert.is((await serverStats(p.port)).table.get(m.addr)?.get('errors'), '0', 'an idle close is no error');
});

test('node --permission refuses process.binding: one warning line, then portable serves', async () => {
  const m = await mc();
  // --allow-worker: the workers. No --allow-child-process: main/malloc.ts must not try its execve.
  // Node 26 also restricts the network under --permission (--allow-net); Node 22 and 24 do not know the flag.
  const net = process.allowedNodeEnvironmentFlags.has('--allow-net') ? ['--allow-net'] : [];
  const p = await launch(['--permission', '--allow-fs-read=*', '--allow-worker', ...net], ['--workers', '2', '-s', m.addr], { MALLOC_MMAP_THRESHOLD_: undefined });
  await serving(p);
  await setAndGet(p.port, 'permission');
  const w = warnings(p);
  assert.is(w.length, 1, w.join('\n'));
  assert.match(w[0]!, /running with --io portable/);
  assert.match(w[0]!, /process.binding\('tcp_wrap'\): ERR_ACCESS_DENIED/);
  assert.match(p.output, /"io":"portable"/);
});

test('a Node whose tcp_wrap lacks TCP: the check names it, and portable serves', async () => {
  const m = await mc();
  const p = await launch(['--import', HIDE_TCP], ['--workers', '2', '-s', m.addr]);
  await serving(p);
  await setAndGet(p.port, 'hidden');
  const w = warnings(p);
  assert.is(w.length, 1, w.join('\n'));
  assert.match(w[0]!, /"missing":\["tcp_wrap.TCP"\]/);
});

test('the default is the fast path, without a warning', async () => {
  const m = await mc();
  const p = await launch([], ['--workers', '2', '-s', m.addr]);
  await serving(p);
  await setAndGet(p.port, 'fast');
  assert.match(p.output, /"io":"fast"/);
  assert.equal(warnings(p), []);
});

test('--io portable on a port another mcrelay --io portable holds: refused, as the fast path would be (no silent sharing)', async () => {
  const m = await mc();
  const first = await startProxy(['--io', 'portable', '--workers', '2', '-s', m.addr]);
  started.push(first);
  const second = await launch([], ['--io', 'portable', '--workers', '2', '-s', m.addr], {}, first.port);
  const code = await Promise.race([second.wait(), new Promise<string>((r) => setTimeout(r, 10000, 'running'))]);
  assert.is(code, 1, second.output);
  assert.match(second.output, new RegExp(`listen 127.0.0.1:${first.port}: .*EADDRINUSE`));
  await setAndGet(first.port, 'first');
});

test('what portable cannot do stops the start with status 2, naming the option', async () => {
  const m = await mc();
  const cases: Array<[string[], RegExp]> = [
    [['--io', 'portable', '-f', `/tmp/mcrelay-io-${process.pid}.sock`], /--io portable cannot listen on a unix socket \(-f/],
    [['--io', 'portable', '-u', 'nobody'], /--io portable cannot switch user \(-u/],
    [['--io', 'slow'], /invalid value 'slow' for --io: expected fast or portable/],
  ];
  for (const [flags, message] of cases) {
    const p = await launch([], [...flags, '-s', m.addr]);
    const code = await Promise.race([p.wait(), new Promise<string>((r) => setTimeout(r, 10000, 'running'))]);
    assert.is(code, 2, `${flags.join(' ')}: ${p.output}`);
    assert.match(p.output, message);
  }
});

test.run();
