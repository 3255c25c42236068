// Binary conformance (issue 14 item 2): the binary protocol through mcrelay must
// answer like memcached 1.6, byte for byte.
//
//   client --binary row--> memcached A                      (the reference)
//   client --binary row--> mcrelay --text/meta--> memcached B
//
// As in conformance.test.ts, each row starts from the same state on A and B
// (flushed, cas counters level, its setup written to both as text) and is sent
// whole, byte by byte and cut at every offset (helpers/differential.ts: Mode,
// allCuts). The end of a reply is a binary Noop with a marker opaque sent after
// the row; rows that close the connection are read until it closes.
//
// Every byte is compared, the cas fields included: the cas counters of A and B
// are level when a row starts, so the cas a store, an append or an incr returns
// (memcached's new cas for the item; 0 for a delete) is the same number on both.
// A test of its own checks, on each side, that the cas a store returns is the
// one a following GetK reads, so that the comparison does not rest on both
// sides answering alike by chance.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startMemcached, startProxy, type Proc } from '../helpers/procs.js';
import { WireClient } from '../helpers/wire.js';
import { Differential, allCuts, modeName, type Mode } from '../helpers/differential.js';

let A: Proc | undefined;
let B: Proc | undefined;
let proxy: Proc | undefined;
let adminA: WireClient | undefined;
let adminB: WireClient | undefined;
let diff: Differential;

test.before(async () => {
  [A, B] = await Promise.all([startMemcached(), startMemcached()]);
  proxy = await startProxy(['-s', B.addr, '--workers', '1', '--max-item-size', '1m']);
  [adminA, adminB] = await Promise.all([WireClient.connect(A.port), WireClient.connect(B.port)]);
  diff = new Differential(A.port, proxy.port, adminA, adminB);
});

test.after(async () => {
  adminA?.close();
  adminB?.close();
  await Promise.all([proxy?.stop(), A?.stop(), B?.stop()]);
});

const OP = {
  GET: 0x00, SET: 0x01, ADD: 0x02, REPLACE: 0x03, DELETE: 0x04, INCR: 0x05, DECR: 0x06, QUIT: 0x07, FLUSH: 0x08,
  GETQ: 0x09, NOOP: 0x0a, VERSION: 0x0b, GETK: 0x0c, GETKQ: 0x0d, APPEND: 0x0e, PREPEND: 0x0f, STAT: 0x10,
  SETQ: 0x11, ADDQ: 0x12, DELETEQ: 0x14, INCRQ: 0x15, QUITQ: 0x17, FLUSHQ: 0x18, APPENDQ: 0x19, VERBOSITY: 0x1b,
  TOUCH: 0x1c, GAT: 0x1d, GATQ: 0x1e, SASL_LIST: 0x20, SASL_AUTH: 0x21, GATK: 0x23, GATKQ: 0x24,
} as const;

interface Req { key?: string; extras?: Buffer; value?: string; cas?: bigint; opaque?: number }

/** One binary request, as a client library writes it. */
function req(op: number, r: Req = {}): Buffer {
  const key = Buffer.from(r.key ?? '', 'latin1');
  const extras = r.extras ?? Buffer.alloc(0);
  const value = Buffer.from(r.value ?? '', 'latin1');
  const h = Buffer.alloc(24);
  h[0] = 0x80;
  h[1] = op;
  h.writeUInt16BE(key.length, 2);
  h[4] = extras.length;
  h.writeUInt32BE(extras.length + key.length + value.length, 8);
  h.writeUInt32BE(r.opaque ?? 0x01020304 + op, 12);
  h.writeBigUInt64BE(r.cas ?? 0n, 16);
  return Buffer.concat([h, extras, key, value]);
}
const u32 = (...n: number[]): Buffer => { const b = Buffer.alloc(4 * n.length); n.forEach((x, i) => b.writeUInt32BE(x >>> 0, 4 * i)); return b; };
const storeExtras = (flags: number, exp = 0): Buffer => u32(flags, exp);
const arith = (delta: bigint, initial: bigint, exp: number): Buffer => {
  const b = Buffer.alloc(20);
  b.writeBigUInt64BE(delta, 0);
  b.writeBigUInt64BE(initial, 8);
  b.writeUInt32BE(exp >>> 0, 16);
  return b;
};
const cat = (...b: Buffer[]): Buffer => Buffer.concat(b);
const S = (key: string, value: string, flags = 0): string => `set ${key} ${flags} 0 ${value.length}\r\n${value}\r\n`;

const SENTINEL = req(OP.NOOP, { opaque: 0xfeedface });
// 0x81 Noop, key/extras/status/body 0, opaque feedface, cas 0
const SENTINEL_REPLY = Buffer.from('810a0000' + '00000000' + '00000000' + 'feedface' + '0000000000000000', 'hex');

async function exchange(port: number, data: Buffer, mode: Mode, close: boolean, lone: number): Promise<Buffer> {
  const c = await WireClient.connect(port);
  try {
    if (mode.kind === 'whole') c.write(data);
    else if (mode.kind === 'cut') await c.writeSplit(data, [mode.at]);
    else await c.writeSplit(data, Array.from({ length: data.length - 1 }, (_, i) => i + 1));
    if (lone > 0) return await c.readUntil((b) => b.length >= lone, 3000);
    if (close) {
      const out = await c.readUntil(() => false, 3000);
      return Buffer.concat([out, Buffer.from(c.closed ? '<closed>' : '<still open>')]);
    }
    c.write(SENTINEL);
    const out = await c.readUntil((b) => b.length >= 24 && b.subarray(b.length - 24).equals(SENTINEL_REPLY), 3000);
    if (out.length >= 24 && out.subarray(out.length - 24).equals(SENTINEL_REPLY)) return out.subarray(0, out.length - 24);
    return Buffer.concat([out, Buffer.from(`<no sentinel reply: ${c.closed ? 'closed' : 'timed out'}>`)]);
  } finally {
    c.close();
  }
}

interface Row {
  name: string;
  send: Buffer | ((base: bigint) => Buffer);
  setup?: string;
  close?: boolean;
  /** at least this many bytes of reply (so that a row cannot pass by both saying nothing) */
  minReply?: number;
  /**
   * mcrelay alone must answer exactly this, with nothing sent after the row:
   * memcached 1.6 answers an unknown opcode that has a body only once more
   * bytes than the body have come, and swallows them (seen with a Noop after
   * it: the Unknown command reply below, then no reply to the Noop). mcrelay
   * swallows the body and goes on.
   */
  lone?: Buffer;
}

async function runRow(row: Row): Promise<void> {
  const first = typeof row.send === 'function' ? row.send(1000n) : row.send;
  for (const mode of allCuts(first)) {
    const base = await diff.reset(row.setup ?? '');
    const data = typeof row.send === 'function' ? row.send(base) : row.send;
    const where = `${row.name}, ${modeName(mode)}`;
    if (row.lone !== undefined) {
      const got = await exchange(proxy!.port, data, mode, false, row.lone.length);
      assert.is(got.toString('hex'), row.lone.toString('hex'), where);
      continue;
    }
    const [want, got] = await Promise.all([exchange(A!.port, data, mode, row.close ?? false, 0), exchange(proxy!.port, data, mode, row.close ?? false, 0)]);
    assert.is(got.toString('hex'), want.toString('hex'), `${where}\n  mcrelay:   ${got.toString('hex')}\n  memcached: ${want.toString('hex')}`);
    if (row.minReply !== undefined) assert.ok(want.length >= row.minReply, `${where}: memcached answered ${want.length} bytes`);
  }
}

/** memcached's reply to an unknown opcode sent with the default opaque */
function unknownCommand(op: number): Buffer {
  const h = Buffer.alloc(24);
  h[0] = 0x81;
  h[1] = op;
  h.writeUInt16BE(0x81, 6);
  h.writeUInt32BE(15, 8);
  h.writeUInt32BE(0x01020304 + op, 12);
  return Buffer.concat([h, Buffer.from('Unknown command')]);
}

const K = 'k';
const ROWS: Row[] = [
  // ---- gets
  { name: 'Get miss', send: req(OP.GET, { key: 'nokey' }), minReply: 24 },
  { name: 'Get hit with flags and cas', setup: S(K, 'hello', 0xdeadbeef >>> 0), send: req(OP.GET, { key: K }), minReply: 33 },
  { name: 'GetK hit and miss', setup: S(K, 'v'), send: cat(req(OP.GETK, { key: K }), req(OP.GETK, { key: 'nokey' })), minReply: 48 },
  { name: 'GetQ/GetKQ: a miss says nothing, Noop ends the batch', setup: S('a', '1') + S('c', '333'),
    send: cat(req(OP.GETKQ, { key: 'a' }), req(OP.GETKQ, { key: 'b' }), req(OP.GETKQ, { key: 'c' }), req(OP.GETQ, { key: 'd' }), req(OP.GETQ, { key: 'a' }), req(OP.NOOP)), minReply: 72 },
  { name: 'a binary value with CR LF inside', setup: 'set bin 7 0 6\r\n\r\n\x00\r\n\x7f\r\n', send: req(OP.GET, { key: 'bin' }), minReply: 34 },
  // ---- stores
  { name: 'Set then Get', send: cat(req(OP.SET, { key: K, extras: storeExtras(42), value: 'value' }), req(OP.GET, { key: K })), minReply: 48 },
  { name: 'Add existing, Add new', setup: S(K, 'x'), send: cat(req(OP.ADD, { key: K, extras: storeExtras(0), value: 'y' }), req(OP.ADD, { key: 'new', extras: storeExtras(1), value: 'z' }), req(OP.GETK, { key: 'new' })), minReply: 48 },
  { name: 'Replace missing, Replace existing', setup: S(K, 'x'), send: cat(req(OP.REPLACE, { key: 'nokey', extras: storeExtras(0), value: 'y' }), req(OP.REPLACE, { key: K, extras: storeExtras(3), value: 'z' }), req(OP.GET, { key: K })), minReply: 48 },
  { name: 'SetQ and AddQ: success says nothing, failure answers', setup: S(K, 'x'), send: cat(req(OP.SETQ, { key: 's', extras: storeExtras(0), value: 'q' }), req(OP.ADDQ, { key: K, extras: storeExtras(0), value: 'y' }), req(OP.GET, { key: 's' })), minReply: 48 },
  { name: 'Set with the right cas, then with a stale one', setup: S(K, 'x'),
    send: (base) => cat(req(OP.SET, { key: K, extras: storeExtras(0), value: 'new', cas: base + 1n }), req(OP.SET, { key: K, extras: storeExtras(0), value: 'newer', cas: base + 1n }), req(OP.GET, { key: K })), minReply: 72 },
  { name: 'Set with a cas of a missing key', send: cat(req(OP.SET, { key: 'nokey', extras: storeExtras(0), value: 'v', cas: 99n })), minReply: 24 },
  { name: 'Add and Replace with a cas: each is a cas (stale, right, missing key)', setup: S(K, 'x'),
    send: (base) => cat(req(OP.ADD, { key: K, extras: storeExtras(0), value: 'a', cas: base + 9n }), req(OP.REPLACE, { key: K, extras: storeExtras(0), value: 'r', cas: base + 9n }),
      req(OP.ADD, { key: K, extras: storeExtras(5), value: 'a', cas: base + 1n }), req(OP.ADD, { key: 'nokey', extras: storeExtras(0), value: 'a', cas: base + 1n }), req(OP.GETK, { key: K })), minReply: 120 },
  { name: 'Append and Prepend, hit and miss', setup: S(K, 'mid'),
    send: cat(req(OP.APPEND, { key: K, value: '>' }), req(OP.PREPEND, { key: K, value: '<' }), req(OP.APPEND, { key: 'nokey', value: 'x' }), req(OP.APPENDQ, { key: K, value: '!' }), req(OP.GET, { key: K })), minReply: 96 },
  { name: 'Append and Prepend with a cas: stale refused, right one appends', setup: S(K, 'mid'),
    send: (base) => cat(req(OP.APPEND, { key: K, value: '>', cas: base + 7n }), req(OP.APPEND, { key: K, value: '>', cas: base + 1n }),
      req(OP.PREPEND, { key: K, value: '<', cas: base + 2n }), req(OP.PREPEND, { key: K, value: '<', cas: base + 1n }), req(OP.GETK, { key: K })), minReply: 120 },
  // ---- delete
  { name: 'Delete hit, miss; DeleteQ', setup: S(K, 'x') + S('q', 'y'),
    send: cat(req(OP.DELETE, { key: K }), req(OP.DELETE, { key: K }), req(OP.DELETEQ, { key: 'q' }), req(OP.DELETEQ, { key: 'q' }), req(OP.GET, { key: 'q' })), minReply: 96 },
  { name: 'Delete with a stale cas, then the right one', setup: S(K, 'x'),
    send: (base) => cat(req(OP.DELETE, { key: K, cas: base + 5n }), req(OP.DELETE, { key: K, cas: base + 1n }), req(OP.GET, { key: K })), minReply: 72 },
  // ---- incr / decr
  { name: 'Incr and Decr of a number', setup: S('n', '10'),
    send: cat(req(OP.INCR, { key: 'n', extras: arith(5n, 0n, 0) }), req(OP.DECR, { key: 'n', extras: arith(20n, 0n, 0) }), req(OP.GET, { key: 'n' })), minReply: 80 },
  { name: 'Incr of a missing key: created with the initial value, or not (0xffffffff)',
    send: cat(req(OP.INCR, { key: 'new', extras: arith(5n, 7n, 0) }), req(OP.INCR, { key: 'new', extras: arith(5n, 7n, 0) }), req(OP.INCR, { key: 'none', extras: arith(1n, 0n, 0xffffffff) })), minReply: 80 },
  { name: 'Incr past 2^63 and a 64-bit delta', setup: S('n', '9223372036854775807'),
    send: cat(req(OP.INCR, { key: 'n', extras: arith(18446744073709551000n, 0n, 0) }), req(OP.GET, { key: 'n' })), minReply: 56 },
  { name: 'Incr and Decr with a cas: stale refused, right one counts; a missing key is created whatever the cas', setup: S('n', '10'),
    send: (base) => cat(req(OP.INCR, { key: 'n', extras: arith(1n, 0n, 0), cas: base + 4n }), req(OP.INCR, { key: 'n', extras: arith(1n, 0n, 0), cas: base + 1n }),
      req(OP.DECR, { key: 'n', extras: arith(3n, 0n, 0), cas: base + 2n }), req(OP.INCR, { key: 'new', extras: arith(1n, 42n, 0), cas: 5n }), req(OP.GETK, { key: 'n' })), minReply: 120 },
  { name: 'Incr of a non-number', setup: S(K, 'abc'), send: req(OP.INCR, { key: K, extras: arith(1n, 0n, 0) }), minReply: 24 },
  { name: 'IncrQ says nothing on success', setup: S('n', '1'), send: cat(req(OP.INCRQ, { key: 'n', extras: arith(1n, 0n, 0) }), req(OP.GET, { key: 'n' })), minReply: 24 },
  // ---- touch, gat
  { name: 'Touch hit and miss', setup: S(K, 'v', 5), send: cat(req(OP.TOUCH, { key: K, extras: u32(100) }), req(OP.TOUCH, { key: 'nokey', extras: u32(100) })), minReply: 48 },
  { name: 'GAT, GATK hit and miss; GATQ/GATKQ miss says nothing', setup: S(K, 'val', 9),
    send: cat(req(OP.GAT, { key: K, extras: u32(100) }), req(OP.GATK, { key: K, extras: u32(100) }), req(OP.GAT, { key: 'nokey', extras: u32(1) }),
      req(OP.GATQ, { key: 'nokey', extras: u32(1) }), req(OP.GATKQ, { key: 'nokey', extras: u32(1) }), req(OP.GATKQ, { key: K, extras: u32(1) })), minReply: 96 },
  { name: 'an expiration of 2^31 or more is unsigned: a unix time far ahead, not an expired item', setup: S('t', 'x'),
    send: cat(req(OP.SET, { key: K, extras: storeExtras(1, 0xffffffff), value: 'v' }), req(OP.GET, { key: K }), req(OP.TOUCH, { key: 't', extras: u32(0x80000000) }),
      req(OP.GAT, { key: 't', extras: u32(0xfffffffe) }), req(OP.INCR, { key: 'n', extras: arith(1n, 3n, 0xfffffffe) }), req(OP.FLUSH, { extras: u32(0xffffffff) }),
      req(OP.GETK, { key: K }), req(OP.GETK, { key: 't' }), req(OP.GETK, { key: 'n' })), minReply: 240 },
  // ---- the rest
  { name: 'Noop', send: req(OP.NOOP), minReply: 24 },
  { name: 'Version says memcached\'s', send: req(OP.VERSION), minReply: 27 },
  { name: 'Verbosity is an unknown command to memcached 1.6', send: req(OP.VERBOSITY, { extras: u32(1) }), lone: unknownCommand(OP.VERBOSITY) },
  { name: 'Flush, FlushQ', setup: S(K, 'x'), send: cat(req(OP.FLUSH), req(OP.SET, { key: K, extras: storeExtras(0), value: 'y' }), req(OP.FLUSHQ), req(OP.GET, { key: K })), minReply: 72 },
  { name: 'SASL list mechs and auth: unknown command (no SASL)', send: cat(req(OP.SASL_LIST), req(OP.SASL_AUTH, { key: 'PLAIN', value: '\x00u\x00p' })), minReply: 48 },
  { name: 'an unknown opcode', send: req(0x50, { key: 'x', value: 'body' }), lone: unknownCommand(0x50) },
  { name: 'Get with extras is invalid: answered, then closed', send: cat(req(OP.GET, { key: K, extras: u32(1) }), req(OP.NOOP)), close: true, minReply: 41 },
  { name: 'a key over 250 bytes: answered, then closed', send: cat(req(OP.GET, { key: 'k'.repeat(251) }), req(OP.NOOP)), close: true, minReply: 41 },
  { name: 'Quit answers, then closes', send: cat(req(OP.QUIT), req(OP.NOOP)), close: true, minReply: 24 },
  { name: 'QuitQ closes silently', send: cat(req(OP.GET, { key: 'nokey' }), req(OP.QUITQ), req(OP.NOOP)), close: true, minReply: 24 },
];

for (const row of ROWS) test(row.name, () => runRow(row));

interface Resp { op: number; status: number; cas: bigint; raw: Buffer }

/** Sends each request alone and reads its one response; a request may be made from the responses before it. */
async function oneByOne(port: number, reqs: Array<Buffer | ((before: Resp[]) => Buffer)>): Promise<Resp[]> {
  const c = await WireClient.connect(port);
  try {
    const out: Resp[] = [];
    for (const r of reqs) {
      c.write(typeof r === 'function' ? r(out) : r);
      const b = await c.readUntil((x) => x.length >= 24 && x.length >= 24 + x.readUInt32BE(8), 3000);
      assert.ok(b.length >= 24 && b.length === 24 + b.readUInt32BE(8), `one response to request ${out.length}: ${b.toString('hex')}${c.closed ? ' (closed)' : ''}`);
      out.push({ op: b[1]!, status: b.readUInt16BE(6), cas: b.readBigUInt64BE(16), raw: b });
    }
    return out;
  } finally {
    c.close();
  }
}

test('the cas a store, an append or an incr returns is the one the next GetK reads, on each side; a delete returns 0', async () => {
  const getK = (key: string): Buffer => req(OP.GETK, { key });
  const steps: Array<Buffer | ((before: Resp[]) => Buffer)> = [
    req(OP.SET, { key: K, extras: storeExtras(3), value: 'v1' }), getK(K),
    req(OP.APPEND, { key: K, value: '+a' }), getK(K),
    req(OP.PREPEND, { key: K, value: 'p+' }), getK(K),
    req(OP.REPLACE, { key: K, extras: storeExtras(4), value: 'r' }), getK(K),
    (before) => req(OP.SET, { key: K, extras: storeExtras(5), value: 'c', cas: before[before.length - 1]!.cas }), getK(K),
    req(OP.ADD, { key: 'new', extras: storeExtras(6), value: 'a' }), getK('new'),
    req(OP.INCR, { key: 'n', extras: arith(1n, 5n, 0) }), getK('n'),
    req(OP.DECR, { key: 'n', extras: arith(2n, 0n, 0) }), getK('n'),
    req(OP.DELETE, { key: K }),
  ];
  await diff.reset('');
  const [want, got] = await Promise.all([oneByOne(A!.port, steps), oneByOne(proxy!.port, steps)]);
  for (const [side, rs] of [['memcached', want], ['mcrelay', got]] as const) {
    for (let i = 0; i + 1 < rs.length; i += 2) {
      const write = rs[i]!;
      const read = rs[i + 1]!;
      const what = `${side}: response ${i} (opcode ${write.op}) ${write.raw.toString('hex')}, then GetK ${read.raw.toString('hex')}`;
      assert.is(write.status, 0, what);
      assert.is(read.status, 0, what);
      assert.ok(write.cas !== 0n, `${what}: a cas`);
      assert.is(write.cas, read.cas, `${what}: the cas GetK reads`);
    }
    assert.is(rs[rs.length - 1]!.op, OP.DELETE);
    assert.is(rs[rs.length - 1]!.cas, 0n, `${side}: Delete answers cas 0`);
  }
  assert.equal(got.map((r) => r.raw.toString('hex')), want.map((r) => r.raw.toString('hex')));
});

test('Stat: mcrelay\'s figures, one response per stat, an empty key last', async () => {
  const c = await WireClient.connect(proxy!.port);
  try {
    c.write(req(OP.STAT, { opaque: 77 }));
    const b = await c.readUntil((x) => x.length >= 24 && x.readUInt16BE(x.length - 22) === 0 && x.readUInt32BE(x.length - 16) === 0, 3000);
    const stats = new Map<string, string>();
    let i = 0;
    while (i + 24 <= b.length) {
      assert.is(b[i], 0x81);
      assert.is(b[i + 1], OP.STAT);
      assert.is(b.readUInt32BE(i + 12), 77, 'opaque echoed');
      const kl = b.readUInt16BE(i + 2);
      const bl = b.readUInt32BE(i + 8);
      if (kl === 0) break;
      stats.set(b.toString('latin1', i + 24, i + 24 + kl), b.toString('latin1', i + 24 + kl, i + 24 + bl));
      i += 24 + bl;
    }
    assert.is(stats.get('pid'), String(proxy!.pid));
    assert.match(stats.get('version') ?? '', /^1\.6\.\d+$/);
  } finally {
    c.close();
  }
});

test.run();
