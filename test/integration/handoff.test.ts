// The handoff pipes between the main thread and the workers: no other local
// process may become one (whoever does receives that worker's clients).
//
//   prober (uid 65534) --connect--> /tmp/mcrelay-<pid>-w<i>-<gen>-<random>.sock   EACCES (mode 0600)
//   prober (root)      --connect, junk--> same                                   closed, nothing sent
//   clients --> mcrelay (2 workers, worker 0 replaced 3 times) --> memcached      correct replies
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { HandoffReceiver, HandoffServer, MAX_SOCKET_PATH } from '../../src/io/handoff.js';
import { codeOf, HandoffError } from '../../src/errors.js';
import { HARNESS, Proc, ROOT, startMemcached, startProxy, PORTABLE_RUN } from '../helpers/procs.js';
import { WireClient } from '../helpers/wire.js';
import { eventually, roundTrip } from '../helpers/mc.js';

// A suite of its own, not uvu's shared `test`: in portable mode it is never
// run, and a run of several files in one process must not run it either.
const test = suite();

const PROBER = path.join(ROOT, 'dist/test/helpers/handoff-prober.js');
const procs: Proc[] = [];
test.after.each(async () => { for (const p of procs.splice(0)) await p.stop(); });

const asRoot = process.getuid?.() === 0;

function prober(pid: number, uid: number): Proc {
  // Only this proxy's pipes: other mcrelays on the machine are not the test's to poke.
  const child = spawn(process.execPath, [PROBER, '60', `mcrelay-${pid}-`], { uid, gid: uid, stdio: ['ignore', 'pipe', 'pipe'] });
  const p = new Proc(child, 0);
  procs.push(p);
  return p;
}

interface ProbeResult { rounds: number; attempts: number; connected: number; bytesReceived: number; errors: Record<string, number>; paths: string[] }

async function finish(p: Proc): Promise<ProbeResult> {
  await p.stop('SIGTERM');
  return JSON.parse(p.output.trim().split('\n').pop()!) as ProbeResult;
}

/** New clients, one per worker at least: each sets and reads back its own key. */
async function clientsServed(port: number, round: number): Promise<void> {
  const cs = await Promise.all(Array.from({ length: 4 }, () => WireClient.connect(port)));
  for (let i = 0; i < cs.length; i++) {
    const key = `h${round}-${i}`;
    assert.is((await roundTrip(cs[i]!, `set ${key} 0 0 2\r\nv${i}\r\n`)).line, 'STORED');
    assert.is((await roundTrip(cs[i]!, `get ${key}\r\n`)).values[0]?.data.toString(), `v${i}`, key);
  }
  for (const c of cs) c.close();
}

test('another uid cannot connect to a handoff pipe, root is refused: at start and at 3 worker replacements', async () => {
  if (!asRoot) { console.log('    skipped: needs root to run the prober as another uid'); return; }
  const mc = await startMemcached();
  procs.push(mc);
  let others: Proc | null = null;
  let root: Proc | null = null;
  const proxy = await startProxy(['-s', mc.addr, '--workers', '2'], {
    entry: HARNESS,
    // The probers start before the proxy has made its first pipe.
    onSpawn: (p) => { others = prober(p.pid, 65534); root = prober(p.pid, 0); },
  });
  procs.push(proxy);
  assert.ok(await proxy.waitForOutput('ready\n'), proxy.output);
  await clientsServed(proxy.port, 0);
  for (let round = 1; round <= 3; round++) {
    const before = proxy.output.split('\nreplaced').length;
    proxy.signal('SIGUSR2');
    assert.ok(await eventually(async () => proxy.output.split('\nreplaced').length > before || proxy.output.includes('not replaced'), 10_000, 20), proxy.output);
    assert.not.match(proxy.output, /not replaced/);
    await clientsServed(proxy.port, round);
  }
  const o = await finish(others!);
  const r = await finish(root!);
  console.log(`    uid 65534: ${JSON.stringify({ ...o, paths: o.paths.length })}`);
  console.log(`    root:      ${JSON.stringify({ ...r, paths: r.paths.length })}`);
  assert.ok(o.attempts > 0 && o.paths.length > 0, 'the prober found handoff pipes to try');
  assert.is(o.connected, 0, `connections made by uid 65534: ${JSON.stringify(o)}`);
  assert.ok((o.errors.EACCES ?? 0) > 0, `refused with EACCES: ${JSON.stringify(o.errors)}`);
  assert.is(o.bytesReceived, 0);
  assert.is(r.bytesReceived, 0, 'root got no socket over a pipe');
  const refusals = proxy.output.split('refused a connection that is not the worker').length - 1;
  assert.ok(refusals <= r.connected, `${refusals} refusals logged, root connected ${r.connected} times`);
});

test('a connection without the token is closed and sent nothing; the worker with it gets in', async () => {
  const server = new HandoffServer('test');
  assert.is(fs.statSync(server.path).mode & 0o777, 0o600);
  const junk = net.connect(server.path);
  let got = 0;
  junk.on('data', (d: Buffer) => { got += d.length; });
  junk.on('error', () => {});
  junk.write('not the token, though as long as one..');
  await new Promise((r) => junk.once('close', r));
  assert.is(got, 0);
  let connected = false;
  void server.connected().then(() => { connected = true; });
  assert.not.ok(connected);
  const receiver = new HandoffReceiver(server.path, server.token, () => {}, () => {});
  assert.ok(await eventually(async () => connected, 3000, 10), 'the worker with the token connected');
  assert.not.ok(fs.existsSync(server.path), 'the socket file is gone once the worker is in');
  receiver.close();
  server.close();
});

test('a flood of silent connections does not keep the worker out', async () => {
  const server = new HandoffServer('flood');
  const silent: net.Socket[] = [];
  let made = 0;
  for (let i = 0; i < 12; i++) {
    const c = net.connect(server.path).on('error', () => {});
    await new Promise((r) => { c.once('connect', () => { made++; r(null); }); c.once('close', r); });
    silent.push(c);
  }
  assert.is(made, 12, 'more silent connections than the server waits for');
  let connected = false;
  void server.connected().then(() => { connected = true; });
  const receiver = new HandoffReceiver(server.path, server.token, () => {}, () => {});
  assert.ok(await eventually(async () => connected, 3000, 10), 'the worker with the token connected');
  assert.ok(await eventually(async () => silent.every((c) => c.destroyed || c.readableEnded), 3000, 10), 'every silent connection closed');
  for (const c of silent) c.destroy();
  receiver.close();
  server.close();
});

test('a pipe that cannot be made: a HandoffError, MCRELAY_HANDOFF_FAILED, that says why', () => {
  // sun_path holds 107 bytes: a name this long cannot fit whatever TMPDIR is.
  const name = 'w'.repeat(MAX_SOCKET_PATH);
  try {
    new HandoffServer(name);
    assert.unreachable('made a pipe');
  } catch (err) {
    assert.ok(err instanceof HandoffError, String(err));
    assert.is(codeOf(err), 'MCRELAY_HANDOFF_FAILED');
    assert.match((err as Error).message, new RegExp(`^handoff pipe ${name}: .* is longer than a unix socket path may be \\(set TMPDIR to a shorter directory\\)$`));
  }
});

// Only the fast path has what this file tests (portable mode refuses it: io.test).
if (!PORTABLE_RUN) test.run();
