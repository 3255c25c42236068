// The client-side request parser against a table of literal wire strings.
//
// Every row is fed whole, then every strict prefix of it is fed (which is what
// the parser sees when the row arrives byte by byte or split at any offset: the
// caller keeps the unconsumed bytes and calls again): a prefix must give
// NEED_MORE, or CLOSE for an unterminated non-get line past 2048 bytes. Rows are
// fed at an odd offset inside a larger buffer with garbage (line feeds included)
// after `end`, so the parser must not look past its bounds. Finally all rows are
// parsed back to back as one pipelined stream, whole, byte by byte and cut in two
// at every offset, and must give the same outcomes in the same order.
//
// Expected outcomes are memcached 1.6's (checked against a real server; the
// conformance suite does that for every case on the wire), except keys with
// control characters, which mcrelay refuses on purpose.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Cmd } from '../../src/protocol/commands.js';
import { RequestParser } from '../../src/protocol/request-parser.js';
import { GET_LINE_MAX_LENGTH, LINE_MAX_LENGTH, Parse } from '../../src/protocol/request-rules.js';

const MAX_ITEM = 1024;
const parser = new RequestParser(MAX_ITEM); // one parser for every row: no state may leak between calls

const ERROR = 'ERROR\r\n';
const FORMAT = 'CLIENT_ERROR bad command line format\r\n';
const DATA_CHUNK = 'CLIENT_ERROR bad data chunk\r\n';
const DELTA = 'CLIENT_ERROR invalid numeric delta argument\r\n';
const EXPTIME = 'CLIENT_ERROR invalid exptime argument\r\n';
const DELETE_USAGE = 'CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n';
const TOO_LARGE = 'SERVER_ERROR object too large for cache\r\n';
const TOO_LONG = 'CLIENT_ERROR request too long\r\n';

const K250 = 'k'.repeat(250);
const K251 = 'k'.repeat(251);

type Expect =
  | {
    r: 'REQUEST'; cmd: number;
    /** keys in order (default: none) */
    keys?: string[];
    noreply?: boolean;
    /** the line forwarded to the backend, [lineStart, forwardEnd); default: the whole line */
    forward?: string;
    /** storage: the value bytes */
    data?: string;
    /** exptime of gat/touch, delta of incr/decr, delay of flush_all */
    arg?: string;
    /** cas: the token at casStart */
    cas?: string;
    /** bytes consumed; default: the whole row */
    next?: number;
  }
  | { r: 'REPLY'; reply: string; noreply?: boolean; swallow?: number; next?: number }
  | { r: 'CLOSE'; reply?: string | null }
  /** an unterminated line the parser keeps waiting on */
  | { r: 'NEED_MORE' };

interface Row {
  name: string;
  wire: string;
  expect: Expect;
  /** bytes that belong to the row when it is pipelined (a data block to be swallowed) */
  tail?: string;
}

const req = (cmd: number, more: Omit<Extract<Expect, { r: 'REQUEST' }>, 'r' | 'cmd'> = {}): Expect => ({ r: 'REQUEST', cmd, ...more });
const reply = (text: string, more: Omit<Extract<Expect, { r: 'REPLY' }>, 'r' | 'reply'> = {}): Expect => ({ r: 'REPLY', reply: text, ...more });
const lineLen = (wire: string): number => wire.indexOf('\n') + 1;

/** A REPLY to the first line only: what follows the line is parsed as the next command (memcached does the same). */
const lineReply = (wire: string, text: string, more: { noreply?: boolean } = {}): Expect => reply(text, { ...more, next: lineLen(wire) });

function row(name: string, wire: string, expect: Expect | ((wire: string) => Expect), tail?: string): Row {
  const r: Row = { name, wire, expect: typeof expect === 'function' ? expect(wire) : expect };
  if (tail !== undefined) r.tail = tail;
  return r;
}

const many = (n: number, prefix: string): string[] => Array.from({ length: n }, (_, i) => `${prefix}${i}`);
const keys300 = many(300, 'key:');
const longGetLine = `get ${keys300.join(' ')}`; // well past 2048 bytes

const ROWS: Row[] = [
  // ---------------------------------------------------------------- retrieval
  row('get one key', 'get foo\r\n', req(Cmd.GET, { keys: ['foo'] })),
  row('get several keys, duplicates kept in order', 'get a b a c\r\n', req(Cmd.GET, { keys: ['a', 'b', 'a', 'c'] })),
  row('get with extra spaces', 'get  a   b \r\n', req(Cmd.GET, { keys: ['a', 'b'] })),
  row('leading spaces before the command', '  get a\r\n', req(Cmd.GET, { keys: ['a'] })),
  row('get with bare \\n', 'get a\n', req(Cmd.GET, { keys: ['a'] })),
  row('gets', 'gets a b\r\n', req(Cmd.GETS, { keys: ['a', 'b'] })),
  row('get 250-byte key', `get ${K250}\r\n`, req(Cmd.GET, { keys: [K250] })),
  row('get 251-byte key', `get ${K251}\r\n`, reply(FORMAT)),
  row('get good key then 251-byte key', `get a ${K251}\r\n`, reply(FORMAT)),
  row('get "noreply" is a key', 'get noreply\r\n', req(Cmd.GET, { keys: ['noreply'] })),
  row('get without keys', 'get\r\n', reply(ERROR)),
  row('get with only spaces', 'get   \r\n', reply(ERROR)),
  row('gets without keys', 'gets\r\n', reply(ERROR)),
  row('get 300 keys on a 2 KiB+ line', `${longGetLine}\r\n`, req(Cmd.GET, { keys: keys300 })),
  row('gat', 'gat 100 a b\r\n', req(Cmd.GAT, { keys: ['a', 'b'], arg: '100' })),
  row('gats', 'gats -1 a\r\n', req(Cmd.GATS, { keys: ['a'], arg: '-1' })),
  row('gat without keys answers END (a request with no keys)', 'gat 10\r\n', req(Cmd.GAT, { keys: [], arg: '10' })),
  row('gat without exptime', 'gat\r\n', reply(ERROR)),
  row('gat bad exptime', 'gat abc a\r\n', reply(EXPTIME)),
  row('gat exptime 2^63 (ERANGE)', 'gat 9223372036854775808 a\r\n', reply(EXPTIME)),
  row('gat 251-byte key', `gat 10 ${K251}\r\n`, reply(FORMAT)),

  // ---------------------------------------------------------------- storage
  row('set', 'set k 5 100 3\r\nabc\r\n', req(Cmd.SET, { keys: ['k'], data: 'abc' })),
  row('set with bare \\n after the line', 'set k 0 0 3\nabc\r\n', req(Cmd.SET, { keys: ['k'], data: 'abc' })),
  row('set value holding \\r\\n', 'set k 0 0 9\r\nab\r\nEND\r\n\r\n', req(Cmd.SET, { keys: ['k'], data: 'ab\r\nEND\r\n' })),
  row('set empty value', 'set k 0 0 0\r\n\r\n', req(Cmd.SET, { keys: ['k'], data: '' })),
  row('set noreply', 'set k 0 0 1 noreply\r\na\r\n', req(Cmd.SET, { keys: ['k'], data: 'a', noreply: true, forward: 'set k 0 0 1' })),
  row('set with a 6th token that is not noreply', 'set k 0 0 1 xyz\r\na\r\n', req(Cmd.SET, { keys: ['k'], data: 'a' })),
  row('set with trailing space', 'set k 0 0 1 \r\na\r\n', req(Cmd.SET, { keys: ['k'], data: 'a', forward: 'set k 0 0 1 ' })),
  row('set flags -0, +1 signs', 'set k -0 +5 +1\r\na\r\n', req(Cmd.SET, { keys: ['k'], data: 'a' })),
  row('set flags 2^64-1 (truncated by memcached, accepted)', 'set k 18446744073709551615 0 1\r\na\r\n', req(Cmd.SET, { keys: ['k'], data: 'a' })),
  row('set bytes with leading zeros', 'set k 0 0 01\r\na\r\n', req(Cmd.SET, { keys: ['k'], data: 'a' })),
  row('set max-size value', `set k 0 0 ${MAX_ITEM}\r\n${'v'.repeat(MAX_ITEM)}\r\n`, req(Cmd.SET, { keys: ['k'], data: 'v'.repeat(MAX_ITEM) })),
  row('add', 'add k 0 0 1\r\na\r\n', req(Cmd.ADD, { keys: ['k'], data: 'a' })),
  row('add noreply', 'add k 0 0 1 noreply\r\na\r\n', req(Cmd.ADD, { keys: ['k'], data: 'a', noreply: true, forward: 'add k 0 0 1' })),
  row('replace', 'replace k 0 0 1\r\na\r\n', req(Cmd.REPLACE, { keys: ['k'], data: 'a' })),
  row('replace noreply', 'replace k 0 0 1 noreply\r\na\r\n', req(Cmd.REPLACE, { keys: ['k'], data: 'a', noreply: true, forward: 'replace k 0 0 1' })),
  row('append', 'append k 0 0 2\r\nab\r\n', req(Cmd.APPEND, { keys: ['k'], data: 'ab' })),
  row('append noreply', 'append k 0 0 2 noreply\r\nab\r\n', req(Cmd.APPEND, { keys: ['k'], data: 'ab', noreply: true, forward: 'append k 0 0 2' })),
  row('prepend', 'prepend k 0 0 2\r\nab\r\n', req(Cmd.PREPEND, { keys: ['k'], data: 'ab' })),
  row('prepend noreply', 'prepend k 0 0 2 noreply\r\nab\r\n', req(Cmd.PREPEND, { keys: ['k'], data: 'ab', noreply: true, forward: 'prepend k 0 0 2' })),
  row('cas', 'cas k 0 0 1 12345\r\na\r\n', req(Cmd.CAS, { keys: ['k'], data: 'a', cas: '12345' })),
  row('cas noreply', 'cas k 0 0 1 12345 noreply\r\na\r\n', req(Cmd.CAS, { keys: ['k'], data: 'a', cas: '12345', noreply: true, forward: 'cas k 0 0 1 12345' })),
  row('cas without cas token', 'cas k 0 0 1\r\na\r\n', (w) => lineReply(w, ERROR)),
  row('cas bad cas token', 'cas k 0 0 1 abc\r\na\r\n', (w) => lineReply(w, FORMAT)),
  row('cas negative cas token', 'cas k 0 0 1 -1\r\na\r\n', (w) => lineReply(w, FORMAT)),
  row('cas token 2^64', 'cas k 0 0 1 18446744073709551616\r\na\r\n', (w) => lineReply(w, FORMAT)),
  row('set too few tokens', 'set k 0 0\r\n', reply(ERROR)),
  row('set too many tokens', 'set k 0 0 1 noreply x\r\na\r\n', (w) => lineReply(w, ERROR)),
  row('set 250-byte key', `set ${K250} 0 0 1\r\na\r\n`, req(Cmd.SET, { keys: [K250], data: 'a' })),
  row('set 251-byte key', `set ${K251} 0 0 1\r\na\r\n`, (w) => lineReply(w, FORMAT)),
  row('set bad flags', 'set k x 0 1\r\na\r\n', (w) => lineReply(w, FORMAT)),
  row('set negative flags', 'set k -1 0 1\r\na\r\n', (w) => lineReply(w, FORMAT)),
  row('set flags 2^64 (ERANGE)', 'set k 18446744073709551616 0 1\r\na\r\n', (w) => lineReply(w, FORMAT)),
  row('set flags 2^64+1000 (ERANGE)', 'set k 18446744073709552616 0 1\r\na\r\n', (w) => lineReply(w, FORMAT)),
  row('set flags 1a', 'set k 1a 0 1\r\na\r\n', (w) => lineReply(w, FORMAT)),
  row('set bad exptime', 'set k 0 1.5 1\r\na\r\n', (w) => lineReply(w, FORMAT)),
  row('set exptime -2^63-1 (ERANGE)', 'set k 0 -9223372036854775809 1\r\na\r\n', (w) => lineReply(w, FORMAT)),
  row('set bad bytes', 'set k 0 0 x\r\na\r\n', (w) => lineReply(w, FORMAT)),
  row('set negative bytes', 'set k 0 0 -1\r\na\r\n', (w) => lineReply(w, FORMAT)),
  row('set bytes INT_MAX-1', 'set k 0 0 2147483646\r\n', reply(FORMAT)),
  row('set bytes "-"', 'set k 0 0 -\r\n', reply(FORMAT)),
  // memcached sets noreply before it checks the numbers and the key, so these errors are silent.
  row('set bad flags noreply is silent', 'set k x 0 1 noreply\r\na\r\n', (w) => lineReply(w, FORMAT, { noreply: true })),
  row('set bad bytes noreply is silent', 'set k 0 0 noreply\r\n', reply(FORMAT, { noreply: true })),
  row('set 251-byte key noreply is silent', `set ${K251} 0 0 1 noreply\r\na\r\n`, (w) => lineReply(w, FORMAT, { noreply: true })),
  row('set bad data chunk', 'set k 0 0 3\r\nabcd\r\n', reply(DATA_CHUNK, { next: lineLen('set k 0 0 3\r\n') + 5 })),
  row('set data ended by bare \\n', 'set k 0 0 1\r\na\nget k\r\n', reply(DATA_CHUNK, { next: lineLen('set k 0 0 1\r\n') + 3 })),
  row('set bad data chunk noreply is silent', 'set k 0 0 1 noreply\r\nab\r\n', reply(DATA_CHUNK, { noreply: true, next: lineLen('set k 0 0 1 noreply\r\n') + 3 })),
  row('set too large: swallowed', `set k 0 0 ${MAX_ITEM + 1}\r\n`, reply(TOO_LARGE, { swallow: MAX_ITEM + 3 }), `${'v'.repeat(MAX_ITEM + 1)}\r\n`),
  row('set too large noreply: swallowed silently', 'set k 0 0 5000 noreply\r\n', reply(TOO_LARGE, { swallow: 5002, noreply: true }), `${'v'.repeat(5000)}\r\n`),
  row('cas too large: swallowed', 'cas k 0 0 4000 1\r\n', reply(TOO_LARGE, { swallow: 4002 }), `${'v'.repeat(4000)}\r\n`),

  // ---------------------------------------------------------------- delete
  row('delete', 'delete k\r\n', req(Cmd.DELETE, { keys: ['k'] })),
  row('delete noreply', 'delete k noreply\r\n', req(Cmd.DELETE, { keys: ['k'], noreply: true, forward: 'delete k' })),
  row('delete legacy 0', 'delete k 0\r\n', req(Cmd.DELETE, { keys: ['k'], forward: 'delete k' })),
  row('delete legacy 0 noreply', 'delete k 0 noreply\r\n', req(Cmd.DELETE, { keys: ['k'], noreply: true, forward: 'delete k' })),
  row('delete with a hold time', 'delete k 10\r\n', reply(DELETE_USAGE)),
  row('delete with a hold time noreply is silent', 'delete k 10 noreply\r\n', reply(DELETE_USAGE, { noreply: true })),
  row('delete without key', 'delete\r\n', reply(ERROR)),
  row('delete too many tokens', 'delete a b c d\r\n', reply(ERROR)),
  row('delete 251-byte key', `delete ${K251}\r\n`, reply(FORMAT)),
  // memcached checks the usage before the key length
  row('delete 251-byte key with a hold time', `delete ${K251} 10\r\n`, reply(DELETE_USAGE)),
  row('delete 251-byte key noreply is silent', `delete ${K251} noreply\r\n`, reply(FORMAT, { noreply: true })),

  // ---------------------------------------------------------------- incr/decr/touch
  row('incr', 'incr n 5\r\n', req(Cmd.INCR, { keys: ['n'], arg: '5' })),
  row('decr', 'decr n 18446744073709551615\r\n', req(Cmd.DECR, { keys: ['n'], arg: '18446744073709551615' })),
  row('incr noreply', 'incr n 5 noreply\r\n', req(Cmd.INCR, { keys: ['n'], arg: '5', noreply: true, forward: 'incr n 5' })),
  row('decr noreply', 'decr n 5 noreply\r\n', req(Cmd.DECR, { keys: ['n'], arg: '5', noreply: true, forward: 'decr n 5' })),
  row('incr with a 4th token that is not noreply', 'incr n 5 x\r\n', req(Cmd.INCR, { keys: ['n'], arg: '5' })),
  row('incr without delta', 'incr n\r\n', reply(ERROR)),
  row('incr too many tokens', 'incr n 1 noreply x\r\n', reply(ERROR)),
  row('incr non-numeric delta', 'incr n abc\r\n', reply(DELTA)),
  row('incr negative delta', 'incr n -1\r\n', reply(DELTA)),
  row('incr delta 2^64', 'incr n 18446744073709551616\r\n', reply(DELTA)),
  row('incr delta with 25 leading zeros', `incr n ${'0'.repeat(25)}7\r\n`, req(Cmd.INCR, { keys: ['n'], arg: `${'0'.repeat(25)}7` })),
  row('incr bad delta noreply is silent', 'incr n abc noreply\r\n', reply(DELTA, { noreply: true })),
  row('incr 251-byte key', `incr ${K251} 1\r\n`, reply(FORMAT)),
  row('incr 251-byte key noreply is silent', `incr ${K251} 1 noreply\r\n`, reply(FORMAT, { noreply: true })),
  row('touch', 'touch k 10\r\n', req(Cmd.TOUCH, { keys: ['k'], arg: '10' })),
  row('touch noreply', 'touch k 10 noreply\r\n', req(Cmd.TOUCH, { keys: ['k'], arg: '10', noreply: true, forward: 'touch k 10' })),
  row('touch without exptime', 'touch k\r\n', reply(ERROR)),
  row('touch bad exptime', 'touch k abc\r\n', reply(EXPTIME)),
  row('touch bad exptime noreply is silent', 'touch k abc noreply\r\n', reply(EXPTIME, { noreply: true })),
  row('touch 251-byte key', `touch ${K251} 10\r\n`, reply(FORMAT)),
  row('touch 251-byte key noreply is silent', `touch ${K251} 10 noreply\r\n`, reply(FORMAT, { noreply: true })),

  // ---------------------------------------------------------------- the rest
  row('version', 'version\r\n', req(Cmd.VERSION)),
  row('stats', 'stats\r\n', req(Cmd.STATS)),
  row('stats with an argument', 'stats items\r\n', req(Cmd.STATS)),
  row('verbosity', 'verbosity 1\r\n', req(Cmd.VERBOSITY)),
  row('verbosity noreply', 'verbosity 1 noreply\r\n', req(Cmd.VERBOSITY, { noreply: true, forward: 'verbosity 1' })),
  row('verbosity without level', 'verbosity\r\n', reply(ERROR)),
  row('verbosity too many tokens', 'verbosity 1 2 3\r\n', reply(ERROR)),
  row('verbosity bad level', 'verbosity abc\r\n', reply(FORMAT)),
  row('flush_all', 'flush_all\r\n', req(Cmd.FLUSH_ALL, { arg: '' })),
  row('flush_all with delay', 'flush_all 0\r\n', req(Cmd.FLUSH_ALL, { arg: '0' })),
  row('flush_all noreply', 'flush_all noreply\r\n', req(Cmd.FLUSH_ALL, { noreply: true, forward: 'flush_all', arg: '' })),
  row('flush_all delay noreply', 'flush_all 0 noreply\r\n', req(Cmd.FLUSH_ALL, { noreply: true, forward: 'flush_all 0', arg: '0' })),
  row('flush_all bad delay', 'flush_all abc\r\n', reply(EXPTIME)),
  // memcached reads the delay from the first argument whenever the count is not the plain one
  row('flush_all 0 0 (memcached: OK)', 'flush_all 0 0\r\n', req(Cmd.FLUSH_ALL, { arg: '0' })),
  row('flush_all noreply 0', 'flush_all noreply 0\r\n', reply(EXPTIME)),
  row('flush_all too many tokens', 'flush_all 1 2 3\r\n', reply(ERROR)),
  row('quit', 'quit\r\n', { r: 'CLOSE', reply: null }),

  // ---------------------------------------------------------------- unknown commands
  row('unknown command', 'foo bar\r\n', reply(ERROR)),
  row('upper-case GET', 'GET a\r\n', reply(ERROR)),
  row('empty line', '\r\n', reply(ERROR)),
  row('bare \\n empty line', '\n', reply(ERROR)),
  row('a prefix of a command', 'ge a\r\n', reply(ERROR)),
  row('a command with a suffix', 'getx a\r\n', reply(ERROR)),

  // ---------------------------------------------------------------- control characters (mcrelay's own rule)
  row('get key with \\x01', 'get a\x01b\r\n', reply(FORMAT)),
  row('get key with \\x7f', 'get a\x7fb\r\n', reply(FORMAT)),
  row('get key with \\t', 'get a\tb\r\n', reply(FORMAT)),
  row('get key that is one control character, after a good key', 'get a \x02\r\n', reply(FORMAT)),
  row('get key ending in \\x7f', 'get ab\x7f\r\n', reply(FORMAT)),
  // memcached reads a line as a C string: a NUL ends it ("get a" here).
  row('get key with \\x00 (the line ends at the NUL)', 'get a\x00b\r\n', req(Cmd.GET, { keys: ['a'], forward: 'get a' })),
  row('noreply then NUL is noreply (bug: replies went to the wrong client)', 'delete k noreply\x00x\r\n', req(Cmd.DELETE, { keys: ['k'], noreply: true, forward: 'delete k' })),
  row('get key ending in \\r (line ended by \\r\\r\\n)', 'get a\r\r\n', reply(FORMAT)),
  row('set key with \\x01', 'set a\x01b 0 0 1\r\na\r\n', (w) => lineReply(w, FORMAT)),
  row('delete key with \\x1f', 'delete a\x1fb\r\n', reply(FORMAT)),
  row('key with bytes >= 0x80 is fine', 'get \xe9t\xe9\r\n', req(Cmd.GET, { keys: ['\xe9t\xe9'] })),
];

// Unterminated long lines: memcached drops a connection whose line passes 2048
// bytes without a \n, unless it is a get/gets line (multi-gets may be long);
// mcrelay too, after an error line that says why.
const LONG_ROWS: Row[] = [
  row('unterminated 2049-byte set line closes', `set ${'x'.repeat(LINE_MAX_LENGTH)}`, { r: 'CLOSE', reply: TOO_LONG }),
  row('unterminated 4000-byte garbage closes', 'z'.repeat(4000), { r: 'CLOSE', reply: TOO_LONG }),
  row('unterminated 2049-byte get line waits', `get ${'x '.repeat(1100)}`, { r: 'NEED_MORE' }),
  row('unterminated 2049-byte gets line waits', `gets ${'x '.repeat(1100)}`, { r: 'NEED_MORE' }),
  // memcached skips up to 100 leading spaces before it looks for "get "
  row('unterminated 2049-byte get line after a leading space waits', ` get ${'x '.repeat(1100)}`, { r: 'NEED_MORE' }),
  row('unterminated 2049-byte gat line closes', `gat 0 ${'x '.repeat(1100)}`, { r: 'CLOSE', reply: TOO_LONG }),
  row('a long non-get line that arrives whole is parsed', `set ${'x'.repeat(3000)} 0 0 1\r\na\r\n`, (w) => lineReply(w, FORMAT)),
];

// ------------------------------------------------------------------ checking

const PAD = Buffer.from('\n\r\nxy \n', 'latin1'); // 7 bytes before pos
const GARBAGE = Buffer.from('\r\n\nEND\r\n0\r\n', 'latin1'); // after end: never to be read

function lay(wire: Buffer, k: number): Buffer {
  return Buffer.concat([PAD, wire.subarray(0, k), GARBAGE]);
}

const NAMES = ['NEED_MORE', 'REQUEST', 'REPLY', 'CLOSE'];
const show = (s: string): string => JSON.stringify(s.length > 80 ? `${s.slice(0, 60)}...(${s.length} bytes)` : s);
const str = (b: Buffer, s: number, e: number): string => b.toString('latin1', s, e);

function keysOf(p: RequestParser, b: Buffer): string[] {
  const out: string[] = [];
  for (let i = 0; i < p.keyCount; i++) out.push(str(b, p.keyOffsets[2 * i]!, p.keyOffsets[2 * i + 1]!));
  return out;
}

function firstLine(wire: string): string {
  const nl = wire.indexOf('\n');
  return wire.slice(0, nl > 0 && wire[nl - 1] === '\r' ? nl - 1 : nl);
}

/** Feeds the whole row and checks every field the expectation names. */
function checkWhole(r: Row): void {
  const wire = Buffer.from(r.wire, 'latin1');
  const buf = lay(wire, wire.length);
  const p0 = PAD.length;
  const got = parser.parse(buf, p0, p0 + wire.length);
  const e = r.expect;
  const where = `${r.name} ${show(r.wire)}`;
  assert.is(NAMES[got], e.r, `${where}: outcome`);
  if (e.r === 'NEED_MORE') return;
  if (e.r === 'CLOSE') {
    const want = e.reply ?? null;
    assert.is(parser.reply === null ? null : parser.reply.toString('latin1'), want, `${where}: reply`);
    return;
  }
  if (e.r === 'REPLY') {
    assert.is(parser.reply?.toString('latin1'), e.reply, `${where}: reply`);
    assert.is(parser.noreply, e.noreply ?? false, `${where}: noreply`);
    assert.is(parser.swallow, e.swallow ?? 0, `${where}: swallow`);
    assert.is(parser.next - p0, e.next ?? wire.length, `${where}: next`);
    return;
  }
  assert.is(parser.cmd, e.cmd, `${where}: cmd`);
  assert.equal(keysOf(parser, buf), e.keys ?? [], `${where}: keys`);
  assert.is(parser.noreply, e.noreply ?? false, `${where}: noreply`);
  assert.is(parser.next - p0, e.next ?? wire.length, `${where}: next`);
  assert.is(parser.lineStart, p0, `${where}: lineStart`);
  assert.is(str(buf, parser.lineStart, parser.forwardEnd), e.forward ?? firstLine(r.wire), `${where}: forwarded line`);
  if (e.data !== undefined) {
    assert.is(parser.bytes, Buffer.byteLength(e.data, 'latin1'), `${where}: bytes`);
    assert.is(str(buf, parser.dataStart, parser.dataStart + parser.bytes), e.data, `${where}: data`);
    assert.is(str(buf, parser.dataStart + parser.bytes, parser.dataStart + parser.bytes + 2), '\r\n', `${where}: data terminator`);
  }
  if (e.arg !== undefined) assert.is(str(buf, parser.argStart, parser.argEnd), e.arg, `${where}: arg`);
  if (e.cas !== undefined) {
    let ce = parser.casStart;
    while (ce < parser.lineEnd && buf[ce] !== 0x20) ce++;
    assert.is(str(buf, parser.casStart, ce), e.cas, `${where}: cas token`);
  }
}

function startsLikeGet(wire: Buffer): boolean {
  let i = 0;
  while (i < wire.length && i <= 100 && wire[i] === 0x20) i++;
  if (i > 100) return false;
  const s = wire.toString('latin1', i, i + 5);
  return s.startsWith('get ') || s === 'gets ';
}

/** Every strict prefix of what the row consumes: NEED_MORE (with `need` once a data block's size is known), or CLOSE for an over-long line. */
function checkPrefixes(r: Row): void {
  const wire = Buffer.from(r.wire, 'latin1');
  const e = r.expect;
  const consumed = e.r === 'REQUEST' || e.r === 'REPLY' ? (e.next ?? wire.length) : wire.length;
  const nl = wire.indexOf(0x0a);
  const p0 = PAD.length;
  const isStorage = e.r === 'REQUEST' && e.cmd >= Cmd.SET && e.cmd <= Cmd.CAS && e.data !== undefined;
  const isDataChunk = e.r === 'REPLY' && e.reply === DATA_CHUNK;
  for (let k = 0; k < consumed; k++) {
    const buf = lay(wire, k);
    const got = parser.parse(buf, p0, p0 + k);
    const where = `${r.name} ${show(r.wire)} prefix of ${k} bytes`;
    const lineComplete = nl !== -1 && k > nl;
    const tooLong = !lineComplete && k > LINE_MAX_LENGTH && !(startsLikeGet(wire) && k <= GET_LINE_MAX_LENGTH);
    if (tooLong) {
      if (got !== Parse.CLOSE) assert.unreachable(`${where}: got ${NAMES[got]}, want CLOSE`);
      continue;
    }
    if (got !== Parse.NEED_MORE) assert.unreachable(`${where}: got ${NAMES[got]}, want NEED_MORE`);
    if (lineComplete && (isStorage || isDataChunk)) {
      const bytes = isStorage ? Buffer.byteLength((e as { data: string }).data, 'latin1') : Number(/ (\d+)(?: noreply)?\r?$/.exec(firstLine(r.wire))![1]);
      if (parser.need !== nl + 1 + bytes + 2) assert.unreachable(`${where}: need ${parser.need}, want ${nl + 1 + bytes + 2}`);
    } else if (parser.need !== 0) {
      assert.unreachable(`${where}: need ${parser.need}, want 0 (unknown)`);
    }
  }
}

for (const r of [...ROWS, ...LONG_ROWS]) {
  test(`${r.name}: ${show(r.wire)}`, () => {
    checkWhole(r);
    checkPrefixes(r);
  });
}

// ------------------------------------------------------------------ pipelined stream

/** One line per outcome, the way a client connection would act on it. */
function drive(chunks: Buffer[]): string[] {
  const p = new RequestParser(MAX_ITEM);
  const out: string[] = [];
  let pending = Buffer.alloc(0);
  let swallow = 0;
  for (let chunk of chunks) {
    if (swallow > 0) {
      const n = Math.min(swallow, chunk.length);
      swallow -= n;
      chunk = chunk.subarray(n);
    }
    // a fresh buffer with garbage after end, as an input buffer with spare room has
    const buf = Buffer.concat([pending, chunk, GARBAGE]);
    const end = pending.length + chunk.length;
    let pos = 0;
    let closed = false;
    while (pos < end) {
      const r = p.parse(buf, pos, end);
      if (r === Parse.NEED_MORE) break;
      if (r === Parse.REQUEST) {
        let s = `${NAMES[r]} ${p.cmd} [${keysOf(p, buf).join(',')}] fwd=${str(buf, p.lineStart, p.forwardEnd)} noreply=${p.noreply}`;
        if (p.cmd >= Cmd.SET && p.cmd <= Cmd.CAS) s += ` data=${str(buf, p.dataStart, p.dataStart + p.bytes)}`;
        out.push(s);
        pos = p.next;
      } else if (r === Parse.REPLY) {
        out.push(`${NAMES[r]} ${p.reply!.toString('latin1')} noreply=${p.noreply} swallow=${p.swallow}`);
        pos = p.next;
        if (p.swallow > 0) {
          const skip = Math.min(p.swallow, end - pos);
          pos += skip;
          swallow = p.swallow - skip;
        }
      } else {
        out.push(NAMES[r]!);
        closed = true;
        break;
      }
    }
    if (closed) break;
    pending = Buffer.from(buf.subarray(pos, end));
  }
  return out;
}

const STREAM_ROWS = ROWS.filter((r) => r.expect.r !== 'CLOSE' && r.expect.r !== 'NEED_MORE' && r.wire.length < 600);
const streamParts: Buffer[] = [];
for (const r of STREAM_ROWS) {
  const e = r.expect;
  const consumed = e.r === 'REQUEST' || e.r === 'REPLY' ? (e.next ?? r.wire.length) : r.wire.length;
  // A row whose tail is parsed as the next command (a refused line's data) is cut to what it consumes.
  streamParts.push(Buffer.from(r.wire.slice(0, consumed), 'latin1'));
  if (r.tail !== undefined) streamParts.push(Buffer.from(r.tail, 'latin1'));
}
streamParts.push(Buffer.from('get last\r\nquit\r\nget never\r\n', 'latin1'));
const STREAM = Buffer.concat(streamParts);

test('all rows pipelined in one stream give each row\'s outcome in order', () => {
  const got = drive([STREAM]);
  assert.is(got.length, STREAM_ROWS.length + 2, 'one outcome per row, then get last, then CLOSE');
  assert.is(got[got.length - 1], 'CLOSE');
  assert.ok(got[got.length - 2]!.includes('[last]'));
});

test('the pipelined stream fed byte by byte gives the same outcomes', () => {
  const whole = drive([STREAM]);
  const bytes: Buffer[] = [];
  for (let i = 0; i < STREAM.length; i++) bytes.push(STREAM.subarray(i, i + 1));
  assert.equal(drive(bytes), whole);
});

test('the pipelined stream cut in two at every offset gives the same outcomes', () => {
  const whole = drive([STREAM]);
  for (let k = 1; k < STREAM.length; k++) {
    const got = drive([STREAM.subarray(0, k), STREAM.subarray(k)]);
    if (got.length !== whole.length || got.some((g, i) => g !== whole[i])) {
      const i = got.findIndex((g, j) => g !== whole[j]);
      assert.unreachable(`cut at ${k}: outcome ${i} is ${JSON.stringify(got[i])}, whole gives ${JSON.stringify(whole[i])}`);
    }
  }
});

test('a 10,000-key get line is one request with every key in order', () => {
  const keys = many(10_000, 'key:');
  const wire = Buffer.from(`get ${keys.join(' ')}\r\n`, 'latin1');
  for (const k of [1000, 2049, 50_000, wire.length - 1]) {
    assert.is(parser.parse(lay(wire, k), PAD.length, PAD.length + k), Parse.NEED_MORE, `prefix ${k}`);
  }
  const buf = lay(wire, wire.length);
  assert.is(parser.parse(buf, PAD.length, PAD.length + wire.length), Parse.REQUEST);
  assert.equal(keysOf(parser, buf), keys);
  // and the parser is still right for a small request afterwards
  const small = Buffer.from('get a b\r\n');
  assert.is(parser.parse(small, 0, small.length), Parse.REQUEST);
  assert.equal(keysOf(parser, small), ['a', 'b']);
});

test.run();
