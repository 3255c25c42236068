// Per-backend-server figures, shared by all threads: what `stats servers` and
// /metrics report about each server.
//
// Layout (Float64Array over a SharedArrayBuffer): one block of FIELDS numbers per
// (worker, server) pair, at ((worker * servers) + server) * STRIDE, and one more
// row of blocks (worker index = workers) for the main thread's recovery figures.
// Each block has a single writer, so plain stores suffice; readers sum a
// server's blocks over all rows.
//   REQUESTS   replies received (requests answered)
//   ERRORS     connection failures and protocol errors
//   TIMEOUTS   requests that timed out
//   INFLIGHT   requests sent and not yet answered (a gauge)
//   ERRORS_BY_CODE+k  the ERRORS whose error had the code ERROR_CODES[k]
//              (errors.ts), one slot per code: every failure counted in
//              ERRORS has one of them, so they add up to it
//   LATENCY_SUM  the latencies of all replies added up, in milliseconds
//   LATENCY+b  replies whose latency was in [2^b, 2^(b+1)) microseconds (the
//              last bucket: that or more)

import { Code } from '../errors.js';

/**
 * The codes (errors.ts) of the backend failures counted in ERRORS, each with a
 * slot of its own (S.ERRORS_BY_CODE + its index). Timeouts and reads sent again
 * after a close count in TIMEOUTS and RECONNECTS, not here.
 */
export const ERROR_CODES = [
  Code.CONNECT_FAILED, Code.BACKEND_CONNECTION_LIMIT, Code.BACKEND_CLOSED, Code.BACKEND_UNPARSEABLE, Code.BACKEND_UNEXPECTED_REPLY,
  Code.BACKEND_AUTH,
] as const;

export const S = {
  REQUESTS: 0,
  ERRORS: 1,
  TIMEOUTS: 2,
  INFLIGHT: 3,
  /** reads of this server's keys that were answered by its backup */
  BACKUP_READS: 4,
  /** warm-up fills: keys copied from the backup into this (returning) server */
  WARM_FILLS: 5,
  /** keys read from this server while it was warming */
  WARM_READS: 6,
  /** keys journaled for this server by this worker (a gauge) */
  JOURNAL: 7,
  /** warm-up misses that the backup had (the reads that still needed the backup) */
  WARM_BACKUP_HITS: 8,
  /** connections the server closed or reset while idle (or under reads sent again), reopened */
  RECONNECTS: 9,
  /** returns after an outage in which the server had restarted (main thread) */
  RESTARTS: 10,
  /** flush_all sent to the server by a recovery (main thread) */
  FLUSHES: 11,
  /** keys deleted on the server by recoveries (journaled during its outages) */
  INVALIDATED: 12,
  /** the restore of this returning server (main/restore.ts): RESTORE_STATES index */
  RESTORE_STATE: 13,
  /** keys copied into it by its last restore, and keys found that it already had or that changed meanwhile */
  RESTORE_COPIED: 14,
  RESTORE_SKIPPED: 15,
  /** how long its last (or current) restore has run */
  RESTORE_SECONDS: 16,
  /** keys this backup held with a value its master did not, found by the write check and deleted here */
  BACKUP_DIVERGENCES: 17,
  /** replicated writes the backup answered with SERVER_ERROR (out of memory...) while its master stored them */
  WRITE_REFUSALS: 18,
  /** ERRORS per code: ERROR_CODES.length slots */
  ERRORS_BY_CODE: 19,
  /** what a histogram's _sum needs besides the buckets (ms) */
  LATENCY_SUM: 25,
  /** LATENCY_BUCKETS slots */
  LATENCY: 26,
  /** the placement sweep of this server (main/placement.ts): RESTORE_STATES index */
  SWEEP_STATE: 50,
  /** items its last (or current) sweep walked in the server's dump, and the stale copies it deleted */
  SWEEP_WALKED: 51,
  SWEEP_DELETED: 52,
} as const;

/** The states of a restore, and of a placement sweep (RESTORE_STATE, SWEEP_STATE), by index. */
export const RESTORE_STATES = ['idle', 'running', 'done', 'failed', 'unavailable'] as const;
export const IDLE = 0;
export const RUNNING = 1;
export const DONE = 2;
export const FAILED = 3;
export const UNAVAILABLE = 4;
export const LATENCY_BUCKETS = 24;
const FIELDS = S.SWEEP_DELETED + 1;
/** A block's length in float64s: blocks start on 128-byte boundaries, so no two threads' blocks share a cache line (as counters.ts). */
const STRIDE = Math.ceil(FIELDS / 16) * 16;

export class ServerStats {
  readonly buffer: SharedArrayBuffer;
  private readonly all: Float64Array;

  constructor(readonly workers: number, readonly servers: number, buffer?: SharedArrayBuffer) {
    this.buffer = buffer ?? new SharedArrayBuffer((workers + 1) * servers * STRIDE * 8);
    this.all = new Float64Array(this.buffer);
  }

  /** The block one worker writes for one server; worker = workers: the main thread's. */
  block(worker: number, server: number): Float64Array {
    const at = (worker * this.servers + server) * STRIDE;
    return this.all.subarray(at, at + FIELDS);
  }

  sum(server: number, field: number): number {
    let s = 0;
    for (let w = 0; w <= this.workers; w++) s += this.all[(w * this.servers + server) * STRIDE + field]!;
    return s;
  }

  /** Latency percentile (0..1) of a server in milliseconds, from the log2 buckets; 0 when empty. */
  percentile(server: number, p: number): number {
    const counts = new Array<number>(LATENCY_BUCKETS).fill(0);
    let total = 0;
    for (let b = 0; b < LATENCY_BUCKETS; b++) {
      counts[b] = this.sum(server, S.LATENCY + b);
      total += counts[b]!;
    }
    if (total === 0) return 0;
    const rank = p * total;
    let seen = 0;
    for (let b = 0; b < LATENCY_BUCKETS; b++) {
      const c = counts[b]!;
      if (c > 0 && seen + c >= rank) {
        // Interpolate inside the bucket [2^b, 2^(b+1)) microseconds.
        const lo = 2 ** b;
        return (lo + lo * ((rank - seen) / c)) / 1000;
      }
      seen += c;
    }
    return 2 ** LATENCY_BUCKETS / 1000;
  }
}

/**
 * Counts one failure of a backend connection in ERRORS and under its code (an
 * error with none of ERROR_CODES would count in ERRORS alone).
 */
export function countError(block: Float64Array, code: string | undefined): void {
  block[S.ERRORS]!++;
  const k = (ERROR_CODES as readonly string[]).indexOf(code ?? '');
  if (k >= 0) block[S.ERRORS_BY_CODE + k]!++;
}

/** Records one reply's latency (in ms) into a block. */
export function recordLatency(block: Float64Array, ms: number): void {
  block[S.LATENCY_SUM]! += ms;
  const us = ms * 1000;
  const b = us < 1 ? 0 : 31 - Math.clz32(us);
  block[S.LATENCY + (b < LATENCY_BUCKETS ? b : LATENCY_BUCKETS - 1)]!++;
}
