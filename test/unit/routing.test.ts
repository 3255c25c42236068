// Routing: each hash against an independent reference, then the router's
// consistency, balance and stability.
import { createHash } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import xxhashWasm from 'xxhash-wasm';
import { jumpHash, jumpRoute } from '../../src/routing/jump.js';
import { KetamaRing, ketamaDigestsPerServer, ketamaHash } from '../../src/routing/ketama.js';
import { magentHash, moduloBucket } from '../../src/routing/magent.js';
import { Router } from '../../src/routing/router.js';
import { xxh32 } from '../../src/routing/xxhash.js';

// Seeded so a failure reproduces.
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return (t ^ (t >>> 14)) >>> 0;
  };
}

function randomBytes(rand: () => number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = rand() & 0xff;
  return out;
}

const bytes = (s: string): Buffer => Buffer.from(s, 'latin1');

/** Random printable keys of the given length, laid out back to back in one buffer. */
function keyBuffer(rand: () => number, count: number, len: number): { buf: Uint8Array; starts: number[] } {
  const buf = new Uint8Array(count * len + 7);
  const starts: number[] = [];
  for (let k = 0; k < count; k++) {
    const start = 7 + k * len; // deliberately unaligned
    for (let i = 0; i < len; i++) buf[start + i] = 0x21 + (rand() % 94);
    starts.push(start);
  }
  return { buf, starts };
}

// ---------------------------------------------------------------- xxh32

test('xxh32 equals xxhash-wasm h32Raw for lengths 0..300 at unaligned offsets', async () => {
  const { h32Raw } = await xxhashWasm();
  const rand = mulberry32(1);
  const big = randomBytes(rand, 4096);
  let checked = 0;
  for (let len = 0; len <= 300; len++) {
    for (let rep = 0; rep < 20; rep++) {
      const start = rand() % (big.length - len);
      const end = start + len;
      const seed = rep < 10 ? 0 : rand();
      const want = h32Raw(big.subarray(start, end), seed);
      const got = seed === 0 ? xxh32(big, start, end) : xxh32(big, start, end, seed);
      if (got !== want) assert.unreachable(`len ${len} start ${start} seed ${seed}: got ${got}, want ${want}`);
      checked++;
    }
  }
  assert.is(checked, 301 * 20);
});

test('xxh32 of views at an offset into their memory, alternating between buffers, equals h32Raw', async () => {
  // Long keys are read through a DataView kept for the last buffer hashed: it
  // must follow both the view's byteOffset and a change of buffer.
  const { h32Raw } = await xxhashWasm();
  const rand = mulberry32(4);
  const views = [randomBytes(rand, 512).subarray(3), Buffer.from(randomBytes(rand, 512)).subarray(5, 500), Buffer.from('x'.repeat(40) + 'y'.repeat(200))];
  for (let k = 0; k < 3000; k++) {
    const v = views[k % views.length]!;
    const len = 32 + (rand() % 100);
    const start = rand() % (v.length - len);
    const want = h32Raw(v.subarray(start, start + len), 0);
    const got = xxh32(v, start, start + len);
    if (got !== want) assert.unreachable(`view ${k % views.length} len ${len} start ${start}: got ${got}, want ${want}`);
  }
});

test('xxh32 known vectors', () => {
  // From the xxHash reference: XXH32("", 0) and XXH32("abc", 0).
  assert.is(xxh32(new Uint8Array(0), 0, 0), 0x02cc5d05);
  assert.is(xxh32(bytes('abc'), 0, 3), 0x32d153ff);
});

// ---------------------------------------------------------------- jump

const LCG_MULTIPLIER = 2862933555777941757n;
const MASK64 = (1n << 64n) - 1n;

/** The paper's algorithm, literally, in BigInt (test only). */
function jumpReference(key: number, buckets: number): number {
  let k = BigInt(key);
  let b = -1n;
  let j = 0n;
  const n = BigInt(buckets);
  while (j < n) {
    b = j;
    k = (k * LCG_MULTIPLIER + 1n) & MASK64;
    j = BigInt(Math.floor(Number(b + 1n) * (2147483648 / Number((k >> 33n) + 1n))));
  }
  return Number(b);
}

test('jumpHash equals the BigInt reference for 100,000 keys, buckets 1..64, 1000, 65536', () => {
  // The key whose first LCG step carries from the low word into the high word.
  const inverse = Number(modInverse32(0x87b0b0fdn));
  const carryKey = Number(BigInt.asUintN(32, -BigInt(inverse)));
  const keys = [0, 1, 0x7fffffff, 0x80000000, 0xffffffff, carryKey];
  const rand = mulberry32(2);
  while (keys.length < 100_000) keys.push(rand());
  const counts = [...Array.from({ length: 64 }, (_, i) => i + 1), 1000, 65536];
  for (const key of keys) {
    for (const n of counts) {
      const got = jumpHash(key, n);
      const want = jumpReference(key, n);
      if (got !== want) assert.unreachable(`key ${key} buckets ${n}: got ${got}, want ${want}`);
    }
  }
});

function modInverse32(a: bigint): bigint {
  // Newton iteration: each step doubles the number of correct low bits.
  let x = a;
  for (let i = 0; i < 5; i++) x = BigInt.asUintN(32, x * (2n - a * x));
  return x;
}

test('jumpRoute gives each pool what jumpHash gives it alone, masters more, fewer or as many as backups', () => {
  const rand = mulberry32(3);
  const out = { master: -2, backup: -2 };
  const counts = [0, 1, 2, 3, 4, 5, 7, 8, 16, 31, 64, 1000, 65536, (1 << 20) + 1];
  for (let k = 0; k < 20_000; k++) {
    const key = rand();
    const want = counts.map((n) => (n === 0 ? -1 : jumpReference(key, n)));
    for (let m = 1; m < counts.length; m++) {
      for (let b = 0; b < counts.length; b++) {
        jumpRoute(key, counts[m]!, counts[b]!, out);
        if (out.master !== want[m] || out.backup !== want[b]) {
          assert.unreachable(`key ${key}, ${counts[m]} masters, ${counts[b]} backups: got ${out.master}/${out.backup}, want ${want[m]}/${want[b]}`);
        }
      }
    }
  }
});

test('jumpHash with fewer than one bucket is -1', () => {
  assert.is(jumpHash(123, 0), -1);
});

// ---------------------------------------------------------------- magent

/** magent's hashme(), independently: signed chars via Int8Array, BigInt mod 2^32, C-string stop. */
function magentReference(key: Uint8Array): number {
  const signed = new Int8Array(key.buffer, key.byteOffset, key.length);
  let h = 5381n;
  for (const c of signed) {
    if (c === 0) break;
    h = (h * 33n + BigInt(c)) & 0xffffffffn;
  }
  return Number(h & 0x7fffffffn);
}

// [key as latin1 (one char = one byte), server index with 2, 3, 4 servers]
const MAGENT_TABLE: ReadonlyArray<readonly [string, number, number, number]> = [
  ['foo', 1, 0, 1],
  ['bar', 0, 0, 2],
  ['a', 0, 1, 2],
  ['', 1, 2, 1],
  ['user:1000', 1, 2, 3],
  ['session:abcdef', 0, 0, 0],
  ['key_with_long_name_0123456789', 0, 1, 0],
  ['ABCDEFGHIJKLMNOPQRSTUVWXYZ', 0, 1, 0],
  ['\xff', 0, 2, 0], // unsigned chars would give 177828 % 3 = 0
  ['\x80\x81\x82', 0, 0, 0],
  ['caf\xc3\xa9', 1, 2, 3], // "café" in UTF-8
  ['\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e', 1, 0, 1], // "日本語" in UTF-8
  ['mixed\xfe\x7fend', 0, 2, 0],
  ['k\x00tail', 0, 2, 0], // magent hashes a C string: only "k"
];

test('magent table: pinned server indexes for 2, 3 and 4 servers', () => {
  for (const [key, s2, s3, s4] of MAGENT_TABLE) {
    const buf = bytes(key);
    const want = magentReference(buf);
    assert.equal([want % 2, want % 3, want % 4], [s2, s3, s4], `reference disagrees with table for ${JSON.stringify(key)}`);
    const h = magentHash(buf, 0, buf.length);
    assert.is(h, want, `hash of ${JSON.stringify(key)}`);
    assert.equal([moduloBucket(h, 2), moduloBucket(h, 3), moduloBucket(h, 4)], [s2, s3, s4], `buckets of ${JSON.stringify(key)}`);
  }
});

test('magent: classic djb2 values', () => {
  assert.is(magentHash(bytes('foo'), 0, 3), 193491849);
  assert.is(magentHash(bytes('\xff'), 0, 1), 5381 * 33 - 1);
});

test('magentHash equals the reference on random byte ranges of a larger buffer', () => {
  const rand = mulberry32(3);
  const big = randomBytes(rand, 2048);
  for (let i = 0; i < 5000; i++) {
    const start = rand() % 1800;
    const end = start + (rand() % 250);
    assert.is(magentHash(big, start, end), magentReference(big.subarray(start, end)));
  }
});

// ---------------------------------------------------------------- ketama

function md5(s: Uint8Array | string): Buffer {
  return createHash('md5').update(s).digest();
}

test('ketamaHash is the first 4 bytes of md5(key), little-endian', () => {
  const buf = bytes('xxuser:42yy');
  assert.is(ketamaHash(buf, 2, 9), md5('user:42').readUInt32LE(0));
  assert.is(ketamaHash(buf, 0, 0), md5('').readUInt32LE(0));
});

test('ketama ring: 160 points per server, sorted, from md5("<name>-<i>") words', () => {
  const names = ['10.0.0.1:11212', '10.0.0.2:11213', '10.0.0.3:11214', '10.0.0.4:11215'];
  const ring = new KetamaRing(names);
  assert.is(ring.points.length, 4 * 160);
  for (let i = 1; i < ring.points.length; i++) assert.ok(ring.points[i - 1]! <= ring.points[i]!);

  const expected: Array<[number, number]> = [];
  names.forEach((name, s) => {
    for (let i = 0; i < 40; i++) {
      const d = md5(`${name}-${i}`);
      for (let w = 0; w < 4; w++) expected.push([d.readUInt32LE(w * 4), s]);
    }
  });
  expected.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  assert.equal(Array.from(ring.points), expected.map((e) => e[0]));
  assert.equal(Array.from(ring.servers), expected.map((e) => e[1]));
});

test('ketama ring: port 11211 is left out of the point names, as twemproxy does', () => {
  const a = new KetamaRing(['10.0.0.1:11211', '10.0.0.2:11211']);
  const b = new KetamaRing(['10.0.0.1', '10.0.0.2']);
  assert.equal(Array.from(a.points), Array.from(b.points));
  assert.equal(Array.from(a.servers), Array.from(b.servers));
});

test('ketama points per server follow twemproxy float arithmetic', () => {
  for (let n = 1; n <= 24; n++) assert.is(ketamaDigestsPerServer(n) * 4, 160, `n=${n}`);
  assert.is(ketamaDigestsPerServer(25) * 4, 156);
  assert.is(new KetamaRing(Array.from({ length: 25 }, (_, i) => `s${i}:1`)).points.length, 25 * 156);
});

test('ketama bucket: first point >= hash, wrapping to the first point', () => {
  const ring = new KetamaRing(['a:1', 'b:2', 'c:3']);
  const p = ring.points;
  const s = ring.servers;
  const last = p.length - 1;
  assert.is(ring.bucket(0), s[0]);
  assert.is(ring.bucket(p[0]!), s[0]);
  assert.is(ring.bucket(p[0]! + 1), s[1]);
  assert.is(ring.bucket(p[10]!), s[10]);
  assert.is(ring.bucket(p[last]!), s[last]);
  if (p[last]! < 0xffffffff) assert.is(ring.bucket(p[last]! + 1), s[0]);
  assert.is(ring.bucket(0xffffffff), p[last] === 0xffffffff ? s[last] : s[0]);
});

// ---------------------------------------------------------------- router

const MASTERS = ['mc1:11211', 'mc2:11212', 'mc3:11213', 'mc4:11214'];
const BACKUPS = ['mc5:11215', 'mc6:11216'];
const DISTRIBUTIONS = ['jump', 'ketama', 'magent'] as const;

test('two routers built from the same lists route 10,000 keys identically', () => {
  for (const d of DISTRIBUTIONS) {
    const r1 = new Router(d, MASTERS, BACKUPS);
    const r2 = new Router(d, [...MASTERS], [...BACKUPS]);
    const { buf, starts } = keyBuffer(mulberry32(4), 10_000, 24);
    for (const start of starts) {
      r1.route(buf, start, start + 24);
      r2.route(buf, start, start + 24);
      assert.is(r1.master, r2.master, d);
      assert.is(r1.backup, r2.backup, d);
      assert.ok(r1.master >= 0 && r1.master < MASTERS.length, d);
      assert.ok(r1.backup >= 0 && r1.backup < BACKUPS.length, d);
    }
  }
});

test('router picks each pool with the distribution over that pool\'s own list', () => {
  const { buf, starts } = keyBuffer(mulberry32(5), 2000, 16);
  const jump = new Router('jump', MASTERS, BACKUPS);
  const magent = new Router('magent', MASTERS, BACKUPS);
  const ketama = new Router('ketama', MASTERS, BACKUPS);
  const masterRing = new KetamaRing(MASTERS);
  const backupRing = new KetamaRing(BACKUPS);
  const backupsAsMasters = new Router('ketama', BACKUPS, []);
  for (const start of starts) {
    const end = start + 16;
    const x = xxh32(buf, start, end);
    jump.route(buf, start, end);
    assert.is(jump.hash(buf, start, end), x);
    assert.equal([jump.master, jump.backup], [jumpHash(x, 4), jumpHash(x, 2)]);

    const m = magentHash(buf, start, end);
    magent.route(buf, start, end);
    assert.is(magent.hash(buf, start, end), m);
    assert.equal([magent.master, magent.backup], [m % 4, m % 2]);

    const k = ketamaHash(buf, start, end);
    ketama.route(buf, start, end);
    assert.is(ketama.hash(buf, start, end), k);
    assert.equal([ketama.master, ketama.backup], [masterRing.bucket(k), backupRing.bucket(k)]);
    backupsAsMasters.route(buf, start, end);
    assert.is(backupsAsMasters.master, ketama.backup);
  }
});

test('a key routes the same wherever it sits in the buffer', () => {
  for (const d of DISTRIBUTIONS) {
    const r = new Router(d, MASTERS, BACKUPS);
    const alone = bytes('user:12345');
    const inside = bytes('get user:12345\r\n');
    r.route(alone, 0, alone.length);
    const want = [r.master, r.backup];
    r.route(inside, 4, 14);
    assert.equal([r.master, r.backup], want, d);
  }
});

test('jump and ketama give each of 4 servers 20-30% of 40,000 keys', () => {
  for (const d of ['jump', 'ketama'] as const) {
    const r = new Router(d, MASTERS, []);
    const counts = [0, 0, 0, 0];
    const { buf, starts } = keyBuffer(mulberry32(6), 40_000, 20);
    for (const start of starts) {
      r.route(buf, start, start + 20);
      counts[r.master]!++;
    }
    for (const c of counts) {
      const share = c / 40_000;
      assert.ok(share >= 0.2 && share <= 0.3, `${d}: shares ${counts.map((x) => (x / 400).toFixed(1) + '%').join(' ')}`);
    }
  }
});

test('jump: appending a server moves about 1/(n+1) of the keys, all to the new server', () => {
  const before = new Router('jump', MASTERS, []);
  const after = new Router('jump', [...MASTERS, 'mc7:11217'], []);
  const { buf, starts } = keyBuffer(mulberry32(7), 40_000, 20);
  let moved = 0;
  for (const start of starts) {
    before.route(buf, start, start + 20);
    after.route(buf, start, start + 20);
    if (before.master !== after.master) {
      moved++;
      assert.is(after.master, 4);
    }
  }
  const share = moved / starts.length;
  assert.ok(share > 0.18 && share < 0.22, `moved ${(share * 100).toFixed(2)}%, expected about 20%`);
});

test('route() with no backups sets backup = -1', () => {
  for (const d of DISTRIBUTIONS) {
    const r = new Router(d, MASTERS, []);
    const key = bytes('some-key');
    r.route(key, 0, key.length);
    assert.is(r.backup, -1, d);
    assert.ok(r.master >= 0 && r.master < 4, d);
  }
});

test('a router with no masters is refused', () => {
  assert.throws(() => new Router('jump', [], BACKUPS), /at least one master/);
});

test.run();
