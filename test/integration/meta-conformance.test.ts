// Meta protocol conformance: mcrelay must answer mg, ms, md, ma, mn and me like
// memcached 1.6, byte for byte (issue 4).
//
//   client --row--> memcached A                      (the reference)
//   client --row--> mcrelay --> memcached B          (one master, no backup)
//
// Each row is a literal byte sequence, sent whole, byte by byte and split at
// every offset (test/helpers/differential.ts); before each send A and B are
// flushed and their cas counters levelled, so `c` shows the same cas on both.
// Figures that follow each server's own one-second clock (a remaining TTL, the
// seconds since last access) are normalised before comparing: A and B tick at
// different moments, so a row crossing a tick on one and not the other would
// differ by one second for no fault of the proxy.
//
// Deliberate differences are asserted literally against mcrelay alone: a key
// with a control character is refused by the proxy (memcached 1.6 accepts it).
//
// Then replication: through mcrelay with one master and one backup, every meta
// write (ms in each mode, md, ma, base64 keys, cas) must leave the backup holding
// what the master holds (read on both directly with `mg <key> v f t`).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startMemcached, startProxy, type Proc } from '../helpers/procs.js';
import { WireClient } from '../helpers/wire.js';
import { Differential, show } from '../helpers/differential.js';
import { b64, HUGE_VALUE, META_ROWS, S } from '../helpers/meta-rows.js';
import { inspect, type Item } from '../helpers/mc.js';

let A: Proc | undefined;
let B: Proc | undefined;
let proxy: Proc | undefined;
let adminA: WireClient | undefined;
let adminB: WireClient | undefined;
let diff: Differential;

// the replication cluster: one master, one backup
let M: Proc | undefined;
let BK: Proc | undefined;
let rproxy: Proc | undefined;
// routing: three masters, no backup
let routed: Proc[] = [];
let mproxy: Proc | undefined;

test.before(async () => {
  [A, B, M, BK] = await Promise.all([startMemcached(), startMemcached(), startMemcached(), startMemcached()]);
  // memcached's default item size limit is 1 MiB (-I 1m); the proxy is told the same.
  [proxy, rproxy] = await Promise.all([
    startProxy(['-s', B.addr, '--workers', '1', '--max-item-size', '1m']),
    startProxy(['-s', M.addr, '-b', BK.addr, '--workers', '2', '--timeout', '300', '--retry-interval', '200']),
  ]);
  [adminA, adminB] = await Promise.all([WireClient.connect(A.port), WireClient.connect(B.port)]);
  diff = new Differential(A.port, proxy.port, adminA, adminB);
  routed = await Promise.all([startMemcached(), startMemcached(), startMemcached()]);
  mproxy = await startProxy([...routed.flatMap((r) => ['-s', r.addr]), '--workers', '2']);
});

test.after(async () => {
  adminA?.close();
  adminB?.close();
  await Promise.all([proxy?.stop(), rproxy?.stop(), mproxy?.stop(), A?.stop(), B?.stop(), M?.stop(), BK?.stop(), ...routed.map((r) => r.stop())]);
});

// ------------------------------------------------------------------ the table

const ROWS = META_ROWS;

for (const row of ROWS) {
  test(row.name, () => diff.runRow(row));
}

// A meta request whose reply memcached stretches over two segments must not
// leave the shared backend connection out of step for another client.
test('ms too large on one client does not disturb another client\'s mg', async () => {
  await diff.reset(S('y', 'yes'));
  await diff.settle();
  const x = await WireClient.connect(proxy!.port);
  const y = await WireClient.connect(proxy!.port);
  try {
    x.write(`ms big 2000000\r\n${HUGE_VALUE.slice(0, 100_000)}`);
    y.write('mg y v\r\n');
    const got = (await y.readUntil((b) => b.includes('\r\n', 4), 2000)).toString('latin1');
    assert.is(got, 'VA 3\r\nyes\r\n');
  } finally {
    x.close();
    y.close();
  }
});

// ------------------------------------------------------------------ routing over several masters

test('routing: a quiet batch over three masters answers in request order, mn last', async () => {
  const c = await WireClient.connect(mproxy!.port);
  try {
    const keys = Array.from({ length: 60 }, (_, i) => `route:${i}`);
    // every third key missing; quiet sets of the others
    const present = keys.filter((_, i) => i % 3 !== 0);
    const stored = await c.request(`${present.map((k) => `ms ${k} ${k.length} q T0\r\n${k}\r\n`).join('')}mn\r\n`, 'MN\r\n');
    assert.is(stored, 'MN\r\n', 'quiet sets answer nothing but mn');
    const held = await Promise.all(routed.map(async (r) => {
      const d = await WireClient.connect(r.port);
      try { return (await d.request(`get ${keys.join(' ')}\r\n`, 'END\r\n')).split('VALUE ').length - 1; } finally { d.close(); }
    }));
    assert.ok(held.every((n) => n > 0), `the keys spread over the three masters: ${held.join(', ')}`);
    const want = `${keys.map((k, i) => (i % 3 === 0 ? '' : `VA ${k.length} k${k} O${i}\r\n${k}\r\n`)).join('')}MN\r\n`;
    for (const mode of ['whole', 'bytes'] as const) {
      const req = Buffer.from(`${keys.map((k, i) => `mg ${k} v q k O${i}\r\n`).join('')}mn\r\n`, 'latin1');
      if (mode === 'whole') c.write(req); else await c.writeSplit(req, Array.from({ length: 200 }, (_, i) => Math.floor((i + 1) * req.length / 201)));
      const got = (await c.readUntil((b) => b.toString('latin1').endsWith('MN\r\n'), 3000)).toString('latin1');
      assert.is(got, want, `quiet mg batch (${mode})`);
    }
  } finally {
    c.close();
  }
});

test('routing: a base64 key goes where the same key as text goes', async () => {
  const c = await WireClient.connect(mproxy!.port);
  try {
    for (let i = 0; i < 30; i++) {
      const k = `b64route:${i}`;
      assert.is(await c.request(`ms ${b64(k)} 2 b\r\nv${i % 10}\r\n`), 'HD\r\n', `ms ${k} as base64`);
      assert.is(await c.request(`get ${k}\r\n`, 'END\r\n'), `VALUE ${k} 0 2\r\nv${i % 10}\r\nEND\r\n`, `get ${k} as text finds it`);
      assert.is(await c.request(`md ${b64(k)} b q\r\nmg ${k} v\r\n`), 'EN\r\n', `md ${k} as base64 deletes it`);
    }
  } finally {
    c.close();
  }
});

// ------------------------------------------------------------------ replication

async function direct(p: Proc, key: string, base64 = false): Promise<Item | null> {
  const c = await WireClient.connect(p.port);
  // inspect() sends "mg <key> v f t": a base64 key goes as "<key> b".
  try { return await inspect(c, base64 ? `${key} b` : key); } finally { c.close(); }
}

/** Reads a key on master and backup directly; both must hold `want` (null: neither has it). */
async function assertReplicated(key: string, want: { value: string; flags?: number; ttl?: number } | null, label: string, base64 = false): Promise<void> {
  // The backup copy is sent beside the master's; give it a moment to land.
  let m: Item | null = null;
  let b: Item | null = null;
  const deadline = Date.now() + 1000;
  for (;;) {
    [m, b] = await Promise.all([direct(M!, key, base64), direct(BK!, key, base64)]);
    if (JSON.stringify(m) === JSON.stringify(b) || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  const fmt = (i: Item | null): string => (i === null ? 'miss' : `${JSON.stringify(i.value)} f${i.flags} t${i.ttl}`);
  if (want === null) {
    assert.ok(m === null && b === null, `${label}: ${key} must be gone from both; master ${fmt(m)}, backup ${fmt(b)}`);
    return;
  }
  assert.ok(m !== null, `${label}: ${key} on the master: miss`);
  assert.ok(b !== null, `${label}: ${key} on the backup: miss (master ${fmt(m)})`);
  assert.is(m!.value, want.value, `${label}: master value`);
  assert.is(b!.value, want.value, `${label}: backup value`);
  assert.is(b!.flags, m!.flags, `${label}: flags`);
  if (want.flags !== undefined) assert.is(m!.flags, want.flags, `${label}: master flags`);
  if (want.ttl !== undefined) {
    assert.ok(Math.abs(m!.ttl - want.ttl) <= 2, `${label}: master ttl ${m!.ttl}, want ${want.ttl}`);
    assert.ok(Math.abs(b!.ttl - want.ttl) <= 2, `${label}: backup ttl ${b!.ttl}, want ${want.ttl}`);
  }
}

async function viaProxy(data: string, wantReply: string): Promise<void> {
  const c = await WireClient.connect(rproxy!.port);
  try {
    const r = await c.request(`${data}mn\r\n`, 'MN\r\n', 3000);
    assert.is(r, `${wantReply}MN\r\n`, `reply to ${show(data)}`);
  } finally {
    c.close();
  }
}

/**
 * Waits until the replication proxy sees master and backup up (a test before may
 * have cost it its backend connections), then flushes both servers.
 */
async function resetReplication(): Promise<void> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const c = await WireClient.connect(rproxy!.port);
    let r: string;
    try { r = await c.request('stats servers\r\n', 'END\r\n'); } finally { c.close(); }
    const states = [...r.matchAll(/:state (\S+)/g)].map((m) => m[1]);
    if (states.length === 2 && states.every((x) => x === 'up')) break;
    if (Date.now() > deadline) assert.unreachable(`servers not up again after 5 s: ${states.join(', ')}`);
    await new Promise((res) => setTimeout(res, 50));
  }
  for (const p of [M!, BK!]) {
    const c = await WireClient.connect(p.port);
    try { await c.request('flush_all\r\n'); } finally { c.close(); }
  }
}

test('replication: ms in every mode, with T, F and q', async () => {
  await resetReplication();
  await viaProxy('ms r1 5 T1000 F7\r\nhello\r\n', 'HD\r\n');
  await assertReplicated('r1', { value: 'hello', flags: 7, ttl: 1000 }, 'ms');
  await viaProxy('ms r1 1 ME\r\nx\r\n', 'NS\r\n');
  await assertReplicated('r1', { value: 'hello', flags: 7 }, 'ms ME on a present key');
  await viaProxy('ms r1 3 MA\r\n-ap\r\nms r1 3 MP\r\npp-\r\n', 'HD\r\nHD\r\n');
  await assertReplicated('r1', { value: 'pp-hello-ap', flags: 7 }, 'ms MA, MP');
  await viaProxy('ms r1 1 MR F9 T0\r\nz\r\n', 'HD\r\n');
  await assertReplicated('r1', { value: 'z', flags: 9, ttl: -1 }, 'ms MR');
  await viaProxy('ms r2 1 ME\r\na\r\nms r3 1 MR\r\nb\r\n', 'HD\r\nNS\r\n');
  await assertReplicated('r2', { value: 'a' }, 'ms ME on a new key');
  await assertReplicated('r3', null, 'ms MR on a missing key');
  await viaProxy('ms r4 2 q\r\nq1\r\nms r4 2 MA q\r\nq2\r\n', '');
  await assertReplicated('r4', { value: 'q1q2' }, 'quiet ms');
  // memcached 1.6 does not autovivify an append (NS), on either server
  await viaProxy('ms r5 2 MA N100\r\nav\r\n', 'NS\r\n');
  await assertReplicated('r5', null, 'ms MA N on a miss');
  await viaProxy('ms r6 1 !\r\na\r\n', 'CLIENT_ERROR invalid flag\r\n');
  await assertReplicated('r6', null, 'ms with an invalid flag');
});

test('replication: ms C (cas) match and mismatch', async () => {
  await resetReplication();
  await viaProxy('ms c1 1\r\na\r\n', 'HD\r\n');
  const c = await WireClient.connect(rproxy!.port);
  try {
    const r = await c.request('mg c1 c\r\n');
    const cas = /^HD c(\d+)\r\n$/.exec(r)?.[1];
    assert.ok(cas !== undefined, `mg c1 c: ${show(r)}`);
    assert.is(await c.request(`ms c1 1 C${cas}\r\nb\r\n`), 'HD\r\n', 'cas match');
    assert.is(await c.request(`ms c1 1 C${cas}\r\nc\r\n`), 'EX\r\n', 'cas mismatch');
  } finally {
    c.close();
  }
  await assertReplicated('c1', { value: 'b' }, 'ms C');
});

test('replication: md, md q, md C, md b', async () => {
  await resetReplication();
  await viaProxy(`ms d1 1\r\na\r\nms d2 1\r\nb\r\nms d3 1\r\nc\r\nms ${b64('d 4')} 1 b\r\nd\r\n`, 'HD\r\nHD\r\nHD\r\nHD\r\n');
  await viaProxy('md d1\r\nmd d2 q\r\n', 'HD\r\n');
  await assertReplicated('d1', null, 'md');
  await assertReplicated('d2', null, 'md q');
  const c = await WireClient.connect(rproxy!.port);
  try {
    const cas = /^HD c(\d+)\r\n$/.exec(await c.request('mg d3 c\r\n'))![1]!;
    assert.is(await c.request(`md d3 C${BigInt(cas) + 100n}\r\n`), 'EX\r\n', 'md C mismatch');
    await assertReplicated('d3', { value: 'c' }, 'md C mismatch keeps it');
    assert.is(await c.request(`md d3 C${cas}\r\n`), 'HD\r\n', 'md C match');
  } finally {
    c.close();
  }
  await assertReplicated('d3', null, 'md C match');
  await viaProxy(`md ${b64('d 4')} b\r\n`, 'HD\r\n');
  await assertReplicated(b64('d 4'), null, 'md b', true);
});

test('replication: ma incr/decr, N autovivify, q, b', async () => {
  await resetReplication();
  await viaProxy('ms n1 2\r\n10\r\n', 'HD\r\n');
  await viaProxy('ma n1\r\nma n1 v\r\nma n1 MD D5 v\r\nma n1 q\r\n', 'HD\r\nVA 2\r\n12\r\nVA 1\r\n7\r\n');
  // memcached keeps a number's length when it shrinks: "12" decremented to 7 is "7 "
  await assertReplicated('n1', { value: '8 ' }, 'ma');
  await viaProxy('ma n2 N0 J13 v\r\nma n2 v\r\n', 'VA 2\r\n13\r\nVA 2\r\n14\r\n');
  await assertReplicated('n2', { value: '14' }, 'ma N J');
  await viaProxy('ma n3\r\n', 'NF\r\n');
  await assertReplicated('n3', null, 'ma on a miss');
  await viaProxy(`ms ${b64('n 4')} 1 b\r\n1\r\nma ${b64('n 4')} b D41 v\r\n`, 'HD\r\nVA 2\r\n42\r\n');
  await assertReplicated(b64('n 4'), { value: '42' }, 'ma b', true);
});

test('replication: mg T touches the backup copy too', async () => {
  await resetReplication();
  await viaProxy('ms t1 1 T100\r\na\r\n', 'HD\r\n');
  await viaProxy('mg t1 T2000 v\r\n', 'VA 1\r\na\r\n');
  await assertReplicated('t1', { value: 'a', ttl: 2000 }, 'mg T');
});

test('replication: keys that start with q or C (meta flag letters) reach master and backup intact', async () => {
  await resetReplication();
  await viaProxy('ms qkey 2\r\nqq\r\n', 'HD\r\n');
  await assertReplicated('qkey', { value: 'qq' }, 'ms qkey');
  await viaProxy('ms Ckey 1\r\na\r\n', 'HD\r\n');
  const c = await WireClient.connect(rproxy!.port);
  try {
    const r = await c.request('mg Ckey c\r\n');
    const cas = /^HD c(\d+)\r\n$/.exec(r)?.[1];
    assert.ok(cas !== undefined, `mg Ckey c: ${show(r)}`);
    assert.is(await c.request(`ms Ckey 1 C${cas}\r\nb\r\n`), 'HD\r\n', 'cas match');
  } finally {
    c.close();
  }
  await assertReplicated('Ckey', { value: 'b' }, 'ms Ckey C<cas>');
});

test.run();
