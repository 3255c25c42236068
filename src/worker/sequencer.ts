// One replicated write per key stripe in flight per proxy (see shared/stripes.ts
// for why and for the table's layout). This is the worker's side: a write takes
// its stripe or waits in this worker's queue for it.
//
//   write --acquire--> stripe free: taken, the write goes out now (the usual case:
//            |          one compareExchange)
//            '-------> held: parked in the stripe's queue (FIFO, this worker)
//   master and backup answered --release--> next parked write of this worker, if
//            no other worker waits; else the stripe is let go and taken again
//            later, so that no worker starves another
//
// Waiting for another worker's stripe uses Atomics.waitAsync (one promise per
// stripe waited on, and only then), with a timeout as a backstop.

import type { Request, StripeHolder } from './request.js';
import { StripeTable } from '../shared/stripes.js';

// Atomics.waitAsync is in Node since 16; TypeScript types it from lib es2024 on (the build targets es2023).
type WaitAsync = (a: Int32Array, index: number, value: number, timeout: number) =>
  { async: false; value: string } | { async: true; value: Promise<string> };
const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;

/** A waitAsync's backstop: a wake-up lost to a race is retried after this. */
const WAIT_MS = 50;

export class Sequencer {
  /** per stripe: the writes of this worker waiting for it, oldest first */
  private readonly parked = new Map<number, Request[]>();
  /** stripes this worker has a waitAsync pending on */
  private readonly waiting = new Set<number>();
  /** writes that waited for a stripe (a contention figure for tests and the decision record) */
  waits = 0;

  constructor(private readonly table: StripeTable, private readonly owner: number) {}

  /** Takes the stripe for req, or parks req (holding a reference) until holder.resumeWrite. */
  acquire(req: Request, stripe: number, holder: StripeHolder): boolean {
    if (!this.parked.has(stripe) && this.table.tryLock(stripe, this.owner)) {
      req.stripe = stripe;
      return true;
    }
    this.waits++;
    req.holder = holder;
    req.refs++;
    let q = this.parked.get(stripe);
    if (q === undefined) {
      q = [];
      this.parked.set(stripe, q);
    }
    q.push(req);
    if (q.length === 1) this.retry(stripe);
    return false;
  }

  /** req's write is over on both servers: the stripe goes to the next write. */
  release(req: Request): void {
    const stripe = req.stripe;
    req.stripe = -1;
    const q = this.parked.get(stripe);
    if (q !== undefined && !this.table.awaited(stripe)) {
      this.handOver(stripe, q);
      return;
    }
    this.table.unlock(stripe);
    // Let a waiting worker take it first; this worker's queue tries again next turn.
    if (q !== undefined) setImmediate(retryStripe, this, stripe);
  }

  /** @internal */ retry(stripe: number): void {
    const q = this.parked.get(stripe);
    if (q === undefined || this.waiting.has(stripe)) return;
    const table = this.table;
    for (let tries = 0; tries < 4; tries++) {
      if (table.tryLock(stripe, this.owner)) { this.handOver(stripe, q); return; }
      const cur = table.load(stripe);
      // Held by a write of this worker: its release hands the stripe on.
      if (cur !== 0 && (cur & 0xffff) === this.owner) return;
      const expect = table.markWaiting(stripe);
      if (expect === 0) continue;
      const w = waitAsync(table.cells, stripe, expect, WAIT_MS);
      if (!w.async) continue;
      this.waiting.add(stripe);
      void w.value.then(() => { this.waiting.delete(stripe); this.retry(stripe); });
      return;
    }
    setImmediate(retryStripe, this, stripe);
  }

  /** The stripe is this worker's: its oldest parked write goes out. */
  private handOver(stripe: number, q: Request[]): void {
    const next = q.shift()!;
    if (q.length === 0) this.parked.delete(stripe);
    next.stripe = stripe;
    const holder = next.holder!;
    next.holder = null;
    holder.resumeWrite(next);
  }

  /** Writes parked now (for tests). */
  parkedCount(): number {
    let n = 0;
    for (const q of this.parked.values()) n += q.length;
    return n;
  }
}

function retryStripe(s: Sequencer, stripe: number): void {
  s.retry(stripe);
}
