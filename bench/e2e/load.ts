// Load for the end-to-end bench: memtier_benchmark when it is on PATH, else the
// project's load generator (bench/loadgen), which takes the same arguments and
// writes the same JSON. Both are read through memtier's --json-out-file document.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from '../loadgen/options.js';
import { toMemtierJson } from '../loadgen/report.js';
import { runLoad } from '../loadgen/run.js';
import { cpuMicros, startProcess, logTail, which } from './processes.js';

export interface LoadSample {
  /** requests answered (a multi-key get is one) */
  ops: number;
  opsPerSec: number;
  /** ms */
  p50: number;
  p99: number;
  p999: number;
  /** keys found / (found + not found) over the gets; NaN without gets */
  hitRatio: number;
  errors: number;
  connectionErrors: number;
  interrupted: boolean;
  /** CPU of the load generator over the run, in % of one core (NaN when not measured) */
  loadCpuPercent: number;
}

export interface LoadTool {
  name: string;
  /** the executable, for memtier */
  path: string | null;
  run(args: readonly string[], logDir: string): Promise<LoadSample>;
}

interface MemtierTotals {
  Count?: number;
  'Ops/sec': number;
  'Hits/sec'?: number;
  'Misses/sec'?: number;
  'Percentile Latencies'?: Record<string, unknown>;
  Errors?: number;
  'Connection Errors'?: number;
}

interface MemtierJson {
  'ALL STATS': {
    Runtime?: { 'Total duration'?: number; Interrupted?: boolean };
    Totals: MemtierTotals;
  };
}

function fromMemtierJson(doc: MemtierJson, loadCpuPercent: number): LoadSample {
  const all = doc['ALL STATS'];
  const t = all.Totals;
  const pct = t['Percentile Latencies'] ?? {};
  const p = (key: string): number => Number(pct[key] ?? NaN);
  const hits = t['Hits/sec'] ?? 0;
  const misses = t['Misses/sec'] ?? 0;
  const durationS = (all.Runtime?.['Total duration'] ?? 0) / 1000;
  return {
    ops: t.Count ?? Math.round(t['Ops/sec'] * durationS),
    opsPerSec: t['Ops/sec'],
    p50: p('p50.00'),
    p99: p('p99.00'),
    p999: p('p99.90'),
    hitRatio: hits + misses > 0 ? hits / (hits + misses) : NaN,
    errors: t.Errors ?? 0,
    connectionErrors: t['Connection Errors'] ?? 0,
    interrupted: all.Runtime?.Interrupted ?? false,
    loadCpuPercent,
  };
}

/** The project's load generator, run in this process (its threads are this process's). */
export const loadgen: LoadTool = {
  name: 'mcrelay loadgen (bench/loadgen)',
  path: null,
  async run(args) {
    const { options } = parseArgs(args);
    const cpu0 = cpuMicros('self');
    const t0 = performance.now();
    const result = await runLoad(options);
    const wallUs = (performance.now() - t0) * 1000;
    const cpuPercent = (100 * (cpuMicros('self') - cpu0)) / wallUs;
    return fromMemtierJson(toMemtierJson(result) as unknown as MemtierJson, cpuPercent);
  },
};

function memtier(path: string): LoadTool {
  return {
    name: 'memtier_benchmark',
    path,
    async run(args, logDir) {
      const dir = mkdtempSync(join(tmpdir(), 'mcrelay-memtier-'));
      const out = join(dir, 'out.json');
      try {
        const p = startProcess('memtier', path, [...args, `--json-out-file=${out}`], logDir);
        const code = await p.exited;
        if (code !== 0) throw new Error(`memtier_benchmark exited with ${code}:\n${logTail(p)}`);
        return fromMemtierJson(JSON.parse(readFileSync(out, 'utf8')) as MemtierJson, NaN);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

/** memtier_benchmark if installed, else loadgen. */
export function chooseLoadTool(): LoadTool {
  const path = which('memtier_benchmark');
  return path !== null ? memtier(path) : loadgen;
}
