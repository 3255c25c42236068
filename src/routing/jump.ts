// Jump consistent hash (Lamping & Veach, "A Fast, Minimal Memory, Consistent Hash
// Algorithm", 2014), bit-exact with the paper's C++ for a 32-bit key zero-extended
// to 64 bits:
//
//   int32_t JumpConsistentHash(uint64_t key, int32_t num_buckets) {
//     int64_t b = -1, j = 0;
//     while (j < num_buckets) {
//       b = j;
//       key = key * 2862933555777941757ULL + 1;
//       j = (b + 1) * (double(1LL << 31) / double((key >> 33) + 1));
//     }
//     return b;
//   }
//
// The 64-bit LCG is carried as two uint32 halves because BigInt allocates and is
// far too slow for the per-request path. The low half's product with the low half
// of the multiplier needs its upper 32 bits too, which are assembled from 16-bit
// limbs so every partial product stays exact in a double.
//
// Two shortcuts, both bit-exact with the loop above:
// - The step that ends the loop (j >= buckets) is decided without its division:
//   j = (b + 1) * 2^31 / h, h = (key >> 33) + 1, and the exact comparison
//   (b + 1) * 2^31 > buckets * h (both products exact in a double) agrees with the
//   rounded one. The exact quotient is at least 1/h >= 2^-31 away from buckets
//   unless equal, and the two roundings move it by under buckets * 2^-52, less than
//   that for buckets <= 2^20. The equal case still takes the division.
// - The buckets j walks through depend only on the key, not on the bucket count:
//   the answer for n buckets is the last j < n. jumpRoute walks once for the
//   larger count and notes the answer for the smaller (a master and a backup
//   pool routed by one key).

// 2862933555777941757 = 0x27BB2EE6_87B0B0FD
const M_HI = 0x27bb2ee6;
const M_LO = 0x87b0b0fd | 0;
const M_LO_L = 0xb0fd;
const M_LO_H = 0x87b0;
const TWO_POW_31 = 2147483648;
/** Up to this many buckets the last step is decided without a division. */
const EXACT_LIMIT = 1 << 20;

/** The bucket in [0, buckets) of a uint32 key; -1 when buckets < 1. */
export function jumpHash(key: number, buckets: number): number {
  return buckets < 1 ? -1 : walk(key, buckets, 0);
}

/** Where a key goes in a master pool and a backup pool. */
export interface Buckets { master: number; backup: number }

/**
 * Sets out.master to jumpHash(key, masters) and out.backup to jumpHash(key,
 * backups) (-1 without backups), with one walk; masters >= 1.
 */
export function jumpRoute(key: number, masters: number, backups: number, out: Buckets): void {
  if (backups < 1) {
    out.master = walk(key, masters, 0);
    out.backup = -1;
  } else if (masters >= backups) {
    out.master = walk(key, masters, backups);
    out.backup = walkSmall;
  } else {
    out.backup = walk(key, backups, masters);
    out.master = walkSmall;
  }
}

/** walk()'s answer for its `also` bucket count */
let walkSmall = 0;

/** Jump hash of key for `buckets` >= 1; when also >= 1 (at most buckets), sets walkSmall to the bucket for `also`. */
function walk(key: number, buckets: number, also: number): number {
  const exact = buckets <= EXACT_LIMIT;
  let hi = 0;
  let lo = key >>> 0;
  let b = 0;
  let small = 0;
  for (;;) {
    const l0 = lo & 0xffff;
    const l1 = lo >>> 16;
    const p00 = l0 * M_LO_L;
    const p01 = l0 * M_LO_H;
    const p10 = l1 * M_LO_L;
    const mid = (p00 >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
    const carryHi = l1 * M_LO_H + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16);
    hi = (carryHi + Math.imul(lo, M_HI) + Math.imul(hi, M_LO)) | 0;
    lo = (Math.imul(lo, M_LO) + 1) | 0;
    if (lo === 0) hi = (hi + 1) | 0;

    const h = (hi >>> 1) + 1;
    if (exact && (b + 1) * TWO_POW_31 > buckets * h) break;
    const j = Math.floor((b + 1) * (TWO_POW_31 / h));
    if (j >= buckets) break;
    if (j < also) small = j;
    b = j;
  }
  walkSmall = small;
  return b;
}
