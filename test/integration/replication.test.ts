// Replication: every write through mcrelay reaches the key's master and its
// backup, and the two copies agree afterwards (value, flags, TTL) as each server
// itself reports them. Where the two servers answer a write differently, the
// backup must not keep a value the master does not have.
//
//   client --> mcrelay (--workers 1) --> master  (the client's reply)
//                                   '--> backup  (same write; cas as a set)
//   test  --> master, backup directly (mg <key> v f t)
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startMemcached, startProxy, type Proc } from '../helpers/procs.js';
import { WireClient } from '../helpers/wire.js';
import { directSet, eventually, inspect, roundTrip, type Item } from '../helpers/mc.js';

let master: Proc | undefined;
let backup: Proc | undefined;
let proxy: Proc | undefined;
let p: WireClient; // through mcrelay
let m: WireClient; // master, directly
let b: WireClient; // backup, directly

test.before(async () => {
  [master, backup] = await Promise.all([startMemcached(), startMemcached()]);
  proxy = await startProxy(['-s', master.addr, '-b', backup.addr, '--workers', '1']);
  [p, m, b] = await Promise.all([WireClient.connect(proxy.port), WireClient.connect(master.port), WireClient.connect(backup.port)]);
});

test.after(async () => {
  for (const c of [p, m, b]) c?.close();
  await Promise.all([proxy?.stop(), master?.stop(), backup?.stop()]);
});

let seq = 0;
/** A key no other test uses. */
function key(name: string): string { return `repl:${name}:${++seq}`; }

function show(i: Item | null): string { return i === null ? 'absent' : JSON.stringify(i); }

function sameItem(x: Item | null, y: Item | null): boolean {
  if (x === null || y === null) return x === y;
  return x.value === y.value && x.flags === y.flags && Math.abs(x.ttl - y.ttl) <= 1 && (x.ttl === -1) === (y.ttl === -1);
}

/** Waits (briefly: the backup's copy is written alongside the master's) until both copies agree, then asserts it. */
async function assertReplicated(k: string, expected: { value: string; flags?: number; ttl?: number } | null): Promise<void> {
  let mi: Item | null = null;
  let bi: Item | null = null;
  await eventually(async () => {
    mi = await inspect(m, k);
    bi = await inspect(b, k);
    return sameItem(mi, bi);
  }, 1000);
  assert.ok(sameItem(mi, bi), `${k}: master ${show(mi)} vs backup ${show(bi)}`);
  if (expected === null) {
    assert.is(mi, null, `${k} absent on master`);
    return;
  }
  const got = mi as Item | null;
  assert.ok(got !== null, `${k} present on master`);
  assert.is(got!.value, expected.value, `${k} value`);
  if (expected.flags !== undefined) assert.is(got!.flags, expected.flags, `${k} flags`);
  if (expected.ttl !== undefined) {
    if (expected.ttl === -1) assert.is(got!.ttl, -1, `${k} has no expiry`);
    else assert.ok(Math.abs(got!.ttl - expected.ttl) <= 2, `${k} ttl ${got!.ttl} ~ ${expected.ttl}`);
  }
}

/** A request through the proxy answered after everything sent before it on this connection. */
async function barrier(): Promise<void> {
  const r = await roundTrip(p, 'get repl:barrier\r\n');
  assert.is(r.line, 'END');
}

async function send(line: string, data?: string, via: WireClient = p): Promise<string> {
  const req = data === undefined ? `${line}\r\n` : `${line}\r\n${data}\r\n`;
  return (await roundTrip(via, req)).line;
}

/** A number from `stats` on port (a proxy's, or a memcached's own), over a connection of its own. */
async function stat(port: number, name: string): Promise<number> {
  const c = await WireClient.connect(port);
  try {
    const raw = await c.request('stats\r\n', 'END\r\n');
    const v = new RegExp(`STAT ${name} (\\d+)\r\n`).exec(raw)?.[1];
    assert.ok(v !== undefined, `stats on ${port} has no ${name}`);
    return Number(v);
  } finally {
    c.close();
  }
}

/**
 * Everything the proxy has queued for the backup on p's backend connection has
 * landed there: a control key set through p afterwards is on the backup. A
 * client's requests share one connection to each server, which memcached
 * executes in order, so what went before the control key was executed first.
 */
async function backupCaughtUp(): Promise<void> {
  const k = key('control');
  assert.is(await send(...setLine('set', k, 'c')), 'STORED');
  let bi: Item | null = null;
  const ok = await eventually(async () => { bi = await inspect(b, k); return bi !== null; }, 2000);
  assert.ok(ok && bi!.value === 'c', `the control key set after the write reached the backup (backup holds ${show(bi)})`);
}

/**
 * The proxy has compared master's and backup's answers to a write and counted
 * one repair (worker/write-pair.ts compare), and whatever it queued for the
 * backup in reaction (the repair's delete) has landed.
 */
async function repairLanded(repairsBefore: number): Promise<void> {
  let n = repairsBefore;
  const ok = await eventually(async () => { n = await stat(proxy!.port, 'backup_repairs'); return n > repairsBefore; }, 2000);
  assert.ok(ok, `backup_repairs stayed ${n}: the proxy saw no difference between master and backup`);
  assert.is(n, repairsBefore + 1, 'one repair for the one write');
  await backupCaughtUp();
}

function setLine(verb: string, k: string, v: string, flags = 0, exptime = 0): [string, string] {
  return [`${verb} ${k} ${flags} ${exptime} ${Buffer.byteLength(v, 'latin1')}`, v];
}

// ---- every write command: master and backup end up identical ----

test('set: value, flags and TTL identical on master and backup', async () => {
  const k = key('set');
  assert.is(await send(...setLine('set', k, 'hello', 42, 300)), 'STORED');
  await assertReplicated(k, { value: 'hello', flags: 42, ttl: 300 });
  const k2 = key('set-noexp');
  assert.is(await send(...setLine('set', k2, 'v', 0, 0)), 'STORED');
  await assertReplicated(k2, { value: 'v', flags: 0, ttl: -1 });
  // overwrite
  assert.is(await send(...setLine('set', k, 'again', 7, 0)), 'STORED');
  await assertReplicated(k, { value: 'again', flags: 7, ttl: -1 });
});

test('set: a 600 KB value and a value holding CRLF and binary bytes replicate byte for byte', async () => {
  const k = key('big');
  const big = 'x'.repeat(300_000) + '\r\nEND\r\n' + 'y'.repeat(300_000);
  assert.is(await send(...setLine('set', k, big, 1, 0)), 'STORED');
  await assertReplicated(k, { value: big, flags: 1 });
  const k2 = key('bin');
  let bin = '';
  for (let i = 0; i < 256; i++) bin += String.fromCharCode(i);
  assert.is(await send(...setLine('set', k2, bin, 0, 0)), 'STORED');
  await assertReplicated(k2, { value: bin });
});

test('add: a new key is stored on both; add of an existing key changes neither', async () => {
  const k = key('add');
  assert.is(await send(...setLine('add', k, 'first', 3, 600)), 'STORED');
  await assertReplicated(k, { value: 'first', flags: 3, ttl: 600 });
  assert.is(await send(...setLine('add', k, 'second', 4, 0)), 'NOT_STORED');
  await barrier();
  await assertReplicated(k, { value: 'first', flags: 3, ttl: 600 });
});

test('replace: replaces on both; replace of a missing key stores on neither', async () => {
  const k = key('replace');
  assert.is(await send(...setLine('set', k, 'old', 0, 0)), 'STORED');
  assert.is(await send(...setLine('replace', k, 'new', 9, 900)), 'STORED');
  await assertReplicated(k, { value: 'new', flags: 9, ttl: 900 });
  const missing = key('replace-missing');
  assert.is(await send(...setLine('replace', missing, 'x', 0, 0)), 'NOT_STORED');
  await barrier();
  await assertReplicated(missing, null);
});

test('append and prepend: both copies grow the same way', async () => {
  const k = key('appprep');
  assert.is(await send(...setLine('set', k, 'base', 5, 0)), 'STORED');
  assert.is(await send(...setLine('append', k, '>>', 0, 0)), 'STORED');
  assert.is(await send(...setLine('prepend', k, '<<', 0, 0)), 'STORED');
  assert.is(await send(...setLine('append', k, '!', 0, 0)), 'STORED');
  await assertReplicated(k, { value: '<<base>>!', flags: 5 });
  const missing = key('append-missing');
  assert.is(await send(...setLine('append', missing, 'x', 0, 0)), 'NOT_STORED');
  assert.is(await send(...setLine('prepend', missing, 'x', 0, 0)), 'NOT_STORED');
  await barrier();
  await assertReplicated(missing, null);
});

/** Both copies hold the same counter text; memcached may space-pad a number that shrank ("0 "). */
async function assertCounter(k: string, n: string): Promise<void> {
  const mi = await inspect(m, k);
  assert.ok(mi !== null, `${k} on master`);
  assert.is(mi!.value.trimEnd(), n, `${k} counter on master`);
  await assertReplicated(k, { value: mi!.value });
}

test('incr and decr: the client gets the new number; both copies hold it', async () => {
  const k = key('counter');
  assert.is(await send(...setLine('set', k, '10', 0, 0)), 'STORED');
  assert.is(await send(`incr ${k} 5`), '15');
  await assertCounter(k, '15');
  assert.is(await send(`decr ${k} 3`), '12');
  await assertCounter(k, '12');
  assert.is(await send(`decr ${k} 100`), '0');
  await assertCounter(k, '0');
  assert.is(await send(`incr ${k} 18446744073709551615`), '18446744073709551615');
  await assertCounter(k, '18446744073709551615');
  assert.is(await send(`incr ${k} 2`), '1', 'wraps at 2^64 like memcached');
  await assertCounter(k, '1');
  const missing = key('counter-missing');
  assert.is(await send(`incr ${missing} 1`), 'NOT_FOUND');
  await barrier();
  await assertReplicated(missing, null);
});

test('delete: gone from both; deleting a missing key answers NOT_FOUND', async () => {
  const k = key('delete');
  assert.is(await send(...setLine('set', k, 'doomed', 0, 0)), 'STORED');
  await assertReplicated(k, { value: 'doomed' });
  assert.is(await send(`delete ${k}`), 'DELETED');
  await assertReplicated(k, null);
  assert.is(await send(`delete ${k}`), 'NOT_FOUND');
});

test('touch: the new TTL is the same on both copies', async () => {
  const k = key('touch');
  assert.is(await send(...setLine('set', k, 't', 0, 0)), 'STORED');
  await assertReplicated(k, { value: 't', ttl: -1 });
  assert.is(await send(`touch ${k} 500`), 'TOUCHED');
  await assertReplicated(k, { value: 't', ttl: 500 });
  assert.is(await send(`touch ${k} 0`), 'TOUCHED');
  await assertReplicated(k, { value: 't', ttl: -1 });
  assert.is(await send(`touch ${key('touch-missing')} 10`), 'NOT_FOUND');
});

test('gat: the new TTL reaches the backup copy too', async () => {
  const k = key('gat');
  assert.is(await send(...setLine('set', k, 'g', 3, 0)), 'STORED');
  await assertReplicated(k, { value: 'g', flags: 3, ttl: -1 });
  const r = await roundTrip(p, `gat 900 ${k}\r\n`);
  assert.equal(r.values.map((v) => [v.key, v.data.toString('latin1'), v.flags]), [[k, 'g', 3]]);
  await assertReplicated(k, { value: 'g', flags: 3, ttl: 900 });
});

// ---- (a) cas ----

test('cas: STORED on the master reaches the backup as a set (same value, flags, TTL)', async () => {
  const k = key('cas');
  assert.is(await send(...setLine('set', k, 'v1', 1, 0)), 'STORED');
  const g = await roundTrip(p, `gets ${k}\r\n`);
  assert.is(g.values.length, 1);
  const cas = g.values[0]!.cas!;
  assert.ok(/^\d+$/.test(cas), `cas unique ${cas}`);
  assert.is(await send(`cas ${k} 2 700 2 ${cas}`, 'v2'), 'STORED');
  await assertReplicated(k, { value: 'v2', flags: 2, ttl: 700 });
  // the backup got a set, so it also stores when it never had the key
  const k2 = key('cas-fresh-backup');
  assert.is(await send(...setLine('set', k2, 'a', 0, 0)), 'STORED');
  await assertReplicated(k2, { value: 'a' });
  assert.is(await roundTrip(b, `delete ${k2}\r\n`).then((r) => r.line), 'DELETED');
  const cas2 = (await roundTrip(p, `gets ${k2}\r\n`)).values[0]!.cas!;
  assert.is(await send(`cas ${k2} 0 0 1 ${cas2}`, 'b'), 'STORED');
  await assertReplicated(k2, { value: 'b' });
});

test('cas: EXISTS or NOT_FOUND on the master leaves the backup unchanged', async () => {
  const k = key('cas-exists');
  assert.is(await send(...setLine('set', k, 'v1', 0, 0)), 'STORED');
  const stale = (await roundTrip(p, `gets ${k}\r\n`)).values[0]!.cas!;
  assert.is(await send(...setLine('set', k, 'v2', 0, 0)), 'STORED');
  await assertReplicated(k, { value: 'v2' });
  // a marker on the backup only: anything sent to the backup would replace it
  await directSet(b, k, 'backup-own', 11);
  assert.is(await send(`cas ${k} 0 0 2 ${stale}`, 'v3'), 'EXISTS');
  // A cas's copy for the backup is queued when the master answers, before the
  // client's reply: had there been one, it landed before the control key.
  await backupCaughtUp();
  assert.equal(await inspect(b, k), { value: 'backup-own', flags: 11, ttl: -1 }, 'backup untouched after EXISTS');
  assert.is((await inspect(m, k))?.value, 'v2');

  const k2 = key('cas-notfound');
  await directSet(b, k2, 'backup-own', 12);
  assert.is(await send(`cas ${k2} 0 0 2 12345`, 'v3'), 'NOT_FOUND');
  await backupCaughtUp();
  assert.equal(await inspect(b, k2), { value: 'backup-own', flags: 12, ttl: -1 }, 'backup untouched after NOT_FOUND');
  assert.is(await inspect(m, k2), null);
});

test('cas then set of the same key, pipelined: the backup does not end with the older cas value', async () => {
  const k = key('cas-then-set');
  assert.is(await send(...setLine('set', k, 'v1', 0, 0)), 'STORED');
  const cas = (await roundTrip(p, `gets ${k}\r\n`)).values[0]!.cas!;
  p.write(`cas ${k} 0 0 2 ${cas}\r\nv2\r\nset ${k} 0 0 2\r\nv3\r\n`);
  const b1 = await p.readUntil((x) => x.toString('latin1') === 'STORED\r\nSTORED\r\n');
  assert.is(b1.toString('latin1'), 'STORED\r\nSTORED\r\n');
  // Both copies for the backup (the cas as a set, then the set) were queued by
  // the time the master answered the set: both have landed once the control key has.
  await backupCaughtUp();
  const mi = await inspect(m, k);
  const bi = await inspect(b, k);
  assert.is(mi?.value, 'v3', 'master holds the last write');
  assert.is(bi?.value, 'v3', `backup holds ${show(bi)} while the master holds v3`);
});

test('cas then delete of the same key, pipelined: the backup does not resurrect the key', async () => {
  const k = key('cas-then-delete');
  assert.is(await send(...setLine('set', k, 'v1', 0, 0)), 'STORED');
  const cas = (await roundTrip(p, `gets ${k}\r\n`)).values[0]!.cas!;
  p.write(`cas ${k} 0 0 2 ${cas}\r\nv2\r\ndelete ${k}\r\n`);
  const r = await p.readUntil((x) => x.toString('latin1') === 'STORED\r\nDELETED\r\n');
  assert.is(r.toString('latin1'), 'STORED\r\nDELETED\r\n');
  // The delete went to the backup before the master answered it, the cas's copy
  // before that: both have landed once the control key has.
  await backupCaughtUp();
  assert.is(await inspect(m, k), null, 'deleted on the master');
  const bi = await inspect(b, k);
  assert.is(bi, null, `backup holds ${show(bi)} for a key the master deleted`);
});

// ---- (b) incr on a backup holding another number ----

test('incr where the backup holds a different number: the backup ends up without the key or with the master\'s number', async () => {
  const k = key('incr-diverged');
  assert.is(await send(...setLine('set', k, '10', 0, 0)), 'STORED');
  await assertReplicated(k, { value: '10' });
  await directSet(b, k, '100');
  assert.is(await send(`incr ${k} 5`), '15', 'the client gets the master\'s answer');
  let bi: Item | null = null;
  const ok = await eventually(async () => { bi = await inspect(b, k); return bi === null || bi.value === '15'; });
  assert.ok(ok, `backup holds ${show(bi)}, master 15`);
  assert.is((await inspect(m, k))?.value, '15');
});

test('decr where the backup holds a non-number: the backup copy is removed', async () => {
  const k = key('decr-diverged');
  assert.is(await send(...setLine('set', k, '50', 0, 0)), 'STORED');
  await directSet(b, k, 'not-a-number');
  assert.is(await send(`decr ${k} 8`), '42');
  let bi: Item | null = null;
  const ok = await eventually(async () => { bi = await inspect(b, k); return bi === null || bi.value === '42'; });
  assert.ok(ok, `backup holds ${show(bi)}, master 42`);
});

test('incr where only the master has the key: the backup stays without it', async () => {
  const k = key('incr-master-only');
  await directSet(m, k, '7');
  const repairs = await stat(proxy!.port, 'backup_repairs');
  const misses = await stat(backup!.port, 'incr_misses');
  assert.is(await send(`incr ${k} 1`), '8');
  // The incr reached the backup and found nothing there (NOT_FOUND against the
  // master's 8: a repair), and what the proxy did about it has landed.
  await repairLanded(repairs);
  assert.is(await stat(backup!.port, 'incr_misses'), misses + 1, 'the backup was sent the incr and missed');
  const bi = await inspect(b, k);
  assert.is(bi, null, `backup holds ${show(bi)} for a key only the master had`);
  assert.is((await inspect(m, k))?.value, '8');
});

// ---- (c) add where only the backup has the key ----

test('add where the key exists only on the backup: master STORED, backup NOT_STORED -> deleted on the backup', async () => {
  const k = key('add-backup-only');
  await directSet(b, k, 'stale-backup');
  assert.is(await send(...setLine('add', k, 'fresh', 0, 0)), 'STORED', 'the client gets the master\'s answer');
  let bi: Item | null = { value: 'stale-backup', flags: 0, ttl: -1 };
  const ok = await eventually(async () => { bi = await inspect(b, k); return bi === null; });
  assert.ok(ok, `backup still holds ${show(bi)}`);
  assert.is((await inspect(m, k))?.value, 'fresh');
});

test('replace where the key exists only on the master: backup NOT_STORED, stays absent', async () => {
  const k = key('replace-master-only');
  await directSet(m, k, 'm');
  const repairs = await stat(proxy!.port, 'backup_repairs');
  const sets = await stat(backup!.port, 'cmd_set');
  assert.is(await send(...setLine('replace', k, 'new', 0, 0)), 'STORED');
  // The replace reached the backup (NOT_STORED against the master's STORED: a
  // repair), and what the proxy did about it has landed.
  await repairLanded(repairs);
  assert.ok(await stat(backup!.port, 'cmd_set') > sets, 'the backup was sent the replace');
  const bi = await inspect(b, k);
  assert.is(bi, null, `backup holds ${show(bi)} for a key only the master had`);
  assert.is((await inspect(m, k))?.value, 'new');
});

// ---- (d) noreply ----

test('noreply writes replicate too (set/add/replace/append/prepend/incr/decr/touch/cas/delete)', async () => {
  const ks = Array.from({ length: 8 }, (_, i) => key(`noreply-${i}`));
  const [kSet, kAdd, kRep, kApp, kNum, kTouch, kCas, kDel] = ks as [string, string, string, string, string, string, string, string];
  const lines = [
    `set ${kSet} 4 0 3 noreply\r\none\r\n`,
    `add ${kAdd} 0 0 3 noreply\r\ntwo\r\n`,
    `set ${kRep} 0 0 1 noreply\r\nx\r\n`,
    `replace ${kRep} 6 0 5 noreply\r\nthree\r\n`,
    `set ${kApp} 0 0 1 noreply\r\nm\r\n`,
    `append ${kApp} 0 0 1 noreply\r\nz\r\n`,
    `prepend ${kApp} 0 0 1 noreply\r\na\r\n`,
    `set ${kNum} 0 0 2 noreply\r\n20\r\n`,
    `incr ${kNum} 5 noreply\r\n`,
    `decr ${kNum} 2 noreply\r\n`,
    `set ${kTouch} 0 0 1 noreply\r\nt\r\n`,
    `touch ${kTouch} 800 noreply\r\n`,
    `set ${kCas} 0 0 1 noreply\r\nc\r\n`,
    `set ${kDel} 0 0 1 noreply\r\nd\r\n`,
    `delete ${kDel} noreply\r\n`,
  ];
  p.write(lines.join(''));
  // the replies to noreply requests must not reach the client: the next reply is the barrier's
  const r = await roundTrip(p, `gets ${kCas}\r\n`);
  assert.is(r.line, 'END', 'nothing but the gets reply came back');
  assert.is(r.values.length, 1);
  p.write(`cas ${kCas} 0 0 2 ${r.values[0]!.cas} noreply\r\ncc\r\n`);
  await barrier();
  await assertReplicated(kSet, { value: 'one', flags: 4 });
  await assertReplicated(kAdd, { value: 'two' });
  await assertReplicated(kRep, { value: 'three', flags: 6 });
  await assertReplicated(kApp, { value: 'amz' });
  await assertReplicated(kNum, { value: '23' });
  await assertReplicated(kTouch, { value: 't', ttl: 800 });
  await assertReplicated(kCas, { value: 'cc' });
  await assertReplicated(kDel, null);
});

test('noreply incr on a diverged backup still repairs it', async () => {
  const k = key('noreply-diverged');
  assert.is(await send(...setLine('set', k, '10', 0, 0)), 'STORED');
  await directSet(b, k, '1000');
  p.write(`incr ${k} 1 noreply\r\n`);
  await barrier();
  let bi: Item | null = null;
  const ok = await eventually(async () => { bi = await inspect(b, k); return bi === null || bi.value === '11'; });
  assert.ok(ok, `backup holds ${show(bi)}, master ${show(await inspect(m, k))}`);
});

test('stats counts the repairs it made: one for each write the backup answered differently, none for the others', async () => {
  // A repair (worker/write-pair.ts compare): master and backup both answered a
  // write other than a delete, and not alike; backup_repairs counts it and the
  // key is deleted on the backup. A proxy of its own over the same servers, so
  // that no other test's writes are in its count.
  const own = await startProxy(['-s', master!.addr, '-b', backup!.addr, '--workers', '1']);
  const c = await WireClient.connect(own.port);
  try {
    type Case = { onMaster?: string; onBackup?: string; write: (k: string) => [string, string?]; reply: string; repair: boolean };
    const cases: Case[] = [
      { onMaster: '10', onBackup: '10', write: (k) => [`incr ${k} 1`], reply: '11', repair: false },
      { onMaster: '10', onBackup: '100', write: (k) => [`incr ${k} 5`], reply: '15', repair: true },
      { write: (k) => setLine('add', k, 'new'), reply: 'STORED', repair: false },
      { onMaster: '50', onBackup: 'not-a-number', write: (k) => [`decr ${k} 8`], reply: '42', repair: true },
      { onMaster: 'x', onBackup: 'x', write: (k) => setLine('add', k, 'new'), reply: 'NOT_STORED', repair: false },
      { onBackup: 'stale', write: (k) => setLine('add', k, 'new'), reply: 'STORED', repair: true },
      // NOT_FOUND against DELETED: a delete leaves the key on neither, whatever they answered
      { onBackup: 'stale', write: (k) => [`delete ${k}`], reply: 'NOT_FOUND', repair: false },
      { onMaster: 'm', write: (k) => setLine('replace', k, 'new'), reply: 'STORED', repair: true },
      { write: (k) => setLine('replace', k, 'new'), reply: 'NOT_STORED', repair: false },
      { onMaster: 'm', write: (k) => setLine('append', k, '+'), reply: 'STORED', repair: true },
      // last, a repair that shows on the backup: its copy goes
      { onMaster: '1', onBackup: '7', write: (k) => [`incr ${k} 1`], reply: '2', repair: true },
    ];
    const keys = cases.map((_, i) => key(`repairs-${i}`));
    for (let i = 0; i < cases.length; i++) {
      const { onMaster, onBackup } = cases[i]!;
      if (onMaster !== undefined) await directSet(m, keys[i]!, onMaster);
      if (onBackup !== undefined) await directSet(b, keys[i]!, onBackup);
    }
    const before = await stat(own.port, 'backup_repairs');
    for (let i = 0; i < cases.length; i++) {
      const [line, data] = cases[i]!.write(keys[i]!);
      assert.is(await send(line, data, c), cases[i]!.reply, line);
    }
    // One client's writes reach the backup on one connection and are compared in
    // the order they were sent: once the last one's repair has deleted its
    // backup copy, every comparison before it has been counted.
    const last = keys[keys.length - 1]!;
    let bi: Item | null = null;
    const repaired = await eventually(async () => { bi = await inspect(b, last); return bi === null; }, 2000);
    assert.ok(repaired, `the last write's backup copy ${show(bi)} was not repaired`);
    const expected = cases.filter((x) => x.repair).length;
    assert.is(await stat(own.port, 'backup_repairs') - before, expected, `backup_repairs counts the ${expected} writes the backup answered differently`);
  } finally {
    c.close();
    await own.stop();
  }
});

test('flush_all empties master and backup', async () => {
  const k = key('flush');
  assert.is(await send(...setLine('set', k, 'f', 0, 0)), 'STORED');
  await assertReplicated(k, { value: 'f' });
  assert.is(await send('flush_all'), 'OK');
  await assertReplicated(k, null);
});

test.run();
