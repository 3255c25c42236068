// A client's meta request (mg, ms, md, ma, me) as memcached 1.6 reads it: the
// checks its line must pass before the proxy routes and frames it (parseMeta,
// called by RequestParser.parse on the tokens it found), and the meta flags the
// proxy acts on (RequestParser.metaFlags, read by the worker).

import { Cmd } from './commands.js';
import { parseInt32Token } from './numbers.js';
import { KEY_MAX_LENGTH, MAX_TOKENS, Parse, validKey } from './request-rules.js';
import * as wire from './wire.js';

const META_MAX_TOKENS = 20; // of a non-retrieval command; beyond it memcached answers ERROR

/** Meta flags the proxy acts on (RequestParser.metaFlags). */
export const META_QUIET = 1;
export const META_BASE64 = 2;
export const META_CAS = 4;
export const META_TTL = 8;
/** q appears twice: forwarded as sent (memcached refuses it), not quieted by the proxy */
export const META_KEEP_Q = 32;
/**
 * The outcome depends on the key's current value: mg/ma N (create on a miss),
 * ms in mode E, A, P or R (add, append, prepend, replace)
 */
export const META_DEPENDS = 64;
/** I: md marks the item stale instead of deleting it, ms stores it stale (under C) */
export const META_INVALIDATE = 128;

/**
 * What parseMeta reads and sets of the parser that found the tokens: the
 * RequestParser (declared here, not imported, so that the two modules do not
 * import each other).
 */
export interface MetaTarget {
  cmd: number;
  next: number;
  lineStart: number;
  keyCount: number;
  keyOffsets: Int32Array;
  bytes: number;
  dataStart: number;
  need: number;
  swallow: number;
  dropKey: boolean;
  metaFlags: number;
  readonly tokStart: Int32Array;
  readonly tokEnd: Int32Array;
  ntok: number;
  readonly maxItemSize: number;
  error(reply: Buffer): number;
}

/**
 * mg/ms/md/ma/me <key> [<datalen> for ms] <flags>*. The proxy checks what it
 * must to route and frame the request (key, data length) and leaves the flags
 * to the server, which answers a bad one with one error line (and, for ms,
 * swallows the data block itself), so the stream stays in step.
 */
export function parseMeta(p: MetaTarget, buf: Buffer, end: number): number {
  const n = p.ntok;
  if (n < 1) return p.error(p.cmd === Cmd.ME ? wire.CLIENT_ERROR_FORMAT : wire.ERROR);
  // A key over 250 bytes is refused first; then a meta line of 20 tokens or more,
  // before any data block is read (me takes no flags); mg words it its own way.
  if (p.tokEnd[0]! - p.tokStart[0]! > KEY_MAX_LENGTH) return p.error(wire.CLIENT_ERROR_FORMAT);
  if (n + 1 >= META_MAX_TOKENS && p.cmd !== Cmd.ME) {
    return p.error(p.cmd === Cmd.MG ? wire.CLIENT_ERROR_FLAGS_ARE_TOO_LONG : wire.CLIENT_ERROR_FLAGS_TOO_LONG);
  }
  let flags = 0;
  const first = p.cmd === Cmd.MS ? 2 : 1;
  for (let t = first; t < n && t < MAX_TOKENS; t++) {
    switch (buf[p.tokStart[t]!]) {
      // q twice is memcached's "duplicate flag" error: left for it to answer.
      case 0x71: flags |= (flags & META_QUIET) !== 0 ? META_KEEP_Q : META_QUIET; break; // q
      case 0x62: flags |= META_BASE64; break; // b
      case 0x43: flags |= META_CAS; break; // C
      case 0x54: flags |= META_TTL; break; // T
      case 0x4e: flags |= META_DEPENDS; break; // N
      case 0x49: flags |= META_INVALIDATE; break; // I
      case 0x4d: if (p.cmd === Cmd.MS && isConditionalMode(buf[p.tokStart[t]! + 1])) flags |= META_DEPENDS; break; // M
    }
  }
  if ((flags & META_KEEP_Q) !== 0 || p.cmd === Cmd.ME) flags &= ~META_QUIET; // me takes no flags
  p.metaFlags = flags;
  const ks = p.tokStart[0]!;
  const ke = p.tokEnd[0]!;
  // memcached applies the key rules to the token as sent, base64 or not.
  if (!validKey(buf, ks, ke)) return p.error(wire.CLIENT_ERROR_FORMAT);
  p.keyOffsets[0] = ks;
  p.keyOffsets[1] = ke;
  p.keyCount = 1;
  if (p.cmd !== Cmd.MS) return Parse.REQUEST;
  if (n < 2) return p.error(wire.CLIENT_ERROR_FORMAT);
  const bytes = parseInt32Token(buf, p.tokStart[1]!, p.tokEnd[1]!);
  if (bytes === null || bytes < 0 || bytes > 2147483647 - 2) return p.error(wire.CLIENT_ERROR_FORMAT);
  p.bytes = bytes;
  p.dataStart = p.next;
  if (bytes > p.maxItemSize) {
    p.swallow = bytes + 2;
    // As for set, memcached unlinks the old item of an ms it cannot store (whatever the mode).
    p.dropKey = true;
    return p.error(wire.SERVER_ERROR_TOO_LARGE);
  }
  const dataEnd = p.next + bytes + 2;
  if (dataEnd > end) {
    p.need = dataEnd - p.lineStart;
    return Parse.NEED_MORE;
  }
  p.next = dataEnd;
  // A block with a bad end is still forwarded: memcached checks the flags first
  // and answers a flag error rather than "bad data chunk" (either way one reply,
  // the block swallowed).
  return Parse.REQUEST;
}

/** ms modes E, A, P, R (either case): add, append, prepend, replace */
function isConditionalMode(c: number | undefined): boolean {
  const u = c === undefined ? 0 : c & 0xdf;
  return u === 0x45 || u === 0x41 || u === 0x50 || u === 0x52;
}
