// Number tokens read exactly as memcached 1.6 reads them (safe_strtoul,
// safe_strtoull and safe_strtol over strtoul/strtoull/strtol on 64-bit Linux), so
// that mcrelay refuses exactly the lines memcached refuses: a line the proxy
// forwards must get exactly one reply, or the backend stream falls out of step.
//
// C's rules, in short: leading white space is skipped, a sign is allowed, at least
// one digit, and the number may be followed by white space (the tokenizer splits
// on spaces only, so a tab can end up inside a token). Out of the 64-bit range is
// ERANGE (refused); safe_strtol then truncates to int32 without complaint.

const MINUS = 0x2d;
const PLUS = 0x2b;
const U64_MAX = '18446744073709551615';
const I64_MAX = '9223372036854775807';
const I64_MIN_ABS = '9223372036854775808';

function isSpace(c: number | undefined): boolean {
  return c === 0x20 || (c !== undefined && c >= 0x09 && c <= 0x0d);
}

/** Parsed pieces of a number token; fields of one reusable object, no allocation. */
class Scan {
  negative = false;
  /** digits without leading zeros: [digitsStart, digitsEnd) */
  digitsStart = 0;
  digitsEnd = 0;
  /** the magnitude modulo 2^32 */
  low32 = 0;

  /** False unless the token is [space][sign]digits[space...]. */
  read(buf: Uint8Array, start: number, end: number): boolean {
    let i = start;
    while (i < end && isSpace(buf[i])) i++;
    this.negative = false;
    if (buf[i] === PLUS || buf[i] === MINUS) { this.negative = buf[i] === MINUS; i++; }
    const first = i;
    let low = 0;
    while (i < end) {
      const d = buf[i]! - 0x30;
      if (d < 0 || d > 9) break;
      low = (low * 10 + d) % 4294967296;
      i++;
    }
    if (i === first) return false;
    if (i < end && !isSpace(buf[i])) return false;
    let s = first;
    while (s < i - 1 && buf[s] === 0x30) s++;
    this.digitsStart = s;
    this.digitsEnd = i;
    this.low32 = low;
    return true;
  }

  /** magnitude <= limit (a decimal string without leading zeros) */
  atMost(buf: Uint8Array, limit: string): boolean {
    const n = this.digitsEnd - this.digitsStart;
    if (n !== limit.length) return n < limit.length;
    for (let k = 0; k < n; k++) {
      const d = buf[this.digitsStart + k]!;
      const m = limit.charCodeAt(k);
      if (d !== m) return d < m;
    }
    return true;
  }

  isZero(buf: Uint8Array): boolean {
    return this.digitsEnd - this.digitsStart === 1 && buf[this.digitsStart] === 0x30;
  }
}

const scan = new Scan();

/**
 * safe_strtoul / safe_strtoull: any 64-bit unsigned value; "-N" is strtoull's
 * 2^64 - N, refused when that is negative as a signed number (N <= 2^63).
 */
export function isValidUnsignedToken(buf: Uint8Array, start: number, end: number): boolean {
  if (!scan.read(buf, start, end) || !scan.atMost(buf, U64_MAX)) return false;
  if (!scan.negative || scan.isZero(buf)) return true;
  return !scan.atMost(buf, I64_MIN_ABS);
}

/** safe_strtol into an int32: the value truncated to 32 bits as C does, or null when refused. */
export function parseInt32Token(buf: Uint8Array, start: number, end: number): number | null {
  if (!scan.read(buf, start, end)) return null;
  if (!scan.atMost(buf, scan.negative ? I64_MIN_ABS : I64_MAX)) return null;
  const low = scan.negative ? (4294967296 - scan.low32) % 4294967296 : scan.low32;
  return low | 0;
}
