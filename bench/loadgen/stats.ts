// Merging the threads' counters and histograms into one result, computed the way
// memtier_benchmark computes its totals: rates over the whole run's duration
// (first request to last reply), latencies from HdrHistograms recorded in µs and
// reported in ms, percentiles as the histogram's highest equivalent value.
import { build, decodeFromCompressedBase64, encodeIntoCompressedBase64, type Histogram } from 'hdr-histogram-js';
import type { ThreadResult } from './messages.js';
import type { LoadOptions } from './options.js';

/** Microsecond latency histogram; 3 significant digits like memtier's. */
export function newLatencyHistogram(): Histogram {
  return build({
    bitBucketSize: 32,
    numberOfSignificantValueDigits: 3,
    lowestDiscernibleValue: 1,
    highestTrackableValue: 60_000_000,
    autoResize: true,
    useWebAssembly: false,
  });
}

export function decodeHistogram(encoded: string): Histogram {
  return decodeFromCompressedBase64(encoded, 32, false);
}

/** Milliseconds. */
export interface LatencyStats {
  avg: number;
  min: number;
  max: number;
  p50: number;
  p99: number;
  p999: number;
}

export interface TypeStats {
  /** Requests answered (a multi-key get is one request, as in memtier). */
  ops: number;
  opsPerSec: number;
  /** Keys found / not found; 0 for sets. */
  hits: number;
  misses: number;
  hitsPerSec: number;
  missesPerSec: number;
  /** Request plus reply bytes. */
  bytes: number;
  kbPerSec: number;
  latency: LatencyStats;
  /** HdrHistogram V2 compressed base64 of the latencies in µs (memtier's "Compressed Histogram"). */
  histogram: string;
}

export interface LoadResult {
  options: LoadOptions;
  /** Epoch ms of the first request and the last reply over all threads. */
  startTime: number;
  endTime: number;
  durationMs: number;
  sets: TypeStats;
  gets: TypeStats;
  totals: TypeStats;
  /** ERROR / CLIENT_ERROR / SERVER_ERROR replies and unparseable streams. */
  errors: number;
  /** Connections lost during the run. */
  connectionErrors: number;
  /** The safety cap ended the run before it completed. */
  interrupted: boolean;
}

function latencyOf(h: Histogram): LatencyStats {
  if (h.totalCount === 0) return { avg: 0, min: 0, max: 0, p50: 0, p99: 0, p999: 0 };
  return {
    avg: h.mean / 1000,
    min: h.minNonZeroValue === Number.MAX_SAFE_INTEGER ? 0 : h.minNonZeroValue / 1000,
    max: h.maxValue / 1000,
    p50: h.getValueAtPercentile(50) / 1000,
    p99: h.getValueAtPercentile(99) / 1000,
    p999: h.getValueAtPercentile(99.9) / 1000,
  };
}

function typeStats(ops: number, hits: number, misses: number, bytes: number, h: Histogram, seconds: number): TypeStats {
  const rate = (n: number): number => (seconds > 0 ? n / seconds : 0);
  return {
    ops,
    opsPerSec: rate(ops),
    hits,
    misses,
    hitsPerSec: rate(hits),
    missesPerSec: rate(misses),
    bytes,
    kbPerSec: rate(bytes / 1024),
    latency: latencyOf(h),
    histogram: encodeIntoCompressedBase64(h),
  };
}

export function summarize(options: LoadOptions, threads: readonly ThreadResult[]): LoadResult {
  const setHist = newLatencyHistogram();
  const getHist = newLatencyHistogram();
  let startTime = Infinity;
  let endTime = -Infinity;
  let setOps = 0, getOps = 0, hits = 0, misses = 0, setBytes = 0, getBytes = 0;
  let errors = 0, connectionErrors = 0;
  let interrupted = false;
  for (const t of threads) {
    startTime = Math.min(startTime, t.startTime);
    endTime = Math.max(endTime, t.endTime);
    setOps += t.setOps;
    getOps += t.getOps;
    hits += t.hits;
    misses += t.misses;
    setBytes += t.setBytes;
    getBytes += t.getBytes;
    errors += t.errors;
    connectionErrors += t.connectionErrors;
    interrupted ||= t.interrupted;
    setHist.add(decodeHistogram(t.setHistogram));
    getHist.add(decodeHistogram(t.getHistogram));
  }
  if (!Number.isFinite(startTime)) startTime = endTime = Date.now();
  const totalHist = newLatencyHistogram();
  totalHist.add(setHist);
  totalHist.add(getHist);
  const durationMs = Math.max(0, endTime - startTime);
  const s = durationMs / 1000;
  return {
    options,
    startTime,
    endTime,
    durationMs,
    sets: typeStats(setOps, 0, 0, setBytes, setHist, s),
    gets: typeStats(getOps, hits, misses, getBytes, getHist, s),
    totals: typeStats(setOps + getOps, hits, misses, setBytes + getBytes, totalHist, s),
    errors,
    connectionErrors,
    interrupted,
  };
}
