// The binary protocol's translation (protocol/binary-request.ts and
// protocol/binary-reply.ts), as tables:
//   request bytes --BinaryParser.parse--> the text/meta request sent on, or the
//                                         reply given locally (and whether the
//                                         connection closes)
//   a server's reply (text or meta) --encodeReply--> the binary response
// The expected responses are written out here field by field, not built with
// the module's own helpers.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Bin, BinaryParser } from '../../src/protocol/binary-request.js';
import { encodeReply, type BinaryOut } from '../../src/protocol/binary-reply.js';

const MAX_ITEM = 1024;
const OPAQUE = 0xa1b2c3d4;

const OP = {
  GET: 0x00, SET: 0x01, ADD: 0x02, REPLACE: 0x03, DELETE: 0x04, INCR: 0x05, DECR: 0x06, QUIT: 0x07, FLUSH: 0x08,
  GETQ: 0x09, NOOP: 0x0a, VERSION: 0x0b, GETK: 0x0c, GETKQ: 0x0d, APPEND: 0x0e, PREPEND: 0x0f, STAT: 0x10,
  SETQ: 0x11, ADDQ: 0x12, REPLACEQ: 0x13, DELETEQ: 0x14, INCRQ: 0x15, DECRQ: 0x16, QUITQ: 0x17, FLUSHQ: 0x18,
  APPENDQ: 0x19, PREPENDQ: 0x1a, VERBOSITY: 0x1b, TOUCH: 0x1c, GAT: 0x1d, GATQ: 0x1e, SASL_LIST: 0x20, GATK: 0x23, GATKQ: 0x24,
} as const;

interface Req { key?: string; extras?: Buffer; value?: string; cas?: bigint; keyLen?: number; extLen?: number; bodyLen?: number; magic?: number }

/** A binary request; keyLen/extLen/bodyLen override what the parts say (for malformed headers). */
function req(op: number, r: Req = {}): Buffer {
  const key = Buffer.from(r.key ?? '', 'latin1');
  const extras = r.extras ?? Buffer.alloc(0);
  const value = Buffer.from(r.value ?? '', 'latin1');
  const h = Buffer.alloc(24);
  h[0] = r.magic ?? 0x80;
  h[1] = op;
  h.writeUInt16BE(r.keyLen ?? key.length, 2);
  h[4] = r.extLen ?? extras.length;
  h.writeUInt32BE(r.bodyLen ?? extras.length + key.length + value.length, 8);
  h.writeUInt32BE(OPAQUE, 12);
  h.writeBigUInt64BE(r.cas ?? 0n, 16);
  return Buffer.concat([h, extras, key, value]);
}
const u32 = (...n: number[]): Buffer => { const b = Buffer.alloc(4 * n.length); n.forEach((x, i) => b.writeUInt32BE(x >>> 0, 4 * i)); return b; };
const num8 = (n: bigint): Buffer => { const b = Buffer.alloc(8); b.writeBigUInt64BE(n); return b; };
/** incr/decr extras: delta, initial value, expiration */
const arith = (delta: bigint, initial: bigint, exp: number): Buffer => Buffer.concat([num8(delta), num8(initial), u32(exp)]);

interface Resp { status?: number; cas?: bigint; extras?: Buffer; key?: string; value?: string | Buffer }

/** A binary response, field by field. */
function resp(op: number, r: Resp = {}): Buffer {
  const extras = r.extras ?? Buffer.alloc(0);
  const key = Buffer.from(r.key ?? '', 'latin1');
  const value = typeof r.value === 'string' || r.value === undefined ? Buffer.from(r.value ?? '', 'latin1') : r.value;
  const h = Buffer.alloc(24);
  h[0] = 0x81;
  h[1] = op;
  h.writeUInt16BE(key.length, 2);
  h[4] = extras.length;
  h.writeUInt16BE(r.status ?? 0, 6);
  h.writeUInt32BE(extras.length + key.length + value.length, 8);
  h.writeUInt32BE(OPAQUE, 12);
  h.writeBigUInt64BE(r.cas ?? 0n, 16);
  return Buffer.concat([h, extras, key, value]);
}
const ENOENT = 0x01, EEXISTS = 0x02, E2BIG = 0x03, EINVAL = 0x04, NOT_STORED = 0x05, DELTA_BADVAL = 0x06, UNKNOWN = 0x81, ENOMEM = 0x82, ETMPFAIL = 0x86;
const WORDS: Record<number, string> = {
  [ENOENT]: 'Not found', [EEXISTS]: 'Data exists for key.', [E2BIG]: 'Too large.', [EINVAL]: 'Invalid arguments', [NOT_STORED]: 'Not stored.',
  [DELTA_BADVAL]: 'Non-numeric server-side value for incr or decr', [UNKNOWN]: 'Unknown command', [ENOMEM]: 'Out of memory', [ETMPFAIL]: 'Temporary failure',
};
const error = (op: number, status: number): Buffer => resp(op, { status, value: WORDS[status] });

// ---- requests

type Outcome =
  | { text: string }
  | { local: Buffer | '' }
  | { close: Buffer | null }
  | { stats: true }
  | { need: number };

interface ReqRow { name: string; send: Buffer; want: Outcome; /** where the parser goes on (default: after the request) */ next?: number; skip?: number }

const K = 'key';
const ROWS: ReqRow[] = [
  // gets: gets, so that a hit has its cas; the quiet and K forms the same
  { name: 'Get', send: req(OP.GET, { key: K }), want: { text: 'gets key\r\n' } },
  { name: 'GetQ', send: req(OP.GETQ, { key: K }), want: { text: 'gets key\r\n' } },
  { name: 'GetK', send: req(OP.GETK, { key: K }), want: { text: 'gets key\r\n' } },
  { name: 'GetKQ', send: req(OP.GETKQ, { key: K }), want: { text: 'gets key\r\n' } },
  // touch and gat: gats, whose reply has the flags; an expiration is unsigned
  { name: 'Touch', send: req(OP.TOUCH, { key: K, extras: u32(100) }), want: { text: 'gats 100 key\r\n' } },
  { name: 'GAT', send: req(OP.GAT, { key: K, extras: u32(0) }), want: { text: 'gats 0 key\r\n' } },
  { name: 'GATQ, GATK, GATKQ', send: req(OP.GATKQ, { key: K, extras: u32(5) }), want: { text: 'gats 5 key\r\n' } },
  { name: 'GAT with expiration 0xffffffff: the last time text can say', send: req(OP.GAT, { key: K, extras: u32(0xffffffff) }), want: { text: 'gats 2147483647 key\r\n' } },
  { name: 'GAT with a body past its key: it ends after the key', send: Buffer.concat([req(OP.GAT, { key: K, extras: u32(1), bodyLen: 4 + 3 + 24 }), req(OP.NOOP)]),
    want: { text: 'gats 1 key\r\n' }, next: 24 + 4 + 3 },
  // stores: ms with c (the new cas), F, T, and the mode
  { name: 'Set', send: req(OP.SET, { key: K, extras: u32(42, 10), value: 'val' }), want: { text: 'ms key 3 F42 T10 c\r\nval\r\n' } },
  { name: 'SetQ', send: req(OP.SETQ, { key: K, extras: u32(0, 0), value: 'v' }), want: { text: 'ms key 1 F0 T0 c\r\nv\r\n' } },
  { name: 'Add', send: req(OP.ADD, { key: K, extras: u32(1, 2), value: 'v' }), want: { text: 'ms key 1 F1 T2 c ME\r\nv\r\n' } },
  { name: 'AddQ', send: req(OP.ADDQ, { key: K, extras: u32(1, 2), value: 'v' }), want: { text: 'ms key 1 F1 T2 c ME\r\nv\r\n' } },
  { name: 'Replace', send: req(OP.REPLACE, { key: K, extras: u32(0xffffffff, 0), value: '' }), want: { text: 'ms key 0 F4294967295 T0 c MR\r\n\r\n' } },
  { name: 'ReplaceQ', send: req(OP.REPLACEQ, { key: K, extras: u32(0, 0), value: 'v' }), want: { text: 'ms key 1 F0 T0 c MR\r\nv\r\n' } },
  { name: 'Set with a cas: C', send: req(OP.SET, { key: K, extras: u32(0, 0), value: 'v', cas: 5n }), want: { text: 'ms key 1 F0 T0 c C5\r\nv\r\n' } },
  { name: 'Add with a cas is a cas (set mode)', send: req(OP.ADD, { key: K, extras: u32(0, 0), value: 'v', cas: 0x100000001n }), want: { text: 'ms key 1 F0 T0 c C4294967297\r\nv\r\n' } },
  { name: 'Replace with the largest cas', send: req(OP.REPLACE, { key: K, extras: u32(0, 0), value: 'v', cas: 0xffffffffffffffffn }), want: { text: 'ms key 1 F0 T0 c C18446744073709551615\r\nv\r\n' } },
  { name: 'Set with expiration 0xffffffff', send: req(OP.SET, { key: K, extras: u32(0, 0xffffffff), value: 'v' }), want: { text: 'ms key 1 F0 T2147483647 c\r\nv\r\n' } },
  { name: 'Set of a value holding CR LF', send: req(OP.SET, { key: K, extras: u32(0, 0), value: 'a\r\nb' }), want: { text: 'ms key 4 F0 T0 c\r\na\r\nb\r\n' } },
  { name: 'Append', send: req(OP.APPEND, { key: K, value: 'x' }), want: { text: 'ms key 1 c MA\r\nx\r\n' } },
  { name: 'AppendQ', send: req(OP.APPENDQ, { key: K, value: 'x' }), want: { text: 'ms key 1 c MA\r\nx\r\n' } },
  { name: 'Prepend', send: req(OP.PREPEND, { key: K, value: 'yz' }), want: { text: 'ms key 2 c MP\r\nyz\r\n' } },
  { name: 'PrependQ with a cas', send: req(OP.PREPENDQ, { key: K, value: 'y', cas: 9n }), want: { text: 'ms key 1 c C9 MP\r\ny\r\n' } },
  // delete
  { name: 'Delete', send: req(OP.DELETE, { key: K }), want: { text: 'delete key\r\n' } },
  { name: 'DeleteQ', send: req(OP.DELETEQ, { key: K }), want: { text: 'delete key\r\n' } },
  { name: 'Delete with a cas: md C', send: req(OP.DELETE, { key: K, cas: 7n }), want: { text: 'md key C7\r\n' } },
  // incr, decr: ma with v (the value) and c (the cas); N/J create
  { name: 'Incr with an initial value', send: req(OP.INCR, { key: K, extras: arith(5n, 7n, 0) }), want: { text: 'ma key D5 MI v c N0 J7\r\n' } },
  { name: 'Decr', send: req(OP.DECR, { key: K, extras: arith(1n, 0n, 60) }), want: { text: 'ma key D1 MD v c N60 J0\r\n' } },
  { name: 'IncrQ, DecrQ', send: req(OP.DECRQ, { key: K, extras: arith(1n, 0n, 0) }), want: { text: 'ma key D1 MD v c N0 J0\r\n' } },
  { name: 'Incr with expiration 0xffffffff: a missing key is not created', send: req(OP.INCR, { key: K, extras: arith(5n, 7n, 0xffffffff) }), want: { text: 'ma key D5 MI v c\r\n' } },
  { name: 'Incr with expiration 0xfffffffe: created, far ahead', send: req(OP.INCRQ, { key: K, extras: arith(1n, 2n, 0xfffffffe) }), want: { text: 'ma key D1 MI v c N2147483647 J2\r\n' } },
  { name: 'Incr with 64-bit delta and initial', send: req(OP.INCR, { key: K, extras: arith(0xffffffffffffffffn, 0x8000000000000000n, 0) }),
    want: { text: 'ma key D18446744073709551615 MI v c N0 J9223372036854775808\r\n' } },
  { name: 'Incr with a cas', send: req(OP.INCR, { key: K, extras: arith(1n, 0n, 0), cas: 3n }), want: { text: 'ma key D1 MI v c N0 J0 C3\r\n' } },
  // flush
  { name: 'Flush', send: req(OP.FLUSH), want: { text: 'flush_all\r\n' } },
  { name: 'FlushQ with a delay', send: req(OP.FLUSHQ, { extras: u32(60) }), want: { text: 'flush_all 60\r\n' } },
  // answered by the proxy
  { name: 'Noop', send: req(OP.NOOP), want: { local: resp(OP.NOOP) } },
  { name: 'Version', send: req(OP.VERSION), want: { local: resp(OP.VERSION, { value: '1.6.18' }) } },
  { name: 'Stat', send: req(OP.STAT), want: { stats: true } },
  { name: 'Stat of a group: not found', send: req(OP.STAT, { key: 'slabs' }), want: { local: error(OP.STAT, ENOENT) } },
  { name: 'Verbosity: unknown to memcached 1.6', send: req(OP.VERBOSITY, { extras: u32(1) }), want: { local: error(OP.VERBOSITY, UNKNOWN) } },
  { name: 'SASL list mechs: unknown (no SASL)', send: req(OP.SASL_LIST), want: { local: error(OP.SASL_LIST, UNKNOWN) } },
  { name: 'an unknown opcode: its body skipped', send: req(0x50, { key: 'x', value: 'body' }), want: { local: error(0x50, UNKNOWN) } },
  { name: 'Quit: answered, closed', send: req(OP.QUIT), want: { close: resp(OP.QUIT) } },
  { name: 'QuitQ: closed silently', send: req(OP.QUITQ), want: { close: null } },
  // too large: refused, the value skipped
  { name: 'Set of a value over the item size', send: req(OP.SET, { key: K, extras: u32(0, 0), value: 'v'.repeat(MAX_ITEM + 1) }), want: { local: error(OP.SET, E2BIG) } },
  { name: 'Append of a body past what is held: skipped as it comes', send: req(OP.APPEND, { key: K, bodyLen: 3 + MAX_ITEM + 300 }), want: { local: error(OP.APPEND, E2BIG) },
    skip: 24 + 3 + MAX_ITEM + 300 },
  // malformed: memcached's protocol errors, answered and closed
  { name: 'a key over 250 bytes', send: req(OP.GET, { key: 'k'.repeat(251) }), want: { close: error(OP.GET, EINVAL) } },
  { name: 'Get with extras', send: req(OP.GET, { key: K, extras: u32(0) }), want: { close: error(OP.GET, EINVAL) } },
  { name: 'Get without a key', send: req(OP.GET), want: { close: error(OP.GET, EINVAL) } },
  { name: 'Set with 4 bytes of extras', send: req(OP.SET, { key: K, extras: u32(0), value: 'v' }), want: { close: error(OP.SET, EINVAL) } },
  { name: 'Append with extras', send: req(OP.APPEND, { key: K, extras: u32(0), value: 'v' }), want: { close: error(OP.APPEND, EINVAL) } },
  { name: 'Incr with 8 bytes of extras', send: req(OP.INCR, { key: K, extras: u32(0, 1) }), want: { close: error(OP.INCR, EINVAL) } },
  { name: 'Touch without extras', send: req(OP.TOUCH, { key: K }), want: { close: error(OP.TOUCH, EINVAL) } },
  { name: 'Delete with a value', send: req(OP.DELETE, { key: K, value: 'v' }), want: { close: error(OP.DELETE, EINVAL) } },
  { name: 'Flush with a key', send: req(OP.FLUSH, { key: K }), want: { close: error(OP.FLUSH, EINVAL) } },
  { name: 'Noop with a body: refused at the header', send: req(OP.NOOP, { bodyLen: 3 }), want: { close: error(OP.NOOP, EINVAL) } },
  { name: 'Get announcing a body past its key, before it comes', send: req(OP.GET, { key: K, bodyLen: 100 }), want: { close: error(OP.GET, EINVAL) } },
  { name: 'a body shorter than key and extras', send: req(OP.SET, { key: K, extras: u32(0, 0), bodyLen: 5 }), want: { close: error(OP.SET, UNKNOWN) } },
  { name: 'a key longer than the body', send: req(OP.GET, { key: K, bodyLen: 2 }), want: { close: error(OP.GET, UNKNOWN) } },
  { name: 'not a request magic: closed without a word', send: req(OP.NOOP, { magic: 0x81 }), want: { close: null } },
  { name: 'not a request magic, fewer than 24 bytes: closed at once', send: Buffer.from('get k\r\n'), want: { close: null } },
  // incomplete
  { name: 'half a header', send: req(OP.GET, { key: K }).subarray(0, 10), want: { need: 0 } },
  { name: 'a header without all its body', send: req(OP.SET, { key: K, extras: u32(0, 0), value: 'value' }).subarray(0, 30), want: { need: 24 + 8 + 3 + 5 } },
];

const hex = (b: Buffer | null | ''): string | null => (b === null ? null : b === '' ? '' : b.toString('hex'));

for (const row of ROWS) {
  test(`request: ${row.name}`, () => {
    const p = new BinaryParser(MAX_ITEM);
    p.version = '1.6.18';
    // Behind other bytes: offsets are the request's own.
    const pad = Buffer.from('xxxxx');
    const buf = Buffer.concat([pad, row.send]);
    const pos = pad.length;
    const r = p.parse(buf, pos, buf.length);
    const want = row.want;
    if ('text' in want) {
      assert.is(r, Bin.TEXT, 'TEXT');
      assert.is(p.text!.toString('latin1'), want.text);
      assert.is(p.opaque, OPAQUE);
      assert.is(p.opcode, row.send[1]);
      assert.is(p.next, pos + (row.next ?? row.send.length), 'next');
    } else if ('local' in want) {
      assert.is(r, Bin.LOCAL, 'LOCAL');
      assert.is(hex(p.reply), hex(want.local));
      if (row.skip !== undefined) assert.is(p.skip, row.skip, 'skip');
      else assert.is(p.next, pos + row.send.length, 'next');
    } else if ('close' in want) {
      assert.is(r, Bin.CLOSE, 'CLOSE');
      assert.is(hex(p.reply), hex(want.close));
      assert.is(p.next, buf.length, 'nothing after it is read');
    } else if ('stats' in want) {
      assert.is(r, Bin.STATS, 'STATS');
      assert.is(p.next, pos + row.send.length);
    } else {
      assert.is(r, Bin.NEED_MORE, 'NEED_MORE');
      assert.is(p.need, want.need, 'need');
    }
  });
}

test('request: the fault of bytes that are no request is told, not that of a good one', () => {
  const p = new BinaryParser(MAX_ITEM);
  const cases: Array<[Buffer, boolean]> = [
    [req(OP.GET, { key: K }), false], [req(OP.QUIT), false], [req(OP.SASL_LIST), true], [req(0x50), true],
    [req(OP.GET, { key: K, extras: u32(0) }), true], [req(OP.NOOP, { magic: 0x81 }), true], [req(OP.GET, { key: K, bodyLen: 2 }), true],
  ];
  for (const [b, fault] of cases) {
    p.parse(b, 0, b.length);
    assert.is(p.fault !== null, fault, b.subarray(0, 24).toString('hex'));
  }
});

// ---- replies

class Collect implements BinaryOut {
  parts: Buffer[] = [];
  add(b: Buffer, start: number, end: number): void { this.parts.push(Buffer.from(b.subarray(start, end))); }
  addAll(b: Buffer): void { this.add(b, 0, b.length); }
  get bytes(): Buffer { return Buffer.concat(this.parts); }
}

interface ReplyRow { name: string; op: number; line?: string; value?: string; key?: string; want: Buffer | '' }

const REPLIES: ReplyRow[] = [
  // stores (ms ... c): the new cas
  { name: 'Set stored: its cas', op: OP.SET, line: 'HD c123\r\n', want: resp(OP.SET, { cas: 123n }) },
  { name: 'a cas past 32 bits', op: OP.SET, line: 'HD c4294967297\r\n', want: resp(OP.SET, { cas: 0x100000001n }) },
  { name: 'the largest cas of 15 digits', op: OP.SET, line: 'HD c999999999999999\r\n', want: resp(OP.SET, { cas: 999999999999999n }) },
  { name: 'a cas past 2^53 (16 digits)', op: OP.SET, line: 'HD c9007199254740993\r\n', want: resp(OP.SET, { cas: 9007199254740993n }) },
  { name: 'the largest cas', op: OP.APPEND, line: 'HD c18446744073709551615\r\n', want: resp(OP.APPEND, { cas: 0xffffffffffffffffn }) },
  { name: 'SetQ stored: nothing', op: OP.SETQ, line: 'HD c5\r\n', want: '' },
  { name: 'Add of a key there (NS)', op: OP.ADD, line: 'NS c0\r\n', want: error(OP.ADD, EEXISTS) },
  { name: 'AddQ refused: answered', op: OP.ADDQ, line: 'NS c0\r\n', want: error(OP.ADDQ, EEXISTS) },
  { name: 'Replace of a missing key (NS)', op: OP.REPLACE, line: 'NS c0\r\n', want: error(OP.REPLACE, ENOENT) },
  { name: 'Append to a missing key (NS)', op: OP.APPEND, line: 'NS c0\r\n', want: error(OP.APPEND, NOT_STORED) },
  { name: 'PrependQ to a missing key', op: OP.PREPENDQ, line: 'NS c0\r\n', want: error(OP.PREPENDQ, NOT_STORED) },
  { name: 'a store with a stale cas (EX)', op: OP.SET, line: 'EX c0\r\n', want: error(OP.SET, EEXISTS) },
  { name: 'a store with the cas of a missing key (NF)', op: OP.REPLACE, line: 'NF c0\r\n', want: error(OP.REPLACE, ENOENT) },
  { name: 'a text STORED (no cas)', op: OP.SET, line: 'STORED\r\n', want: resp(OP.SET) },
  { name: 'a text NOT_STORED for add', op: OP.ADD, line: 'NOT_STORED\r\n', want: error(OP.ADD, EEXISTS) },
  { name: 'no server to take it', op: OP.SET, line: 'SERVER_ERROR backend unavailable\r\n', want: error(OP.SET, ETMPFAIL) },
  { name: 'out of memory', op: OP.SET, line: 'SERVER_ERROR out of memory storing object\r\n', want: error(OP.SET, ENOMEM) },
  { name: 'too large', op: OP.SET, line: 'SERVER_ERROR object too large for cache\r\n', want: error(OP.SET, E2BIG) },
  { name: 'a client error', op: OP.SET, line: 'CLIENT_ERROR bad data chunk\r\n', want: error(OP.SET, EINVAL) },
  // incr, decr (ma ... v c): the value, and the cas
  { name: 'Incr: the new value and cas', op: OP.INCR, line: 'VA 1 c77\r\n6\r\n', want: resp(OP.INCR, { cas: 77n, value: num8(6n) }) },
  { name: 'Decr: 64-bit value', op: OP.DECR, line: 'VA 20 c9\r\n18446744073709551615\r\n', want: resp(OP.DECR, { cas: 9n, value: num8(0xffffffffffffffffn) }) },
  { name: 'IncrQ: nothing', op: OP.INCRQ, line: 'VA 1 c7\r\n1\r\n', want: '' },
  { name: 'Incr of a missing key', op: OP.INCR, line: 'NF\r\n', want: error(OP.INCR, ENOENT) },
  { name: 'IncrQ of a missing key: answered', op: OP.INCRQ, line: 'NF\r\n', want: error(OP.INCRQ, ENOENT) },
  { name: 'Incr with a stale cas', op: OP.INCR, line: 'EX\r\n', want: error(OP.INCR, EEXISTS) },
  { name: 'Incr of a non-number', op: OP.INCR, line: 'CLIENT_ERROR cannot increment or decrement non-numeric value\r\n', want: error(OP.INCR, DELTA_BADVAL) },
  // delete: cas 0, as memcached
  { name: 'Delete', op: OP.DELETE, line: 'DELETED\r\n', want: resp(OP.DELETE) },
  { name: 'Delete with a cas (md): HD, cas 0', op: OP.DELETE, line: 'HD\r\n', want: resp(OP.DELETE) },
  { name: 'Delete of a missing key', op: OP.DELETE, line: 'NOT_FOUND\r\n', want: error(OP.DELETE, ENOENT) },
  { name: 'Delete with a stale cas', op: OP.DELETE, line: 'EX\r\n', want: error(OP.DELETE, EEXISTS) },
  { name: 'DeleteQ: nothing', op: OP.DELETEQ, line: 'DELETED\r\n', want: '' },
  { name: 'Flush', op: OP.FLUSH, line: 'OK\r\n', want: resp(OP.FLUSH) },
  { name: 'FlushQ: nothing', op: OP.FLUSHQ, line: 'OK\r\n', want: '' },
  // retrievals: flags as extras, the cas, the key for the K forms
  { name: 'Get hit (text VALUE)', op: OP.GET, value: 'VALUE key 5 3 99\r\nabc\r\n', want: resp(OP.GET, { cas: 99n, extras: u32(5), value: 'abc' }) },
  { name: 'Get hit (meta VA)', op: OP.GET, value: 'VA 3 f4294967295 c99\r\nabc\r\n', want: resp(OP.GET, { cas: 99n, extras: u32(0xffffffff), value: 'abc' }) },
  { name: 'Get hit with a value holding CR LF', op: OP.GET, value: 'VALUE key 0 4 1\r\na\r\nb\r\n', want: resp(OP.GET, { cas: 1n, extras: u32(0), value: 'a\r\nb' }) },
  { name: 'GetK hit: the key', op: OP.GETK, value: 'VALUE key 1 1 8\r\nv\r\n', want: resp(OP.GETK, { cas: 8n, extras: u32(1), key: K, value: 'v' }) },
  { name: 'GetKQ hit', op: OP.GETKQ, value: 'VA 1 f1 c8\r\nv\r\n', want: resp(OP.GETKQ, { cas: 8n, extras: u32(1), key: K, value: 'v' }) },
  { name: 'Get miss', op: OP.GET, want: error(OP.GET, ENOENT) },
  { name: 'GetK miss: the key as the body', op: OP.GETK, want: resp(OP.GETK, { status: ENOENT, key: K }) },
  { name: 'GetQ miss: nothing', op: OP.GETQ, want: '' },
  { name: 'GATKQ miss: nothing', op: OP.GATKQ, want: '' },
  { name: 'Touch hit: the flags, no value', op: OP.TOUCH, value: 'VALUE key 7 3 12\r\nabc\r\n', want: resp(OP.TOUCH, { cas: 12n, extras: u32(7) }) },
  { name: 'GATK hit', op: OP.GATK, value: 'VALUE key 7 3 12\r\nabc\r\n', want: resp(OP.GATK, { cas: 12n, extras: u32(7), key: K, value: 'abc' }) },
  { name: 'Get: an error line instead of a value', op: OP.GET, line: 'SERVER_ERROR backend unavailable\r\n', want: error(OP.GET, ETMPFAIL) },
];

for (const row of REPLIES) {
  test(`reply: ${row.name}`, () => {
    const out = new Collect();
    const line = row.line === undefined ? null : Buffer.from(row.line, 'latin1');
    // The value block sits inside a larger buffer, as a backend's read leaves it.
    const v = row.value === undefined ? null : Buffer.from(`junk${row.value}junk`, 'latin1');
    const keyBuf = Buffer.from(`gets ${K}\r\n`, 'latin1');
    encodeReply(out, row.op, OPAQUE, line, v, 4, v === null ? 0 : v.length - 4, keyBuf, 5, 5 + K.length);
    assert.is(out.bytes.toString('hex'), hex(row.want));
  });
}

test.run();
