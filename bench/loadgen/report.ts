// memtier_benchmark-shaped output: the "ALL STATS" table on stdout and the
// --json-out-file document, so bench code reads either tool's output the same way.
import { writeFileSync } from 'node:fs';
import type { LoadResult, TypeStats } from './stats.js';
import { decodeHistogram } from './stats.js';

const f2 = (n: number): number => Math.round(n * 100) / 100;
const f3 = (n: number): number => Math.round(n * 1000) / 1000;

function pad(s: string, width: number, left = false): string {
  return left ? s.padEnd(width) : s.padStart(width);
}

function runInformation(r: LoadResult): Array<[string, number]> {
  const o = r.options;
  return [
    ['Threads', o.threads],
    ['Connections per thread', o.clients],
    o.requests > 0 ? ['Requests per client', o.requests] : ['Seconds', o.testTime],
  ];
}

/** The text memtier prints after a run (without its per-second progress lines). */
export function formatSummary(r: LoadResult): string {
  const lines: string[] = [];
  for (const [name, value] of runInformation(r)) lines.push(`${pad(String(value), 9, true)} ${name}`);
  if (r.interrupted) lines.push('WARNING: the run hit its safety cap and was interrupted');
  if (r.errors) lines.push(`WARNING: ${r.errors} error replies`);
  if (r.connectionErrors) lines.push(`WARNING: ${r.connectionErrors} connections lost`);

  const cols: Array<[string, number]> = [
    ['Type', 7], ['Ops/sec', 12], ['Hits/sec', 12], ['Misses/sec', 12], ['Avg. Latency', 15],
    ['p50 Latency', 15], ['p99 Latency', 15], ['p99.9 Latency', 15], ['KB/sec', 12],
  ];
  const width = cols.reduce((a, [, w]) => a + w + 1, 0);
  lines.push('', '', 'ALL STATS', '='.repeat(width));
  lines.push(cols.map(([h, w], i) => pad(h, w, i === 0)).join(' ') + ' ');
  lines.push('-'.repeat(width));
  const row = (name: string, t: TypeStats, withHits: boolean): string => {
    const has = t.ops > 0;
    const lat = (v: number): string => (has ? v.toFixed(5) : '---');
    const cells = [
      pad(name, 7, true),
      pad(t.opsPerSec.toFixed(2), 12),
      pad(withHits ? t.hitsPerSec.toFixed(2) : '---', 12),
      pad(withHits ? t.missesPerSec.toFixed(2) : '---', 12),
      pad(lat(t.latency.avg), 15),
      pad(lat(t.latency.p50), 15),
      pad(lat(t.latency.p99), 15),
      pad(lat(t.latency.p999), 15),
      pad(t.kbPerSec.toFixed(2), 12),
    ];
    return cells.join(' ') + ' ';
  };
  lines.push(row('Sets', r.sets, false));
  lines.push(row('Gets', r.gets, true));
  lines.push(row('Totals', r.totals, true));

  if (!r.options.hideHistogram) {
    lines.push('', '', 'Request Latency Distribution');
    lines.push(`${pad('Type', 6, true)} ${pad('<= msec   ', 12)} ${pad('Percent', 12)}`);
    lines.push('-'.repeat(72));
    const percents = [0, 10, 20, 30, 40, 50, 60, 70, 75, 80, 85, 90, 95, 97.5, 99, 99.5, 99.9, 99.99, 100];
    for (const [name, t] of [['SET', r.sets], ['GET', r.gets]] as const) {
      const h = decodeHistogram(t.histogram);
      if (h.totalCount > 0) {
        for (const p of percents) {
          const v = (p === 0 ? h.minNonZeroValue : h.getValueAtPercentile(p)) / 1000;
          lines.push(`${pad(name, 6, true)} ${pad(v.toFixed(3), 8)} ${pad(p.toFixed(2), 12)}`);
        }
      }
      lines.push('---');
    }
  }
  return lines.join('\n') + '\n';
}

function typeJson(t: TypeStats): Record<string, unknown> {
  return {
    Count: t.ops,
    'Ops/sec': f2(t.opsPerSec),
    'Hits/sec': f2(t.hitsPerSec),
    'Misses/sec': f2(t.missesPerSec),
    Latency: f3(t.latency.avg),
    'Average Latency': f3(t.latency.avg),
    'Min Latency': f3(t.latency.min),
    'Max Latency': f3(t.latency.max),
    'KB/sec': f2(t.kbPerSec),
    'Percentile Latencies': {
      'p50.00': f3(t.latency.p50),
      'p99.00': f3(t.latency.p99),
      'p99.90': f3(t.latency.p999),
      'Histogram log format': { 'Compressed Histogram': t.histogram },
    },
  };
}

/** memtier_benchmark's --json-out-file document (the parts this tool measures). */
export function toMemtierJson(r: LoadResult): Record<string, unknown> {
  const o = r.options;
  const start = Math.floor(r.startTime);
  const finish = Math.floor(r.endTime);
  const totals = typeJson(r.totals);
  totals['Errors'] = r.errors;
  totals['Connection Errors'] = r.connectionErrors;
  return {
    configuration: {
      tool: 'mcrelay loadgen',
      server: o.server,
      port: o.port,
      protocol: o.protocol,
      requests: o.requests,
      clients: o.clients,
      threads: o.threads,
      test_time: o.testTime,
      ratio: `${o.ratioSet}:${o.ratioGet}`,
      pipeline: o.pipeline,
      data_size: o.dataSize,
      expiry_range: `${o.expiryMin}:${o.expiryMax}`,
      key_prefix: o.keyPrefix,
      key_minimum: o.keyMinimum,
      key_maximum: o.keyMaximum,
      key_pattern: `${o.keyPatternSet}:${o.keyPatternGet}`,
      key_stddev: o.keyStddev,
      key_median: o.keyMedian,
      multi_key_get: o.multiKeyGet,
      distinct_client_seed: o.distinctClientSeed,
    },
    'run information': Object.fromEntries(runInformation(r)),
    'ALL STATS': {
      Runtime: {
        'Start time': start,
        'Finish time': finish,
        'Total duration': finish - start,
        'Time unit': 'MILLISECONDS',
        Interrupted: r.interrupted,
      },
      Sets: typeJson(r.sets),
      Gets: typeJson(r.gets),
      Totals: totals,
    },
  };
}

export function writeJsonOutFile(file: string, r: LoadResult): void {
  writeFileSync(file, JSON.stringify(toMemtierJson(r), null, 2) + '\n');
}
