// Client request streams for the fuzzers, as latin1 strings: valid pipelines of
// every command mcrelay takes, the same mutated (bytes flipped, inserted, cut,
// tokens replaced by boundary values), and random bytes. Deterministic for a
// given Rng.
import type { Rng } from './rng.js';

export const Kind = { VALID: 0, MUTATED: 1, RANDOM: 2 } as const;
export type Kind = (typeof Kind)[keyof typeof Kind];
export const KIND_NAMES = ['valid', 'mutated', 'random'] as const;

export interface GenOptions {
  /** --max-item-size the parser under test was built with */
  maxItemSize: number;
  /**
   * For the differential run against real servers: no lines or values so large
   * that the reply depends on read boundaries or takes long to move, no
   * commands that change server-wide state (flush_all with a delay).
   */
  differential?: boolean;
}

const KEYS = ['a', 'b', 'k', 'key', 'foo', 'k:1', 'k:2', 'user:42', 'x'.repeat(40), '\xe9t\xe9', 'noreply', 'END', 'VALUE'];
const K250 = 'k'.repeat(250);
const K251 = 'k'.repeat(251);

/** tokens that sit on the edges of memcached's number and key rules */
export const EDGE_TOKENS = [
  '', '0', '-0', '+0', '1', '-1', '+1', '01', '007', '2147483645', '2147483646', '2147483647', '2147483648',
  '-2147483648', '-2147483649', '4294967295', '4294967296', '4294967297', '9223372036854775807',
  '9223372036854775808', '-9223372036854775808', '-9223372036854775809', '18446744073709551615',
  '18446744073709551616', '-18446744073709551615', '99999999999999999999999', '1a', 'a1', '0x10', '1.5',
  '1e3', ' 1', '1\t', '\t1', '1\r', '1\v', '1\0', '\x001', 'noreply', 'noreplyx', 'NOREPLY', 'noreply\0', '-',
  '+', K250, K251, 'k\x01', 'k\x7f', 'k\r', 'k\0', 'HTTP/1.1', 'END', '\xff',
];

const UNKNOWN_LINES = ['foo bar', 'GET a', 'GET / HTTP/1.1', 'POST /x HTTP/1.0', 'HTTP/1.1', 'x', 'ge a', 'getx a',
  'sets a', 'mn', 'mg a v', 'ms a 1', 'md a', 'ma a', 'me a', 'bget a', 'shutdown', 'slabs automove 1',
  'cache_memlimit 100', 'lru_crawler metadump all', 'watch', 'quitx', 'version1', 'stats items', 'stats', 'version', 'verbosity 1'];

function key(rng: Rng, opts: GenOptions): string {
  const r = rng.int(40);
  if (r === 0) return K250;
  if (r === 1 && !opts.differential) return K251;
  if (r === 2) return `k${rng.int(1_000_000)}`;
  return rng.pick(KEYS);
}

function bytesOf(rng: Rng, n: number): string {
  const mode = rng.int(4);
  let s = '';
  for (let i = 0; i < n; i++) {
    if (mode === 0) s += String.fromCharCode(97 + rng.int(26));
    else if (mode === 1) s += String.fromCharCode(rng.int(256));
    else if (mode === 2) s += rng.pick(['\r\n', 'END\r\n', 'a', ' ', '\r', '\n', 'VALUE a 0 1\r\n', 'STORED\r\n']);
    else s += String.fromCharCode(32 + rng.int(95));
  }
  return mode === 2 ? s.slice(0, n).padEnd(n, 'z') : s;
}

function valueLength(rng: Rng, opts: GenOptions): number {
  const r = rng.int(30);
  if (r === 0) return 0;
  if (r === 1) return opts.maxItemSize; // the largest accepted
  if (r === 2 && !opts.differential) return opts.maxItemSize + 1 + rng.int(100); // refused, swallowed
  if (r === 3) return rng.range(100, 2000);
  return rng.range(1, 20);
}

const SP = (rng: Rng): string => (rng.int(12) === 0 ? '  ' : ' ');
const EOL = (rng: Rng): string => (rng.int(15) === 0 ? '\n' : '\r\n');

/** One well-formed request. */
export function validRequest(rng: Rng, opts: GenOptions): string {
  const noreply = rng.int(5) === 0 ? `${SP(rng)}noreply` : '';
  const lead = rng.int(30) === 0 ? ' ' : '';
  const w = rng.weighted([6, 1, 1, 1, 6, 1, 1, 1, 1, 2, 2, 2, 1, 1, 0.3, 0.3, 0.3, 0.3, 2, 0.5]);
  switch (w) {
    case 0: case 1: { // get / gets
      const n = rng.int(25) === 0 ? rng.range(20, opts.differential ? 60 : 400) : rng.range(1, 5);
      const ks = Array.from({ length: n }, () => key(rng, opts));
      return `${lead}${w === 0 ? 'get' : 'gets'} ${ks.join(SP(rng))}${rng.int(10) === 0 ? ' ' : ''}${EOL(rng)}`;
    }
    case 2: case 3: { // gat / gats
      const ks = Array.from({ length: rng.range(0, 3) }, () => key(rng, opts));
      const exp = rng.pick(['0', '100', '-1', '3600']);
      return `${lead}${w === 2 ? 'gat' : 'gats'} ${exp}${ks.map((k) => ` ${k}`).join('')}${EOL(rng)}`;
    }
    case 4: case 5: case 6: case 7: case 8: case 9: { // storage
      const cmd = ['set', 'add', 'replace', 'append', 'prepend', 'cas'][w - 4]!;
      const n = valueLength(rng, opts);
      const flags = rng.pick(['0', '0', '1', '42', '4294967295']);
      const exp = rng.pick(['0', '0', '100', '-1']);
      const cas = cmd === 'cas' ? ` ${rng.range(1, 60)}` : '';
      const data = n > opts.maxItemSize ? 'v'.repeat(n) : bytesOf(rng, n);
      return `${lead}${cmd} ${key(rng, opts)} ${flags} ${exp} ${n}${cas}${noreply}${EOL(rng)}${data}\r\n`;
    }
    case 10: { // delete
      const legacy = rng.int(6) === 0 ? ' 0' : '';
      return `${lead}delete ${key(rng, opts)}${legacy}${noreply}${EOL(rng)}`;
    }
    case 11: { // incr / decr
      const delta = rng.pick(['1', '5', '100', '18446744073709551615', '0']);
      return `${lead}${rng.chance(0.5) ? 'incr' : 'decr'} ${key(rng, opts)} ${delta}${noreply}${EOL(rng)}`;
    }
    case 12: // touch
      return `${lead}touch ${key(rng, opts)} ${rng.pick(['0', '10', '-1'])}${noreply}${EOL(rng)}`;
    case 13: { // numbers as values, for incr
      const v = String(rng.int(1000));
      return `set ${key(rng, opts)} 0 0 ${v.length}\r\n${v}\r\n`;
    }
    case 14:
      return opts.differential ? `flush_all${rng.chance(0.5) ? ' 0' : ''}${noreply}\r\n` : `flush_all${rng.chance(0.5) ? ` ${rng.pick(['0', '10', '-1'])}` : ''}${noreply}${EOL(rng)}`;
    case 15:
      return `version${EOL(rng)}`;
    case 16:
      return `verbosity ${rng.pick(['0', '1', 'x'])}${noreply}${EOL(rng)}`;
    case 17:
      return `stats${rng.chance(0.3) ? ' servers' : ''}${EOL(rng)}`;
    case 18:
      return metaRequest(rng, opts);
    default:
      return `${rng.pick(UNKNOWN_LINES)}${EOL(rng)}`;
  }
}

const META_FLAGS = ['v', 'f', 't', 'c', 'k', 's', 'h', 'l', 'O123', 'T30', 'N30', 'q', 'F5', 'C1', 'MS', 'ME', 'D2', 'J3', 'I', 'b'];

/** A meta command: mg/ms/md/ma/me/mn with some flags, now and then more flags than memcached takes. */
function metaRequest(rng: Rng, opts: GenOptions): string {
  const cmd = rng.pick(['mg', 'mg', 'ms', 'ms', 'md', 'ma', 'mn', 'me']);
  if (cmd === 'mn') return `mn${EOL(rng)}`;
  const many = rng.int(15) === 0;
  const n = many ? rng.range(15, 24) : rng.range(0, 3);
  const flags: string[] = [];
  for (let i = 0; i < n; i++) flags.push(rng.pick(META_FLAGS.filter((f) => opts.differential !== true || f !== 'b')));
  const k = key(rng, opts);
  if (cmd !== 'ms') return `${cmd} ${k}${flags.map((f) => ` ${f}`).join('')}${EOL(rng)}`;
  const len = valueLength(rng, opts);
  const data = len > opts.maxItemSize ? 'v'.repeat(len) : bytesOf(rng, len);
  return `ms ${k} ${len}${flags.map((f) => ` ${f}`).join('')}${EOL(rng)}${data}\r\n`;
}

const INSERTS = [' ', '  ', '\r', '\n', '\r\n', '\0', '\t', '-', '0', '9', 'x', '\x7f', '\xff', 'noreply', ' noreply', '\x01'];

/** Applies one to three random edits to a stream. */
export function mutate(rng: Rng, s: string): string {
  const edits = rng.range(1, 3);
  for (let e = 0; e < edits; e++) {
    const at = s.length === 0 ? 0 : rng.int(s.length + 1);
    switch (rng.int(9)) {
      case 0: // flip one byte
        if (s.length > 0) { const i = Math.min(at, s.length - 1); s = s.slice(0, i) + String.fromCharCode(rng.int(256)) + s.slice(i + 1); }
        break;
      case 1: case 2: // insert something meaningful
        s = s.slice(0, at) + rng.pick(INSERTS) + s.slice(at);
        break;
      case 3: // delete a range
        s = s.slice(0, at) + s.slice(Math.min(s.length, at + rng.range(1, 8)));
        break;
      case 4: { // duplicate a range
        const len = rng.range(1, 40);
        s = s.slice(0, at) + s.slice(at, at + len) + s.slice(at);
        break;
      }
      case 5: case 6: { // replace a token with an edge value
        const tokens = [...s.matchAll(/[^ \r\n]+/g)];
        if (tokens.length === 0) break;
        const t = rng.pick(tokens);
        s = s.slice(0, t.index) + rng.pick(EDGE_TOKENS) + s.slice(t.index + t[0].length);
        break;
      }
      case 7: // truncate
        s = s.slice(0, at);
        break;
      default: { // swap CR and LF, or drop a CR
        const i = s.indexOf('\r', at);
        if (i >= 0) s = rng.chance(0.5) ? s.slice(0, i) + s.slice(i + 1) : `${s.slice(0, i)}\n\r${s.slice(i + 2)}`;
        break;
      }
    }
  }
  return s;
}

const ALPHABET = ['get', 'gets', 'gat', 'set', 'add', 'cas', 'delete', 'incr', 'touch', 'noreply', ' ', ' ', ' ',
  '\r\n', '\r\n', '\n', '\r', '0', '1', '5', '-1', '2147483647', 'k', 'key', 'a', 'END', '\0', '\t'];

/** Random bytes: uniformly random, or random sequences of protocol words. */
export function randomStream(rng: Rng, opts: GenOptions): string {
  const n = rng.range(0, 200);
  let s = '';
  if (rng.chance(0.4)) {
    for (let i = 0; i < n; i++) s += String.fromCharCode(rng.int(256));
  } else {
    while (s.length < n) s += rng.int(200) === 0 ? 'HTTP/1.1' : rng.pick(ALPHABET);
  }
  if (opts.differential && !s.endsWith('\n')) s += '\r\n';
  return s;
}

/** One fuzz input: a stream of 1..6 requests, of the given kind. */
export function requestStream(rng: Rng, kind: Kind, opts: GenOptions): string {
  if (kind === Kind.RANDOM) return randomStream(rng, opts);
  const n = rng.range(1, 6);
  let s = '';
  for (let i = 0; i < n; i++) s += validRequest(rng, opts);
  return kind === Kind.MUTATED ? mutate(rng, s) : s;
}

export function pickKind(rng: Rng): Kind {
  return rng.weighted([3, 5, 2]) as Kind;
}
