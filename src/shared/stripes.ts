// Write stripes: the lock table that gives every replicated write of a key the
// same order on its master and on its backup, whatever worker sends it.
//
// Each worker has its own connections to each server, so two workers' writes of
// one key, both sent at once, can reach the master in one order and the backup in
// the other. A write therefore holds its key's stripe from the moment it is sent
// until master and backup have both answered it (worker/sequencer.ts); a second
// write of a key of that stripe, from any worker, waits. Keys share stripes
// (hash & (STRIPES - 1)); two keys that collide only wait for each other.
//
// Layout (Int32Array over a SharedArrayBuffer, one cell per stripe):
//   0                   free
//   owner               held by worker owner - 1 (1..MAX_WORKERS)
//   owner | WAITERS     held, and another worker waits for it: the holder's
//                       unlock notifies (Atomics.notify) the cell
// Every access is one Atomics operation; workers wait with Atomics.waitAsync,
// never Atomics.wait. A worker that dies holding stripes has them freed by the
// supervisor (freeOwnedBy), which wakes their waiters.

export const STRIPES = 16384;
const OWNER = 0xffff;
export const WAITERS = 0x10000;

export class StripeTable {
  readonly buffer: SharedArrayBuffer;
  readonly cells: Int32Array;

  constructor(buffer?: SharedArrayBuffer) {
    this.buffer = buffer ?? new SharedArrayBuffer(STRIPES * 4);
    this.cells = new Int32Array(this.buffer);
  }

  /** Takes a free stripe for `owner`; false if any worker holds it. */
  tryLock(stripe: number, owner: number): boolean {
    return Atomics.compareExchange(this.cells, stripe, 0, owner) === 0;
  }

  /** The cell's value: 0, or the holder with maybe the WAITERS bit. */
  load(stripe: number): number {
    return Atomics.load(this.cells, stripe);
  }

  /**
   * Marks a held stripe as awaited, so that its unlock notifies. Returns the
   * value to wait on, or 0 if the stripe was freed meanwhile (try again).
   */
  markWaiting(stripe: number): number {
    for (let tries = 0; tries < 8; tries++) {
      const cur = Atomics.load(this.cells, stripe);
      if (cur === 0) return 0;
      if ((cur & WAITERS) !== 0) return cur;
      if (Atomics.compareExchange(this.cells, stripe, cur, cur | WAITERS) === cur) return cur | WAITERS;
    }
    return 0;
  }

  /** Whether a worker waits for the stripe (the holder should let it go rather than pass it on). */
  awaited(stripe: number): boolean {
    return (Atomics.load(this.cells, stripe) & WAITERS) !== 0;
  }

  unlock(stripe: number): void {
    if ((Atomics.exchange(this.cells, stripe, 0) & WAITERS) !== 0) Atomics.notify(this.cells, stripe);
  }

  /** A dead worker's stripes: freed, and their waiters woken. Returns how many it held. */
  freeOwnedBy(owner: number): number {
    let n = 0;
    const cells = this.cells;
    for (let s = 0; s < STRIPES; s++) {
      const cur = Atomics.load(cells, s);
      if (cur !== 0 && (cur & OWNER) === owner && Atomics.compareExchange(cells, s, cur, 0) === cur) {
        Atomics.notify(cells, s);
        n++;
      }
    }
    return n;
  }
}
