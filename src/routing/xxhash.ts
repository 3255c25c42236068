// XXH32 (xxHash, 32-bit) of a byte range of a larger buffer, in plain TypeScript.
//
// Pure TS over byte offsets beats xxhash-wasm's h32Raw on memcached-sized keys:
// h32Raw needs a subarray view and a copy into wasm memory per call, which costs
// more than hashing 16-64 bytes (numbers in docs/decisions/xxhash.md). xxhash-wasm
// stays as the test oracle.

const P1 = 0x9e3779b1 | 0;
const P2 = 0x85ebca77 | 0;
const P3 = 0xc2b2ae3d | 0;
const P4 = 0x27d4eb2f | 0;
const P5 = 0x165667b1 | 0;

/** From this length on, the 16-byte stripes are read as words through a DataView. */
const WORD_READS_FROM = 32;
// The DataView over the ArrayBuffer hashed last: keys arrive in bursts from one
// read buffer, and a view per call would cost more than it saves.
let viewOf: ArrayBufferLike | null = null;
let view: DataView<ArrayBufferLike> = new DataView(new ArrayBuffer(0));

/**
 * XXH32 of buf[start, end) as an unsigned 32-bit number. The rounds and word
 * reads are written out rather than called as helpers (docs/decisions/xxhash.md:
 * Router.route in less time with them written out).
 */
export function xxh32(buf: Uint8Array, start: number, end: number, seed = 0): number {
  const len = end - start;
  let i = start;
  let h: number;

  if (len >= 16) {
    let v1 = (seed + P1 + P2) | 0;
    let v2 = (seed + P2) | 0;
    let v3 = seed | 0;
    let v4 = (seed - P1) | 0;
    const limit = end - 16;
    // round(acc, lane) = rotl(acc + lane * P2, 13) * P1, per lane
    if (len >= WORD_READS_FROM) {
      // One unaligned 32-bit load per lane instead of four byte loads; for short
      // keys the view lookup costs more than it saves.
      const ab = buf.buffer;
      if (ab !== viewOf) {
        viewOf = ab;
        view = new DataView(ab);
      }
      const dv = view;
      const at = buf.byteOffset;
      while (i <= limit) {
        const o = at + i;
        v1 = (v1 + Math.imul(dv.getInt32(o, true), P2)) | 0;
        v1 = Math.imul((v1 << 13) | (v1 >>> 19), P1);
        v2 = (v2 + Math.imul(dv.getInt32(o + 4, true), P2)) | 0;
        v2 = Math.imul((v2 << 13) | (v2 >>> 19), P1);
        v3 = (v3 + Math.imul(dv.getInt32(o + 8, true), P2)) | 0;
        v3 = Math.imul((v3 << 13) | (v3 >>> 19), P1);
        v4 = (v4 + Math.imul(dv.getInt32(o + 12, true), P2)) | 0;
        v4 = Math.imul((v4 << 13) | (v4 >>> 19), P1);
        i += 16;
      }
    } else {
      while (i <= limit) {
        v1 = (v1 + Math.imul(buf[i]! | (buf[i + 1]! << 8) | (buf[i + 2]! << 16) | (buf[i + 3]! << 24), P2)) | 0;
        v1 = Math.imul((v1 << 13) | (v1 >>> 19), P1);
        v2 = (v2 + Math.imul(buf[i + 4]! | (buf[i + 5]! << 8) | (buf[i + 6]! << 16) | (buf[i + 7]! << 24), P2)) | 0;
        v2 = Math.imul((v2 << 13) | (v2 >>> 19), P1);
        v3 = (v3 + Math.imul(buf[i + 8]! | (buf[i + 9]! << 8) | (buf[i + 10]! << 16) | (buf[i + 11]! << 24), P2)) | 0;
        v3 = Math.imul((v3 << 13) | (v3 >>> 19), P1);
        v4 = (v4 + Math.imul(buf[i + 12]! | (buf[i + 13]! << 8) | (buf[i + 14]! << 16) | (buf[i + 15]! << 24), P2)) | 0;
        v4 = Math.imul((v4 << 13) | (v4 >>> 19), P1);
        i += 16;
      }
    }
    h = (((v1 << 1) | (v1 >>> 31)) + ((v2 << 7) | (v2 >>> 25)) + ((v3 << 12) | (v3 >>> 20)) + ((v4 << 18) | (v4 >>> 14))) | 0;
  } else {
    h = (seed + P5) | 0;
  }

  // XXH32 mixes in the length modulo 2^32.
  h = (h + len) | 0;

  while (i + 4 <= end) {
    const w = buf[i]! | (buf[i + 1]! << 8) | (buf[i + 2]! << 16) | (buf[i + 3]! << 24);
    h = (h + Math.imul(w, P3)) | 0;
    h = Math.imul((h << 17) | (h >>> 15), P4);
    i += 4;
  }
  while (i < end) {
    h = (h + Math.imul(buf[i]!, P5)) | 0;
    h = Math.imul((h << 11) | (h >>> 21), P1);
    i++;
  }

  h ^= h >>> 15;
  h = Math.imul(h, P2);
  h ^= h >>> 13;
  h = Math.imul(h, P3);
  h ^= h >>> 16;
  return h >>> 0;
}

