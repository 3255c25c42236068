// What both request parsers hold a client's line to, and what they answer: the
// outcomes of RequestParser.parse, memcached 1.6's limits (key, line, get line,
// tokens) and its key rule. The text parser (request-parser.ts) and the meta one
// (meta-request.ts) share them, as do the worker and main/, which check keys of
// their own. Kept apart so that the imports go one way: request-parser.ts
// calls parseMeta, and neither needs the other for these.

export const Parse = {
  /** no complete request yet; `need` is the total length wanted from pos, or 0 if unknown */
  NEED_MORE: 0,
  /** a request is described by the fields; it ends at `next` */
  REQUEST: 1,
  /** answer `reply` (unless noreply) and continue at `next` */
  REPLY: 2,
  /** answer `reply` if set, then close the connection */
  CLOSE: 3,
} as const;

export const KEY_MAX_LENGTH = 250;
/** memcached closes a connection whose unterminated line grows past this (get lines excepted); so does mcrelay, after an error line. */
export const LINE_MAX_LENGTH = 2048;
/** a get line may be long (10,000 keys); past this it is hostile. */
export const GET_LINE_MAX_LENGTH = 8 * 1024 * 1024;
/** tokens of a line the parsers keep (RequestParser.tokStart) */
export const MAX_TOKENS = 24;

const SP = 0x20;
const DEL = 0x7f;

/** memcached's key rule plus the proxy's: 1..250 bytes, no control characters. */
export function validKey(buf: Uint8Array, start: number, end: number): boolean {
  const len = end - start;
  if (len <= 0 || len > KEY_MAX_LENGTH) return false;
  for (let i = start; i < end; i++) {
    const c = buf[i]!;
    if (c <= SP || c === DEL) return false;
  }
  return true;
}
