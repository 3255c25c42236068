// Backend faults under a small load, with a real memcached behind every fault:
//
//   load (4 connections) --> mcrelay --workers 2 --timeout 300 --retry-interval 200
//                               |-- master: FaultRelay --> memcached M
//                               '-- backup: memcached B
//
// For each fault of the relay (test/helpers/fault-relay.ts), then for kill -9,
// SIGSTOP/SIGCONT and restart of the memcached processes themselves: the load
// runs before (so both servers hold every key), during and after the fault. A
// verifier (test/helpers/load.ts) checks every reply against every write it
// sent. Asserted, for every scenario:
//   - mcrelay keeps running;
//   - every request is answered within the timeout plus a margin (1 s);
//   - no read returns a wrong value (older than the last acknowledged write, or
//     never written), during the fault or after it;
//   - no acknowledged write is lost: a read of a key whose value was
//     acknowledged hits, during the fault and after it (while only the master
//     is broken, the backup answers; afterwards the warm-up refills it) -
//     except right after a server restarted empty, where misses are reported;
//   - while one server is broken, no request fails (the other one answers);
//   - a backend connection that went bad is closed by mcrelay.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FaultRelay, PASS, type Fault } from '../helpers/fault-relay.js';
import { Load, type Problem } from '../helpers/load.js';
import { sleep, startMemcached, startProxy, type Proc } from '../helpers/procs.js';
import { WireClient } from '../helpers/wire.js';

const TIMEOUT_MS = 300;
const RETRY_MS = 200;
const DEADLINE_MS = TIMEOUT_MS + 700;
const FLAGS = ['--workers', '2', '--timeout', String(TIMEOUT_MS), '--retry-interval', String(RETRY_MS), '--failure-limit', '3'];

const started: Proc[] = [];
const relays: FaultRelay[] = [];
test.after(async () => {
  for (const p of started) p.signal('SIGCONT');
  await Promise.all(started.map((p) => p.stop()));
  await Promise.all(relays.map((r) => r.close()));
});

/** Server name -> state, from mcrelay's own "stats servers". */
async function states(port: number): Promise<Map<string, string>> {
  const c = await WireClient.connect(port);
  try {
    const r = await c.request('stats servers\r\n', 'END\r\n', 2000);
    return new Map([...r.matchAll(/^STAT (\S+):state (\S+)\r$/gm)].map((m) => [m[1]!, m[2]!]));
  } finally {
    c.close();
  }
}

/** Waits until mcrelay has every server back in service (at most 10 s). */
async function settle(port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const s = await states(port);
    // warming: back in service, its misses filled from the backup
    if ([...s.values()].every((x) => x === 'up' || x === 'warming')) return;
    await sleep(50);
  }
  throw new Error(`servers not back in service after 10 s: ${JSON.stringify([...(await states(port))])}`);
}

interface Phases { preloadMs: number; faultMs: number; recoverMs: number }
const PHASES: Phases = { preloadMs: 700, faultMs: 1500, recoverMs: 1500 };

interface Outcome {
  load: Load;
  /** problems by phase */
  during: Problem[];
  after: Problem[];
  faultAt: number;
  clearedAt: number;
}

/** Runs the load through a fault: inject() at faultAt, clear() at clearedAt; then reads every key. */
async function underLoad(proxyPort: number, prefix: string, inject: () => Promise<void> | void, clear: () => Promise<void> | void, phases = PHASES): Promise<Outcome> {
  const load = new Load({ port: proxyPort, connections: 4, keysPerConnection: 20, countersPerConnection: 2, deadlineMs: DEADLINE_MS, pauseMs: 3, prefix });
  load.start();
  await sleep(phases.preloadMs);
  const faultAt = load.verifier.now();
  await inject();
  await sleep(phases.faultMs);
  const clearedAt = load.verifier.now();
  await clear();
  await sleep(phases.recoverMs);
  await load.stop();
  await load.finalCheck(proxyPort);
  const problems = load.verifier.problems;
  return {
    load,
    during: problems.filter((p) => p.at >= faultAt && p.at < clearedAt),
    after: problems.filter((p) => p.at >= clearedAt),
    faultAt,
    clearedAt,
  };
}

function report(name: string, o: Outcome, extra = ''): void {
  const v = o.load.verifier;
  const dueMisses = v.problems.filter((p) => p.kind === 'miss');
  console.log(`    ${name}: ${v.summary()}; misses of a value due: ${dueMisses.length} (${o.during.filter((p) => p.kind === 'miss').length} during the fault)${extra}`);
}

const show = (ps: Problem[]): string[] => ps.slice(0, 5).map((p) => `${p.at} ms ${p.kind}: ${p.detail}`);

/** Collects every property a scenario breaks, so that one failure does not hide the others. */
class Expect {
  readonly broken: string[] = [];
  none(what: string, ps: Problem[]): void {
    if (ps.length > 0) this.broken.push(`${what}: ${ps.length} times, e.g.\n      ${show(ps).join('\n      ')}`);
  }
  ok(what: string, cond: boolean): void {
    if (!cond) this.broken.push(what);
  }
  check(): void {
    if (this.broken.length > 0) assert.unreachable(`\n    ${this.broken.join('\n    ')}`);
  }
}

/**
 * What every scenario must show. lostAllowed: misses of acknowledged values are
 * expected (a server restarted empty) and only reported; otherwise such a miss
 * is an acknowledged write lost.
 */
function basics(o: Outcome, proxy: Proc, lostAllowed = false): Expect {
  const v = o.load.verifier;
  const e = new Expect();
  e.ok('mcrelay is running', proxy.alive);
  e.ok(`the load ran (${v.summary()})`, v.counts.reads > 100 && v.counts.acked > 100);
  e.none(`requests not answered within ${DEADLINE_MS} ms`, v.problems.filter((p) => p.kind === 'unanswered'));
  e.none('wrong values (older than the last acknowledged write, or never written)', v.problems.filter((p) => p.kind === 'wrong'));
  if (!lostAllowed) e.none('acknowledged writes lost (a miss where a value was acknowledged)', v.problems.filter((p) => p.kind === 'miss'));
  return e;
}

// ------------------------------------------------------------------ relay faults on the master

let M: Proc;
let B: Proc;
let relay: FaultRelay;
let proxy: Proc;

test.before(async () => {
  [M, B] = await Promise.all([startMemcached(), startMemcached()]);
  started.push(M, B);
  relay = await new FaultRelay(M.port).listen();
  relays.push(relay);
  proxy = await startProxy(['-s', relay.addr, '-b', B.addr, ...FLAGS]);
  started.push(proxy);
});

const RELAY_FAULTS: Array<{ name: string; fault: Fault; breaks: 'mcrelay' | 'relay' | null }> = [
  { name: 'replies delayed 100 ms (under the timeout)', fault: { kind: 'delay', ms: 100 }, breaks: null },
  { name: 'replies delayed 600 ms (over the timeout)', fault: { kind: 'delay', ms: 600 }, breaks: 'mcrelay' },
  { name: 'blackhole (accepts, never answers)', fault: { kind: 'blackhole' }, breaks: 'mcrelay' },
  { name: 'connection reset in the middle of a reply', fault: { kind: 'reset' }, breaks: 'relay' },
  { name: 'reply cut in half, then silence', fault: { kind: 'cut', close: false }, breaks: 'mcrelay' },
  { name: 'reply cut in half, then closed', fault: { kind: 'cut', close: true }, breaks: 'relay' },
  { name: 'garbage instead of replies', fault: { kind: 'garbage' }, breaks: 'mcrelay' },
];

for (const [i, f] of RELAY_FAULTS.entries()) {
  test(`master behind a relay: ${f.name}`, async () => {
    await settle(proxy.port);
    const before = { closedByClient: relay.closedByClient, broken: relay.brokenByRelay, accepted: relay.accepted };
    let during = { closedByClient: 0, broken: 0 };
    const o = await underLoad(proxy.port, `rf${i}`, () => relay.set(f.fault), () => {
      during = { closedByClient: relay.closedByClient - before.closedByClient, broken: relay.brokenByRelay - before.broken };
      relay.set(PASS);
    });
    report(f.name, o, `; relay: ${during.closedByClient} connections closed by mcrelay, ${during.broken} broken by the relay, ${relay.accepted - before.accepted} accepted`);
    const e = basics(o, proxy);
    // only the master is broken: the backup holds every key and takes every write
    e.none('errors (the backup answers while only the master is broken)', o.load.verifier.problems.filter((p) => p.kind === 'error'));
    if (f.breaks === 'mcrelay') e.ok('mcrelay closed the backend connection that went bad', during.closedByClient > 0);
    if (f.breaks === 'relay') e.ok('mcrelay connected again after the relay broke the connection', during.broken > 0 && relay.accepted > before.accepted + 1);
    e.check();
  });
}

// ------------------------------------------------------------------ process faults

interface Cluster { master: Proc; backup: Proc; proxy: Proc }

async function cluster(): Promise<Cluster> {
  const [master, backup] = await Promise.all([startMemcached(), startMemcached()]);
  const p = await startProxy(['-s', master.addr, '-b', backup.addr, ...FLAGS]);
  started.push(master, backup, p);
  return { master, backup, proxy: p };
}

async function restart(p: Proc): Promise<Proc> {
  await p.stop('SIGKILL');
  const again = await startMemcached({ port: p.port });
  started.push(again);
  return again;
}

test('kill -9 of the master, then a restart (empty) on the same port', async () => {
  const c = await cluster();
  const o = await underLoad(c.proxy.port, 'kill', () => { c.master.signal('SIGKILL'); }, async () => { c.master = await restart(c.master); });
  report('kill -9 and restart of the master', o);
  const e = basics(o, c.proxy, true);
  e.none('misses of known keys while the master is dead (the backup holds them)', o.during.filter((p) => p.kind === 'miss'));
  e.none('errors (the backup takes the writes while the master is dead)', o.load.verifier.problems.filter((p) => p.kind === 'error'));
  e.check();
});

test('SIGSTOP of the master, then SIGCONT: no value written meanwhile is shadowed by its stale copy', async () => {
  const c = await cluster();
  const o = await underLoad(c.proxy.port, 'stop', () => { c.master.signal('SIGSTOP'); }, () => { c.master.signal('SIGCONT'); });
  report('SIGSTOP/SIGCONT of the master', o);
  const e = basics(o, c.proxy);
  e.none('errors (the backup takes the writes while the master is stopped)', o.load.verifier.problems.filter((p) => p.kind === 'error'));
  e.check();
});

test('SIGSTOP of the backup, then SIGCONT', async () => {
  const c = await cluster();
  const o = await underLoad(c.proxy.port, 'bstop', () => { c.backup.signal('SIGSTOP'); }, () => { c.backup.signal('SIGCONT'); });
  report('SIGSTOP/SIGCONT of the backup', o);
  const e = basics(o, c.proxy);
  e.none('errors (the master takes every write)', o.load.verifier.problems.filter((p) => p.kind === 'error'));
  e.check();
});

test('kill -9 and restart of the backup', async () => {
  const c = await cluster();
  const o = await underLoad(c.proxy.port, 'bkill', () => { c.backup.signal('SIGKILL'); }, async () => { c.backup = await restart(c.backup); });
  report('kill -9 and restart of the backup', o);
  const e = basics(o, c.proxy);
  e.none('errors (the master takes every write)', o.load.verifier.problems.filter((p) => p.kind === 'error'));
  e.check();
});

test.run();
