// Whether a master's and a backup's replies to the same write say the same thing.
//
// Two servers holding the same items still answer some meta flags differently:
// each keeps its own cas counter (c<n>), a TTL read back (t<n>) can straddle a
// second boundary between the two, and an opaque (O) is an echo the comparison
// has no use for. Everything else (the status code, the returned key, a value
// ma returned with v) must be the same bytes. Text replies carry none of these
// and are compared byte for byte.

const SP = 0x20;
const CR = 0x0d;
const MINUS = 0x2d;

/**
 * a and b are whole replies as a server sent them: one line with its CRLF, or a
 * meta value "VA <size> <flag>*\r\n<data>\r\n".
 */
export function sameMeaning(a: Buffer, b: Buffer, meta: boolean): boolean {
  if (a === b) return true;
  if (a.length === b.length && a.equals(b)) return true;
  if (!meta) return false;
  let i = 0;
  let j = 0;
  let t = 0;
  for (;;) {
    const ie = tokenEnd(a, i);
    const je = tokenEnd(b, j);
    if (ie < 0 || je < 0) return false;
    if (!sameToken(a, i, ie, b, j, je, t)) return false;
    t++;
    if (a[ie] === CR || b[je] === CR) {
      if (a[ie] !== b[je]) return false;
      // The rest (LF, and for VA the data block) is the value: the same bytes.
      return a.length - ie === b.length - je && a.compare(b, je, b.length, ie, a.length) === 0;
    }
    i = ie + 1;
    j = je + 1;
  }
}

/** The end of the token starting at i (a space or the line's CR); -1 if the line does not end. */
function tokenEnd(buf: Buffer, i: number): number {
  const n = buf.length;
  while (i < n) {
    const c = buf[i];
    if (c === SP || c === CR) return i;
    i++;
  }
  return -1;
}

function sameToken(a: Buffer, as: number, ae: number, b: Buffer, bs: number, be: number, t: number): boolean {
  // The status code, and VA's size, are never flags.
  const flag = t > 0 && !(t === 1 && a[0] === 0x56 && a[1] === 0x41) ? a[as] : 0;
  if (flag !== 0 && flag === b[bs]) {
    if (flag === 0x63 /* c */ || flag === 0x4f /* O */) return true;
    if (flag === 0x74 /* t */ && sameTtl(a, as + 1, ae, b, bs + 1, be)) return true;
  }
  return ae - as === be - bs && a.compare(b, bs, be, as, ae) === 0;
}

/** t<seconds> (or t-1, no expiry) read from two servers: equal, or a second apart. */
function sameTtl(a: Buffer, as: number, ae: number, b: Buffer, bs: number, be: number): boolean {
  const x = seconds(a, as, ae);
  const y = seconds(b, bs, be);
  if (x === -2 || y === -2) return false;
  return x === y || (x >= 0 && y >= 0 && Math.abs(x - y) <= 1);
}

/** -1 for "-1" (no expiry), -2 for anything that is not a count of seconds */
function seconds(buf: Buffer, s: number, e: number): number {
  if (e - s === 2 && buf[s] === MINUS && buf[s + 1] === 0x31) return -1;
  if (e === s || e - s > 10) return -2;
  let n = 0;
  for (let i = s; i < e; i++) {
    const d = buf[i]! - 0x30;
    if (d < 0 || d > 9) return -2;
    n = n * 10 + d;
  }
  return n;
}

// ---- what a server's reply line is (the first bytes of line, or buf at start)

/** NOT_FOUND, NOT_STORED, or their meta forms NF, NS, EN */
export function isMissReply(line: Buffer): boolean {
  const c0 = line[0];
  const c1 = line[1];
  if (c0 === 0x4e) return c1 === 0x4f || c1 === 0x46 || c1 === 0x53; // NOT_..., NF, NS
  return c0 === 0x45 && c1 === 0x4e; // EN
}

/** ERROR, CLIENT_ERROR or SERVER_ERROR */
export function isErrorReply(buf: Buffer, start: number): boolean {
  const c = buf[start];
  return (c === 0x45 && buf[start + 1] === 0x52) || ((c === 0x43 || c === 0x53) && buf[start + 6] === 0x5f);
}

/** HD */
export function isHD(line: Buffer): boolean {
  return line[0] === 0x48 && line[1] === 0x44;
}

/** VA (a meta value, or the new value ma returned with v) */
export function isVA(line: Buffer): boolean {
  return line[0] === 0x56 && line[1] === 0x41;
}

/** The reply of an incr or decr that found a number: its new value */
export function isCount(line: Buffer): boolean {
  const c = line[0];
  return c !== undefined && c >= 0x30 && c <= 0x39;
}
