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

// 2862933555777941757 = 0x27BB2EE6_87B0B0FD
const M_HI = 0x27bb2ee6;
const M_LO = 0x87b0b0fd | 0;
const M_LO_L = 0xb0fd;
const M_LO_H = 0x87b0;
const TWO_POW_31 = 2147483648;

/** The bucket in [0, buckets) of a uint32 key; -1 when buckets < 1. */
export function jumpHash(key: number, buckets: number): number {
  let hi = 0;
  let lo = key >>> 0;
  let b = -1;
  let j = 0;
  while (j < buckets) {
    b = j;

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

    j = Math.floor((b + 1) * (TWO_POW_31 / ((hi >>> 1) + 1)));
  }
  return b;
}
