// A small, even sample of the keys this worker replicated to backups, handed
// to the main thread once per retry interval, where main/coverage.ts asks the
// backups whether they still hold them.
//
//   Dispatcher.write (master and backup both sent) --every stride-th--> take()
//   worker timer (retry interval) --> drain() --> 'sampled' message --> Coverage
//
// The data path pays one countdown per replicated write (kept on the
// Dispatcher); only every stride-th write reaches take(). When the sample fills
// up within an interval, every other entry goes and the stride doubles, so the
// sample stays spread over all of the interval's writes; a quiet interval halves
// the stride again.

/** Samples kept per interval; a full one is halved. */
const CAPACITY = 64;

export interface Sampled { master: string; backup: string; key: string }

export class WriteSampler {
  private readonly keys: string[] = [];
  private readonly pairs: number[] = [];
  private stride = 1;

  constructor(
    /** server names in health-table order (masters, then backups) */
    private readonly names: readonly string[],
  ) {}

  /** Keeps the key of a write to `master` and `backup`; returns how many writes to skip before the next. */
  take(master: number, backup: number, kb: Buffer, ks: number, ke: number): number {
    if (this.keys.length >= CAPACITY) {
      let n = 0;
      for (let i = 0; i < this.keys.length; i += 2) {
        this.keys[n] = this.keys[i]!;
        this.pairs[2 * n] = this.pairs[2 * i]!;
        this.pairs[2 * n + 1] = this.pairs[2 * i + 1]!;
        n++;
      }
      this.keys.length = n;
      this.pairs.length = 2 * n;
      this.stride *= 2;
    }
    this.keys.push(kb.toString('latin1', ks, ke));
    this.pairs.push(master, backup);
    return this.stride;
  }

  /** The interval's sample, by server name (a reload may renumber the servers before it is read). */
  drain(): Sampled[] {
    const out: Sampled[] = [];
    for (let i = 0; i < this.keys.length; i++) {
      out.push({ master: this.names[this.pairs[2 * i]!]!, backup: this.names[this.pairs[2 * i + 1]!]!, key: this.keys[i]! });
    }
    if (this.keys.length < CAPACITY / 4 && this.stride > 1) this.stride >>= 1;
    this.keys.length = 0;
    this.pairs.length = 0;
    return out;
  }
}
