// A reference model of how memcached 1.6 reads the text protocol, written for
// clarity, not speed: strings, BigInt, one branch per rule of proto_text.c
// (try_read_command_ascii, tokenize_command, process_*_command, conn_nread,
// conn_swallow) and util.c (safe_strtoul / safe_strtol / safe_strtoull).
//
// It is independent of src/protocol/request-parser.ts and is the fuzzers'
// oracle: for any byte stream, delivered in given pieces, it says what each
// request is (forwarded to a backend) or which reply memcached gives (or that it
// closes the connection).
//
// Two modes:
//   memcached  what memcached itself does, the reference of the differential
//              fuzzer against a real server;
//   proxy      what mcrelay is meant to do: memcached's rules plus its documented
//              differences (keys may not hold control characters; commands it
//              does not implement are unknown, ERROR; get lines are capped at
//              8 MiB; a value longer than --max-item-size is refused by the proxy).
//
// In both modes a line is a C string, as memcached reads it (tokenize_command
// and strtol work on it after strlen): it ends at its first NUL byte.
//
// A stream is a latin1 string (one char per byte).

export const M = {
  UNKNOWN: 0, GET: 1, GETS: 2, GAT: 3, GATS: 4, SET: 5, ADD: 6, REPLACE: 7, APPEND: 8, PREPEND: 9, CAS: 10,
  DELETE: 11, INCR: 12, DECR: 13, TOUCH: 14, VERSION: 15, VERBOSITY: 16, QUIT: 17, FLUSH_ALL: 18, STATS: 19,
  MG: 20, MS: 21, MD: 22, MA: 23, MN: 24, ME: 25,
} as const;

const NAMES: Record<string, number> = {
  get: M.GET, gets: M.GETS, gat: M.GAT, gats: M.GATS, set: M.SET, add: M.ADD, replace: M.REPLACE,
  append: M.APPEND, prepend: M.PREPEND, cas: M.CAS, delete: M.DELETE, incr: M.INCR, decr: M.DECR,
  touch: M.TOUCH, version: M.VERSION, verbosity: M.VERBOSITY, quit: M.QUIT, flush_all: M.FLUSH_ALL, stats: M.STATS,
  mg: M.MG, ms: M.MS, md: M.MD, ma: M.MA, mn: M.MN, me: M.ME,
};

/** memcached commands mcrelay does not implement (meta commands, admin commands). */
const MEMCACHED_ONLY = new Set(['shutdown', 'slabs', 'cache_memlimit', 'debugtime', 'bget', 'lru_crawler', 'watch',
  'lru', 'misbehave', 'extstore', 'refresh_certs']);

/** Those mcrelay refuses with a CLIENT_ERROR of its own (src/protocol/commands.ts). */
const PROXY_REFUSED = new Set(['watch', 'lru_crawler', 'lru', 'slabs', 'shutdown', 'cache_memlimit', 'extstore', 'misbehave', 'debugtime']);
const refusedReply = (name: string): string => `CLIENT_ERROR ${name} is not passed on by mcrelay: it acts on one server, send it to that server directly\r\n`;
export const PROXY_REFUSED_REPLIES: readonly string[] = [...PROXY_REFUSED].map(refusedReply);

export const REPLIES = {
  ERROR: 'ERROR\r\n',
  FORMAT: 'CLIENT_ERROR bad command line format\r\n',
  DATA_CHUNK: 'CLIENT_ERROR bad data chunk\r\n',
  DELTA: 'CLIENT_ERROR invalid numeric delta argument\r\n',
  EXPTIME: 'CLIENT_ERROR invalid exptime argument\r\n',
  DELETE_USAGE: 'CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n',
  TOO_LARGE: 'SERVER_ERROR object too large for cache\r\n',
  META_TOO_MANY: 'CLIENT_ERROR options flags too long\r\n',
  /** process_mget_command words it its own way */
  META_TOO_MANY_MG: 'CLIENT_ERROR options flags are too long\r\n',
} as const;

export const LINE_MAX = 2048;
export const PROXY_GET_LINE_MAX = 8 * 1024 * 1024;
const KEY_MAX = 250;
const MAX_TOKENS = 24;
/**
 * MFLAG_MAX_OPT_LENGTH: mg, ms, md and ma refuse a line of more tokens (counting
 * the terminal one; so 20 or more real tokens) without reading any data block;
 * me takes no flags and has no such limit. Checked after the key's length
 * (memcached 1.6.18: a 251-byte key on such a line is "bad command line format").
 */
const META_MAX_TOKENS = 20;

export type Outcome =
  | { t: 'REQUEST'; cmd: number; keys: string[]; noreply: boolean; data: string | null; arg: string | null; line: string }
  | { t: 'REPLY'; cmd: number; reply: string; noreply: boolean }
  | { t: 'CLOSE' }
  /** memcached mode: a command memcached knows and mcrelay does not */
  | { t: 'UNSUPPORTED'; line: string };

export interface ModelOptions {
  mode: 'memcached' | 'proxy';
  /** proxy mode: --max-item-size; memcached mode: its -I (the limit is approximate there, see tooLarge) */
  maxItemSize: number;
}

/** How the stream ended: idle, or waiting for more bytes of a line, a value, or a refused value. */
export type Pending =
  | { t: 'idle' }
  | { t: 'line'; have: number }
  | { t: 'data'; missing: number }
  | { t: 'swallow'; missing: number }
  | { t: 'closed' };

export interface ModelResult {
  outcomes: Outcome[];
  pending: Pending;
  /** memcached mode: things whose reply from a real server depends on timing (see notes) */
  unstable: string[];
}

// ------------------------------------------------------------------ numbers (util.c)

const isCSpace = (c: string | undefined): boolean => c === ' ' || c === '\t' || c === '\n' || c === '\v' || c === '\f' || c === '\r';
const U64 = (1n << 64n);

/** strtoul/strtoull/strtol's scan: [value, negative, index after digits] or null when no digits (str == endptr). */
function scanNumber(tok: string): { mag: bigint; neg: boolean; end: number } | null {
  let i = 0;
  while (i < tok.length && isCSpace(tok[i])) i++;
  let neg = false;
  if (tok[i] === '+' || tok[i] === '-') { neg = tok[i] === '-'; i++; }
  const s = i;
  while (i < tok.length && tok[i]! >= '0' && tok[i]! <= '9') i++;
  if (i === s) return null;
  return { mag: BigInt(tok.slice(s, i)), neg, end: i };
}

/** after the digits: white space or the end of the token (memcached: or a NUL, which ends its C string) */
function endsWell(tok: string, end: number): boolean {
  return end === tok.length || isCSpace(tok[end]);
}

/** safe_strtoul / safe_strtoull on 64-bit Linux: true if accepted. */
export function safeStrtoull(tok: string): boolean {
  const n = scanNumber(tok);
  if (n === null) return false;
  if (n.mag > U64 - 1n) return false; // ERANGE
  if (!endsWell(tok, n.end)) return false;
  const value = n.neg ? (U64 - n.mag) % U64 : n.mag;
  // "(long) l < 0" with a '-' in the token is refused
  if (value >= (1n << 63n) && n.neg) return false;
  return true;
}

/** The value memcached takes from an accepted number token (uint64 or int32), as text; null if refused. */
export function numberValue(tok: string, signed32: boolean): string | null {
  if (signed32) {
    const v = safeStrtol(tok);
    return v === null ? null : String(v);
  }
  if (!safeStrtoull(tok)) return null;
  const n = scanNumber(tok)!;
  return String(n.neg ? (U64 - n.mag) % U64 : n.mag);
}

/** safe_strtol into an int32: the truncated value, or null when refused. */
export function safeStrtol(tok: string): number | null {
  const n = scanNumber(tok);
  if (n === null) return null;
  const v = n.neg ? -n.mag : n.mag;
  if (v > (1n << 63n) - 1n || v < -(1n << 63n)) return null; // ERANGE
  if (!endsWell(tok, n.end)) return null;
  return Number(BigInt.asIntN(32, v));
}

// ------------------------------------------------------------------ lines

/** tokenize_command: the tokens of a line split on spaces; ntokens counts memcached's terminal token too. */
function tokenize(line: string): { tokens: string[]; ntokens: number } {
  const tokens = line.split(' ').filter((t) => t.length > 0);
  // After MAX_TOKENS-1 tokens memcached stops splitting; ntokens caps at MAX_TOKENS.
  const ntokens = Math.min(tokens.length, MAX_TOKENS - 1) + 1;
  return { tokens, ntokens };
}

export class RequestModel {
  constructor(readonly opts: ModelOptions) {}

  private keyOk(key: string): boolean {
    if (key.length > KEY_MAX) return false;
    if (this.opts.mode === 'proxy') {
      for (let i = 0; i < key.length; i++) {
        const c = key.charCodeAt(i);
        if (c <= 0x20 || c === 0x7f) return false;
      }
    }
    return true;
  }

  /**
   * Runs a stream delivered in pieces ending at `cuts` (and at its end). The
   * line-length rule depends on the pieces, as it does in memcached.
   */
  run(stream: string, cuts: readonly number[] = []): ModelResult {
    const outcomes: Outcome[] = [];
    const unstable: string[] = [];
    let pos = 0;
    let swallow = 0;
    const ends = [...cuts.filter((c) => c > 0 && c < stream.length), stream.length];
    // Nothing can change before `wake` bytes have arrived (a line's \n, the
    // line limit, a value's end): pieces before it are skipped, so a stream
    // delivered byte by byte costs no more than one delivered whole.
    let wake = 0;
    for (const avail of ends) {
      if (avail < wake) continue;
      for (;;) {
        if (swallow > 0) {
          const n = Math.min(swallow, avail - pos);
          pos += n;
          swallow -= n;
          if (swallow > 0) break;
        }
        if (pos >= avail) break;
        const step = this.step(stream, pos, avail, unstable);
        if (step.t === 'more') {
          if (step.missing > 0) wake = avail + step.missing;
          else {
            const nl = stream.indexOf('\n', avail);
            wake = Math.min(nl === -1 ? stream.length : nl + 1, pos + LINE_MAX + 1);
          }
          break;
        }
        if (step.t === 'close') {
          // memcached hangs up on an HTTP line at once (conn_closing): replies it
          // has queued and not yet written are lost (1.6.18: "zz\r\nxx HTTP/\r\n"
          // in one write gets nothing, "mn\r\nxx HTTP/\r\n" gets MN): what a
          // client sees of the earlier replies depends on memcached's flushes.
          if (step.http === true && outcomes.length > 0) unstable.push('HTTP line after other requests');
          outcomes.push({ t: 'CLOSE' });
          return { outcomes, pending: { t: 'closed' }, unstable };
        }
        outcomes.push(step.outcome);
        pos = step.next;
        swallow = step.swallow;
        if (step.outcome.t === 'REQUEST' && step.outcome.cmd === M.QUIT) {
          outcomes[outcomes.length - 1] = { t: 'CLOSE' };
          return { outcomes, pending: { t: 'closed' }, unstable };
        }
      }
    }
    let pending: Pending = { t: 'idle' };
    if (swallow > 0) pending = { t: 'swallow', missing: swallow };
    else if (pos < stream.length) {
      const more = this.step(stream, pos, stream.length, []);
      pending = more.t === 'more' && more.missing > 0 ? { t: 'data', missing: more.missing } : { t: 'line', have: stream.length - pos };
    }
    return { outcomes, pending, unstable };
  }

  private step(s: string, pos: number, end: number, unstable: string[]):
    | { t: 'more'; missing: number }
    | { t: 'close'; http?: boolean }
    | { t: 'done'; outcome: Outcome; next: number; swallow: number } {
    const nl = s.indexOf('\n', pos);
    if (nl === -1 || nl >= end) {
      // try_read_command_ascii: no \n yet
      if (end - pos > LINE_MAX) {
        let p = pos;
        while (p < end && s[p] === ' ') p++;
        const isGet = p - pos <= 100 && (s.startsWith('get ', p) || s.startsWith('gets ', p));
        if (!isGet) return { t: 'close' };
        if (this.opts.mode === 'proxy' && end - pos > PROXY_GET_LINE_MAX) return { t: 'close' };
      }
      return { t: 'more', missing: 0 };
    }
    let raw = s.slice(pos, nl);
    if (raw.length > 1 && raw.endsWith('\r')) raw = raw.slice(0, -1);
    const next = nl + 1;
    // the line as a C string: it ends at its first NUL (after the \r is dropped, as in memcached)
    let line = raw;
    const z = line.indexOf('\0');
    if (z !== -1) line = line.slice(0, z);
    const reply = (cmd: number, text: string, noreply = false, skip = 0) =>
      ({ t: 'done' as const, outcome: { t: 'REPLY' as const, cmd, reply: text, noreply }, next, swallow: skip });
    const request = (cmd: number, keys: string[], noreply: boolean, arg: string | null, data: string | null, after = next) =>
      ({ t: 'done' as const, outcome: { t: 'REQUEST' as const, cmd, keys, noreply, data, arg, line: raw }, next: after, swallow: 0 });

    const { tokens, ntokens } = tokenize(line);
    if (ntokens < 2 || tokens[0]!.length < 2) return reply(M.UNKNOWN, REPLIES.ERROR);
    const name = tokens[0]!;
    let cmd: number = NAMES[name] ?? M.UNKNOWN;
    if (cmd === M.UNKNOWN) {
      const meta = name.length === 2 && name[0] === 'm';
      // other two-letter m commands are ERROR in memcached too
      if (this.opts.mode === 'memcached' && MEMCACHED_ONLY.has(name)) {
        return { t: 'done', outcome: { t: 'UNSUPPORTED', line: raw }, next, swallow: 0 };
      }
      // process_command_ascii: a name that starts with none of the letters it
      // dispatches on (g s a c i d t; nor a two-letter m name), and whose last
      // token starts with "HTTP/", is an HTTP request: memcached closes the
      // connection without a reply. Checked against memcached 1.6.18: a known
      // command ("mg HTTP/", "flush_all 0 HTTP/", "prepend k 0 0 1 HTTP/1.1") is
      // that command; "t HTTP/", "mz HTTP/", "statsx HTTP/" are ERROR; "xx HTTP/",
      // "pzz HTTP/", "mnx HTTP/", "GET / HTTP/1.1" close; "get / HTTP/1.1" is a get.
      if (!meta && !'gsacidt'.includes(name[0]!) && tokens[ntokens - 2]!.startsWith('HTTP/')) return { t: 'close', http: true };
      // mcrelay: memcached's commands that act on one server are refused, saying so.
      if (PROXY_REFUSED.has(name)) return reply(M.UNKNOWN, refusedReply(name));
      return reply(M.UNKNOWN, REPLIES.ERROR);
    }
    // set_noreply_maybe: the last real token
    const noreplyAt = (n: number): boolean => n >= 2 && tokens[n - 2] === 'noreply';

    switch (cmd) {
      case M.GET: case M.GETS: case M.GAT: case M.GATS: {
        if (ntokens < 3) return reply(cmd, REPLIES.ERROR);
        let first = 1;
        let arg: string | null = null;
        if (cmd === M.GAT || cmd === M.GATS) {
          arg = tokens[1]!;
          if (safeStrtol(arg) === null) return reply(cmd, REPLIES.EXPTIME);
          first = 2;
        }
        const keys = tokens.slice(first);
        for (let i = 0; i < keys.length; i++) {
          if (!this.keyOk(keys[i]!)) {
            // memcached drops every reply it has not sent yet on this connection
            // (conn_release_items) before it answers this one: what a client
            // sees depends on when earlier replies went out.
            if (keys[i]!.length > KEY_MAX) unstable.push('retrieval key over 250 bytes');
            return reply(cmd, REPLIES.FORMAT);
          }
        }
        return request(cmd, keys, false, arg, null);
      }
      case M.SET: case M.ADD: case M.REPLACE: case M.APPEND: case M.PREPEND: case M.CAS: {
        const isCas = cmd === M.CAS;
        if (isCas ? ntokens !== 7 && ntokens !== 8 : ntokens !== 6 && ntokens !== 7) return reply(cmd, REPLIES.ERROR);
        const noreply = noreplyAt(ntokens);
        const key = tokens[1]!;
        if (!this.keyOk(key)) return reply(cmd, REPLIES.FORMAT, noreply);
        const flagsOk = safeStrtoull(tokens[2]!); // safe_strtoul on a 64-bit long
        const exptime = safeStrtol(tokens[3]!);
        const vlen = safeStrtol(tokens[4]!);
        if (!flagsOk || exptime === null || vlen === null) return reply(cmd, REPLIES.FORMAT, noreply);
        if (isCas && !safeStrtoull(tokens[5]!)) return reply(cmd, REPLIES.FORMAT, noreply);
        if (vlen < 0 || vlen > 2147483647 - 2) return reply(cmd, REPLIES.FORMAT, noreply);
        const large = this.tooLarge(key, vlen);
        if (large === 'unstable') unstable.push('value size next to the item size limit');
        if (large === true) return reply(cmd, REPLIES.TOO_LARGE, noreply, vlen + 2);
        const dataEnd = next + vlen + 2;
        if (dataEnd > end) return { t: 'more', missing: dataEnd - end };
        const data = s.slice(next, next + vlen);
        if (s.slice(next + vlen, dataEnd) !== '\r\n') {
          return { t: 'done', outcome: { t: 'REPLY', cmd, reply: REPLIES.DATA_CHUNK, noreply }, next: dataEnd, swallow: 0 };
        }
        return request(cmd, [key], noreply, null, data, dataEnd);
      }
      case M.DELETE: {
        if (ntokens < 3 || ntokens > 5) return reply(cmd, REPLIES.ERROR);
        let noreply = false;
        if (ntokens > 3) {
          const holdIsZero = tokens[2] === '0';
          noreply = noreplyAt(ntokens);
          const valid = (ntokens === 4 && (holdIsZero || noreply)) || (ntokens === 5 && holdIsZero && noreply);
          if (!valid) return reply(cmd, REPLIES.DELETE_USAGE, noreply);
        }
        if (!this.keyOk(tokens[1]!)) return reply(cmd, REPLIES.FORMAT, noreply);
        return request(cmd, [tokens[1]!], noreply, null, null);
      }
      case M.INCR: case M.DECR: {
        if (ntokens !== 4 && ntokens !== 5) return reply(cmd, REPLIES.ERROR);
        const noreply = noreplyAt(ntokens);
        if (!this.keyOk(tokens[1]!)) return reply(cmd, REPLIES.FORMAT, noreply);
        if (!safeStrtoull(tokens[2]!)) return reply(cmd, REPLIES.DELTA, noreply);
        return request(cmd, [tokens[1]!], noreply, tokens[2]!, null);
      }
      case M.TOUCH: {
        if (ntokens !== 4 && ntokens !== 5) return reply(cmd, REPLIES.ERROR);
        const noreply = noreplyAt(ntokens);
        if (!this.keyOk(tokens[1]!)) return reply(cmd, REPLIES.FORMAT, noreply);
        if (safeStrtol(tokens[2]!) === null) return reply(cmd, REPLIES.EXPTIME, noreply);
        return request(cmd, [tokens[1]!], noreply, tokens[2]!, null);
      }
      case M.FLUSH_ALL: {
        if (ntokens < 2 || ntokens > 4) return reply(cmd, REPLIES.ERROR);
        const noreply = noreplyAt(ntokens);
        let arg: string | null = null;
        if (ntokens !== (noreply ? 3 : 2)) {
          arg = tokens[1]!;
          const delay = safeStrtol(arg);
          if (delay === null) return reply(cmd, REPLIES.EXPTIME, noreply);
          if (delay > 0) unstable.push('flush_all with a delay');
        }
        return request(cmd, [], noreply, arg, null);
      }
      case M.VERBOSITY: {
        if (ntokens !== 3 && ntokens !== 4) return reply(cmd, REPLIES.ERROR);
        const noreply = noreplyAt(ntokens);
        if (!safeStrtoull(tokens[1]!)) return reply(cmd, REPLIES.FORMAT, noreply);
        return request(cmd, [], noreply, null, null);
      }
      case M.VERSION: case M.STATS: case M.QUIT: case M.MN:
        return request(cmd, [], false, null, null);
      case M.MG: case M.MD: case M.MA: case M.ME: {
        // Any flag error is one error line: only the key decides framing here.
        if (ntokens < 3) return reply(cmd, cmd === M.ME ? REPLIES.FORMAT : REPLIES.ERROR);
        if (tokens[1]!.length > KEY_MAX) return reply(cmd, REPLIES.FORMAT);
        if (cmd !== M.ME && ntokens > META_MAX_TOKENS) return reply(cmd, cmd === M.MG ? REPLIES.META_TOO_MANY_MG : REPLIES.META_TOO_MANY);
        if (!this.keyOk(tokens[1]!)) return reply(cmd, REPLIES.FORMAT);
        return request(cmd, [tokens[1]!], false, null, null);
      }
      case M.MS: {
        // process_mset_command: these refusals come before the data length is
        // known to be good, so memcached does not swallow the data block: it is
        // read as commands.
        if (ntokens < 3) return reply(cmd, REPLIES.ERROR);
        if (tokens[1]!.length > KEY_MAX) return reply(cmd, REPLIES.FORMAT);
        if (ntokens === 3) return reply(cmd, REPLIES.FORMAT);
        if (ntokens > META_MAX_TOKENS) return reply(cmd, REPLIES.META_TOO_MANY);
        // mcrelay's own key rule (control characters) comes after memcached's checks
        if (!this.keyOk(tokens[1]!)) return reply(cmd, REPLIES.FORMAT);
        const vlen = safeStrtol(tokens[2]!);
        if (vlen === null || vlen < 0 || vlen > 2147483647 - 2) return reply(cmd, REPLIES.FORMAT);
        // From here on every refusal (a bad flag, too large) swallows the data.
        if (this.tooLarge(tokens[1]!, vlen) === true) return reply(cmd, REPLIES.TOO_LARGE, false, vlen + 2);
        const dataEnd = next + vlen + 2;
        if (dataEnd > end) return { t: 'more', missing: dataEnd - end };
        // A block with a bad end: memcached checks the flags first and answers a
        // flag error if there is one, else "bad data chunk". mcrelay forwards the
        // request and lets it (one reply either way, the block swallowed).
        if (s.slice(next + vlen, dataEnd) !== '\r\n' && this.opts.mode === 'memcached') {
          return { t: 'done', outcome: { t: 'REPLY', cmd, reply: REPLIES.DATA_CHUNK, noreply: false }, next: dataEnd, swallow: 0 };
        }
        return request(cmd, [tokens[1]!], false, null, s.slice(next, next + vlen), dataEnd);
      }
    }
    cmd = M.UNKNOWN;
    return reply(cmd, REPLIES.ERROR);
  }

  /**
   * Whether a value of vlen bytes is refused as too large. mcrelay refuses above
   * --max-item-size; memcached refuses when the whole item (header, key, suffix,
   * value and its CRLF) does not fit -I, which is some tens of bytes sooner:
   * sizes in that margin are reported as 'unstable'.
   */
  private tooLarge(key: string, vlen: number): boolean | 'unstable' {
    const max = this.opts.maxItemSize;
    if (this.opts.mode === 'proxy') return vlen > max;
    if (vlen > max) return true;
    return vlen + key.length + 128 > max ? 'unstable' : false;
  }
}
