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

function rotl(x: number, r: number): number {
  return (x << r) | (x >>> (32 - r));
}

function readU32LE(buf: Uint8Array, i: number): number {
  return buf[i]! | (buf[i + 1]! << 8) | (buf[i + 2]! << 16) | (buf[i + 3]! << 24);
}

function round(acc: number, lane: number): number {
  return Math.imul(rotl((acc + Math.imul(lane, P2)) | 0, 13), P1);
}

/** From this length on, the 16-byte stripes are read as words through a DataView. */
const WORD_READS_FROM = 32;
// The DataView over the ArrayBuffer hashed last: keys arrive in bursts from one
// read buffer, and a view per call would cost more than it saves.
let viewOf: ArrayBufferLike | null = null;
let view: DataView<ArrayBufferLike> = new DataView(new ArrayBuffer(0));

function viewFor(buf: Uint8Array): DataView<ArrayBufferLike> {
  const ab = buf.buffer;
  if (ab !== viewOf) {
    viewOf = ab;
    view = new DataView(ab);
  }
  return view;
}

/** XXH32 of buf[start, end) as an unsigned 32-bit number. */
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
    if (len >= WORD_READS_FROM) {
      // One unaligned 32-bit load per lane instead of four byte loads: a third
      // less time for 64-byte keys; for short keys the view lookup costs more.
      const dv = viewFor(buf);
      const at = buf.byteOffset;
      while (i <= limit) {
        const o = at + i;
        v1 = round(v1, dv.getInt32(o, true));
        v2 = round(v2, dv.getInt32(o + 4, true));
        v3 = round(v3, dv.getInt32(o + 8, true));
        v4 = round(v4, dv.getInt32(o + 12, true));
        i += 16;
      }
    } else {
      while (i <= limit) {
        v1 = round(v1, readU32LE(buf, i));
        v2 = round(v2, readU32LE(buf, i + 4));
        v3 = round(v3, readU32LE(buf, i + 8));
        v4 = round(v4, readU32LE(buf, i + 12));
        i += 16;
      }
    }
    h = (rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18)) | 0;
  } else {
    h = (seed + P5) | 0;
  }

  // XXH32 mixes in the length modulo 2^32.
  h = (h + len) | 0;

  while (i + 4 <= end) {
    h = Math.imul(rotl((h + Math.imul(readU32LE(buf, i), P3)) | 0, 17), P4);
    i += 4;
  }
  while (i < end) {
    h = Math.imul(rotl((h + Math.imul(buf[i]!, P5)) | 0, 11), P1);
    i++;
  }

  h ^= h >>> 15;
  h = Math.imul(h, P2);
  h ^= h >>> 13;
  h = Math.imul(h, P3);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Kept so callers await one init at start whichever implementation is on the hot
 * path; the pure-TS one needs none.
 */
export async function initXxhash(): Promise<void> {}
