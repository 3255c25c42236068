// Load for the end-to-end bench: memtier_benchmark when it is on PATH, else the
// project's load generator (bench/loadgen), which takes the same arguments and
// writes the same JSON. Both are read through memtier's --json-out-file document.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from '../loadgen/options.js';
import { toMemtierJson } from '../loadgen/report.js';
import { runLoad } from '../loadgen/run.js';
import { childrenCpuMicros, cpuMicros, startProcess, logTail, which } from './processes.js';

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
  /** CPU of the load generator over the run, in % of one core */
  loadCpuPercent: number;
  /** CPU of a load generator that ran as a process of its own (memtier), in µs; 0 for one in this process */
  externalCpuMicros: number;
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

export interface MemtierJson {
  'ALL STATS': {
    // memtier writes "Interrupted": "false", a string.
    Runtime?: { 'Total duration'?: number; Interrupted?: boolean | string };
    Totals: MemtierTotals;
  };
}

/** A memtier --json-out-file document (or loadgen's in its shape) as a sample; exported for its test. */
export function fromMemtierJson(doc: MemtierJson, loadCpuPercent: number, externalCpuMicros: number): LoadSample {
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
    interrupted: String(all.Runtime?.Interrupted ?? false) === 'true',
    loadCpuPercent,
    externalCpuMicros,
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
    return fromMemtierJson(toMemtierJson(result) as unknown as MemtierJson, cpuPercent, 0);
  },
};

function memtier(path: string): LoadTool {
  return {
    name: 'memtier_benchmark',
    path,
    async run(args, logDir) {
      const dir = mkdtempSync(join(tmpdir(), 'mcrelay-memtier-'));
      const out = join(dir, 'out.json');
      const stat = join(dir, 'sh.stat');
      try {
        // memtier is gone before its /proc entry can be read: it runs under sh, which,
        // once it has waited for memtier, copies its own stat, whose children's CPU is memtier's.
        const script = '"$@"; s=$?; cat /proc/$$/stat > "$0"; exit $s';
        const t0 = performance.now();
        const p = startProcess('memtier', '/bin/sh', ['-c', script, stat, path, ...args, `--json-out-file=${out}`], logDir);
        const code = await p.exited;
        const wallUs = (performance.now() - t0) * 1000;
        if (code !== 0) throw new Error(`memtier_benchmark exited with ${code}:\n${logTail(p)}`);
        const cpu = childrenCpuMicros(readFileSync(stat, 'latin1'));
        return fromMemtierJson(JSON.parse(readFileSync(out, 'utf8')) as MemtierJson, (100 * cpu) / wallUs, cpu);
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
