// A small seeded PRNG (sfc32, seeded through splitmix32) for the fuzzers. Every
// input gets its own generator derived from (seed, index), so one failing input
// is reproduced from those two numbers alone, without replaying the inputs
// before it.

function splitmix32(x: number): () => number {
  let s = x | 0;
  return () => {
    s = (s + 0x9e3779b9) | 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number, stream = 0) {
    const sm = splitmix32(Math.imul(seed | 0, 0x27d4eb2d) ^ Math.imul(stream | 0, 0x165667b1));
    this.a = sm();
    this.b = sm();
    this.c = sm();
    this.d = sm();
    for (let i = 0; i < 12; i++) this.u32();
  }

  /** uniform 0 .. 2^32-1 */
  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** uniform 0 .. n-1 */
  int(n: number): number {
    return Math.floor((this.u32() / 4294967296) * n);
  }

  /** uniform lo .. hi inclusive */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  chance(p: number): boolean {
    return this.u32() / 4294967296 < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  /** index chosen by weight */
  weighted(weights: readonly number[]): number {
    let total = 0;
    for (const w of weights) total += w;
    let r = (this.u32() / 4294967296) * total;
    for (let i = 0; i < weights.length; i++) {
      r -= weights[i]!;
      if (r < 0) return i;
    }
    return weights.length - 1;
  }
}

/**
 * Cut points for feeding `length` bytes in pieces: none (whole), a few random
 * ones, or every offset (byte by byte, for short inputs). Sorted, unique, inside
 * (0, length).
 */
export function randomCuts(rng: Rng, length: number): number[] {
  if (length < 2) return [];
  const mode = rng.weighted([1, 4, 3, length <= 160 ? 1 : 0]);
  if (mode === 0) return [];
  if (mode === 3) return Array.from({ length: length - 1 }, (_, i) => i + 1);
  const n = mode === 1 ? rng.range(1, 2) : rng.range(3, 12);
  const set = new Set<number>();
  for (let i = 0; i < n; i++) set.add(rng.range(1, length - 1));
  return [...set].sort((x, y) => x - y);
}
