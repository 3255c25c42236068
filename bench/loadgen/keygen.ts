// Key index generation with memtier_benchmark's key patterns, one generator per
// connection (memtier clones its object generator per client):
//   R  uniform random in [min, max]
//   G  gaussian around the median (default centre + 0.5), stddev default range/6,
//      redrawn while outside [min, max + 1], truncated (memtier's rejection loop)
//   S  sequential: separate set and get cursors, each starting at min, wrapping after max
//   P  parallel: sequential within this connection's slice of the key range
// The random source is not memtier's random_r, so the sequences differ, but the
// distributions and the sharing rules match: by default every connection uses the
// same seed (memtier's default), --distinct-client-seed gives each its own.
import type { KeyPattern, LoadOptions } from './options.js';

/** xoshiro128** (32-bit state words): cheap in JS because it stays in int32 ops. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    // splitmix32 expands the seed so that nearby seeds give unrelated streams
    let s = seed | 0;
    const next = (): number => {
      s = (s + 0x9e3779b9) | 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) | 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next();
    if ((this.a | this.b | this.c | this.d) === 0) this.a = 1;
  }

  /** Uniform integer in [0, 2^32). */
  nextU32(): number {
    const b = this.b;
    const t = b << 9;
    let r = Math.imul(b, 5);
    r = Math.imul((r << 7) | (r >>> 25), 9);
    this.c ^= this.a;
    this.d ^= b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = (this.d << 11) | (this.d >>> 21);
    return r >>> 0;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  nextFloat(): number {
    const hi = this.nextU32() >>> 5;
    const lo = this.nextU32() >>> 6;
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform integer in [min, max]. */
  range(min: number, max: number): number {
    const span = max - min + 1;
    if (span <= 4294967296) return min + Math.floor((this.nextU32() / 4294967296) * span);
    return min + Math.floor(this.nextFloat() * span);
  }
}

const P_RANDOM = 0;
const P_GAUSSIAN = 1;
const P_SEQUENTIAL = 2;

function kind(p: KeyPattern): number {
  return p === 'R' ? P_RANDOM : p === 'G' ? P_GAUSSIAN : P_SEQUENTIAL;
}

export class KeyGenerator {
  readonly rng: Rng;
  private readonly setKind: number;
  private readonly getKind: number;
  readonly min: number;
  readonly max: number;
  private readonly median: number;
  private readonly stddev: number;
  private nextSet: number;
  private nextGet: number;
  private hasSpare = false;
  private spare = 0;

  /** clientIndex: 0-based index of this connection over all threads. */
  constructor(o: LoadOptions, clientIndex: number) {
    this.rng = new Rng(o.distinctClientSeed ? (o.randomSeed + clientIndex) | 0 : o.randomSeed);
    this.setKind = kind(o.keyPatternSet);
    this.getKind = kind(o.keyPatternGet);
    let min = o.keyMinimum;
    let max = o.keyMaximum;
    if (o.keyPatternSet === 'P') {
      // memtier: each client takes an equal slice, the last one takes the leftover
      const total = o.clients * o.threads;
      const idx = clientIndex % total;
      const range = Math.floor((max - min) / total) + 1;
      const sliceMin = min + range * idx;
      const sliceMax = idx === total - 1 ? max : sliceMin + range - 1;
      min = sliceMin;
      max = Math.min(sliceMax, o.keyMaximum);
      if (min > max) min = max; // more clients than keys: some share the last key
    }
    this.min = min;
    this.max = max;
    const len = max - min;
    this.median = o.keyMedian || len / 2 + min + 0.5;
    this.stddev = o.keyStddev || len / 6;
    this.nextSet = min;
    this.nextGet = min;
  }

  setKey(): number {
    const k = this.setKind;
    if (k === P_RANDOM) return this.rng.range(this.min, this.max);
    if (k === P_GAUSSIAN) return this.gaussian();
    const key = this.nextSet;
    this.nextSet = key >= this.max ? this.min : key + 1;
    return key;
  }

  getKey(): number {
    const k = this.getKind;
    if (k === P_RANDOM) return this.rng.range(this.min, this.max);
    if (k === P_GAUSSIAN) return this.gaussian();
    const key = this.nextGet;
    this.nextGet = key >= this.max ? this.min : key + 1;
    return key;
  }

  /** Marsaglia polar method, as memtier's gaussian_noise. */
  private gaussianNoise(): number {
    if (this.hasSpare) {
      this.hasSpare = false;
      return this.stddev * this.spare;
    }
    let u: number;
    let v: number;
    let s: number;
    do {
      u = this.rng.nextFloat() * 2 - 1;
      v = this.rng.nextFloat() * 2 - 1;
      s = u * u + v * v;
    } while (s >= 1 || s === 0);
    s = Math.sqrt((-2 * Math.log(s)) / s);
    this.spare = v * s;
    this.hasSpare = true;
    return this.stddev * u * s;
  }

  private gaussian(): number {
    const min = this.min;
    const max = this.max;
    if (min === max) return min;
    let val: number;
    do {
      val = this.gaussianNoise() + this.median;
    } while (val < min || val > max + 1);
    const k = Math.floor(val);
    return k > max ? max : k;
  }
}
