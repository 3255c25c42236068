// The text-protocol command table: numeric ids and the byte-level lookup from a
// command token to its id (no string conversion).

import * as wire from './wire.js';

export const Cmd = {
  UNKNOWN: 0,
  GET: 1,
  GETS: 2,
  GAT: 3,
  GATS: 4,
  SET: 5,
  ADD: 6,
  REPLACE: 7,
  APPEND: 8,
  PREPEND: 9,
  CAS: 10,
  DELETE: 11,
  INCR: 12,
  DECR: 13,
  TOUCH: 14,
  VERSION: 15,
  VERBOSITY: 16,
  QUIT: 17,
  FLUSH_ALL: 18,
  STATS: 19,
  // meta commands
  MG: 20,
  MS: 21,
  MD: 22,
  MA: 23,
  MN: 24,
  ME: 25,
} as const;

/** Command names as sent to a backend, indexed by id ("get", "set", ...). */
export const CMD_NAMES: readonly string[] = [
  '', 'get', 'gets', 'gat', 'gats', 'set', 'add', 'replace', 'append', 'prepend', 'cas',
  'delete', 'incr', 'decr', 'touch', 'version', 'verbosity', 'quit', 'flush_all', 'stats',
  'mg', 'ms', 'md', 'ma', 'mn', 'me',
];
export const CMD_NAME_BYTES: readonly Buffer[] = CMD_NAMES.map((n) => Buffer.from(n, 'latin1'));

// Lookup by length, then by bytes: command tokens are short, so comparing a few
// bytes beats hashing them.
const byLength: Array<Array<[Buffer, number]>> = [];
for (let id = 1; id < CMD_NAMES.length; id++) {
  const b = CMD_NAME_BYTES[id]!;
  (byLength[b.length] ??= []).push([b, id]);
}

/** memcached commands that act on one server: refused, with a reply saying so (wire.notPassedOn). */
const REFUSED = ['watch', 'lru_crawler', 'lru', 'slabs', 'shutdown', 'cache_memlimit', 'extstore', 'misbehave', 'debugtime']
  .map((n) => [Buffer.from(n, 'latin1'), wire.notPassedOn(n)] as const);

/** The reply to an unknown command token that is one of those (null for the rest). */
export function refusal(buf: Uint8Array, start: number, end: number): Buffer | null {
  outer: for (const [name, reply] of REFUSED) {
    if (name.length !== end - start) continue;
    for (let i = 0; i < name.length; i++) if (buf[start + i] !== name[i]) continue outer;
    return reply;
  }
  return null;
}

export function lookupCommand(buf: Uint8Array, start: number, end: number): number {
  const candidates = byLength[end - start];
  if (candidates === undefined) return Cmd.UNKNOWN;
  outer: for (let c = 0; c < candidates.length; c++) {
    const [name, id] = candidates[c]!;
    for (let i = 0; i < name.length; i++) {
      if (buf[start + i] !== name[i]) continue outer;
    }
    return id;
  }
  return Cmd.UNKNOWN;
}
