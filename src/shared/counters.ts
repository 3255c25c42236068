// Counters for stats, shared by all threads.
//
// Each worker owns one row of a Float64Array over a SharedArrayBuffer and is the
// only writer of it, so increments need no atomics (and float64 holds integers
// exactly up to 2^53, where Int32 would wrap). Readers (the stats command in any
// worker, the main thread) sum the rows; a read may be a moment stale, never torn
// in a way that matters for monotonically growing counters.
// Row 0 belongs to the main thread (connection counts), rows 1..N to the workers.
// A last, optional row holds what `stats reset` took away: the negated totals at
// the reset (written by whichever worker ran it), so that `stats` counts from
// there while /metrics keeps Prometheus counters that never go down.

export const C = {
  // per worker row: connections handed to it (written by the main thread only)
  HANDED_CONNECTIONS: 0,
  TOTAL_CONNECTIONS: 1,
  REJECTED_CONNECTIONS: 2,
  CMD_GET: 3,
  CMD_SET: 4,
  CMD_TOUCH: 5,
  GET_HITS: 6,
  GET_MISSES: 7,
  GET_FAILOVER: 8,
  BACKEND_ERRORS: 9,
  BACKEND_TIMEOUTS: 10,
  BACKUP_REPAIRS: 11,
  BYTES_READ: 12,
  BYTES_WRITTEN: 13,
  CMD_FLUSH: 14,
  // per worker row: its connections that closed (written by the worker only)
  CLOSED_CONNECTIONS: 15,
  // warm-up lookups the backup had (reads a returning master missed, served anyway)
  GET_WARM_HITS: 16,
  // client bytes that are no request memcached serves: an unknown command or
  // opcode, a malformed binary header, a line too long (worker/client.ts)
  PROTOCOL_ERRORS: 17,
  // clients refused before they authenticated (auth_file): a wrong user or
  // password, a malformed auth set, or another command first (worker/client.ts)
  AUTH_FAILURES: 18,
} as const;
export const COUNTER_COUNT = 19;
/**
 * A row's length in float64s: rows start on 128-byte boundaries (two 64-byte
 * cache lines, and the pair the adjacent-line prefetcher fetches together), so
 * that no two workers' counters share a line and a worker's increments do not
 * take the line from under another's.
 */
const ROW_STRIDE = Math.ceil((COUNTER_COUNT * 8) / 128) * 16;

export class Counters {
  readonly buffer: SharedArrayBuffer;
  readonly rows: number;
  private readonly all: Float64Array;

  /** rows: the main thread's and the workers'; plus one for `stats reset` when resettable */
  constructor(rowsOrBuffer: number | SharedArrayBuffer, readonly resettable = false) {
    this.buffer = typeof rowsOrBuffer === 'number'
      ? new SharedArrayBuffer((rowsOrBuffer + (resettable ? 1 : 0)) * ROW_STRIDE * 8)
      : rowsOrBuffer;
    this.all = new Float64Array(this.buffer);
    this.rows = this.all.length / ROW_STRIDE - (resettable ? 1 : 0);
  }

  /** The total since the last `stats reset`. */
  sinceReset(counter: number): number {
    return this.sum(counter) + (this.resettable ? this.all[this.rows * ROW_STRIDE + counter]! : 0);
  }

  /** stats reset: from now on sinceReset() counts from zero (connection gauges aside). */
  reset(): void {
    if (!this.resettable) return;
    for (let c = 0; c < COUNTER_COUNT; c++) {
      if (c === C.HANDED_CONNECTIONS || c === C.CLOSED_CONNECTIONS) continue;
      this.all[this.rows * ROW_STRIDE + c] = -this.sum(c);
    }
  }

  /** The row a single writer increments directly: row[C.CMD_GET]++ */
  row(index: number): Float64Array {
    return this.all.subarray(index * ROW_STRIDE, index * ROW_STRIDE + COUNTER_COUNT);
  }

  sum(counter: number): number {
    let s = 0;
    for (let r = 0; r < this.rows; r++) s += this.all[r * ROW_STRIDE + counter]!;
    return s;
  }
}
