// A full garbage collection shortly after a request that moved a lot of memory.
//
// A giant get leaves tens of megabytes of reply buffers behind. They are
// ArrayBuffers outside V8's heap, freed only when V8 next collects, and V8
// collects when the JS heap fills, which an idle or lightly loaded worker may
// not do for hours: the process would keep its peak RSS. So once such a reply
// is written (or a get of very many keys answered), the worker asks for one
// collection a moment later (at most one per
// COLLECT_EVERY_MS, so that a stream of large replies does not become a stream of
// collections). `gc` exists because the main thread sets --expose-gc before it
// starts workers (main/supervisor.ts); without it this does nothing. What the
// collection frees leaves the process thanks to main/malloc.ts.

/** A reply or request this large (bytes) asks for a collection. */
export const LARGE_BYTES = 16 * 1024 * 1024;
/** A get of this many keys does too: its key and value tables are large JS arrays. */
export const LARGE_KEYS = 64 * 1024;
const DELAY_MS = 500;
const COLLECT_EVERY_MS = 5000;

const gc = (globalThis as { gc?: () => void }).gc;
let scheduled = false;
let last = 0;

/** A large request or reply is done: its garbage is collected soon. */
export function largeRequestDone(): void {
  if (scheduled || gc === undefined) return;
  scheduled = true;
  const wait = Math.max(DELAY_MS, last + COLLECT_EVERY_MS - Date.now());
  setTimeout(collect, wait).unref();
}

function collect(): void {
  scheduled = false;
  last = Date.now();
  gc!();
}
