// The text protocol rows of conformance.test.ts, shared with warming-conformance.test.ts.
import * as assert from 'uvu/assert';
import { hugeCuts as cutsOfHuge, type Mode, type Row } from './differential.js';

const K250 = 'k'.repeat(250);
const K251 = 'k'.repeat(251);
export const S = (key: string, value: string, flags = 0, exptime = 0, noreply = false): string =>
  `set ${key} ${flags} ${exptime} ${Buffer.byteLength(value, 'latin1')}${noreply ? ' noreply' : ''}\r\n${value}\r\n`;
const FORMAT = 'CLIENT_ERROR bad command line format\r\n';

// A too-large value: 2,000,000 bytes over memcached's 1 MiB limit, made of
// commands, so that any byte of it parsed as a request shows in the reply.
const HUGE_VALUE = 'get k\r\n'.repeat(Math.ceil(2_000_000 / 7)).slice(0, 2_000_000);
/** A number value space-padded after a decrement ("5  ", length 3) written as memcached writes it unpadded ("5", length 1). */
function unpadNumbers(reply: string): string {
  return reply.replace(/VALUE (\S+) (\d+) \d+\r\n(\d+) +\r\n/g, (_m, key: string, flags: string, n: string) => `VALUE ${key} ${flags} ${n.length}\r\n${n}\r\n`);
}

const hugeCuts = (data: Buffer): Mode[] => cutsOfHuge(data, 7);

const KEYS100 = Array.from({ length: 100 }, (_, i) => `key${i}`);
// 60 of the 100 keys present
const SETUP100 = KEYS100.filter((_, i) => i % 5 < 3).map((k, i) => S(k, `value-${i}-${'v'.repeat(i % 7)}`, i, 0, true)).join('');

// A pipelined batch of 50 mixed commands over a few keys (seeded, so it is the same every run).
function mixedBatch(): string {
  let seed = 12345;
  const rand = (n: number): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return (seed >>> 8) % n;
  };
  const keys = ['a', 'b', 'c', 'n', 'm'];
  let out = '';
  for (let i = 0; i < 50; i++) {
    const k = keys[rand(keys.length)]!;
    const v = `v${i}`;
    switch (rand(14)) {
      case 0: out += S(k, v); break;
      case 1: out += `add ${k} 0 0 ${v.length}\r\n${v}\r\n`; break;
      case 2: out += `replace ${k} 0 0 ${v.length}\r\n${v}\r\n`; break;
      case 3: out += `append ${k} 0 0 ${v.length}\r\n${v}\r\n`; break;
      case 4: out += `prepend ${k} 0 0 ${v.length}\r\n${v}\r\n`; break;
      case 5: out += `get ${k} ${keys[rand(keys.length)]}\r\n`; break;
      case 6: out += `gets ${k}\r\n`; break;
      case 7: out += `delete ${k}\r\n`; break;
      case 8: out += S(k, String(rand(1000))); break;
      case 9: out += `incr ${k} ${rand(100)}\r\n`; break;
      case 10: out += `decr ${k} ${rand(100)}\r\n`; break;
      case 11: out += `touch ${k} 1000\r\n`; break;
      case 12: out += `gat 1000 ${k} a\r\n`; break;
      default: out += `bogus ${k}\r\n`; break;
    }
  }
  return out;
}

/** checkStats: a check of mcrelay's own `stats` reply. */
export function textRows(checkStats: (reply: string) => void): Row[] {
  return [
  // ---- retrieval and storage
  { name: 'get miss', send: 'get nokey\r\n' },
  { name: 'set, get', send: `${S('k', 'hello')}get k\r\n` },
  { name: 'set with flags and exptime, gets (cas lines up)', send: `${S('k', 'abc', 123, 1000)}gets k\r\n` },
  { name: 'value holding \\r\\n and "END"', send: `${S('k', 'a\r\nEND\r\nb')}get k\r\n` },
  { name: 'empty value', send: `${S('k', '')}get k\r\n` },
  { name: 'binary value', send: `${S('k', '\x00\x01\xff\r\x80')}get k\r\n` },
  { name: 'add', send: `add k 0 0 1\r\na\r\nadd k 0 0 1\r\nb\r\nget k\r\n` },
  { name: 'replace', send: `replace k 0 0 1\r\na\r\n${S('k', 'b')}replace k 0 0 1\r\nc\r\nget k\r\n` },
  { name: 'append, prepend', send: `append k 0 0 1\r\na\r\nprepend k 0 0 1\r\na\r\n${S('k', 'b')}append k 0 0 1\r\nc\r\nprepend k 0 0 1\r\na\r\nget k\r\n` },
  {
    name: 'cas: STORED, EXISTS, NOT_FOUND',
    setup: S('k', 'a', 0, 0, true),
    send: (base) => `cas k 0 0 1 ${base + 1n}\r\nb\r\ncas k 0 0 1 ${base + 1n}\r\nc\r\ncas nokey 0 0 1 1\r\nd\r\ngets k\r\n`,
  },
  { name: 'cas without its token', send: 'cas k 0 0 1\r\na\r\n' },
  { name: 'cas with a bad token', send: 'cas k 0 0 1 abc\r\na\r\ncas k 0 0 1 -1\r\na\r\n' },
  { name: 'multi-get: duplicates and misses in order', setup: S('a', '1', 0, 0, true) + S('b', '22', 0, 0, true) + S('c', '333', 0, 0, true), send: 'get a x b a y c a\r\n' },
  { name: 'multi-gets: duplicates', setup: S('a', '1', 0, 0, true) + S('b', '22', 0, 0, true), send: 'gets a b a nokey\r\n' },
  { name: 'get with extra spaces and leading spaces', setup: S('a', '1', 0, 0, true), send: '  get  a   a \r\n' },
  { name: '250-byte key', send: `${S(K250, 'v')}get ${K250}\r\ndelete ${K250}\r\n` },
  { name: 'bare \\n line ends', send: 'set k 0 0 1\na\r\nget k\nget k k\n' },
  { name: 'set with a 6th token that is not noreply', send: 'set k 0 0 1 xyz\r\na\r\nget k\r\n' },

  // ---- delete
  { name: 'delete: DELETED, NOT_FOUND', send: `${S('k', 'a')}delete k\r\ndelete k\r\nget k\r\n` },
  { name: 'delete legacy "0"', send: `${S('k', 'a')}delete k 0\r\ndelete k 0\r\n` },
  { name: 'delete usage error', send: `${S('k', 'a')}delete k 10\r\ndelete k 0 0\r\nget k\r\n` },
  { name: 'delete without key, too many tokens', send: 'delete\r\ndelete a b c d\r\n' },

  // ---- incr/decr
  { name: 'incr, decr, decr below 0, missing key', send: `${S('n', '10')}incr n 5\r\ndecr n 3\r\ndecr n 100\r\nincr nokey 1\r\nget n\r\n` },
  { name: 'incr wraps at 2^64', send: `${S('n', '18446744073709551615')}incr n 1\r\nget n\r\n` },
  { name: 'incr by 2^64-1', send: `${S('n', '1')}incr n 18446744073709551615\r\n` },
  { name: 'incr non-numeric value', send: `${S('n', 'a')}incr n 1\r\ndecr n 1\r\n` },
  { name: 'incr invalid delta', send: `${S('n', '1')}incr n abc\r\nincr n -1\r\ndecr n 18446744073709551616\r\nincr n 1.5\r\n` },
  { name: 'incr/decr missing arguments', send: 'incr n\r\ndecr\r\nincr n 1 noreply x\r\n' },
  { name: 'incr with a 4th token that is not noreply', send: `${S('n', '1')}incr n 1 x\r\n` },
  {
    name: 'incr with a long numeric value (length change)',
    send: `${S('n', '99')}incr n 1\r\nget n\r\ndecr n 95\r\nget n\r\n`,
    // protocol.txt: a decrement that shortens a number "MAY be space-padded at the
    // end, but this is purely an implementation optimization". memcached pads in
    // place only while no reply holds the item; a one-key get reaches it as mg,
    // whose reply holds the item until the batch it came in is answered.
    normalize: unpadNumbers,
  },

  // ---- touch/gat/gats
  { name: 'touch: TOUCHED, NOT_FOUND, errors', send: `${S('k', 'a')}touch k 100\r\ntouch nokey 100\r\ntouch k abc\r\ntouch k\r\ntouch k 1 2 3\r\n` },
  { name: 'touch -1 expires', send: `${S('k', 'a')}touch k -1\r\nget k\r\n` },
  { name: 'gat, gats', send: (base) => `${S('k', 'a')}gat 100 k nokey\r\ngats 100 k\r\ngets k\r\ncas k 0 0 1 ${base + 1n}\r\nb\r\n` },
  { name: 'gat errors and no keys', send: `${S('k', 'a')}gat abc k\r\ngat 10\r\ngat\r\ngats\r\n` },
  { name: 'gat -1 expires', send: `${S('k', 'a')}gat -1 k\r\nget k\r\n` },

  // ---- flush_all
  { name: 'flush_all', send: `${S('k', 'a')}flush_all\r\nget k\r\n` },
  { name: 'flush_all 0', send: `${S('k', 'a')}flush_all 0\r\nget k\r\n` },
  { name: 'flush_all bad delay, too many tokens', send: 'flush_all abc\r\nflush_all 1 2 3\r\nflush_all noreply 0\r\n' },
  { name: 'flush_all 0 0 (memcached reads the delay from the first argument)', send: `${S('k', 'a')}flush_all 0 0\r\nget k\r\n` },

  // ---- unknown commands
  { name: 'unknown command', send: 'foo\r\nfoo bar baz\r\n' },
  { name: 'upper-case GET', send: 'GET k\r\nSet k 0 0 1\r\n' },
  { name: 'get/gets without keys', send: 'get\r\ngets\r\nget \r\n' },
  { name: 'empty lines', send: '\r\n\n \r\n' },
  { name: 'missing arguments', send: 'set k 0 0\r\nset\r\nadd k\r\ntouch\r\nverbosity\r\n' },
  { name: 'too many arguments', send: 'set k 0 0 1 noreply x\r\na\r\nget k\r\n' },
  { name: 'stats with an unknown argument', send: 'stats nonsense\r\n' },
  { name: 'verbosity with a bad level', send: 'verbosity abc\r\n' },

  // ---- bad key, bad numbers
  { name: '251-byte key: set (data parsed as a command)', send: `set ${K251} 0 0 1\r\na\r\n` },
  { name: '251-byte key: get', send: `get ${K251}\r\n` },
  { name: '251-byte key after a good key in a get', setup: S('a', '1', 0, 0, true), send: `get a ${K251}\r\n` },
  // memcached 1.6 drops the unsent replies of earlier pipelined commands when a get
  // line has a bad key (it resets the connection's response list): a get with a bad
  // key comes first in its row, so that this memcached quirk is not compared.
  { name: '251-byte key: gat', send: `gat 1 ${K251}\r\n` },
  { name: '251-byte key: delete, incr, touch', send: `delete ${K251}\r\nincr ${K251} 1\r\ntouch ${K251} 1\r\nget a\r\n` },
  { name: '251-byte key: delete with a hold time (usage is checked first)', send: `delete ${K251} 10\r\n` },
  { name: 'bad flags', send: 'set k abc 0 1\r\na\r\nset k 1a 0 1\r\na\r\nset k -1 0 1\r\na\r\nget k\r\n' },
  { name: 'bad exptime', send: 'set k 0 abc 1\r\na\r\nset k 0 1.5 1\r\na\r\nget k\r\n' },
  { name: 'bad bytes', send: 'set k 0 0 abc\r\na\r\nset k 0 0 -1\r\na\r\nset k 0 0 -\r\nget k\r\n' },
  { name: 'bytes INT_MAX-1', send: 'set k 0 0 2147483646\r\nget k\r\n' },
  { name: 'flags -0 and + signs, bytes with leading zeros', send: 'set k -0 +5 +1\r\na\r\nset j 0 0 01\r\nb\r\nget k j\r\n' },
  { name: 'flags 2^32 and 2^64-1 (memcached truncates to 32 bits)', send: 'set k 4294967296 0 1\r\na\r\nset j 18446744073709551615 0 1\r\nb\r\nget k j\r\n' },
  { name: 'flags 2^64 (out of range: refused, data parsed as a command)', send: 'set k 18446744073709551616 0 1\r\na\r\nget k\r\n' },
  { name: 'exptime -2^63-1 (out of range: refused, data parsed as a command)', send: 'set k 0 -9223372036854775809 1\r\na\r\nget k\r\n' },
  { name: 'exptime -2^63 (LONG_MIN: in range, accepted)', send: 'set k 0 -9223372036854775808 1\r\na\r\nget k\r\n' },
  { name: 'exptime 2^31 (accepted by memcached 1.6)', send: 'set k 0 2147483648 1\r\na\r\nget k\r\n' },
  { name: 'exptime 2^32 (accepted by memcached 1.6)', send: 'set k 0 4294967296 1\r\na\r\nget k\r\n' },
  { name: 'touch exptime 2^31 (accepted by memcached 1.6)', send: `${S('k', 'a')}touch k 2147483648\r\n` },
  { name: 'bytes 2^32+1 (memcached truncates to 1)', send: 'set k 0 0 4294967297\r\na\r\nget k\r\n' },
  { name: 'a tab after the byte count (strtol stops at any space)', send: 'set k 0 0 1\t\r\na\r\nget k\r\n' },
  { name: 'incr delta -(2^64-1) (strtoull wraps it to 1)', send: `${S('n', '5')}incr n -18446744073709551615\r\n` },

  // ---- bad data chunk
  { name: 'bad data chunk: remainder parsed as commands', send: 'set k 0 0 3\r\nabcd\r\nget k\r\n' },
  { name: 'data ended by a bare \\n', send: 'set k 0 0 1\r\na\nget k\r\n' },
  { name: 'bad data chunk on append', send: `${S('k', 'a')}append k 0 0 1\r\nbc\r\nget k\r\n` },

  // ---- too large
  { name: 'object too large: swallowed, connection kept', send: `set big 0 0 2000000\r\n${HUGE_VALUE}\r\nget big\r\n`, modes: hugeCuts },
  { name: 'object too large replaces nothing: an old value is removed', send: `${S('big', 'old')}set big 0 0 2000000\r\n${HUGE_VALUE}\r\nget big\r\n`, modes: hugeCuts },
  { name: 'object too large, noreply', send: `set big 0 0 2000000 noreply\r\n${HUGE_VALUE}\r\nget big\r\n`, modes: hugeCuts },

  // ---- noreply
  { name: 'set noreply', send: 'set k 0 0 1 noreply\r\na\r\nget k\r\n' },
  { name: 'add noreply', send: 'add k 0 0 1 noreply\r\na\r\nadd k 0 0 1 noreply\r\nb\r\nget k\r\n' },
  { name: 'replace noreply', send: 'replace k 0 0 1 noreply\r\nz\r\nset k 0 0 1 noreply\r\na\r\nreplace k 0 0 1 noreply\r\nb\r\nget k\r\n' },
  { name: 'append/prepend noreply', send: 'set k 0 0 1 noreply\r\na\r\nappend k 0 0 1 noreply\r\nb\r\nprepend k 0 0 1 noreply\r\nc\r\nget k\r\n' },
  { name: 'cas noreply', setup: S('k', 'a', 0, 0, true), send: (base) => `cas k 0 0 1 ${base + 1n} noreply\r\nb\r\ncas k 0 0 1 ${base + 1n} noreply\r\nc\r\ngets k\r\n` },
  { name: 'delete noreply', send: 'set k 0 0 1 noreply\r\na\r\ndelete k noreply\r\ndelete k noreply\r\nget k\r\n' },
  { name: 'delete 0 noreply', send: 'set k 0 0 1 noreply\r\na\r\ndelete k 0 noreply\r\nget k\r\n' },
  { name: 'incr/decr noreply', send: 'set n 0 0 1 noreply\r\n5\r\nincr n 10 noreply\r\ndecr n 3 noreply\r\nincr nokey 1 noreply\r\nget n\r\n' },
  { name: 'touch noreply', send: 'set k 0 0 1 noreply\r\na\r\ntouch k -1 noreply\r\ntouch nokey 1 noreply\r\nget k\r\n' },
  { name: 'flush_all noreply', send: 'set k 0 0 1 noreply\r\na\r\nflush_all noreply\r\nget k\r\n' },
  { name: 'flush_all 0 noreply', send: 'set k 0 0 1 noreply\r\na\r\nflush_all 0 noreply\r\nget k\r\n' },
  { name: 'verbosity noreply', send: 'verbosity 0 noreply\r\nverbosity noreply\r\nget k\r\n' },
  { name: 'noreply errors are silent: bad delete hold time', send: 'delete k 10 noreply\r\nget k\r\n' },
  { name: 'noreply errors are silent: bad delta, bad exptime', send: 'incr n abc noreply\r\ntouch k abc noreply\r\nget k\r\n' },
  { name: 'noreply errors are silent: bad data chunk', send: 'set k 0 0 1 noreply\r\nab\r\nget k\r\n' },
  { name: 'noreply errors are silent: bad flags', send: 'set k abc 0 1 noreply\r\na\r\nget k\r\n' },
  { name: 'noreply errors are silent: bad byte count', send: 'set k 0 0 noreply\r\nget k\r\n' },
  { name: 'noreply errors are silent: 251-byte key on set', send: `set ${K251} 0 0 1 noreply\r\na\r\nget k\r\n` },
  { name: 'noreply errors are silent: 251-byte key on delete, incr, touch', send: `delete ${K251} noreply\r\nincr ${K251} 1 noreply\r\ntouch ${K251} 1 noreply\r\nget k\r\n` },
  { name: 'noreply is not a retrieval option', setup: S('noreply', 'x', 0, 0, true), send: 'get noreply\r\n' },

  // ---- larger pipelines
  { name: '100-key get: 60 hits, 40 misses, in order', setup: SETUP100, send: `get ${KEYS100.join(' ')}\r\n` },
  { name: '100-key gets', setup: SETUP100, send: `gets ${KEYS100.join(' ')}\r\n` },
  { name: 'a pipelined batch of 50 mixed commands', send: mixedBatch() },

  // ---- long lines
  { name: 'a 2 KiB+ get line', setup: SETUP100, send: `get ${Array.from({ length: 400 }, (_, i) => `key${i % 100}`).join(' ')}\r\n` },
  { name: 'a 2 KiB+ get line after leading spaces', setup: SETUP100, send: `  get ${Array.from({ length: 400 }, (_, i) => `key${i % 100}`).join(' ')}\r\n` },

  // ---- quit
  { name: 'quit closes after the earlier replies', send: `${S('k', 'a')}get k\r\nquit\r\nget k\r\n`, frame: 'close' },
  { name: 'quit alone', send: 'quit\r\n', frame: 'close' },
  { name: 'quit with arguments', send: 'quit now\r\n', frame: 'close' },

  // ---- version: the server's (issue 14; the prober asked it at start)
  { name: 'version is memcached\'s', send: 'version\r\n' },
  { name: 'version with arguments (1.6 accepts them)', send: 'version foo bar\r\n' },
  { name: 'version in a pipeline keeps its place', send: `get nokey\r\nversion\r\n${S('k', 'a')}` },

  // ---- deliberate differences: asserted on mcrelay alone
  { name: 'verbosity 1 is answered OK', send: 'verbosity 1\r\n', expect: 'OK\r\n' },
  // memcached closes without a word
  { name: 'an unterminated 3000-byte set line: an error line, then the connection closes', send: `set ${'x'.repeat(3000)}`, frame: 'close', expect: 'CLIENT_ERROR request too long\r\n<closed>' },
  { name: 'stats is mcrelay\'s own', send: 'stats\r\n', expect: checkStats },
  { name: 'stats in a pipeline keeps its place', send: `${S('k', 'a')}stats\r\nget nokey\r\n`, expect: (r) => {
    assert.ok(r.startsWith('STORED\r\nSTAT pid '), r);
    assert.ok(r.endsWith('END\r\nEND\r\n'), r);
  } },
  { name: 'control character in a get key is refused', send: 'get a\x01b\r\n', expect: FORMAT },
  { name: 'control character in the second get key is refused', send: 'get a b\x7f\r\n', expect: FORMAT },
  { name: 'tab in a get key is refused', send: 'get a\tb\r\n', expect: FORMAT },
  { name: 'control character in a set key is refused (data parsed as a command)', send: 'set a\x01b 0 0 1\r\nx\r\nget a\x01b\r\n', expect: `${FORMAT}ERROR\r\n${FORMAT}` },
  { name: 'control character in a delete/incr/touch key is refused', send: 'delete a\x1fb\r\nincr a\x01 1\r\ntouch \x1b 1\r\n', expect: FORMAT.repeat(3) },
];
}
