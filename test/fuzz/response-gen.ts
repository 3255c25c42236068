// Backend reply streams for the response-parser fuzzer: what memcached sends for
// a pipeline of requests (each reply tagged with the kind of request it answers),
// that stream mutated, or random bytes under random kinds. A valid stream comes
// with the units the parser must cut it into.
import { Expect } from '../../src/protocol/response-parser.js';
import type { Rng } from './rng.js';
import { mutate } from './request-gen.js';

/** One reply unit as the parser reports it: VALUE (with its key), END, LINE, or BAD. */
export interface Unit { t: 'VALUE' | 'END' | 'LINE'; text: string; key?: string }

export interface ReplyStream {
  /** latin1 */
  text: string;
  /** the kind of request each reply answers, in order */
  kinds: number[];
  /** for a valid stream: every unit, in order; null when not known */
  units: Unit[] | null;
}

const KEYS = ['a', 'k', 'foo', 'user:42', 'k'.repeat(250), '\xe9t\xe9', 'END', 'VALUE'];
const LINES = ['STORED', 'NOT_STORED', 'EXISTS', 'NOT_FOUND', 'DELETED', 'TOUCHED', 'OK', '0', '42',
  '18446744073709551615', 'VERSION 1.6.18', 'ERROR', 'CLIENT_ERROR bad data chunk', 'CLIENT_ERROR bad command line format',
  'SERVER_ERROR object too large for cache', 'SERVER_ERROR out of memory storing object',
  'CLIENT_ERROR cannot increment or decrement non-numeric value'];
const ERRORS = ['ERROR', 'CLIENT_ERROR bad command line format', 'SERVER_ERROR out of memory writing get response'];
const META_LINES = ['HD', 'HD c123', 'EN', 'NF', 'NS', 'EX', 'MN', 'HD t-1 f0', 'CLIENT_ERROR bad command line format',
  'CLIENT_ERROR invalid flag', 'SERVER_ERROR out of memory'];

function data(rng: Rng): string {
  const n = rng.weighted([3, 10, 3, 1]);
  const len = n === 0 ? 0 : n === 1 ? rng.range(1, 30) : n === 2 ? rng.range(100, 3000) : rng.range(9000, 70000);
  let s = '';
  const mode = rng.int(3);
  // large values: a random pattern repeated (their framing is what matters)
  const piece = Math.min(len, 256);
  for (let i = 0; i < piece; i++) {
    if (mode === 0) s += String.fromCharCode(97 + rng.int(26));
    else if (mode === 1) s += String.fromCharCode(rng.int(256));
    else s += rng.pick(['\r', '\n', 'E', 'N', 'D', ' ', 'x']);
  }
  if (len > piece) s = s.repeat(Math.ceil(len / piece)).slice(0, len);
  if (mode === 2 && len >= 7 && rng.chance(0.5)) s = `\r\nEND\r\n${s.slice(7)}`;
  return s;
}

function valueBlock(rng: Rng, cas: boolean): Unit {
  const key = rng.pick(KEYS);
  const d = data(rng);
  const flags = rng.pick(['0', '1', '4294967295']);
  const text = `VALUE ${key} ${flags} ${d.length}${cas ? ` ${rng.range(1, 1 << 30)}` : ''}\r\n${d}\r\n`;
  return { t: 'VALUE', text, key };
}

/** A valid stream of 1..8 replies. */
export function validReplies(rng: Rng): ReplyStream {
  const n = rng.range(1, 8);
  const kinds: number[] = [];
  const units: Unit[] = [];
  for (let i = 0; i < n; i++) {
    const kind = rng.pick([Expect.LINE, Expect.RETRIEVAL, Expect.RETRIEVAL, Expect.META]);
    kinds.push(kind);
    if (kind === Expect.LINE) {
      units.push({ t: 'LINE', text: `${rng.pick(LINES)}\r\n` });
    } else if (kind === Expect.RETRIEVAL) {
      if (rng.int(12) === 0) {
        units.push({ t: 'LINE', text: `${rng.pick(ERRORS)}\r\n` });
        continue;
      }
      const values = rng.weighted([3, 5, 2, 1]);
      const cas = rng.chance(0.3);
      for (let v = 0; v < values * (values === 3 ? 3 : 1); v++) units.push(valueBlock(rng, cas));
      if (rng.int(20) === 0) units.push({ t: 'LINE', text: `${ERRORS[2]}\r\n` });
      else units.push({ t: 'END', text: 'END\r\n' });
    } else if (rng.chance(0.4)) {
      const d = data(rng);
      units.push({ t: 'LINE', text: `VA ${d.length}${rng.chance(0.5) ? ' f0 c5' : ''}\r\n${d}\r\n` });
    } else {
      units.push({ t: 'LINE', text: `${rng.pick(META_LINES)}\r\n` });
    }
  }
  return { text: units.map((u) => u.text).join(''), kinds, units };
}

export function mutatedReplies(rng: Rng): ReplyStream {
  const v = validReplies(rng);
  // keep mutations near the front of long values, where the framing is
  return { text: mutate(rng, v.text.length > 4000 ? v.text.slice(0, 4000) : v.text), kinds: v.kinds, units: null };
}

const ALPHABET = ['VALUE ', 'END\r\n', 'VA ', 'HD', 'STORED', ' ', '0', '1', '5', '\r\n', '\r', '\n', 'k', 'ERROR',
  'CLIENT_ERROR x', 'SERVER_ERROR', '99999999999', '-1', '\0'];

export function randomReplies(rng: Rng): ReplyStream {
  const n = rng.range(0, 300);
  let s = '';
  if (rng.chance(0.4)) for (let i = 0; i < n; i++) s += String.fromCharCode(rng.int(256));
  else while (s.length < n) s += rng.pick(ALPHABET);
  const kinds = Array.from({ length: rng.range(1, 10) }, () => rng.pick([Expect.LINE, Expect.RETRIEVAL, Expect.META]));
  return { text: s, kinds, units: null };
}

export function replyStream(rng: Rng, kind: number): ReplyStream {
  return kind === 0 ? validReplies(rng) : kind === 1 ? mutatedReplies(rng) : randomReplies(rng);
}
