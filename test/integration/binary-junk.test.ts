// No silent connections (issue 14 item 3): bytes that are no request memcached
// serves, in either protocol, get memcached 1.6's answer or a close at once.
//
//   client --bytes--> memcached A                      (the reference)
//   client --bytes--> mcrelay --> memcached B
//
// Each case is sent whole to both; what the client observes must be the same:
// the reply bytes, and whether the connection closes. A case that leaves the
// connection open is followed by a request that must be answered (text: mn,
// binary: Noop), which shows the stream is still in step; a case that closes
// must close within CLOSE_MS. Nothing waits longer than that. mcrelay counts
// each such request in stats protocol_errors.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startMemcached, startProxy, type Proc } from '../helpers/procs.js';
import { WireClient } from '../helpers/wire.js';

const CLOSE_MS = 1000;

let A: Proc | undefined;
let B: Proc | undefined;
let proxy: Proc | undefined;

test.before(async () => {
  [A, B] = await Promise.all([startMemcached(), startMemcached()]);
  proxy = await startProxy(['-s', B.addr, '--workers', '1']);
});

test.after(async () => {
  await Promise.all([proxy?.stop(), A?.stop(), B?.stop()]);
});

/** A binary header; the opaque holds no LF or NUL, so that it reads as one text line too. */
function header(magic: number, op: number, keyLen: number, extLen: number, bodyLen: number, opaque = 0x41424344): Buffer {
  const h = Buffer.alloc(24);
  h[0] = magic;
  h[1] = op;
  h.writeUInt16BE(keyLen, 2);
  h[4] = extLen;
  h.writeUInt32BE(bodyLen, 8);
  h.writeUInt32BE(opaque, 12);
  return h;
}
const cat = (...b: Array<Buffer | string>): Buffer => Buffer.concat(b.map((x) => (typeof x === 'string' ? Buffer.from(x, 'latin1') : x)));
const NOOP = header(0x80, 0x0a, 0, 0, 0);

/** Bytes from a fixed seed, none of them LF, starting with 0xfe (no text command, not binary). */
function junk(n: number): Buffer {
  const b = Buffer.alloc(n);
  let x = 0x2545f491;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    b[i] = x & 0xff;
    if (b[i] === 0x0a) b[i] = 0x0b;
  }
  b[0] = 0xfe;
  return b;
}

interface Case {
  name: string;
  send: Buffer;
  /** memcached closes the connection after its answer */
  closes: boolean;
  /** requests mcrelay counts in protocol_errors */
  errors: number;
}

const ERROR = 'ERROR\r\n';
const CASES: Case[] = [
  // ---- text: the first byte is not 0x80
  { name: 'a binary response header (0x81) sent as a request: one text line, ERROR', send: cat(header(0x81, 0x00, 0, 0, 0), '\r\n'), closes: false, errors: 1 },
  { name: 'a line holding only a NUL byte: ERROR', send: cat('\x00\r\n'), closes: false, errors: 1 },
  { name: 'a lone CRLF: ERROR', send: cat('\r\n'), closes: false, errors: 1 },
  { name: 'control bytes: ERROR', send: cat('\x01\x02\x1b[A\x7f\r\n'), closes: false, errors: 1 },
  { name: 'random bytes ending a line: ERROR', send: cat(junk(300), '\r\n'), closes: false, errors: 1 },
  { name: 'an HTTP request: closed', send: cat('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), closes: true, errors: 1 },
  // ---- binary: the first byte is 0x80
  { name: 'an opcode memcached does not know: Unknown command, the stream goes on', send: header(0x80, 0xee, 0, 0, 0), closes: false, errors: 1 },
  { name: 'Get with extras: Invalid arguments, closed', send: cat(header(0x80, 0x00, 1, 4, 5), Buffer.alloc(4), 'k'), closes: true, errors: 1 },
  { name: 'Get announcing a body past its key that never comes: answered at once, closed', send: cat(header(0x80, 0x00, 1, 0, 100), 'k'), closes: true, errors: 1 },
  { name: 'Noop announcing a body, header alone: answered at once, closed', send: header(0x80, 0x0a, 0, 0, 3), closes: true, errors: 1 },
  { name: 'Incr with a body longer than its extras and key: closed', send: cat(header(0x80, 0x05, 1, 20, 30), Buffer.alloc(20), 'k'), closes: true, errors: 1 },
  { name: 'key and extras longer than the body: Unknown command, closed', send: cat(header(0x80, 0x00, 5, 0, 2), 'kkkkk'), closes: true, errors: 1 },
  { name: 'Set whose body is shorter than its extras and key: Unknown command, closed', send: cat(header(0x80, 0x01, 1, 8, 4), Buffer.alloc(8), 'k'), closes: true, errors: 1 },
  { name: 'Quit with a key: Invalid arguments, closed', send: cat(header(0x80, 0x07, 1, 0, 1), 'k'), closes: true, errors: 1 },
  { name: 'SASL list mechs with a body: Invalid arguments, closed', send: cat(header(0x80, 0x20, 0, 0, 1), 'x'), closes: true, errors: 1 },
  { name: 'Flush with 8 bytes of extras: closed', send: cat(header(0x80, 0x08, 0, 8, 8), Buffer.alloc(8)), closes: true, errors: 1 },
  { name: 'a Noop, then a response header (0x81): answered, then closed', send: cat(NOOP, header(0x81, 0x0a, 0, 0, 0)), closes: true, errors: 1 },
  { name: 'a Noop, then a text command: answered, then closed', send: cat(NOOP, 'get k\r\n'.padEnd(24, ' ')), closes: true, errors: 1 },
  { name: 'GAT whose body runs past its key: the rest is the next request (a Noop)', send: cat(header(0x80, 0x1d, 1, 4, 29), Buffer.alloc(4), 'k', NOOP), closes: false, errors: 0 },
];

interface Seen { reply: string; closed: boolean }

/** What a client sees: the reply, and whether the connection closed; an open one must still answer a follow-up. */
async function observe(port: number, c: Case): Promise<Seen> {
  const w = await WireClient.connect(port);
  try {
    w.write(c.send);
    if (c.closes) {
      const out = await w.readUntil(() => false, CLOSE_MS);
      return { reply: out.toString('hex'), closed: w.closed };
    }
    const binary = c.send[0] === 0x80;
    // (a Noop of its own opaque: the case may hold a Noop)
    const follow = binary ? header(0x80, 0x0a, 0, 0, 0, 0x5a5b5c5d) : cat('mn\r\n');
    const want = binary ? header(0x81, 0x0a, 0, 0, 0, 0x5a5b5c5d) : cat('MN\r\n');
    w.write(follow);
    const out = await w.readUntil((b) => b.length >= want.length && b.subarray(b.length - want.length).equals(want), CLOSE_MS);
    const answered = out.length >= want.length && out.subarray(out.length - want.length).equals(want);
    return { reply: answered ? out.subarray(0, out.length - want.length).toString('hex') : `${out.toString('hex')} <no answer to the follow-up>`, closed: w.closed };
  } finally {
    w.close();
  }
}

async function protocolErrors(): Promise<number> {
  const w = await WireClient.connect(proxy!.port);
  try {
    const r = await w.request('stats\r\n', 'END\r\n', CLOSE_MS);
    const m = /STAT protocol_errors (\d+)\r\n/.exec(r);
    assert.ok(m !== null, `stats has protocol_errors: ${r}`);
    return Number(m[1]);
  } finally {
    w.close();
  }
}

for (const c of CASES) {
  test(c.name, async () => {
    const before = await protocolErrors();
    const [want, got] = await Promise.all([observe(A!.port, c), observe(proxy!.port, c)]);
    assert.is(want.closed, c.closes, `memcached ${c.closes ? 'closes' : 'keeps the connection'}: ${JSON.stringify(want)}`);
    assert.ok(want.reply.length > 0 || c.closes, 'memcached answers');
    if (!c.closes && c.send[0] !== 0x80 && c.errors === 1) assert.is(want.reply, Buffer.from(ERROR).toString('hex'));
    assert.equal(got, want, `mcrelay:   ${JSON.stringify(got)}\n  memcached: ${JSON.stringify(want)}`);
    assert.is(await protocolErrors() - before, c.errors, 'counted in protocol_errors');
  });
}

test('a Noop, then fewer than 24 bytes that are not binary: mcrelay closes at once (memcached waits for 24 bytes, then closes)', async () => {
  const w = await WireClient.connect(proxy!.port);
  try {
    w.write(cat(NOOP, 'get k\r\n'));
    const out = await w.readUntil(() => false, CLOSE_MS);
    assert.ok(w.closed, 'closed');
    assert.is(out.toString('hex'), header(0x81, 0x0a, 0, 0, 0).toString('hex'), 'the Noop answered');
  } finally {
    w.close();
  }
});

test('a header that comes in pieces is answered when its last byte comes, not later', async () => {
  // Get announcing a 100-byte body for a 1-byte key: memcached answers once it has the key.
  const data = cat(header(0x80, 0x00, 1, 0, 100), 'k');
  for (const port of [A!.port, proxy!.port]) {
    const w = await WireClient.connect(port);
    try {
      await w.writeSplit(data, [1, 12, 24]);
      const out = await w.readUntil(() => false, CLOSE_MS);
      assert.ok(w.closed, `${port === A!.port ? 'memcached' : 'mcrelay'} closed`);
      assert.is(out.readUInt16BE(6), 0x04, 'Invalid arguments');
    } finally {
      w.close();
    }
  }
});

test.run();
