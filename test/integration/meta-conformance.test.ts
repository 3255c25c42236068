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
import { Differential, show, type Mode, type Row } from '../helpers/differential.js';
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

const K250 = 'k'.repeat(250);
const K251 = 'k'.repeat(251);
const S = (key: string, value: string, flags = 0, exptime = 0): string =>
  `set ${key} ${flags} ${exptime} ${Buffer.byteLength(value, 'latin1')} noreply\r\n${value}\r\n`;
const b64 = (s: string): string => Buffer.from(s, 'latin1').toString('base64');

/** Remaining TTLs and seconds-since figures follow each server's clock tick (see the header). */
const ttlNorm = (r: string): string => r
  .replace(/ t(\d+)/g, (_m, n: string) => ` t~${Math.round(Number(n) / 10)}`)
  .replace(/ l(\d+)/g, ' l~')
  // me writes exp= as current time minus expiry: negative while the item lives
  .replace(/exp=(-?\d+)/g, (_m, n: string) => `exp=~${Math.round(Number(n) / 10)}`)
  .replace(/la=\d+/g, 'la=~');

// A too-large value: 2,000,000 bytes over memcached's 1 MiB limit, made of
// commands, so that any byte of it parsed as a request shows in the reply.
const HUGE_VALUE = 'mg k v\r\n'.repeat(Math.ceil(2_000_000 / 8)).slice(0, 2_000_000);
function hugeCuts(data: Buffer): Mode[] {
  const line = data.indexOf(0x0a) + 1;
  const dataEnd = line + 2_000_000 + 2;
  const at = [1, line - 2, line - 1, line, line + 1, line + 8, line + 65_536, line + 1_000_000,
    dataEnd - 2, dataEnd - 1, dataEnd, dataEnd + 1, data.length - 1];
  return [{ kind: 'whole' }, ...at.filter((k) => k > 0 && k < data.length).map((k): Mode => ({ kind: 'cut', at: k }))];
}

const FORMAT = 'CLIENT_ERROR bad command line format\r\n';

const ROWS: Row[] = [
  // ---- mg
  { name: 'mg miss', send: 'mg nokey\r\nmg nokey v\r\n' },
  { name: 'mg hit without flags answers HD', setup: S('k', 'hi'), send: 'mg k\r\n' },
  { name: 'mg v', setup: S('k', 'hello'), send: 'mg k v\r\n' },
  { name: 'mg f (client flags)', setup: S('k', 'hello', 4294967295), send: 'mg k f\r\nmg k v f\r\n' },
  { name: 'mg t: no TTL is t-1', setup: S('k', 'a'), send: 'mg k t\r\nmg k v t\r\n' },
  { name: 'mg t: remaining TTL', setup: S('k', 'a', 0, 1000), send: 'mg k t v\r\n', normalize: ttlNorm },
  { name: 'mg c (cas lines up)', setup: S('k', 'a'), send: 'mg k c\r\nmg k v c\r\n' },
  { name: 'mg k (key in the reply)', setup: S('k', 'a'), send: 'mg k k\r\nmg k v k\r\n' },
  { name: 'mg s (size)', setup: S('k', 'abcdef'), send: 'mg k s\r\nmg k s v\r\n' },
  { name: 'mg O opaque, on a hit and on a miss', setup: S('k', 'a'), send: 'mg k O123 v\r\nmg nokey O456 v\r\nmg nokey O789 k\r\n' },
  { name: 'mg with every flag at once', setup: S('k', 'value', 77), send: 'mg k s v f t c k O99 h\r\n' },
  { name: 'mg v of a value holding \\r\\n and "EN"', setup: S('k', 'a\r\nEN\r\nVA 1\r\nb'), send: 'mg k v\r\n' },
  { name: 'mg v of an empty value', setup: S('k', ''), send: 'mg k v s\r\n' },
  { name: 'mg v of a binary value', setup: S('k', '\x00\x01\xff\r\x80'), send: 'mg k v\r\n' },
  { name: 'mg h and l (hit before, seconds since last access)', setup: S('k', 'a'), send: 'mg k h l\r\nmg k h l v\r\n', normalize: ttlNorm },
  { name: 'mg T touches', setup: S('k', 'a', 0, 100), send: 'mg k T1000\r\nmg k t v\r\n', normalize: ttlNorm },
  { name: 'mg N autovivifies a miss (W flag), then Z for the next reader', send: 'mg k N30 v c t\r\nmg k N30 v\r\nmg k v\r\n', normalize: ttlNorm },
  { name: 'mg E is not a mg flag', setup: S('k', 'a'), send: 'mg k E5 v\r\n' },
  { name: 'mg q: a miss says nothing, a hit answers, mn ends the batch', setup: S('a', '1') + S('c', '333'),
    send: 'mg a v q\r\nmg b v q\r\nmg c v q k\r\nmg d q O5\r\nmn\r\n' },
  { name: 'mg q on a hit without v still answers HD', setup: S('k', 'a'), send: 'mg k q\r\nmg nokey q\r\nmn\r\n' },
  { name: 'mg q: misses only, then mn', send: 'mg a q v\r\nmg b q v\r\nmg c q v\r\nmn\r\n' },
  { name: 'mg b: base64 key', setup: S('key', 'v1', 5), send: `mg ${b64('key')} b v f\r\nmg ${b64('key')} b k v\r\nmg ${b64('nokey')} b v\r\n` },
  { name: 'mg b: a key that holds a space and a control byte', send: `ms ${b64('foo bar\x01')} 3 b\r\nabc\r\nmg ${b64('foo bar\x01')} b v k\r\nget foo\r\n` },
  { name: 'mg b: invalid base64', send: 'mg !!!! b v\r\nmg a=b= b v\r\n' },
  { name: 'mg: keys that start with q, C, b, v or O are keys, not flags', setup: S('qk', 'q') + S('Ck', 'C') + S('bk', 'b') + S('vk', 'v') + S('Ok', 'O'),
    send: 'mg qk v\r\nmg Ck v\r\nmg bk v\r\nmg vk v\r\nmg Ok v\r\nmg q v\r\nmg C v\r\n' },
  { name: 'mg: key only q', setup: S('q', 'just q'), send: 'mg q v\r\nmg q q v\r\nmn\r\n' },
  { name: 'mg with extra spaces', setup: S('k', 'a'), send: 'mg  k   v  f \r\n' },
  { name: 'mg with a bare \\n line end', setup: S('k', 'a'), send: 'mg k v\nmg k\n' },
  { name: 'mg 250-byte key', setup: S(K250, 'long'), send: `mg ${K250} v k\r\n` },

  // ---- ms
  { name: 'ms, then mg', send: 'ms k 2\r\nhi\r\nmg k v\r\n' },
  { name: 'ms T F', send: 'ms k 2 T1000 F5\r\nhi\r\nmg k v f t\r\n', normalize: ttlNorm },
  { name: 'ms T-1 expires at once', send: 'ms k 2 T-1\r\nhi\r\nmg k v\r\n' },
  { name: 'ms MS mode (set)', setup: S('k', 'old'), send: 'ms k 3 MS\r\nnew\r\nmg k v\r\n' },
  { name: 'ms ME mode (add): HD then NS', send: 'ms k 1 ME\r\na\r\nms k 1 ME\r\nb\r\nmg k v\r\n' },
  { name: 'ms MR mode (replace): NS then HD', send: 'ms k 1 MR\r\na\r\nms k 1\r\nb\r\nms k 1 MR\r\nc\r\nmg k v\r\n' },
  { name: 'ms MA mode (append)', setup: S('k', 'abc', 3), send: 'ms k 2 MA\r\nde\r\nms nokey 1 MA\r\nx\r\nmg k v f\r\nmg nokey v\r\n' },
  { name: 'ms MP mode (prepend)', setup: S('k', 'abc'), send: 'ms k 2 MP\r\nde\r\nmg k v\r\n' },
  { name: 'ms MA with N autovivifies', send: 'ms k 2 MA N100\r\nab\r\nmg k v\r\n' },
  { name: 'ms lower-case mode', setup: S('k', 'abc'), send: 'ms k 1 Ma\r\nx\r\nms k 1 Me\r\ny\r\nmg k v\r\n' },
  { name: 'ms invalid mode', send: 'ms k 1 MZ\r\nx\r\nms k 1 M\r\ny\r\nmg k v\r\n' },
  { name: 'ms c, k, O, b return flags', send: `ms k 2 c k O77\r\nhi\r\nms ${b64('key')} 2 b k O1\r\nho\r\nmg ${b64('key')} b v\r\n` },
  { name: 'ms C: cas match, mismatch, miss', setup: S('k', 'a'),
    send: (base) => `ms k 1 C${base + 1n}\r\nb\r\nms k 1 C${base + 1n}\r\nc\r\nms nokey 1 C1\r\nd\r\nmg k v c\r\n` },
  { name: 'ms C with a bad token', setup: S('k', 'a'), send: 'ms k 1 Cabc\r\nb\r\nmg k v\r\n' },
  { name: 'ms I: an older cas marks the item stale', setup: S('k', 'a'),
    send: (base) => `ms k 1 I C${base}\r\nb\r\nmg k v c\r\nmg k v\r\n` },
  { name: 'ms E sets the cas', send: 'ms k 1 E12345\r\na\r\nmg k c v\r\n' },
  { name: 'ms q: HD is quiet, NS and EX are not', setup: S('k', 'a'),
    send: 'ms k 1 q\r\nb\r\nms k 1 MR q\r\nc\r\nms nokey 1 MR q\r\nd\r\nms k 1 C1 q\r\ne\r\nmn\r\nmg k v\r\n' },
  { name: 'ms q: a batch of 20 quiet sets, then mn', send: `${Array.from({ length: 20 }, (_, i) => `ms k${i} ${String(i).length} q\r\n${i}\r\n`).join('')}mn\r\nmg k19 v\r\n` },
  { name: 'ms too large: swallowed, connection kept', send: `ms big 2000000\r\n${HUGE_VALUE}\r\nmg big v\r\n`, modes: hugeCuts },
  { name: 'ms too large, with an old value', setup: S('big', 'old'), send: `ms big 2000000 T0\r\n${HUGE_VALUE}\r\nmg big v\r\n`, modes: hugeCuts },
  { name: 'ms too large, quiet', send: `ms big 2000000 q\r\n${HUGE_VALUE}\r\nmg big v\r\nmn\r\n`, modes: hugeCuts },
  { name: 'ms bad data chunk: remainder parsed as commands', send: 'ms k 3\r\nabcd\r\nmg k v\r\n' },
  { name: 'ms data ended by a bare \\n', send: 'ms k 1\r\na\nmg k v\r\n' },
  { name: 'ms bad length', send: 'ms k abc\r\nms k -1\r\nms k 1.5\r\nmg k v\r\n' },
  { name: 'ms without a length', send: 'ms k\r\nms k \r\nmg k v\r\n' },
  { name: 'ms length with leading zeros and a + sign', send: 'ms k 02\r\nab\r\nms j +1\r\nc\r\nmg k v\r\nmg j v\r\n' },
  { name: 'ms invalid flag (data swallowed)', send: 'ms k 1 !\r\na\r\nmg k v\r\n' },
  { name: 'ms duplicate flag', send: 'ms k 1 T1 T2\r\na\r\nmg k v\r\n' },
  { name: 'ms bad F and T values', send: 'ms k 1 Fabc\r\na\r\nms k 1 Tabc\r\nb\r\nms k 1 F-1\r\nc\r\nmg k v f\r\n' },
  { name: 'ms 250-byte key', send: `ms ${K250} 1\r\na\r\nmg ${K250} v\r\n` },
  { name: 'ms: keys that start with q or C are keys, not flags', send: 'ms qk 1\r\na\r\nms Ck 1\r\nb\r\nmg qk v\r\nmg Ck v\r\n' },
  { name: 'ms value holding "\\r\\nHD\\r\\n"', send: 'ms k 6\r\n\r\nHD\r\n\r\nmg k v\r\n' },

  // ---- md
  { name: 'md: HD, NF', setup: S('k', 'a'), send: 'md k\r\nmd k\r\nmg k v\r\n' },
  { name: 'md q: HD is quiet, NF is not', setup: S('k', 'a'), send: 'md k q\r\nmd k q\r\nmd nokey q\r\nmn\r\n' },
  { name: 'md C: cas mismatch, then match', setup: S('k', 'a'),
    send: (base) => `md k C${base + 5n}\r\nmg k v\r\nmd k C${base + 1n}\r\nmg k v\r\n` },
  { name: 'md I T marks stale instead of deleting', setup: S('k', 'a'), send: 'md k I T30\r\nmg k v c\r\nmg k v\r\n', normalize: ttlNorm },
  { name: 'md k O b', setup: S('key', 'a'), send: `md ${b64('key')} b k O9\r\nmg ${b64('key')} b v\r\nmd nokey O8 k\r\n` },
  { name: 'md x removes the value, keeps the item', setup: S('k', 'abc', 9), send: 'md k x\r\nmg k v f s\r\n' },
  { name: 'md: a key that starts with q', setup: S('qk', 'a'), send: 'md qk\r\nmg qk v\r\n' },
  { name: 'md invalid and duplicate flag', setup: S('k', 'a'), send: 'md k !\r\nmd k q q\r\nmg k v\r\n' },

  // ---- ma
  { name: 'ma: incr, v, decr, deltas', setup: S('n', '10'), send: 'ma n\r\nma n v\r\nma n MD v\r\nma n D5 v\r\nma n MI D3 v\r\nma n MD D100 v\r\nma n M+ v\r\nma n M- v\r\n' },
  { name: 'ma on a miss: NF, N autovivify with J', send: 'ma nokey\r\nma nokey v N0 J13\r\nma nokey v\r\nma other N0 v\r\n' },
  { name: 'ma q: HD is quiet, NF is not', setup: S('n', '1'), send: 'ma n q\r\nma nokey q\r\nma n q v\r\nmn\r\nmg n v\r\n' },
  { name: 'ma on a non-numeric value', setup: S('n', 'abc'), send: 'ma n\r\nma n v\r\n' },
  { name: 'ma wraps at 2^64', setup: S('n', '18446744073709551615'), send: 'ma n v\r\n' },
  { name: 'ma bad delta and initial', setup: S('n', '1'), send: 'ma n Dabc\r\nma n D-1\r\nma nokey N0 Jx\r\nma n D18446744073709551616\r\nmg n v\r\n' },
  { name: 'ma t c k O', setup: S('n', '5', 0, 1000), send: 'ma n t c k O3 v\r\nma n T2000 t v\r\n', normalize: ttlNorm },
  { name: 'ma C: cas match and mismatch', setup: S('n', '5'), send: (base) => `ma n C${base + 9n} v\r\nma n C${base + 1n} v\r\n` },
  { name: 'ma b: base64 key', setup: S('num', '7'), send: `ma ${b64('num')} b v\r\nma ${b64('num')} b k v MD\r\n` },
  { name: 'ma: a key that starts with q', setup: S('qn', '1'), send: 'ma qn v\r\n' },
  { name: 'ma: a value growing a digit', setup: S('n', '99'), send: 'ma n v\r\nmg n v s\r\n' },

  // ---- mn, me
  { name: 'mn', send: 'mn\r\n' },
  { name: 'mn twice, mn after a text command', send: 'mn\r\nmn\r\nget nokey\r\nmn\r\n' },
  { name: 'me on a hit', setup: S('k', 'abc', 0, 1000), send: 'me k\r\n', normalize: ttlNorm },
  { name: 'me on a miss', send: 'me nokey\r\n' },
  { name: 'me b', setup: S('key', 'abc'), send: `me ${b64('key')} b\r\n`, normalize: ttlNorm },

  // ---- errors
  { name: 'meta commands without a key', send: 'mg\r\nms\r\nmd\r\nma\r\nme\r\nmg \r\n' },
  { name: '251-byte key: mg, md, ma, me', send: `mg ${K251} v\r\nmd ${K251}\r\nma ${K251}\r\nme ${K251}\r\n` },
  { name: '251-byte key: ms (data parsed as a command)', send: `ms ${K251} 1\r\na\r\nmg a v\r\n` },
  { name: 'duplicate flag', setup: S('k', 'a'), send: 'mg k v v\r\nmg k t t\r\nma k v v\r\n' },
  { name: 'invalid flag', setup: S('k', 'a'), send: 'mg k !\r\nmg k v &\r\nma k @\r\n' },
  { name: 'an opaque too long', setup: S('k', 'a'), send: `mg k O${'1'.repeat(40)} v\r\n` },
  { name: 'upper-case MG, MS', send: 'MG k v\r\nMS k 1\r\n' },
  { name: 'meta and text commands mixed in one pipeline', send: `${S('k', 'a')}mg k v\r\nget k\r\nms k 1 MA\r\nb\r\ngets k\r\nmd k\r\nget k\r\nmg k v\r\nmn\r\n` },
  { name: 'a pipeline of quiet meta commands of every kind, ended by mn', setup: S('n', '1') + S('d', 'x'),
    send: 'ms a 1 q\r\na\r\nmg a q v\r\nmg zz q v\r\nma n q\r\nmd d q\r\nmd d q\r\nma zz q\r\nmn\r\nmg n v\r\n' },

  // ---- deliberate differences: asserted on mcrelay alone
  { name: 'control character in a mg key is refused', send: 'mg a\x01b v\r\n', expect: FORMAT },
  { name: 'control character in a ms key is refused (data parsed as a command)', send: 'ms a\x01b 1\r\nx\r\n', expect: `${FORMAT}ERROR\r\n` },
  { name: 'control character in a md/ma/me key is refused', send: 'md a\x7fb\r\nma a\x1f 1\r\nme \x1b\r\n', expect: FORMAT.repeat(3) },
];

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
