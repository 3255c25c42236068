// Master and backup answer the same write with replies that differ in bytes but
// not in meaning: each server has its own cas counter (c<n>), and a TTL read back
// (t<n>) may be a second apart. None of these may count as a disagreement, which
// would delete the backup's copy (issue 25: 1,000 `ms k 5 c` left 0 keys on the
// backup). Every meta write flag that shows in a reply is sent here through
// mcrelay, on a master and a backup whose cas counters differ as in production;
// each key is then read from both servers directly.
//
//   client --> mcrelay --> master  (cas counter near 1)
//                     '--> backup  (cas counter bumped by 1,000 sets first)
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startMemcached, startProxy, type Proc } from '../helpers/procs.js';
import { WireClient } from '../helpers/wire.js';
import { eventually, inspect, roundTrip, setMany, type Item } from '../helpers/mc.js';

let master: Proc | undefined;
let backup: Proc | undefined;
let proxy: Proc | undefined;
let p: WireClient; // through mcrelay
let m: WireClient; // master, directly
let b: WireClient; // backup, directly

const BUMP = 1000;

test.before(async () => {
  [master, backup] = await Promise.all([startMemcached(), startMemcached()]);
  b = await WireClient.connect(backup.port);
  const bump = Array.from({ length: BUMP }, (_x, i) => [`bump:${i}`, 'x'] as const);
  assert.equal(await setMany(b, bump), []);
  proxy = await startProxy(['-s', master.addr, '-b', backup.addr, '--workers', '1']);
  [p, m] = await Promise.all([WireClient.connect(proxy.port), WireClient.connect(master.port)]);
});

test.after(async () => {
  for (const c of [p, m, b]) c?.close();
  await Promise.all([proxy?.stop(), master?.stop(), backup?.stop()]);
});

let seq = 0;
function key(name: string): string { return `cmp:${name.replace(/[ ()]+/g, '_')}:${++seq}`; }
const b64 = (k: string): string => Buffer.from(k, 'latin1').toString('base64');

/** One request through mcrelay, then `mn`: the request's reply (empty when quiet). */
async function send(req: string): Promise<string> {
  p.write(`${req}\r\nmn\r\n`);
  const out = await p.readUntil((x) => x.toString('latin1').endsWith('MN\r\n'), 3000);
  const text = out.toString('latin1');
  assert.ok(text.endsWith('MN\r\n'), `${JSON.stringify(req)}: ${JSON.stringify(text)}`);
  return text.slice(0, -4);
}

function show(i: Item | null): string { return i === null ? 'absent' : JSON.stringify(i); }

/** Every key checked, and what it must hold: checked again once all writes are done. */
const expected = new Map<string, string | null>();

/**
 * Both servers hold the key with the same value and flags (TTLs a second apart
 * at most). The client's reply leaves before the backup's, so this waits for the
 * backup's copy to catch up (a repair would come right after it: the last test
 * looks again).
 */
async function assertBoth(k: string, value: string | null): Promise<void> {
  expected.set(k, value);
  let mi: Item | null = null;
  let bi: Item | null = null;
  const same = (): boolean => mi !== null && bi !== null && mi.value === bi.value && mi.flags === bi.flags && Math.abs(mi.ttl - bi.ttl) <= 1;
  await eventually(async () => {
    [mi, bi] = [await inspect(m, k), await inspect(b, k)];
    return value === null ? mi === null && bi === null : same();
  }, 1000);
  if (value === null) {
    assert.is(show(mi), 'absent', `${k} on the master`);
    assert.is(show(bi), 'absent', `${k} on the backup`);
    return;
  }
  assert.ok(mi !== null && (mi as Item).value === value, `${k} on the master: ${show(mi)}, expected ${value}`);
  assert.ok(same(), `${k} kept on the backup as on the master: ${show(bi)} vs ${show(mi)}`);
}

async function casOf(c: WireClient, k: string): Promise<string> {
  const line = (await roundTrip(c, `mg ${k} c\r\n`)).line;
  const cas = /^HD c(\d+)$/.exec(line)?.[1];
  assert.ok(cas !== undefined, `mg ${k} c: ${line}`);
  return cas!;
}

async function repairs(): Promise<number> {
  const c = await WireClient.connect(proxy!.port);
  try {
    const text = await c.request('stats\r\n', 'END\r\n');
    const n = Number(/STAT backup_repairs (\d+)/.exec(text)?.[1]);
    assert.ok(Number.isInteger(n), `backup_repairs in ${text}`);
    return n;
  } finally {
    c.close();
  }
}

test('the two servers cas counters differ (else the comparisons below prove nothing)', async () => {
  const k = key('probe');
  assert.match(await send(`ms ${k} 1 c\r\nx`), /^HD c\d+\r\n$/);
  await assertBoth(k, 'x');
  const [mc, bc] = [await casOf(m, k), await casOf(b, k)];
  assert.ok(Number(bc) - Number(mc) >= BUMP / 2, `master cas ${mc}, backup cas ${bc}`);
});

test('ms: every reply flag (c, k, O, b, q) and mode keeps the backup copy', async () => {
  const cases: Array<[string, (k: string) => string, RegExp, string]> = [
    ['c', (k) => `ms ${k} 5 c\r\nhello`, /^HD c\d+\r\n$/, 'hello'],
    ['q c', (k) => `ms ${k} 5 q c\r\nhello`, /^$/, 'hello'],
    ['c k O F T', (k) => `ms ${k} 5 c k O77 F9 T600\r\nhello`, /^HD c\d+ k\S+ O77\r\n$/, 'hello'],
    ['invalidate I c', (k) => `ms ${k} 5 I c\r\nhello`, /^HD c\d+\r\n$/, 'hello'],
    ['MS c', (k) => `ms ${k} 5 MS c k\r\nhello`, /^HD c\d+ k\S+\r\n$/, 'hello'],
    ['ME c (add)', (k) => `ms ${k} 5 ME c\r\nhello`, /^HD c\d+\r\n$/, 'hello'],
  ];
  for (const [name, req, reply, value] of cases) {
    const k = key(`ms-${name}`);
    const got = await send(req(k));
    assert.match(got, reply, `${name}: ${JSON.stringify(got)}`);
    await assertBoth(k, value);
  }
  // Modes that need the key: it exists first, written plainly.
  const modes: Array<[string, string, string]> = [['MA', '>>', 'base>>'], ['MP', '<<', '<<base'], ['MR', 'new', 'new'], ['ME', 'nope', 'base']];
  for (const [mode, data, after] of modes) {
    const k = key(`ms-${mode}`);
    assert.is(await send(`ms ${k} 4\r\nbase`), 'HD\r\n');
    const r = await send(`ms ${k} ${data.length} M${mode[1]} c k O5\r\n${data}`);
    assert.match(r, mode === 'ME' ? /^NS( c0)? k\S+ O5\r\n$/ : /^HD c\d+ k\S+ O5\r\n$/, `${mode}: ${r}`);
    await assertBoth(k, after);
  }
  // A base64 key, returned as itself with b.
  const k = key('ms-b64');
  assert.match(await send(`ms ${b64(k)} 5 b c k O1\r\nhello`), /^HD c\d+ k\S+ b O1\r\n$/);
  await assertBoth(k, 'hello');
});

test('ms C<cas>: the master decides, the backup stores the value under its own cas', async () => {
  const k = key('ms-C');
  assert.is(await send(`ms ${k} 3\r\nold`), 'HD\r\n');
  const cas = await casOf(p, k);
  assert.match(await send(`ms ${k} 3 C${cas} c\r\nnew`), /^HD c\d+\r\n$/);
  await assertBoth(k, 'new');
  assert.match(await send(`ms ${k} 3 C${cas} q c\r\nbad`), /^EX c0\r\n$|^EX\r\n$/, 'the stale cas is refused');
  await assertBoth(k, 'new');
  const cas2 = await casOf(p, k);
  assert.is(await send(`ms ${k} 4 C${cas2} q c\r\nnew2`), '');
  await assertBoth(k, 'new2');
});

test('ma: c, t, v, k, O, q, N, J, D, M, T and C keep the backup copy', async () => {
  const cases: Array<[string, string, RegExp, string]> = [
    ['N0 J5 c', 'N0 J5 c', /^HD c\d+\r\n$/, '5'],
    ['q c', 'N0 J5 q c', /^$/, '6'],
    ['v c t', 'v c t', /^VA 1 c\d+ t-1\r\n7\r\n$/, '7'],
    ['T t v c k O', 'T600 t v c k O3', /^VA 1 t\d+ c\d+ k\S+ O3\r\n8\r\n$/, '8'],
    ['MD D2 v c', 'MD D2 v c', /^VA 1 c\d+\r\n6\r\n$/, '6'],
    ['MI D10 t c', 'MI D10 t c', /^HD t\d+ c\d+\r\n$/, '16'],
  ];
  const k = key('ma');
  for (const [name, flags, reply, value] of cases) {
    assert.match(await send(`ma ${k} ${flags}`), reply, name);
    await assertBoth(k, value);
  }
  // Auto-created with a TTL: both read the TTL back.
  const kn = key('ma-N');
  assert.match(await send(`ma ${kn} N300 J100 v t c k`), /^VA 3 t\d+ c\d+ k\S+\r\n100\r\n$/);
  await assertBoth(kn, '100');
  // C: the master's cas; the backup increments its own copy.
  const cas = await casOf(p, kn);
  assert.match(await send(`ma ${kn} C${cas} v c`), /^VA 3 c\d+\r\n101\r\n$/);
  await assertBoth(kn, '101');
  assert.match(await send(`ma ${kn} C${cas} v c`), /^EX/, 'a stale cas is refused');
  await assertBoth(kn, '101');
  const kb = key('ma-b64');
  assert.match(await send(`ma ${b64(kb)} b N0 J1 v c k`), /^VA 1 c\d+ k\S+ b\r\n1\r\n$/);
  await assertBoth(kb, '1');
});

test('md: k, O, q, b, I and C', async () => {
  const k = key('md-I');
  assert.is(await send(`ms ${k} 1 T600\r\nv`), 'HD\r\n');
  // Invalidation keeps the item, marked stale, on both.
  assert.match(await send(`md ${k} I T30 k O4`), /^HD k\S+ O4\r\n$/);
  await assertBoth(k, 'v');
  for (const flags of ['k O1', 'q', 'b k']) {
    const kd = key('md');
    assert.is(await send(`ms ${kd} 1\r\nv`), 'HD\r\n');
    const r = await send(flags.startsWith('b') ? `md ${b64(kd)} ${flags}` : `md ${kd} ${flags}`);
    assert.match(r, flags === 'q' ? /^$/ : /^HD/, flags);
    await assertBoth(kd, null);
  }
  const kc = key('md-C');
  assert.is(await send(`ms ${kc} 1\r\nv`), 'HD\r\n');
  assert.match(await send(`md ${kc} C1 q`), /^EX\r\n$/, 'a wrong cas deletes nothing');
  await assertBoth(kc, 'v');
  assert.is(await send(`md ${kc} C${await casOf(p, kc)}`), 'HD\r\n');
  await assertBoth(kc, null);
});

test('none of the writes above was taken for a disagreement', async () => {
  for (const [k, v] of expected) {
    const [mi, bi] = [await inspect(m, k), await inspect(b, k)];
    assert.is(bi === null ? 'absent' : `${bi.value}/${bi.flags}`, mi === null ? 'absent' : `${mi.value}/${mi.flags}`, `${k} on the backup and on the master`);
    assert.is(mi?.value ?? null, v, `${k} on the master`);
  }
  assert.is(await repairs(), 0);
});

test.run();
