// Backend-side response parser: splits a backend's byte stream into replies.
//
// read(buf, pos, end, kind) reads one unit at pos, for the kind of request at the
// head of the connection's queue: a VALUE block (line and data) or END for a text
// retrieval; a whole meta reply ("VA <size> ...\r\n<data>\r\n", or one line) for a
// meta command; one line for anything else. It records offsets only. Anything a memcached server would not send is
// BAD: the connection it came on can no longer be trusted and must be closed.

import { bytesEqual, findLF } from '../io/buffers.js';

export const Reply = {
  NEED_MORE: 0,
  /** a "VALUE <key> <flags> <bytes> [<cas>]\r\n<data>\r\n" block: [start, next) */
  VALUE: 1,
  /** "END\r\n" closing a retrieval */
  END: 2,
  /** any other single-line reply: [start, next), the line with its CRLF */
  LINE: 3,
  BAD: 4,
} as const;

/** What the request at the head of the queue expects (Op.kind). */
export const Expect = {
  LINE: 0,
  RETRIEVAL: 1,
  META: 2,
  /**
   * A one-key get or gets sent as `mg <key> v f [c]` (to a server answering `mn`):
   * a meta reply, for a text retrieval (addTextValue writes its value as text).
   */
  META_GET: 3,
} as const;

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const MAX_LINE = 8192;

export class ResponseParser {
  start = 0;
  next = 0;
  keyStart = 0;
  keyEnd = 0;
  /** NEED_MORE: total bytes wanted from pos, 0 if unknown */
  need = 0;

  read(buf: Buffer, pos: number, end: number, kind: number): number {
    this.need = 0;
    const nl = findLF(buf, pos, end);
    if (nl === -1) return end - pos > MAX_LINE ? Reply.BAD : Reply.NEED_MORE;
    if (nl === pos || buf[nl - 1] !== CR) return Reply.BAD;
    this.start = pos;
    this.next = nl + 1;
    const len = nl - 1 - pos;
    if (kind >= Expect.META) {
      // "VA <size> <flags>*": the line and its data block are one reply.
      if (len >= 4 && buf[pos] === 0x56 && buf[pos + 1] === 0x41 && buf[pos + 2] === SP) return this.metaValue(buf, pos + 3, nl - 1, end);
      return isMetaLine(buf, pos, nl - 1) || isErrorLine(buf, pos, nl - 1) ? Reply.LINE : Reply.BAD;
    }
    if (kind !== Expect.RETRIEVAL) return isTextLine(buf, pos, nl - 1) || isErrorLine(buf, pos, nl - 1) ? Reply.LINE : Reply.BAD;
    // "END"
    if (len === 3 && buf[pos] === 0x45 && buf[pos + 1] === 0x4e && buf[pos + 2] === 0x44) return Reply.END;
    // "VALUE "
    if (len > 6 && buf[pos] === 0x56 && buf[pos + 1] === 0x41 && buf[pos + 2] === 0x4c &&
        buf[pos + 3] === 0x55 && buf[pos + 4] === 0x45 && buf[pos + 5] === SP) {
      return this.value(buf, pos + 6, nl - 1, end);
    }
    // An error line ends a retrieval too (ERROR, CLIENT_ERROR, SERVER_ERROR).
    if (isErrorLine(buf, pos, nl - 1)) return Reply.LINE;
    return Reply.BAD;
  }

  private metaValue(buf: Buffer, from: number, lineEnd: number, end: number): number {
    if (buf[lineEnd - 1] === SP) return Reply.BAD;
    for (let k = from + 1; k < lineEnd; k++) if (buf[k] === SP && buf[k - 1] === SP) return Reply.BAD;
    return this.dataBlock(buf, from, lineEnd, end, Reply.LINE);
  }

  /**
   * The byte count token at `from`, then its data block after the line:
   * `found` when the block is whole and ends in CRLF.
   */
  private dataBlock(buf: Buffer, from: number, lineEnd: number, end: number, found: number): number {
    let i = from;
    let bytes = 0;
    while (i < lineEnd && buf[i] !== SP) {
      const d = buf[i]! - 0x30;
      if (d < 0 || d > 9) return Reply.BAD;
      bytes = bytes * 10 + d;
      i++;
    }
    if (i === from || bytes > 0x7fffffff) return Reply.BAD;
    const dataEnd = this.next + bytes + 2;
    if (dataEnd > end) {
      this.need = dataEnd - this.start;
      return Reply.NEED_MORE;
    }
    if (buf[dataEnd - 2] !== CR || buf[dataEnd - 1] !== LF) return Reply.BAD;
    this.next = dataEnd;
    return found;
  }

  private value(buf: Buffer, from: number, lineEnd: number, end: number): number {
    // key
    let i = from;
    this.keyStart = i;
    while (i < lineEnd && buf[i] !== SP) i++;
    this.keyEnd = i;
    if (i === from || i === lineEnd) return Reply.BAD;
    // flags
    i++;
    const fs = i;
    while (i < lineEnd && buf[i] !== SP) i++;
    if (i === fs || i === lineEnd) return Reply.BAD;
    // bytes, then the data block
    return this.dataBlock(buf, i + 1, lineEnd, end, Reply.VALUE);
  }
}

/** Exactly "ERROR", or "CLIENT_ERROR <message>" / "SERVER_ERROR <message>". */
export function isErrorLine(buf: Buffer, start: number, end: number): boolean {
  const len = end - start;
  if (len === 5) return bytesEqual(buf, start, ERROR_WORD, 0, 5);
  if (len < 14 || buf[start + 12] !== SP) return false;
  return bytesEqual(buf, start, CLIENT_ERROR_WORD, 0, 12) || bytesEqual(buf, start, SERVER_ERROR_WORD, 0, 12);
}

const ERROR_WORD = Buffer.from('ERROR');
const CLIENT_ERROR_WORD = Buffer.from('CLIENT_ERROR');
const SERVER_ERROR_WORD = Buffer.from('SERVER_ERROR');

// The single-line replies memcached sends; anything else means the stream is not
// what the connection thinks it is, and must not reach a client.
const TEXT_REPLIES = ['STORED', 'NOT_STORED', 'EXISTS', 'NOT_FOUND', 'DELETED', 'TOUCHED', 'OK', 'RESET'].map((w) => Buffer.from(w));
const VERSION_PREFIX = Buffer.from('VERSION ');
const META_CODES = ['HD', 'NS', 'EX', 'NF', 'EN', 'MN', 'ME'].map((w) => Buffer.from(w));

function equalsAt(buf: Buffer, start: number, end: number, word: Buffer): boolean {
  return end - start === word.length && bytesEqual(buf, start, word, 0, word.length);
}

function isTextLine(buf: Buffer, start: number, end: number): boolean {
  const c = buf[start]!;
  if (c >= 0x30 && c <= 0x39) {
    // incr/decr: a number
    for (let i = start; i < end; i++) { const d = buf[i]!; if (d < 0x30 || d > 0x39) return false; }
    return end - start <= 20;
  }
  for (const w of TEXT_REPLIES) if (equalsAt(buf, start, end, w)) return true;
  return end - start > VERSION_PREFIX.length && bytesEqual(buf, start, VERSION_PREFIX, 0, VERSION_PREFIX.length);
}

/** HD, NS, EX, NF, EN, MN alone or followed by " <flag>"s; ME with its data */
function isMetaLine(buf: Buffer, start: number, end: number): boolean {
  if (end - start < 2 || (end - start > 2 && buf[start + 2] !== SP)) return false;
  // memcached writes each flag as " <flag>": never a trailing or doubled space
  if (buf[end - 1] === SP) return false;
  for (let i = start + 3; i < end; i++) if (buf[i] === SP && buf[i - 1] === SP) return false;
  if (buf[start] === 0x4d && buf[start + 1] === 0x45 && end - start === 2) return false; // bare ME
  for (const w of META_CODES) if (buf[start] === w[0] && buf[start + 1] === w[1]) return true;
  return false;
}
