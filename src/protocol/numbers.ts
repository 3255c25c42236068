// Number tokens validated the way memcached's safe_strto* functions accept them
// (strtoul/strtol: optional sign, decimal digits, nothing after), so that mcrelay
// refuses exactly the lines memcached refuses and a forwarded line never gets a
// reply the proxy did not expect.

const MINUS = 0x2d;
const PLUS = 0x2b;

/** Parses an unsigned decimal token; returns -1 when memcached would refuse it (max 2^53). */
function digits(buf: Uint8Array, start: number, end: number): number {
  if (start >= end) return -1;
  let v = 0;
  for (let i = start; i < end; i++) {
    const d = buf[i]! - 0x30;
    if (d < 0 || d > 9) return -1;
    v = v * 10 + d;
  }
  return v;
}

/**
 * memcached's safe_strtoul into a uint32 (flags): a value above 2^32 is accepted
 * and truncated as C does; a negative number is refused unless it is -0.
 */
export function isValidUint32Token(buf: Uint8Array, start: number, end: number): boolean {
  let s = start;
  let negative = false;
  if (buf[s] === PLUS || buf[s] === MINUS) { negative = buf[s] === MINUS; s++; }
  const v = digits(buf, s, end);
  if (v < 0) return false;
  // strtoul would give ULONG_MAX - v + 1 for "-v": a huge value, refused by the
  // negative-sign check; "-0" stays 0 and is accepted. Over 2^64 is ERANGE.
  if (negative) return v === 0;
  return v <= 18446744073709551615;
}

/** memcached's safe_strtol into an int32 (exptime, byte count); returns null on refusal. */
export function parseInt32Token(buf: Uint8Array, start: number, end: number): number | null {
  let s = start;
  let negative = false;
  if (buf[s] === PLUS || buf[s] === MINUS) { negative = buf[s] === MINUS; s++; }
  const v = digits(buf, s, end);
  if (v < 0) return null;
  const n = negative ? -v : v;
  // strtol's ERANGE is at the 64-bit long limit; after it memcached refuses > INT_MAX
  // and truncates below INT_MIN, which no sane exptime reaches.
  if (n > 2147483647) return null;
  if (n < -9223372036854775808) return null;
  return n;
}

/** memcached's safe_strtoull (incr/decr delta): 0..2^64-1, no negative sign. */
export function isValidUint64Token(buf: Uint8Array, start: number, end: number): boolean {
  let s = start;
  if (buf[s] === PLUS) s++;
  else if (buf[s] === MINUS) {
    const v = digits(buf, s + 1, end);
    return v === 0;
  }
  if (end - s > 20) {
    // Leading zeros may make a long token still in range.
    while (s < end - 1 && buf[s] === 0x30) s++;
    if (end - s > 20) return false;
  }
  if (s >= end) return false;
  for (let i = s; i < end; i++) {
    const d = buf[i]! - 0x30;
    if (d < 0 || d > 9) return false;
  }
  if (end - s < 20) return true;
  // 20 digits: compare with 18446744073709551615 byte by byte (doubles cannot).
  const max = '18446744073709551615';
  for (let i = 0; i < 20; i++) {
    const d = buf[s + i]!;
    const m = max.charCodeAt(i);
    if (d !== m) return d < m;
  }
  return true;
}
