// Client-side request parser: memcached's text protocol, as memcached 1.6 reads it.
//
// parse(buf, pos, end) looks at one request starting at `pos` and returns one of
// the outcomes below; the fields of the parser then describe that request as byte
// offsets into `buf` (nothing is copied or converted to strings). The caller keeps
// unconsumed bytes and calls again with more; a request is re-scanned from its
// first byte, which costs one short line, except for a large data block, where
// `need` tells the caller how many bytes to collect before calling again.
//
// Validation mirrors memcached's (token counts, safe_strto* numbers, key length),
// so a request that is forwarded gets exactly one reply from the backend and a
// refused one gets memcached's own error string.
//
// The meta commands' checks are meta-request.ts's (parseMeta); the outcomes,
// limits and key rule both follow are request-rules.ts's.

import { Cmd, lookupCommand, refusal } from './commands.js';
import { bytesEqual, findLF } from '../io/buffers.js';
import { parseMeta } from './meta-request.js';
import { isValidUnsignedToken, parseInt32Token } from './numbers.js';
import { GET_LINE_MAX_LENGTH, KEY_MAX_LENGTH, LINE_MAX_LENGTH, MAX_TOKENS, Parse, validKey } from './request-rules.js';
import * as wire from './wire.js';

/** keyOffsets entries (two per key) kept from one get to the next */
const KEPT_KEY_OFFSETS = 8192;

const SP = 0x20;
const CR = 0x0d;
const DEL = 0x7f;
const LF = 0x0a;

const NOREPLY = Buffer.from('noreply', 'latin1');

export class RequestParser {
  // --- the request just parsed ---
  cmd = 0;
  /** offset just after the request (line, and data block if any) */
  next = 0;
  lineStart = 0;
  /** end of the line without its terminator */
  lineEnd = 0;
  /** end of the line without " noreply": forward [lineStart, forwardEnd) + CRLF */
  forwardEnd = 0;
  noreply = false;
  /** keys: start/end pairs; one key for single-key commands */
  keyCount = 0;
  keyOffsets: Int32Array = new Int32Array(64);
  /** the exptime of gat/gats/touch, the delta of incr/decr, the delay of flush_all */
  argStart = 0;
  argEnd = 0;
  /** storage: value length and where the value starts */
  bytes = 0;
  dataStart = 0;
  /** cas: where the cas token starts (the line before it is a valid set) */
  casStart = 0;
  reply: Buffer | null = null;
  /** NEED_MORE: bytes wanted from pos, when known */
  need = 0;
  /** REPLY with a data block to discard: how many bytes follow `next` to skip */
  swallow = 0;
  /** REPLY to a set too large to store: the key's old value must be deleted too */
  dropKey = false;
  /** meta: flags the proxy acts on (META_* bits) */
  metaFlags = 0;

  // token scratch: starts and ends of up to MAX_TOKENS tokens (parseMeta reads them too)
  readonly tokStart = new Int32Array(MAX_TOKENS + 1);
  readonly tokEnd = new Int32Array(MAX_TOKENS + 1);
  ntok = 0;

  constructor(readonly maxItemSize: number) {}

  parse(buf: Buffer, pos: number, end: number): number {
    this.reply = null;
    this.noreply = false;
    this.swallow = 0;
    this.dropKey = false;
    this.metaFlags = 0;
    this.need = 0;
    this.keyCount = 0;
    const nl = findLF(buf, pos, end);
    if (nl === -1) return this.partialLine(buf, pos, end);
    this.lineStart = pos;
    let lineEnd = nl;
    if (lineEnd > pos && buf[lineEnd - 1] === CR) lineEnd--;
    // memcached reads the line as a C string: it ends at the first NUL byte.
    // (A loop over the line: indexOf would scan the whole buffer behind it.)
    for (let i = pos; i < lineEnd; i++) {
      if (buf[i] === 0) { lineEnd = i; break; }
    }
    this.lineEnd = lineEnd;
    this.forwardEnd = lineEnd;
    this.next = nl + 1;

    // The command token.
    let s = pos;
    while (s < lineEnd && buf[s] === SP) s++;
    let e = s;
    while (e < lineEnd && buf[e] !== SP) e++;
    const cmd = lookupCommand(buf, s, e);
    this.cmd = cmd;
    if (cmd === Cmd.UNKNOWN) return isHttpRequest(buf, s, e, lineEnd) ? Parse.CLOSE : this.error(refusal(buf, s, e) ?? wire.ERROR);
    if (cmd <= Cmd.GATS) return this.retrieval(buf, e, lineEnd);
    this.tokenize(buf, e, lineEnd);
    switch (cmd) {
      case Cmd.SET: case Cmd.ADD: case Cmd.REPLACE: case Cmd.APPEND: case Cmd.PREPEND: case Cmd.CAS:
        return this.storage(buf, end);
      case Cmd.DELETE: return this.del(buf);
      case Cmd.INCR: case Cmd.DECR: return this.arith(buf);
      case Cmd.TOUCH: return this.touch(buf);
      case Cmd.FLUSH_ALL: return this.flushAll(buf);
      case Cmd.VERBOSITY: return this.verbosity(buf);
      case Cmd.VERSION: case Cmd.STATS: return Parse.REQUEST;
      case Cmd.QUIT: return Parse.CLOSE;
      case Cmd.MN: return Parse.REQUEST;
      case Cmd.MG: case Cmd.MS: case Cmd.MD: case Cmd.MA: case Cmd.ME:
        return parseMeta(this, buf, end);
    }
    return this.error(wire.ERROR);
  }

  /** Token i of the arguments (0 = first after the command) as [tokStart, tokEnd). */
  private tokenize(buf: Buffer, from: number, lineEnd: number): void {
    let n = 0;
    let i = from;
    while (i < lineEnd) {
      while (i < lineEnd && buf[i] === SP) i++;
      if (i >= lineEnd) break;
      const s = i;
      while (i < lineEnd && buf[i] !== SP) i++;
      if (n <= MAX_TOKENS) { this.tokStart[n] = s; this.tokEnd[n] = i; }
      n++;
    }
    this.ntok = n;
  }

  private partialLine(buf: Buffer, pos: number, end: number): number {
    const len = end - pos;
    if (len <= LINE_MAX_LENGTH) return Parse.NEED_MORE;
    // memcached keeps reading an unterminated line only if it is a get/gets line.
    if (isGetPrefix(buf, pos, end) && len <= GET_LINE_MAX_LENGTH) return Parse.NEED_MORE;
    this.next = end;
    // memcached would close without a word: the client is at least told why.
    this.reply = wire.CLIENT_ERROR_REQUEST_TOO_LONG;
    return Parse.CLOSE;
  }

  /**
   * After NEED_MORE for a data block (set, ms...): refuses the request as memcached
   * refuses a value it has no memory for: the error, the block swallowed, and for
   * set and ms the key's old value dropped so that it does not outlive the write.
   */
  refuseValue(): number {
    this.swallow = this.bytes + 2;
    this.dropKey = this.cmd === Cmd.SET || this.cmd === Cmd.MS;
    this.need = 0;
    return this.error(wire.SERVER_ERROR_OUT_OF_MEMORY);
  }

  /** REPLY with `reply` (parseMeta refuses through it too) */
  error(reply: Buffer): number {
    this.reply = reply;
    return Parse.REPLY;
  }

  private isNoreply(buf: Buffer, t: number): boolean {
    const s = this.tokStart[t]!;
    return this.tokEnd[t]! - s === 7 && bytesEqual(buf, s, NOREPLY, 0, 7);
  }

  /** Marks the request noreply when token t is "noreply" and cuts it from the forwarded line. */
  private takeNoreply(buf: Buffer, t: number): boolean {
    if (t >= this.ntok || !this.isNoreply(buf, t)) return false;
    this.noreply = true;
    let fe = this.tokStart[t]!;
    while (fe > this.lineStart && buf[fe - 1] === SP) fe--;
    this.forwardEnd = fe;
    return true;
  }

  private keyToken(buf: Buffer, t: number): boolean {
    const s = this.tokStart[t]!;
    const e = this.tokEnd[t]!;
    if (!validKey(buf, s, e)) return false;
    this.keyOffsets[0] = s;
    this.keyOffsets[1] = e;
    this.keyCount = 1;
    return true;
  }

  private retrieval(buf: Buffer, from: number, lineEnd: number): number {
    let i = from;
    const isGat = this.cmd === Cmd.GAT || this.cmd === Cmd.GATS;
    if (isGat) {
      while (i < lineEnd && buf[i] === SP) i++;
      const s = i;
      while (i < lineEnd && buf[i] !== SP) i++;
      if (s === i) return this.error(wire.ERROR);
      this.argStart = s;
      this.argEnd = i;
      if (parseInt32Token(buf, s, i) === null) return this.error(wire.CLIENT_ERROR_EXPTIME);
    }
    let n = 0;
    // A giant get's table is not kept for the gets after it.
    let offs = this.keyOffsets.length > KEPT_KEY_OFFSETS ? (this.keyOffsets = new Int32Array(64)) : this.keyOffsets;
    while (i < lineEnd) {
      while (i < lineEnd && buf[i] === SP) i++;
      if (i >= lineEnd) break;
      // The key ends at a space or the line's end; it is refused if it holds a
      // control character or DEL (the scan stops there) or is too long.
      const s = i;
      let c = 0;
      while (i < lineEnd && (c = buf[i]!) > SP && c !== DEL) i++;
      if ((i < lineEnd && c !== SP) || i - s > KEY_MAX_LENGTH) return this.error(wire.CLIENT_ERROR_FORMAT);
      if (2 * n + 2 > offs.length) {
        const grown = new Int32Array(offs.length * 2);
        grown.set(offs);
        offs = this.keyOffsets = grown;
      }
      offs[2 * n] = s;
      offs[2 * n + 1] = i;
      n++;
    }
    if (n === 0 && !isGat) return this.error(wire.ERROR);
    this.keyCount = n;
    return Parse.REQUEST;
  }

  private storage(buf: Buffer, end: number): number {
    const isCas = this.cmd === Cmd.CAS;
    const base = isCas ? 5 : 4; // key flags exptime bytes [cas]
    if (this.ntok !== base && this.ntok !== base + 1) return this.error(wire.ERROR);
    // memcached looks for noreply before it checks anything else, so it silences those errors too.
    this.takeNoreply(buf, this.ntok - 1);
    if (!this.keyToken(buf, 0)) return this.error(wire.CLIENT_ERROR_FORMAT);
    const t = this.tokStart;
    const te = this.tokEnd;
    const bytes = parseInt32Token(buf, t[3]!, te[3]!);
    if (!isValidUnsignedToken(buf, t[1]!, te[1]!) || parseInt32Token(buf, t[2]!, te[2]!) === null ||
        bytes === null || (isCas && !isValidUnsignedToken(buf, t[4]!, te[4]!))) {
      return this.error(wire.CLIENT_ERROR_FORMAT);
    }
    if (bytes < 0 || bytes > 2147483647 - 2) return this.error(wire.CLIENT_ERROR_FORMAT);
    if (isCas) this.casStart = t[4]!;
    this.bytes = bytes;
    this.dataStart = this.next;
    if (bytes > this.maxItemSize) {
      this.swallow = bytes + 2;
      // memcached drops the old value of a set it cannot store, so that it does not outlive the write.
      this.dropKey = this.cmd === Cmd.SET;
      return this.error(wire.SERVER_ERROR_TOO_LARGE);
    }
    const dataEnd = this.next + bytes + 2;
    if (dataEnd > end) {
      this.need = dataEnd - this.lineStart;
      return Parse.NEED_MORE;
    }
    this.next = dataEnd;
    if (buf[dataEnd - 2] !== CR || buf[dataEnd - 1] !== LF) return this.error(wire.CLIENT_ERROR_DATA_CHUNK);
    return Parse.REQUEST;
  }

  private del(buf: Buffer): number {
    const n = this.ntok;
    if (n < 1 || n > 3) return this.error(wire.ERROR);
    if (n > 1) {
      // The usage check comes before the key check, as in memcached.
      const s = this.tokStart[1]!;
      const holdIsZero = this.tokEnd[1]! - s === 1 && buf[s] === 0x30;
      const noreply = this.takeNoreply(buf, n - 1);
      const valid = (n === 2 && (holdIsZero || noreply)) || (n === 3 && holdIsZero && noreply);
      if (!valid) return this.error(wire.CLIENT_ERROR_DELETE_USAGE);
    }
    if (!this.keyToken(buf, 0)) return this.error(wire.CLIENT_ERROR_FORMAT);
    // The legacy "0" is dropped: forward "delete <key>".
    if (n > 1) this.forwardEnd = this.keyOffsets[1]!;
    return Parse.REQUEST;
  }

  private arith(buf: Buffer): number {
    return this.keyAndArg(buf, false, wire.CLIENT_ERROR_DELTA);
  }

  private touch(buf: Buffer): number {
    return this.keyAndArg(buf, true, wire.CLIENT_ERROR_EXPTIME);
  }

  /** "<cmd> <key> <arg> [noreply]": incr/decr (a uint64 delta) and touch (an exptime). */
  private keyAndArg(buf: Buffer, exptime: boolean, badArg: Buffer): number {
    const n = this.ntok;
    if (n !== 2 && n !== 3) return this.error(wire.ERROR);
    this.takeNoreply(buf, n - 1);
    if (!this.keyToken(buf, 0)) return this.error(wire.CLIENT_ERROR_FORMAT);
    this.argStart = this.tokStart[1]!;
    this.argEnd = this.tokEnd[1]!;
    const ok = exptime
      ? parseInt32Token(buf, this.argStart, this.argEnd) !== null
      : isValidUnsignedToken(buf, this.argStart, this.argEnd);
    return ok ? Parse.REQUEST : this.error(badArg);
  }

  private flushAll(buf: Buffer): number {
    const n = this.ntok;
    if (n > 2) return this.error(wire.ERROR);
    const noreply = n > 0 && this.takeNoreply(buf, n - 1);
    this.argStart = this.argEnd = 0;
    // memcached reads a delay from the first argument whenever there is more than noreply.
    if (n !== (noreply ? 1 : 0)) {
      this.argStart = this.tokStart[0]!;
      this.argEnd = this.tokEnd[0]!;
      if (parseInt32Token(buf, this.argStart, this.argEnd) === null) return this.error(wire.CLIENT_ERROR_EXPTIME);
    }
    return Parse.REQUEST;
  }


  private verbosity(buf: Buffer): number {
    const n = this.ntok;
    if (n < 1 || n > 2) return this.error(wire.ERROR);
    this.takeNoreply(buf, n - 1);
    if (!isValidUnsignedToken(buf, this.tokStart[0]!, this.tokEnd[0]!) && !this.noreply) {
      return this.error(wire.CLIENT_ERROR_FORMAT);
    }
    return Parse.REQUEST;
  }
}


/**
 * An HTTP request sent to the memcached port, which memcached hangs up on: a
 * command it does not know, of two letters or more, starting with none of the
 * letters it dispatches on (g s a c i d t, or m for a two-letter meta name), whose
 * last token starts with "HTTP/" ("GET / HTTP/1.1"; "get / HTTP/1.1" is a get).
 */
function isHttpRequest(buf: Buffer, cs: number, ce: number, lineEnd: number): boolean {
  if (ce - cs < 2) return false;
  const c = buf[cs]!;
  if (c === 0x67 || c === 0x73 || c === 0x61 || c === 0x63 || c === 0x69 || c === 0x64 || c === 0x74) return false;
  if (c === 0x6d && ce - cs === 2) return false;
  return endsWithHttp(buf, cs, lineEnd);
}

function endsWithHttp(buf: Buffer, pos: number, end: number): boolean {
  let e = end;
  while (e > pos && buf[e - 1] === SP) e--;
  let s = e;
  while (s > pos && buf[s - 1] !== SP) s--;
  return e - s >= 5 && buf[s] === 0x48 && buf[s + 1] === 0x54 && buf[s + 2] === 0x54 && buf[s + 3] === 0x50 && buf[s + 4] === 0x2f;
}


function isGetPrefix(buf: Buffer, pos: number, end: number): boolean {
  // "get " or "gets ", after at most 100 spaces (memcached's rule)
  let p = pos;
  while (p < end && buf[p] === SP) p++;
  if (p - pos > 100) return false;
  if (end - p < 4 || buf[p] !== 0x67 || buf[p + 1] !== 0x65 || buf[p + 2] !== 0x74) return false;
  return buf[p + 3] === SP || (buf[p + 3] === 0x73 && buf[p + 4] === SP);
}
