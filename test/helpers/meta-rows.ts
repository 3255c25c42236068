// The meta protocol rows of meta-conformance.test.ts, shared with warming-conformance.test.ts.
import { hugeCuts as cutsOfHuge, type Mode, type Row } from './differential.js';

const K250 = 'k'.repeat(250);
const K251 = 'k'.repeat(251);
export const S = (key: string, value: string, flags = 0, exptime = 0): string =>
  `set ${key} ${flags} ${exptime} ${Buffer.byteLength(value, 'latin1')} noreply\r\n${value}\r\n`;
export const b64 = (s: string): string => Buffer.from(s, 'latin1').toString('base64');

/** Remaining TTLs and seconds-since figures follow each server's clock tick (see the header). */
const ttlNorm = (r: string): string => r
  .replace(/ t(\d+)/g, (_m, n: string) => ` t~${Math.round(Number(n) / 10)}`)
  .replace(/ l(\d+)/g, ' l~')
  // me writes exp= as current time minus expiry: negative while the item lives
  .replace(/exp=(-?\d+)/g, (_m, n: string) => `exp=~${Math.round(Number(n) / 10)}`)
  .replace(/la=\d+/g, 'la=~');

// A too-large value: 2,000,000 bytes over memcached's 1 MiB limit, made of
// commands, so that any byte of it parsed as a request shows in the reply.
export const HUGE_VALUE = 'mg k v\r\n'.repeat(Math.ceil(2_000_000 / 8)).slice(0, 2_000_000);
const hugeCuts = (data: Buffer): Mode[] => cutsOfHuge(data, 8);

const FORMAT = 'CLIENT_ERROR bad command line format\r\n';

export const META_ROWS: Row[] = [
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

