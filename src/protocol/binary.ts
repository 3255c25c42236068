// memcached's binary protocol on the client side, as memcached 1.6 answers it.
//
//   client bytes --BinaryParser.parse--> TEXT: the same request in the text protocol
//                                         (then RequestParser, then the usual Request)
//                                     --> LOCAL: a reply the proxy gives itself
//   Request done --encodeReply--> the binary response (status, extras, key, value)
//
// A binary request becomes the text or meta request mcrelay already sends, so
// routing, replication, failover and warm-up exist once; toward the servers
// nothing changes. The translation costs one copy of the request (key and value)
// into a buffer of its own, which the Request keeps as its `buf`.
//
// What the text protocol cannot carry is chosen so the reply still says what
// memcached's would: gets (not get) so a hit has its cas; gats for touch, whose
// binary reply carries the item's flags; md for a delete with a cas. Stores are
// sent as ms and incr/decr as ma, both with the c flag, so that the reply header
// carries the item's new cas as memcached's does (a delete's carries 0, as
// memcached's): ms in mode E (add), R (replace), A (append), P (prepend) or set,
// with C<cas> when the request has one (memcached makes any store with a cas a
// cas, and an append or incr with a cas conditional on it); ma with v for the
// new value, and N/J to create a missing item with the initial value.

import * as wire from './wire.js';

export const MAGIC_REQUEST = 0x80;
const MAGIC_RESPONSE = 0x81;
export const HEADER_LENGTH = 24;

export const BinOp = {
  GET: 0x00, SET: 0x01, ADD: 0x02, REPLACE: 0x03, DELETE: 0x04, INCREMENT: 0x05, DECREMENT: 0x06,
  QUIT: 0x07, FLUSH: 0x08, GETQ: 0x09, NOOP: 0x0a, VERSION: 0x0b, GETK: 0x0c, GETKQ: 0x0d,
  APPEND: 0x0e, PREPEND: 0x0f, STAT: 0x10, SETQ: 0x11, ADDQ: 0x12, REPLACEQ: 0x13, DELETEQ: 0x14,
  INCREMENTQ: 0x15, DECREMENTQ: 0x16, QUITQ: 0x17, FLUSHQ: 0x18, APPENDQ: 0x19, PREPENDQ: 0x1a,
  VERBOSITY: 0x1b, TOUCH: 0x1c, GAT: 0x1d, GATQ: 0x1e, SASL_LIST_MECHS: 0x20, SASL_AUTH: 0x21,
  SASL_STEP: 0x22, GATK: 0x23, GATKQ: 0x24,
} as const;

export const Status = {
  OK: 0x00, KEY_ENOENT: 0x01, KEY_EEXISTS: 0x02, E2BIG: 0x03, EINVAL: 0x04, NOT_STORED: 0x05,
  DELTA_BADVAL: 0x06, UNKNOWN_COMMAND: 0x81, ENOMEM: 0x82, ETMPFAIL: 0x86,
} as const;

// memcached's words for each status (write_bin_error); ETMPFAIL is mcrelay's.
const STATUS_TEXT: Record<number, Buffer> = {
  [Status.KEY_ENOENT]: Buffer.from('Not found'),
  [Status.KEY_EEXISTS]: Buffer.from('Data exists for key.'),
  [Status.E2BIG]: Buffer.from('Too large.'),
  [Status.EINVAL]: Buffer.from('Invalid arguments'),
  [Status.NOT_STORED]: Buffer.from('Not stored.'),
  [Status.DELTA_BADVAL]: Buffer.from('Non-numeric server-side value for incr or decr'),
  [Status.UNKNOWN_COMMAND]: Buffer.from('Unknown command'),
  [Status.ENOMEM]: Buffer.from('Out of memory'),
  [Status.ETMPFAIL]: Buffer.from('Temporary failure'),
};

export const Bin = {
  /** no complete request yet; `need` is the total length wanted from pos, or 0 */
  NEED_MORE: 0,
  /** `text` holds the request in the text protocol; it ends at `next` */
  TEXT: 1,
  /** answer `reply` (it may be empty: a quiet command) and continue at `next` */
  LOCAL: 2,
  /** answer `reply` if set, then close the connection */
  CLOSE: 3,
  /** a general `stat`: its figures are taken when the reply is written */
  STATS: 4,
} as const;

/** Reply kinds kept per queued request (ClientConnection's binary ring). */
export const NOT_QUIET = 0;
/** a quiet command: success says nothing */
export const QUIET = 0x100;

const SP = 0x20;
const KEY_MAX = 250;

// What each opcode is, one bit each (a table: asked once or twice per request).
const Q = 1; // quiet: success (for gets, a miss too) says nothing
const GET = 2; // a retrieval: its reply is a hit or a miss
const WITH_KEY = 4; // a retrieval whose hit and miss carry the key
const ARITH = 8; // incr/decr: the new value as the body
const AFTER_KEY = 16; // ends after its key: memcached reads any more body as the next request
const STORE = 32; // carries a value
const OPS = new Uint8Array(256);
function mark(bits: number, ...ops: number[]): void { for (const op of ops) OPS[op]! |= bits; }
mark(Q, BinOp.GETQ, BinOp.GETKQ, BinOp.GATQ, BinOp.GATKQ, BinOp.SETQ, BinOp.ADDQ, BinOp.REPLACEQ, BinOp.DELETEQ,
  BinOp.INCREMENTQ, BinOp.DECREMENTQ, BinOp.FLUSHQ, BinOp.APPENDQ, BinOp.PREPENDQ, BinOp.QUITQ);
mark(GET, BinOp.GET, BinOp.GETQ, BinOp.GETK, BinOp.GETKQ, BinOp.GAT, BinOp.GATQ, BinOp.GATK, BinOp.GATKQ, BinOp.TOUCH);
mark(WITH_KEY, BinOp.GETK, BinOp.GETKQ, BinOp.GATK, BinOp.GATKQ);
mark(ARITH, BinOp.INCREMENT, BinOp.INCREMENTQ, BinOp.DECREMENT, BinOp.DECREMENTQ);
mark(AFTER_KEY, BinOp.TOUCH, BinOp.GAT, BinOp.GATQ, BinOp.GATK, BinOp.GATKQ, BinOp.STAT);
mark(STORE, BinOp.SET, BinOp.SETQ, BinOp.ADD, BinOp.ADDQ, BinOp.REPLACE, BinOp.REPLACEQ, BinOp.APPEND, BinOp.APPENDQ,
  BinOp.PREPEND, BinOp.PREPENDQ);

export class BinaryParser {
  opcode = 0;
  opaque = 0;
  next = 0;
  need = 0;
  /** TEXT: the request in the text protocol is textBuf[textStart, textEnd) (a slice of the thread's slab) */
  textBuf: Buffer = EMPTY;
  textStart = 0;
  textEnd = 0;
  reply: Buffer | null = null;
  /** LOCAL with a body too large to hold: the bytes from pos to skip (they may not all be here) */
  skip = 0;
  /** what was wrong with bytes that are no request memcached serves (counted, logged), else null */
  fault: string | null = null;

  /** version string for Version, refreshed by the caller */
  version = '1.6.0';

  constructor(private readonly maxItemSize: number) {}

  parse(buf: Buffer, pos: number, end: number): number {
    this.textEnd = this.textStart;
    this.reply = null;
    this.need = 0;
    this.skip = 0;
    this.fault = null;
    // A stream that is not binary any more cannot be resynchronised: memcached closes
    // (once it has 24 bytes; here at once, since they cannot make a request).
    if (buf[pos] !== MAGIC_REQUEST) return this.close(end, 'not a binary request header');
    if (end - pos < HEADER_LENGTH) return Bin.NEED_MORE;
    const op = buf[pos + 1]!;
    const keyLen = buf.readUInt16BE(pos + 2);
    const extLen = buf[pos + 4]!;
    const bodyLen = buf.readUInt32BE(pos + 8);
    this.opcode = op;
    this.opaque = buf.readUInt32BE(pos + 12);
    // The header is checked as soon as it is in, as memcached does, and not after
    // a body it announces (which may never come): a protocol error is answered
    // and the connection closed at once.
    if (keyLen + extLen > bodyLen) return this.malformed(Status.UNKNOWN_COMMAND, end, 'key and extras longer than the body');
    if (keyLen > KEY_MAX) return this.malformed(Status.EINVAL, end, 'key over 250 bytes');
    if (!wellFormed(op, keyLen, extLen, bodyLen)) return this.malformed(Status.EINVAL, end, 'extras, key or body length wrong for the opcode');
    // Touch, GAT and Stat end after their key: memcached reads any more body as the next request.
    const total = HEADER_LENGTH + ((OPS[op]! & AFTER_KEY) !== 0 ? extLen + keyLen : bodyLen);
    if (total - HEADER_LENGTH > this.maxItemSize + 8 + KEY_MAX) {
      // Refused without holding it: skipped as it arrives (memcached swallows it).
      const store = (OPS[op]! & STORE) !== 0;
      if (!store) this.fault = 'unknown opcode';
      this.reply = errorResponse(op, this.opaque, store ? Status.E2BIG : Status.UNKNOWN_COMMAND);
      this.skip = total;
      return Bin.LOCAL;
    }
    if (end - pos < total) {
      this.need = total;
      return Bin.NEED_MORE;
    }
    this.next = pos + total;
    const body = pos + HEADER_LENGTH;
    const ks = body + extLen;
    const ke = ks + keyLen;
    const valueLen = bodyLen - extLen - keyLen;
    switch (op) {
      case BinOp.GET: case BinOp.GETQ: case BinOp.GETK: case BinOp.GETKQ:
        return this.line(buf, GETS, '', ks, ke, '');
      case BinOp.GAT: case BinOp.GATQ: case BinOp.GATK: case BinOp.GATKQ: case BinOp.TOUCH:
        return this.line(buf, GATS, `${expiration(buf, body)} `, ks, ke, '');
      case BinOp.SET: case BinOp.SETQ: case BinOp.ADD: case BinOp.ADDQ: case BinOp.REPLACE: case BinOp.REPLACEQ: {
        const cas = casFlag(buf, pos);
        // memcached turns any store with a cas into a cas: a set with C (NF when the key is missing).
        const mode = cas !== '' || op === BinOp.SET || op === BinOp.SETQ ? null : op === BinOp.ADD || op === BinOp.ADDQ ? MODE_ADD : MODE_REPLACE;
        return this.store(buf, ks, ke, valueLen, buf.readUInt32BE(body), expiration(buf, body + 4), cas, mode);
      }
      case BinOp.APPEND: case BinOp.APPENDQ: case BinOp.PREPEND: case BinOp.PREPENDQ:
        return this.store(buf, ks, ke, valueLen, -1, 0, casFlag(buf, pos), op === BinOp.APPEND || op === BinOp.APPENDQ ? MODE_APPEND : MODE_PREPEND);
      case BinOp.DELETE: case BinOp.DELETEQ: {
        const cas = casFlag(buf, pos);
        return cas === '' ? this.line(buf, DELETE, '', ks, ke, '') : this.line(buf, MD, '', ks, ke, cas);
      }
      case BinOp.INCREMENT: case BinOp.INCREMENTQ: case BinOp.DECREMENT: case BinOp.DECREMENTQ: {
        const delta = uint64Decimal(buf.readUInt32BE(body), buf.readUInt32BE(body + 4));
        const initial = uint64Decimal(buf.readUInt32BE(body + 8), buf.readUInt32BE(body + 12));
        const mode = op === BinOp.INCREMENT || op === BinOp.INCREMENTQ ? 'I' : 'D';
        // 0xffffffff: do not create a missing item; otherwise create it with the initial value.
        const create = buf.readUInt32BE(body + 16) === 0xffffffff ? '' : ` N${expiration(buf, body + 16)} J${initial}`;
        return this.line(buf, MA, '', ks, ke, ` D${delta} M${mode} v c${create}${casFlag(buf, pos)}`);
      }
      case BinOp.FLUSH: case BinOp.FLUSHQ:
        return this.line(buf, FLUSH_ALL, extLen === 4 ? ` ${expiration(buf, body)}` : '', 0, 0, '');
      case BinOp.NOOP:
        return this.local(Status.OK);
      case BinOp.VERSION:
        this.reply = response(op, this.opaque, Status.OK, 0, 0, Buffer.from(this.version, 'latin1'));
        return Bin.LOCAL;
      case BinOp.STAT:
        // Only the general group: others are not the proxy's to give.
        return keyLen === 0 ? Bin.STATS : this.local(Status.KEY_ENOENT);
      case BinOp.QUIT:
        this.reply = response(op, this.opaque, Status.OK, 0, 0, null);
        return Bin.CLOSE;
      case BinOp.QUITQ:
        return Bin.CLOSE;
      default:
        // SASL included: mcrelay does not authenticate, as memcached without -S.
        // Verbosity too: memcached 1.6 no longer knows it in binary.
        this.fault = 'unknown opcode';
        return this.local(Status.UNKNOWN_COMMAND);
    }
  }

  /** A header memcached refuses as a protocol error: its answer, then the connection closes. */
  private malformed(status: number, end: number, why: string): number {
    this.reply = errorResponse(this.opcode, this.opaque, status);
    return this.close(end, why);
  }

  private close(end: number, fault: string): number {
    this.next = end;
    this.fault = fault;
    return Bin.CLOSE;
  }

  private local(status: number): number {
    const op = this.opcode;
    // A quiet command that succeeded says nothing.
    this.reply = status === Status.OK && (OPS[op]! & Q) !== 0 ? wire.NOTHING : errorResponse(op, this.opaque, status);
    return Bin.LOCAL;
  }

  /** The request as text: "<verb><pre><key><post>\r\n" */
  private line(buf: Buffer, verb: Buffer, pre: string, ks: number, ke: number, post: string): number {
    const t = this.room(verb.length + pre.length + (ke - ks) + post.length + 2);
    let o = put(t, this.textStart, verb, 0, verb.length);
    if (pre.length > 0) o += t.write(pre, o, 'latin1');
    o = put(t, o, buf, ks, ke);
    if (post.length > 0) o += t.write(post, o, 'latin1');
    t[o] = 0x0d;
    t[o + 1] = 0x0a;
    this.textEnd = o + 2;
    arena.used = this.textEnd;
    return Bin.TEXT;
  }

  /**
   * "ms <key> <vlen>[ F<flags> T<exptime>] c<cas flag>[<mode>]\r\n<value>\r\n": the
   * value is what follows the key in the request; flags -1 for append and prepend,
   * which keep the item's.
   */
  private store(buf: Buffer, ks: number, ke: number, vlen: number, flags: number, exptime: number, cas: string, mode: Buffer | null): number {
    if (vlen > this.maxItemSize) return this.local(Status.E2BIG);
    // "ms " key " " vlen " F" flags " T" exptime " c" cas mode CRLF value CRLF, numbers at most 10 digits
    const t = this.room(3 + (ke - ks) + 1 + 10 + 2 + 10 + 2 + 10 + 2 + cas.length + 3 + 2 + vlen + 2);
    let o = put(t, this.textStart, MS, 0, MS.length);
    o = put(t, o, buf, ks, ke);
    t[o++] = SP;
    o = digits(t, o, vlen);
    if (flags >= 0) {
      t[o++] = SP;
      t[o++] = 0x46; // F
      o = digits(t, o, flags);
      t[o++] = SP;
      t[o++] = 0x54; // T
      o = digits(t, o, exptime);
    }
    t[o++] = SP;
    t[o++] = 0x63; // c
    if (cas.length > 0) o += t.write(cas, o, 'latin1');
    if (mode !== null) o = put(t, o, mode, 0, mode.length);
    t[o++] = 0x0d;
    t[o++] = 0x0a;
    o += buf.copy(t, o, ke, ke + vlen);
    t[o] = 0x0d;
    t[o + 1] = 0x0a;
    this.textEnd = o + 2;
    arena.used = this.textEnd;
    return Bin.TEXT;
  }

  /** Room for a translation of up to n bytes at the slab's cursor: textBuf, with textStart there. */
  private room(n: number): Buffer {
    if (arena.slab.length - arena.used < n) {
      arena.slab = Buffer.allocUnsafeSlow(Math.max(TEXT_SLAB, n));
      arena.used = 0;
    }
    this.textBuf = arena.slab;
    this.textStart = this.textEnd = arena.used;
    return arena.slab;
  }

  /** The translated request as a Buffer of its own (for tests). */
  get text(): Buffer {
    return Buffer.from(this.textBuf.subarray(this.textStart, this.textEnd));
  }
}

const EMPTY = Buffer.alloc(0);
const GETS = Buffer.from('gets ');
const GATS = Buffer.from('gats ');
const DELETE = Buffer.from('delete ');
const MD = Buffer.from('md ');
const MA = Buffer.from('ma ');
const MS = Buffer.from('ms ');
const FLUSH_ALL = Buffer.from('flush_all');
const MODE_ADD = Buffer.from(' ME');
const MODE_REPLACE = Buffer.from(' MR');
const MODE_APPEND = Buffer.from(' MA');
const MODE_PREPEND = Buffer.from(' MP');

/**
 * Where translations are written: one slab per thread, each translation taking
 * the bytes after the last. The cursor only moves forward, so the bytes of a
 * request still in flight (its Request keeps the slab as its `buf`) are never
 * overwritten; a full slab is left to the requests that still hold it.
 */
const TEXT_SLAB = 64 * 1024;
const arena = { slab: EMPTY, used: 0 };

/** Copies src[start, end) to t at o; a byte loop for the short pieces a request line is made of. */
function put(t: Buffer, o: number, src: Buffer, start: number, end: number): number {
  if (end - start > 32) return o + src.copy(t, o, start, end);
  for (let i = start; i < end; i++) t[o++] = src[i]!;
  return o;
}

/** n (an integer 0 <= n < 2^32) in decimal at t[o]; returns the offset after it. */
function digits(t: Buffer, o: number, n: number): number {
  let len = 1;
  for (let x = n; x >= 10; x = Math.floor(x / 10)) len++;
  let i = o + len;
  do {
    t[--i] = 0x30 + (n % 10);
    n = Math.floor(n / 10);
  } while (n > 0);
  return o + len;
}

/**
 * An expiration of the binary protocol, unsigned: memcached reads one of 2^31 or
 * more as a unix time after 2038. The text protocol (and meta T, N) takes a
 * signed 32-bit number, where it would be negative (already expired), so it
 * goes as the last time the text protocol can say (January 2038): far in the
 * future, as in memcached.
 */
function expiration(buf: Buffer, at: number): number {
  return Math.min(buf.readUInt32BE(at), 0x7fffffff);
}

/** " C<cas>" for a request header with a cas, else "" */
function casFlag(buf: Buffer, pos: number): string {
  const hi = buf.readUInt32BE(pos + 16);
  const lo = buf.readUInt32BE(pos + 20);
  return hi === 0 && lo === 0 ? '' : ` C${uint64Decimal(hi, lo)}`;
}

/**
 * Whether a header's extras, key and body lengths are what memcached 1.6 wants
 * for its opcode (dispatch_bin_command); an opcode it does not serve passes
 * (its body is skipped). Quiet forms as their loud ones.
 */
function wellFormed(op: number, keyLen: number, extLen: number, bodyLen: number): boolean {
  switch (op) {
    case BinOp.VERSION: case BinOp.NOOP: case BinOp.QUIT: case BinOp.QUITQ: case BinOp.SASL_LIST_MECHS:
      return bodyLen === 0;
    case BinOp.FLUSH: case BinOp.FLUSHQ:
      return keyLen === 0 && bodyLen === extLen && (extLen === 0 || extLen === 4);
    case BinOp.SET: case BinOp.SETQ: case BinOp.ADD: case BinOp.ADDQ: case BinOp.REPLACE: case BinOp.REPLACEQ:
      return extLen === 8 && keyLen !== 0;
    case BinOp.GET: case BinOp.GETQ: case BinOp.GETK: case BinOp.GETKQ: case BinOp.DELETE: case BinOp.DELETEQ:
      return extLen === 0 && keyLen !== 0 && bodyLen === keyLen;
    case BinOp.INCREMENT: case BinOp.INCREMENTQ: case BinOp.DECREMENT: case BinOp.DECREMENTQ:
      return extLen === 20 && keyLen !== 0 && bodyLen === keyLen + 20;
    case BinOp.APPEND: case BinOp.APPENDQ: case BinOp.PREPEND: case BinOp.PREPENDQ: case BinOp.SASL_AUTH: case BinOp.SASL_STEP:
      return extLen === 0 && keyLen !== 0;
    case BinOp.STAT:
      return extLen === 0;
    case BinOp.TOUCH: case BinOp.GAT: case BinOp.GATQ: case BinOp.GATK: case BinOp.GATKQ:
      return extLen === 4 && keyLen !== 0;
    default:
      return true;
  }
}

export function isQuiet(op: number): boolean {
  return (OPS[op]! & Q) !== 0;
}

/** A response with no extras, no key and `value` (or nothing). */
export function response(op: number, opaque: number, status: number, casHi: number, casLo: number, value: Buffer | null): Buffer {
  const len = value === null ? 0 : value.length;
  const b = Buffer.allocUnsafe(HEADER_LENGTH + len);
  writeHeader(b, 0, op, 0, 0, status, len, opaque, casHi, casLo);
  if (value !== null) value.copy(b, HEADER_LENGTH);
  return b;
}

/** memcached's error response: the status's words as the value. */
export function errorResponse(op: number, opaque: number, status: number): Buffer {
  return response(op, opaque, status, 0, 0, STATUS_TEXT[status] ?? null);
}

function writeHeader(b: Buffer, at: number, op: number, keyLen: number, extLen: number, status: number, bodyLen: number, opaque: number, casHi: number, casLo: number): void {
  // Byte by byte: Buffer's writeUInt32BE checks its arguments on every call.
  b[at] = MAGIC_RESPONSE;
  b[at + 1] = op;
  b[at + 2] = keyLen >>> 8;
  b[at + 3] = keyLen;
  b[at + 4] = extLen;
  b[at + 5] = 0;
  b[at + 6] = status >>> 8;
  b[at + 7] = status;
  u32(b, at + 8, bodyLen);
  u32(b, at + 12, opaque);
  u32(b, at + 16, casHi);
  u32(b, at + 20, casLo);
}

function u32(b: Buffer, at: number, v: number): void {
  b[at] = v >>> 24;
  b[at + 1] = v >>> 16;
  b[at + 2] = v >>> 8;
  b[at + 3] = v;
}

/** The general stats as binary: one response per stat, then an empty one. */
export function statsResponse(opaque: number, text: Buffer): Buffer {
  const parts: Buffer[] = [];
  const s = text.toString('latin1');
  for (const line of s.split('\r\n')) {
    if (!line.startsWith('STAT ')) continue;
    const sp = line.indexOf(' ', 5);
    const key = Buffer.from(line.slice(5, sp), 'latin1');
    const val = Buffer.from(line.slice(sp + 1), 'latin1');
    const b = Buffer.allocUnsafe(HEADER_LENGTH + key.length + val.length);
    writeHeader(b, 0, BinOp.STAT, key.length, 0, Status.OK, key.length + val.length, opaque, 0, 0);
    key.copy(b, HEADER_LENGTH);
    val.copy(b, HEADER_LENGTH + key.length);
    parts.push(b);
  }
  parts.push(response(BinOp.STAT, opaque, Status.OK, 0, 0, null));
  return Buffer.concat(parts);
}

// ---- replies: from what the servers answered in text/meta to binary

/** a response header and up to 8 bytes of extras or value (flags, incr's number), copied out by BinaryOut.add */
const HEADER = Buffer.alloc(HEADER_LENGTH + 8);

export interface BinaryOut {
  add(b: Buffer, start: number, end: number): void;
  addAll(b: Buffer): void;
}

/** The status a text or meta reply line means for a request of opcode `op`. */
export function statusOf(op: number, b: Buffer, start: number, end: number): number {
  const c0 = b[start]!;
  const c1 = b[start + 1]!;
  const len = end - start;
  // STORED, DELETED, TOUCHED, OK, HD, VA (ma's new value)
  if ((c0 === 0x53 && c1 === 0x54) || (c0 === 0x44 && c1 === 0x45) || (c0 === 0x54 && c1 === 0x4f) ||
      (c0 === 0x4f && c1 === 0x4b) || (c0 === 0x48 && c1 === 0x44) || (c0 === 0x56 && c1 === 0x41)) return Status.OK;
  if (c0 === 0x4e && ((c1 === 0x4f && len >= 10 && b[start + 4] === 0x53) || c1 === 0x53)) {
    // NOT_STORED, NS: add finds the key there, replace finds none, append/prepend find none
    if (op === BinOp.ADD || op === BinOp.ADDQ) return Status.KEY_EEXISTS;
    if (op === BinOp.REPLACE || op === BinOp.REPLACEQ) return Status.KEY_ENOENT;
    return Status.NOT_STORED;
  }
  if (c0 === 0x4e && (c1 === 0x4f || c1 === 0x46)) return Status.KEY_ENOENT; // NOT_FOUND, NF
  if (c0 === 0x45 && (c1 === 0x58 || c1 === 0x4e)) return c1 === 0x58 ? Status.KEY_EEXISTS : Status.KEY_ENOENT; // EXISTS, EX / EN
  if (b.includes('non-numeric', start) && b.indexOf('non-numeric', start) < end) return Status.DELTA_BADVAL;
  if (b.includes('too large', start) && b.indexOf('too large', start) < end) return Status.E2BIG;
  if (c0 === 0x53) {
    // SERVER_ERROR: out of memory, or no server to take it (memcached's temporary failure)
    return b.indexOf('memory', start) !== -1 && b.indexOf('memory', start) < end ? Status.ENOMEM : Status.ETMPFAIL;
  }
  if (c0 === 0x43) return Status.EINVAL; // CLIENT_ERROR
  return Status.UNKNOWN_COMMAND; // ERROR
}

/**
 * Writes the binary reply of a request translated from opcode `op`: `line` is
 * the reply line the proxy got (null for a retrieval, which has `value`:
 * "VALUE ..." or "VA ..." as the server sent it, null for a miss); `key` the
 * request's key in keyBuf[ks, ke).
 */
export function encodeReply(out: BinaryOut, op: number, opaque: number, line: Buffer | null, value: Buffer | null, vs: number, ve: number,
  keyBuf: Buffer, ks: number, ke: number): void {
  const bits = OPS[op]!;
  const quiet = (bits & Q) !== 0;
  if ((bits & GET) !== 0 && line === null) {
    const withKey = (bits & WITH_KEY) !== 0;
    if (value === null) {
      if (quiet) return;
      if (withKey) {
        writeHeader(HEADER, 0, op, ke - ks, 0, Status.KEY_ENOENT, ke - ks, opaque, 0, 0);
        out.add(HEADER, 0, HEADER_LENGTH);
        out.add(keyBuf, ks, ke);
      } else {
        out.addAll(errorResponse(op, opaque, Status.KEY_ENOENT));
      }
      return;
    }
    writeValue(out, op, opaque, value, vs, ve, withKey ? keyBuf : null, ks, ke);
    return;
  }
  if (line === null) return;
  // the line without its CRLF (a meta VA reply keeps its block after it)
  let le = 0;
  while (le < line.length && line[le] !== 0x0d) le++;
  if (line === wire.NOTHING || line.length === 0) return;
  const status = statusOf(op, line, 0, le);
  if (status !== Status.OK) {
    if ((bits & GET) !== 0 && quiet && status === Status.KEY_ENOENT) return;
    out.addAll(errorResponse(op, opaque, status));
    return;
  }
  if (quiet) return;
  // ms and ma answer "HD c<cas>" and "VA <n> c<cas>": the item's new cas (none in a delete's reply)
  metaNumber(line, 0, le, 0x63);
  const casHi = num.hi;
  const casLo = num.lo;
  if ((bits & ARITH) !== 0) {
    // "VA <n> c<cas>\r\n<number>\r\n"
    const ds = le + 2;
    let de = ds;
    while (de < line.length && line[de] !== 0x0d) de++;
    readUint64(line, ds, de);
    writeHeader(HEADER, 0, op, 0, 0, Status.OK, 8, opaque, casHi, casLo);
    u32(HEADER, HEADER_LENGTH, num.hi);
    u32(HEADER, HEADER_LENGTH + 4, num.lo);
    out.add(HEADER, 0, HEADER_LENGTH + 8);
    return;
  }
  writeHeader(HEADER, 0, op, 0, 0, Status.OK, 0, opaque, casHi, casLo);
  out.add(HEADER, 0, HEADER_LENGTH);
}

/**
 * The number after flag `letter` in a meta reply line b[start, cr) ("HD c12",
 * "VA 2 f0 c12"; the code and VA's size are not flags) into `num`; 0 when the
 * line has no such flag.
 */
function metaNumber(b: Buffer, start: number, cr: number, letter: number): void {
  let i = start;
  while (i < cr && b[i] !== SP) i++;
  if (b[start] === 0x56 && b[start + 1] === 0x41) {
    i++;
    while (i < cr && b[i] !== SP) i++;
  }
  while (i < cr) {
    const t = ++i;
    while (i < cr && b[i] !== SP) i++;
    if (b[t] === letter) {
      readUint64(b, t + 1, i);
      return;
    }
  }
  num.hi = 0;
  num.lo = 0;
}

/** A hit: flags as extras, the key for the K forms, the data (none for touch), the cas. */
function writeValue(out: BinaryOut, op: number, opaque: number, b: Buffer, start: number, end: number, key: Buffer | null, ks: number, ke: number): void {
  let lf = start;
  while (b[lf] !== 0x0a) lf++;
  const cr = lf - 1;
  let flags: number;
  let casHi: number;
  let casLo: number;
  if (b[start + 2] === SP) {
    // "VA <size> <flags>*": f<flags>, c<cas>, in one pass
    flags = 0;
    casHi = 0;
    casLo = 0;
    let i = start + 3;
    while (i < cr && b[i] !== SP) i++;
    while (i < cr) {
      const t = ++i;
      while (i < cr && b[i] !== SP) i++;
      if (b[t] === 0x66) {
        readUint64(b, t + 1, i);
        flags = num.lo;
      } else if (b[t] === 0x63) {
        readUint64(b, t + 1, i);
        casHi = num.hi;
        casLo = num.lo;
      }
    }
  } else {
    // "VALUE <key> <flags> <bytes> <cas>"
    let i = start + 6;
    while (b[i] !== SP) i++;
    const flagsS = ++i;
    while (b[i] !== SP) i++;
    const flagsE = i++;
    while (i < cr && b[i] !== SP) i++;
    readUint64(b, flagsS, flagsE);
    flags = num.lo;
    readUint64(b, i + 1, i < cr ? cr : i + 1);
    casHi = num.hi;
    casLo = num.lo;
  }
  const ds = lf + 1;
  const de = op === BinOp.TOUCH ? ds : end - 2;
  const keyLen = key === null ? 0 : ke - ks;
  writeHeader(HEADER, 0, op, keyLen, 4, Status.OK, 4 + keyLen + (de - ds), opaque, casHi, casLo);
  u32(HEADER, HEADER_LENGTH, flags);
  out.add(HEADER, 0, HEADER_LENGTH + 4);
  if (key !== null) out.add(key, ks, ke);
  out.add(b, ds, de);
}

// ---- 64-bit numbers as two 32-bit halves (no BigInt on the data path)

/** hi * 2^32 + lo in decimal. */
export function uint64Decimal(hi: number, lo: number): string {
  if (hi === 0) return String(lo);
  // Long division by 10^7 on 16-bit limbs: exact for every 64-bit value.
  const limbs = [hi >>> 16, hi & 0xffff, lo >>> 16, lo & 0xffff];
  let out = '';
  while (limbs[0] !== 0 || limbs[1] !== 0 || limbs[2] !== 0 || limbs[3] !== 0) {
    let rem = 0;
    for (let i = 0; i < 4; i++) {
      const cur = rem * 65536 + limbs[i]!;
      limbs[i] = Math.floor(cur / 10_000_000);
      rem = cur % 10_000_000;
    }
    const done = limbs[0] === 0 && limbs[1] === 0 && limbs[2] === 0 && limbs[3] === 0;
    out = (done ? String(rem) : String(rem).padStart(7, '0')) + out;
  }
  return out;
}

/** The last number read by readUint64 or metaNumber, as two 32-bit halves (no tuple per reply). */
const num = { hi: 0, lo: 0 };

/** Decimal digits b[start, end) into `num` (wrapping past 2^64, as memcached never sends). */
function readUint64(b: Buffer, start: number, end: number): void {
  if (end - start <= 15) {
    // Under 2^53: exact in one double, the common case (flags, most cas values).
    let v = 0;
    for (let i = start; i < end; i++) {
      const d = b[i]! - 0x30;
      if (d < 0 || d > 9) break;
      v = v * 10 + d;
    }
    num.hi = Math.floor(v / 4294967296);
    num.lo = v >>> 0;
    return;
  }
  let hi = 0;
  let lo = 0;
  for (let i = start; i < end; i++) {
    const d = b[i]! - 0x30;
    if (d < 0 || d > 9) break;
    // (hi, lo) * 10 + d
    const l = lo * 10 + d;
    lo = l % 4294967296;
    hi = (hi * 10 + Math.floor(l / 4294967296)) % 4294967296;
  }
  num.hi = hi >>> 0;
  num.lo = lo >>> 0;
}
