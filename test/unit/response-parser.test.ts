// The backend-side response parser against a table of literal wire strings.
//
// A row is one backend reply stream (what memcached sends for one request) and the
// units the parser must cut it into. Each row is read whole; every strict prefix
// of each unit must give NEED_MORE (what the parser sees when the reply arrives
// byte by byte or split at any offset); the row is read at an odd offset inside a
// larger buffer with garbage after `end`. Then all well-formed rows, back to back
// as one pipelined stream, are read whole, byte by byte and cut in two at every
// offset, and must give the same units.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Outbox } from '../../src/io/buffers.js';
import { Expect, Reply, ResponseParser } from '../../src/protocol/response-parser.js';
import { addTextValue } from '../../src/protocol/gets-as-mg.js';

const parser = new ResponseParser(); // one parser for every row: no state may leak between calls

type Unit =
  | { r: 'VALUE'; text: string; key: string }
  | { r: 'END' }
  | { r: 'LINE'; text: string }
  | { r: 'BAD' };

interface Row {
  name: string;
  /** the request was a retrieval (get/gets/gat/gats): VALUE blocks until END */
  retrieval: boolean;
  wire: string;
  units: Unit[];
}

const NAMES = ['NEED_MORE', 'VALUE', 'END', 'LINE', 'BAD'];
const value = (key: string, text: string): Unit => ({ r: 'VALUE', key, text });
const END: Unit = { r: 'END' };
const line = (text: string): Unit => ({ r: 'LINE', text });
const BAD: Unit = { r: 'BAD' };

/** A retrieval reply: the VALUE blocks, then END. */
function hits(...blocks: Array<[string, string, string?]>): { wire: string; units: Unit[] } {
  let wire = '';
  const units: Unit[] = [];
  for (const [key, data, cas] of blocks) {
    const text = `VALUE ${key} 0 ${Buffer.byteLength(data, 'latin1')}${cas === undefined ? '' : ` ${cas}`}\r\n${data}\r\n`;
    wire += text;
    units.push(value(key, text));
  }
  return { wire: `${wire}END\r\n`, units: [...units, END] };
}

function get(name: string, r: { wire: string; units: Unit[] }): Row {
  return { name, retrieval: true, wire: r.wire, units: r.units };
}

const BIG = 'x'.repeat(70_000);

const ROWS: Row[] = [
  get('miss', { wire: 'END\r\n', units: [END] }),
  get('hit', hits(['foo', 'bar'])),
  get('hit with flags', { wire: 'VALUE foo 4294967295 3\r\nbar\r\nEND\r\n', units: [value('foo', 'VALUE foo 4294967295 3\r\nbar\r\n'), END] }),
  get('empty value', hits(['e', ''])),
  get('multi-value', hits(['a', '1'], ['b', '22'], ['c', '333'])),
  get('same key twice', hits(['a', '1'], ['a', '1'])),
  get('gets with cas', hits(['a', 'xyz', '18446744073709551615'], ['b', '', '1'])),
  get('value holding \\r\\n', hits(['k', 'a\r\nb'])),
  get('value holding "\\r\\nEND\\r\\n"', hits(['k', '\r\nEND\r\n'])),
  get('value that is a VALUE line', hits(['k', 'VALUE k 0 1\r\nx'])),
  get('value of only \\r\\n', hits(['k', '\r\n'])),
  get('binary value', hits(['k', '\x00\x01\xff\n\r'])),
  get('large value (spans many chunks)', hits(['big', BIG])),
  get('key with bytes >= 0x80', hits(['\xe9t\xe9', 'v'])),
  get('ERROR inside a retrieval', { wire: 'ERROR\r\n', units: [line('ERROR\r\n')] }),
  get('CLIENT_ERROR inside a retrieval', { wire: 'CLIENT_ERROR bad command line format\r\n', units: [line('CLIENT_ERROR bad command line format\r\n')] }),
  get('SERVER_ERROR inside a retrieval', { wire: 'SERVER_ERROR out of memory writing get response\r\n', units: [line('SERVER_ERROR out of memory writing get response\r\n')] }),
  get('SERVER_ERROR after values', {
    wire: 'VALUE a 0 1\r\n1\r\nSERVER_ERROR out of memory writing get response\r\n',
    units: [value('a', 'VALUE a 0 1\r\n1\r\n'), line('SERVER_ERROR out of memory writing get response\r\n')],
  }),

  // single-line replies
  ...['STORED', 'NOT_STORED', 'EXISTS', 'NOT_FOUND', 'DELETED', 'TOUCHED', 'OK', '0', '18446744073709551615',
    'VERSION 1.6.18', 'ERROR', 'CLIENT_ERROR bad data chunk', 'SERVER_ERROR object too large for cache',
    'CLIENT_ERROR cannot increment or decrement non-numeric value'].map((l): Row => (
    { name: `line ${l}`, retrieval: false, wire: `${l}\r\n`, units: [line(`${l}\r\n`)] })),
  // A line memcached never sends for the request at the head: the stream is out
  // of step, and the line must not reach a client as a reply to a write.
  { name: 'END as the reply to a write (bug: garbage handed to a client)', retrieval: false, wire: 'END\r\n', units: [BAD] },
  { name: 'an HTTP status line as the reply to a write', retrieval: false, wire: 'HTTP/1.1 502 Bad Gateway\r\n', units: [BAD] },

  // garbage: a stream that cannot be trusted any more
  get('garbage line in a retrieval', { wire: 'HELLO\r\n', units: [BAD] }),
  get('END with trailing bytes', { wire: 'ENDX\r\n', units: [BAD] }),
  get('END with a trailing space', { wire: 'END \r\n', units: [BAD] }),
  get('lower-case end', { wire: 'end\r\n', units: [BAD] }),
  get('END with a bare \\n', { wire: 'END\n', units: [BAD] }),
  get('empty line in a retrieval', { wire: '\r\n', units: [BAD] }),
  get('bare \\n', { wire: '\n', units: [BAD] }),
  get('VALUE without flags and bytes', { wire: 'VALUE k\r\n', units: [BAD] }),
  get('VALUE without bytes', { wire: 'VALUE k 0\r\n', units: [BAD] }),
  get('VALUE without key', { wire: 'VALUE  0 1\r\na\r\n', units: [BAD] }),
  get('VALUE with non-numeric bytes', { wire: 'VALUE k 0 x\r\na\r\n', units: [BAD] }),
  get('VALUE with negative bytes', { wire: 'VALUE k 0 -1\r\n', units: [BAD] }),
  get('VALUE with bytes past 2^31', { wire: 'VALUE k 0 9999999999\r\n', units: [BAD] }),
  get('VALUE data not ended by \\r\\n', { wire: 'VALUE k 0 1\r\nab\r\n', units: [BAD] }),
  get('VALUE data shorter than announced', { wire: 'VALUE k 0 3\r\na\r\nEND\r\n', units: [BAD] }),
  get('VALUE then garbage', { wire: 'VALUE k 0 1\r\na\r\nJUNK\r\n', units: [value('k', 'VALUE k 0 1\r\na\r\n'), BAD] }),
  { name: 'bare \\n after a single-line reply', retrieval: false, wire: 'STORED\n', units: [BAD] },
  { name: 'a line with no \\n past 8 KiB', retrieval: false, wire: 'S'.repeat(8193), units: [BAD] },
  get('a VALUE line with no \\n past 8 KiB', { wire: `VALUE ${'k'.repeat(8200)}`, units: [BAD] }),
];

// ------------------------------------------------------------------ checking

const PAD = Buffer.from('END\r\n\n\r', 'latin1'); // 7 bytes before pos
const GARBAGE = Buffer.from('\r\nEND\r\nVALUE k 0 1\r\n', 'latin1'); // after end: never to be read

const show = (s: string): string => JSON.stringify(s.length > 80 ? `${s.slice(0, 60)}...(${s.length} bytes)` : s);

/** Reads the units of [pos, end) in order; stops at NEED_MORE or BAD. */
function readAll(p: ResponseParser, buf: Buffer, pos: number, end: number, retrieval: boolean): Array<{ r: number; text: string; key: string; need: number }> {
  const out: Array<{ r: number; text: string; key: string; need: number }> = [];
  let inRetrieval = retrieval;
  while (pos <= end) {
    const r = p.read(buf, pos, end, inRetrieval ? Expect.RETRIEVAL : Expect.LINE);
    if (r === Reply.NEED_MORE) { out.push({ r, text: '', key: '', need: p.need }); break; }
    if (r === Reply.BAD) { out.push({ r, text: '', key: '', need: 0 }); break; }
    out.push({
      r,
      text: buf.toString('latin1', p.start, p.next),
      key: r === Reply.VALUE ? buf.toString('latin1', p.keyStart, p.keyEnd) : '',
      need: 0,
    });
    if (r !== Reply.VALUE) inRetrieval = false;
    pos = p.next;
    if (pos === end) break;
  }
  return out;
}

function checkRow(row: Row): void {
  const wire = Buffer.from(row.wire, 'latin1');
  const where = `${row.name} ${show(row.wire)}`;
  const buf = Buffer.concat([PAD, wire, GARBAGE]);
  const got = readAll(parser, buf, PAD.length, PAD.length + wire.length, row.retrieval);
  assert.equal(got.map((g) => NAMES[g.r]), row.units.map((u) => u.r), `${where}: units`);
  let unitStart = 0;
  for (let i = 0; i < row.units.length; i++) {
    const u = row.units[i]!;
    const g = got[i]!;
    if (u.r === 'BAD') break;
    if (u.r === 'VALUE') {
      assert.is(g.text, u.text, `${where}: unit ${i} bytes`);
      assert.is(g.key, u.key, `${where}: unit ${i} key`);
    } else if (u.r === 'LINE') {
      assert.is(g.text, u.text, `${where}: unit ${i} bytes`);
    } else {
      assert.is(g.text, 'END\r\n', `${where}: unit ${i} bytes`);
    }
    // Every strict prefix of the unit: NEED_MORE, with `need` once a VALUE line is complete.
    const unitLen = g.text.length;
    const text = Buffer.from(g.text, 'latin1');
    const nl = text.indexOf(0x0a);
    const retrieval = row.retrieval && row.units.slice(0, i).every((x) => x.r === 'VALUE');
    for (let k = 0; k < unitLen; k++) {
      // garbage right after end, except for a large row, where the row's own next bytes follow end
      const pb = wire.length < 4096 ? Buffer.concat([PAD, wire.subarray(0, unitStart + k), GARBAGE]) : buf;
      const r = parser.read(pb, PAD.length + unitStart, PAD.length + unitStart + k, retrieval ? Expect.RETRIEVAL : Expect.LINE);
      if (r !== Reply.NEED_MORE) assert.unreachable(`${where}: unit ${i}, prefix of ${k} bytes gave ${NAMES[r]}, want NEED_MORE`);
      const want = u.r === 'VALUE' && k > nl ? unitLen : 0;
      if (parser.need !== want) assert.unreachable(`${where}: unit ${i}, prefix of ${k} bytes: need ${parser.need}, want ${want}`);
    }
    unitStart += unitLen;
  }
}

for (const row of ROWS) {
  test(`${row.name}: ${show(row.wire)}`, () => checkRow(row));
}

// ------------------------------------------------------------------ pipelined stream

/**
 * Reads a stream of replies to `requests` (true = retrieval) as a backend
 * connection does: keeps unconsumed bytes, reads again when more arrive.
 */
function drive(chunks: Buffer[], requests: boolean[]): string[] {
  const p = new ResponseParser();
  const out: string[] = [];
  let pending = Buffer.alloc(0);
  let head = 0;
  for (const chunk of chunks) {
    const buf = Buffer.concat([pending, chunk, GARBAGE]);
    const end = pending.length + chunk.length;
    let pos = 0;
    while (pos < end) {
      if (head >= requests.length) { out.push('reply with no request'); return out; }
      const r = p.read(buf, pos, end, requests[head]! ? Expect.RETRIEVAL : Expect.LINE);
      if (r === Reply.NEED_MORE) {
        if (p.need !== 0 && p.need <= end - pos) { out.push(`need ${p.need} but ${end - pos} are there`); return out; }
        break;
      }
      if (r === Reply.BAD) { out.push('BAD'); return out; }
      out.push(`${NAMES[r]} ${buf.toString('latin1', p.start, p.next)}`);
      if (r !== Reply.VALUE) head++;
      pos = p.next;
    }
    pending = Buffer.from(buf.subarray(pos, end));
  }
  if (pending.length > 0) out.push(`left over: ${pending.length} bytes`);
  return out;
}

const GOOD = ROWS.filter((r) => !r.units.some((u) => u.r === 'BAD') && r.wire.length < 1000);
const STREAM = Buffer.from(GOOD.map((r) => r.wire).join(''), 'latin1');
const REQUESTS = GOOD.map((r) => r.retrieval);

test('all well-formed rows back to back: every unit, in order, and nothing left over', () => {
  const got = drive([STREAM], REQUESTS);
  const want: string[] = [];
  for (const r of GOOD) for (const u of r.units) want.push(u.r === 'END' ? 'END END\r\n' : `${u.r} ${(u as { text: string }).text}`);
  assert.equal(got, want);
});

test('the stream byte by byte gives the same units', () => {
  const bytes: Buffer[] = [];
  for (let i = 0; i < STREAM.length; i++) bytes.push(STREAM.subarray(i, i + 1));
  assert.equal(drive(bytes, REQUESTS), drive([STREAM], REQUESTS));
});

test('the stream cut in two at every offset gives the same units', () => {
  const whole = drive([STREAM], REQUESTS);
  for (let k = 1; k < STREAM.length; k++) {
    const got = drive([STREAM.subarray(0, k), STREAM.subarray(k)], REQUESTS);
    if (got.length !== whole.length || got.some((g, i) => g !== whole[i])) {
      const i = got.findIndex((g, j) => g !== whole[j]);
      assert.unreachable(`cut at ${k}: unit ${i} is ${JSON.stringify(got[i])}, whole gives ${JSON.stringify(whole[i])}`);
    }
  }
});

test('a large value arriving in 1000-byte chunks: NEED_MORE says the whole block size once the line is in', () => {
  const row = hits(['big', BIG], ['small', 's']);
  const wire = Buffer.from(row.wire, 'latin1');
  const chunks: Buffer[] = [];
  for (let i = 0; i < wire.length; i += 1000) chunks.push(wire.subarray(i, i + 1000));
  assert.equal(drive(chunks, [true]), row.units.map((u) => (u.r === 'END' ? 'END END\r\n' : `${u.r} ${(u as { text: string }).text}`)));
});

// A one-key get sent as mg: the meta reply, read as ResponseParser reads it, is
// written for the client as the text protocol's value block.
const TEXT_VALUES: Array<{ va: string; key: string; withCas: boolean; text: string }> = [
  { va: 'VA 5 f3\r\nvalue\r\n', key: 'k', withCas: false, text: 'VALUE k 3 5\r\nvalue\r\n' },
  { va: 'VA 5 f3 c77\r\nvalue\r\n', key: 'k', withCas: true, text: 'VALUE k 3 5 77\r\nvalue\r\n' },
  { va: 'VA 5 c77 f3\r\nvalue\r\n', key: 'k', withCas: true, text: 'VALUE k 3 5 77\r\nvalue\r\n' },
  // the cas only for gets; other tokens (a warm-up lookup's t) left out
  { va: 'VA 5 f4294967295 t-1 c18446744073709551615\r\nvalue\r\n', key: 'key:1', withCas: false, text: 'VALUE key:1 4294967295 5\r\nvalue\r\n' },
  { va: 'VA 5 f4294967295 t-1 c18446744073709551615\r\nvalue\r\n', key: 'key:1', withCas: true, text: 'VALUE key:1 4294967295 5 18446744073709551615\r\nvalue\r\n' },
  // no f token: flags 0
  { va: 'VA 2\r\nab\r\n', key: 'x', withCas: false, text: 'VALUE x 0 2\r\nab\r\n' },
  { va: 'VA 0 f0\r\n\r\n', key: 'empty', withCas: false, text: 'VALUE empty 0 0\r\n\r\n' },
  // data that looks like protocol
  { va: 'VA 14 f1\r\nEND\r\nVA 1 f0\r\n\r\n', key: 'k', withCas: false, text: 'VALUE k 1 14\r\nEND\r\nVA 1 f0\r\n\r\n' },
];

test('a meta value (VA) is written as a text value block with the request\'s key', () => {
  for (const row of TEXT_VALUES) {
    // inside a larger buffer, as a backend's read leaves it
    const wire = Buffer.from(`xx${row.va}EN\r\n`, 'latin1');
    assert.is(parser.read(wire, 2, wire.length, Expect.META_GET), Reply.LINE, row.va);
    assert.is(parser.next, 2 + row.va.length, row.va);
    const key = Buffer.from(`get ${row.key}\r\n`, 'latin1');
    const out = new Outbox();
    addTextValue(out, wire, parser.start, parser.next, key, 4, 4 + row.key.length, row.withCas);
    let sent = '';
    out.flush({ write: (b) => { sent += b.toString('latin1'); }, writev: (bs) => { for (const b of bs) sent += b.toString('latin1'); } });
    assert.is(sent, row.text, row.va);
  }
});

test.run();
