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
//
// This module is the request side; binary-reply.ts holds the opcodes, the
// statuses and every response (encodeReply, and the local answers made here).

import { SLAB_BYTES } from '../io/buffers.js';
import * as wire from './wire.js';
import { AFTER_KEY, BinOp, errorResponse, HEADER_LENGTH, OPS, Q, response, Status, STORE } from './binary-reply.js';

export const MAGIC_REQUEST = 0x80;

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

const SP = 0x20;
const KEY_MAX = 250;

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
const TEXT_SLAB = SLAB_BYTES;
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
