// What each backend server says about itself, and what mcrelay measured of it,
// written by the main thread once per retry interval and read by every worker's
// `stats` and by /metrics: no request waits for a server's `stats`.
//
// Layout of the SharedArrayBuffer, for N servers (health-table order: masters,
// then backups):
//   Int32  [2*i]            SEQ of server i: odd while the main thread rewrites
//                           its block, bumped again when done (a seqlock: a
//                           reader that sees it change copies the block again)
//   Float64 block i at byte 8*N + 8*FIELDS*i:
//     [F.POLLED_AT]         Date.now() of the `stats` poll the figures come from;
//                           0: none since the server was last seen down
//     [F.COVERAGE]          backups: share (0..1) of sampled recent writes held by
//                           the master that the backup holds too; NaN: not measured
//     [F.COVERAGE_CHECKED]  how many sampled keys that figure rests on
//     [F.FIRST + k]         the server's own `stats` field SUMMED[k]
// A single writer (main/prober.ts and main/coverage.ts, both on the main thread);
// readers never wait: after a few changed sequences they take what they copied.

/**
 * Fields of memcached's `stats` (1.6.18) that add up across servers: what the
 * cache holds and what happened to its items. Left out: what describes one
 * process (pid, uptime, rusage, threads, connections, buffers, hash power) and
 * what mcrelay counts itself from the clients' side (cmd_*, get_hits,
 * get_misses, bytes_read, bytes_written).
 */
export const SUMMED = [
  'get_expired', 'get_flushed',
  'delete_misses', 'delete_hits', 'incr_misses', 'incr_hits', 'decr_misses', 'decr_hits',
  'cas_misses', 'cas_hits', 'cas_badval', 'touch_hits', 'touch_misses',
  'store_too_large', 'store_no_memory',
  'limit_maxbytes', 'hash_bytes',
  'slab_reassign_rescues', 'slab_reassign_chunk_rescues', 'slab_reassign_evictions_nomem',
  'slab_reassign_inline_reclaim', 'slab_reassign_busy_items', 'slab_reassign_busy_deletes',
  'slabs_moved', 'malloc_fails',
  'bytes', 'curr_items', 'total_items', 'slab_global_page_pool',
  'expired_unfetched', 'evicted_unfetched', 'evicted_active', 'evictions', 'reclaimed',
  'crawler_reclaimed', 'crawler_items_checked', 'lrutail_reflocked',
  'moves_to_cold', 'moves_to_warm', 'moves_within_lru', 'direct_reclaims', 'lru_bumps_dropped',
] as const;

/** The SUMMED fields `stats servers` and /metrics show per server (the rest: `stats <server>`). */
export const PER_SERVER = [
  'curr_items', 'bytes', 'limit_maxbytes', 'total_items', 'evictions', 'evicted_unfetched',
  'expired_unfetched', 'reclaimed', 'store_no_memory', 'store_too_large',
] as const;

export const F = {
  POLLED_AT: 0,
  COVERAGE: 1,
  COVERAGE_CHECKED: 2,
  FIRST: 3,
} as const;
const FIELDS = F.FIRST + SUMMED.length;

const INDEX = new Map<string, number>(SUMMED.map((name, k) => [name, F.FIRST + k]));

/** The index of a SUMMED field in a block. */
export function figure(name: (typeof SUMMED)[number]): number {
  return INDEX.get(name)!;
}

const READ_ATTEMPTS = 4;

export class ServerFigures {
  readonly buffer: SharedArrayBuffer;
  readonly servers: number;
  private readonly seq: Int32Array;
  private readonly all: Float64Array;

  constructor(serversOrBuffer: number | SharedArrayBuffer) {
    if (typeof serversOrBuffer === 'number') {
      this.buffer = new SharedArrayBuffer(serversOrBuffer * 8 * (1 + FIELDS));
      this.servers = serversOrBuffer;
    } else {
      this.buffer = serversOrBuffer;
      this.servers = serversOrBuffer.byteLength / (8 * (1 + FIELDS));
    }
    this.seq = new Int32Array(this.buffer, 0, this.servers * 2);
    this.all = new Float64Array(this.buffer, this.servers * 8);
    if (typeof serversOrBuffer === 'number') {
      for (let i = 0; i < this.servers; i++) this.all[i * FIELDS + F.COVERAGE] = NaN;
    }
  }

  /** A new block of figures for reading into (copy()). */
  static block(): Float64Array {
    return new Float64Array(FIELDS);
  }

  /** Copies server i's block into `out`; a block the main thread is rewriting is copied again. */
  copy(server: number, out: Float64Array): Float64Array {
    const at = server * FIELDS;
    for (let n = 0; n < READ_ATTEMPTS; n++) {
      const before = Atomics.load(this.seq, server * 2);
      out.set(this.all.subarray(at, at + FIELDS));
      if ((before & 1) === 0 && Atomics.load(this.seq, server * 2) === before) break;
    }
    return out;
  }

  /** Main thread: the figures of a `stats` reply (latin1 text) polled at `now`. */
  publishStats(server: number, text: string, now: number): void {
    const at = server * FIELDS;
    Atomics.add(this.seq, server * 2, 1);
    for (const line of text.split('\r\n')) {
      if (!line.startsWith('STAT ')) continue;
      const sp = line.indexOf(' ', 5);
      const k = INDEX.get(line.slice(5, sp));
      if (k === undefined) continue;
      const v = Number(line.slice(sp + 1));
      this.all[at + k] = Number.isFinite(v) ? v : 0;
    }
    this.all[at + F.POLLED_AT] = now;
    Atomics.add(this.seq, server * 2, 1);
  }

  /** Main thread: the server's figures are not current any more (it went down, or stopped answering). */
  forget(server: number): void {
    Atomics.add(this.seq, server * 2, 1);
    this.all[server * FIELDS + F.POLLED_AT] = 0;
    Atomics.add(this.seq, server * 2, 1);
  }

  /** Main thread: a backup's coverage, measured on `checked` keys. */
  publishCoverage(server: number, coverage: number, checked: number): void {
    Atomics.add(this.seq, server * 2, 1);
    this.all[server * FIELDS + F.COVERAGE] = coverage;
    this.all[server * FIELDS + F.COVERAGE_CHECKED] = checked;
    Atomics.add(this.seq, server * 2, 1);
  }

  /** One field, read without the seqlock (a single number cannot tear). */
  get(server: number, field: number): number {
    return this.all[server * FIELDS + field]!;
  }
}
