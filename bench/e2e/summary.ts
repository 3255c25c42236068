// From the rounds of each target to one row: medians, spread, and ratios to
// memcached direct and to twemproxy (undici's benchmark printer compares each
// row with a baseline the same way).
import type { LoadSample } from './load.js';
import type { TargetId } from './targets.js';

/** One round of one target. */
export interface RoundSample extends LoadSample {
  round: number;
  /** proxy utime+stime over the run / ops; NaN for memcached direct */
  proxyCpuUsPerOp: number;
  /** VmRSS of the proxy after the run; NaN for memcached direct */
  proxyRssBytes: number;
  /** utime+stime of both memcached servers over the run / ops */
  backendCpuUsPerOp: number;
  /** CPU used on the machine by processes the bench did not start, in % of one core: noise */
  otherCpuPercent: number;
}

export interface TargetSummary {
  id: TargetId;
  label: string;
  rounds: RoundSample[];
  opsPerSec: number;
  /** half the range of ops/s over the rounds, in % of the median */
  spreadPercent: number;
  opsMin: number;
  opsMax: number;
  p50: number;
  p99: number;
  proxyCpuUsPerOp: number;
  /** at the end of the last round */
  proxyRssBytes: number;
  backendCpuUsPerOp: number;
  loadCpuPercent: number;
  otherCpuPercent: number;
  errors: number;
  hitRatio: number;
  /** ratios of the medians; NaN when the baseline did not run */
  opsVsMemcached: number;
  opsVsTwemproxy: number;
  p99VsTwemproxy: number;
  cpuVsTwemproxy: number;
  /** to memcached's proxy (mcproxy); NaN when it did not run */
  opsVsMcproxy: number;
  p99VsMcproxy: number;
}

export function median(xs: readonly number[]): number {
  const v = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 === 1 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

export function summarize(id: TargetId, label: string, rounds: RoundSample[]): TargetSummary {
  const ops = rounds.map((r) => r.opsPerSec);
  const opsMedian = median(ops);
  const opsMin = Math.min(...ops);
  const opsMax = Math.max(...ops);
  return {
    id,
    label,
    rounds,
    opsPerSec: opsMedian,
    spreadPercent: opsMedian > 0 ? (100 * (opsMax - opsMin)) / 2 / opsMedian : NaN,
    opsMin,
    opsMax,
    p50: median(rounds.map((r) => r.p50)),
    p99: median(rounds.map((r) => r.p99)),
    proxyCpuUsPerOp: median(rounds.map((r) => r.proxyCpuUsPerOp)),
    proxyRssBytes: rounds.length > 0 ? rounds[rounds.length - 1]!.proxyRssBytes : NaN,
    backendCpuUsPerOp: median(rounds.map((r) => r.backendCpuUsPerOp)),
    loadCpuPercent: median(rounds.map((r) => r.loadCpuPercent)),
    otherCpuPercent: median(rounds.map((r) => r.otherCpuPercent)),
    errors: rounds.reduce((a, r) => a + r.errors + r.connectionErrors + (r.interrupted ? 1 : 0), 0),
    hitRatio: median(rounds.map((r) => r.hitRatio)),
    opsVsMemcached: NaN,
    opsVsTwemproxy: NaN,
    p99VsTwemproxy: NaN,
    cpuVsTwemproxy: NaN,
    opsVsMcproxy: NaN,
    p99VsMcproxy: NaN,
  };
}

/** Fills the ratio fields of every row from the memcached, twemproxy and memcached proxy rows. */
export function addRatios(rows: TargetSummary[]): void {
  const direct = rows.find((r) => r.id === 'memcached');
  const twem = rows.find((r) => r.id === 'twemproxy');
  const mcp = rows.find((r) => r.id === 'mcproxy');
  for (const r of rows) {
    r.opsVsMemcached = direct !== undefined ? r.opsPerSec / direct.opsPerSec : NaN;
    r.opsVsTwemproxy = twem !== undefined ? r.opsPerSec / twem.opsPerSec : NaN;
    r.p99VsTwemproxy = twem !== undefined ? r.p99 / twem.p99 : NaN;
    r.cpuVsTwemproxy = twem !== undefined ? r.proxyCpuUsPerOp / twem.proxyCpuUsPerOp : NaN;
    r.opsVsMcproxy = mcp !== undefined ? r.opsPerSec / mcp.opsPerSec : NaN;
    r.p99VsMcproxy = mcp !== undefined ? r.p99 / mcp.p99 : NaN;
  }
}
