// memcached's binary protocol, the reply side: its words (opcodes, statuses, the
// 24-byte header), every binary response the proxy writes, and the encoding of
// what the servers answered (text or meta) back into binary.
//
//   Request done --encodeReply--> the binary response (status, extras, key, value)
//   a general stat's text         --statsResponse--> one response per stat
//   a local answer (noop, error)  --response, errorResponse--> one response
//
// The request side (binary-request.ts) builds on this module: it reads the same
// opcode table and makes its local answers here, so the imports go one way.

import * as wire from './wire.js';

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
  DELTA_BADVAL: 0x06, AUTH_ERROR: 0x20, UNKNOWN_COMMAND: 0x81, ENOMEM: 0x82, ETMPFAIL: 0x86,
} as const;

// memcached's words for each status (write_bin_error); ETMPFAIL is mcrelay's.
const STATUS_TEXT: Record<number, Buffer> = {
  [Status.KEY_ENOENT]: Buffer.from('Not found'),
  [Status.KEY_EEXISTS]: Buffer.from('Data exists for key.'),
  [Status.E2BIG]: Buffer.from('Too large.'),
  [Status.EINVAL]: Buffer.from('Invalid arguments'),
  [Status.NOT_STORED]: Buffer.from('Not stored.'),
  [Status.DELTA_BADVAL]: Buffer.from('Non-numeric server-side value for incr or decr'),
  [Status.AUTH_ERROR]: Buffer.from('Auth failure.'),
  [Status.UNKNOWN_COMMAND]: Buffer.from('Unknown command'),
  [Status.ENOMEM]: Buffer.from('Out of memory'),
  [Status.ETMPFAIL]: Buffer.from('Temporary failure'),
};

const SP = 0x20;

// What each opcode is, one bit each (a table: asked once or twice per request;
// binary-request.ts reads Q, AFTER_KEY and STORE).
export const Q = 1; // quiet: success (for gets, a miss too) says nothing
const GET = 2; // a retrieval: its reply is a hit or a miss
const WITH_KEY = 4; // a retrieval whose hit and miss carry the key
const ARITH = 8; // incr/decr: the new value as the body
export const AFTER_KEY = 16; // ends after its key: memcached reads any more body as the next request
export const STORE = 32; // carries a value
export const OPS = new Uint8Array(256);
function mark(bits: number, ...ops: number[]): void { for (const op of ops) OPS[op]! |= bits; }
mark(Q, BinOp.GETQ, BinOp.GETKQ, BinOp.GATQ, BinOp.GATKQ, BinOp.SETQ, BinOp.ADDQ, BinOp.REPLACEQ, BinOp.DELETEQ,
  BinOp.INCREMENTQ, BinOp.DECREMENTQ, BinOp.FLUSHQ, BinOp.APPENDQ, BinOp.PREPENDQ, BinOp.QUITQ);
mark(GET, BinOp.GET, BinOp.GETQ, BinOp.GETK, BinOp.GETKQ, BinOp.GAT, BinOp.GATQ, BinOp.GATK, BinOp.GATKQ, BinOp.TOUCH);
mark(WITH_KEY, BinOp.GETK, BinOp.GETKQ, BinOp.GATK, BinOp.GATKQ);
mark(ARITH, BinOp.INCREMENT, BinOp.INCREMENTQ, BinOp.DECREMENT, BinOp.DECREMENTQ);
mark(AFTER_KEY, BinOp.TOUCH, BinOp.GAT, BinOp.GATQ, BinOp.GATK, BinOp.GATKQ, BinOp.STAT);
mark(STORE, BinOp.SET, BinOp.SETQ, BinOp.ADD, BinOp.ADDQ, BinOp.REPLACE, BinOp.REPLACEQ, BinOp.APPEND, BinOp.APPENDQ,
  BinOp.PREPEND, BinOp.PREPENDQ);

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
