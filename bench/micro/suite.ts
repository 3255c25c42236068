// Shared by the micro-benchmarks: runs a tinybench Bench whose tasks each do a
// batch of operations per call (timing one parse would measure the timer), and
// turns the results into rows of ops/s, ns/op and spread.
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { Bench } from 'tinybench';
import { int, markdownTable, num, textTable } from '../table.js';

export interface MicroOptions {
  /** ms of sampling per task */
  time: number;
  /** ms of warm-up per task */
  warmupTime: number;
}

export const DEFAULT_MICRO: MicroOptions = { time: 1000, warmupTime: 200 };

export interface MicroTask {
  name: string;
  /** operations one call of fn performs */
  batch: number;
  fn: () => void;
}

export interface MicroRow {
  suite: string;
  task: string;
  opsPerSec: number;
  nsPerOp: number;
  /** tinybench's relative margin of error of the mean, in percent */
  rme: number;
  samples: number;
  error?: string;
}

export async function runSuite(suite: string, tasks: readonly MicroTask[], options: MicroOptions = DEFAULT_MICRO): Promise<MicroRow[]> {
  const bench = new Bench({ time: options.time, warmupTime: options.warmupTime });
  for (const t of tasks) bench.add(t.name, t.fn);
  await bench.run();
  return tasks.map((t, i) => {
    const r = bench.tasks[i]!.result;
    if (r.state !== 'completed') {
      const error = r.state === 'errored' ? String(r.error) : r.state;
      return { suite, task: t.name, opsPerSec: 0, nsPerOp: 0, rme: 0, samples: 0, error };
    }
    const nsPerOp = (r.latency.mean * 1e6) / t.batch;
    return {
      suite,
      task: t.name,
      opsPerSec: 1e9 / nsPerOp,
      nsPerOp,
      rme: r.latency.rme,
      samples: r.latency.samplesCount,
    };
  });
}

const MICRO_HEAD = ['suite', 'task', 'ops/s', 'ns/op', '± %', 'samples'];

function microBody(rows: readonly MicroRow[]): string[][] {
  return rows.map((r) => r.error !== undefined
    ? [r.suite, r.task, r.error, '', '', '']
    : [r.suite, r.task, int(r.opsPerSec), num(r.nsPerOp, 1), num(r.rme, 2), String(r.samples)]);
}

/** suite, task, ops/s, ns/op, ± % (tinybench's rme), samples */
export function formatMicroTable(rows: readonly MicroRow[]): string {
  return textTable(MICRO_HEAD, microBody(rows), 2);
}

export function markdownMicroTable(rows: readonly MicroRow[]): string {
  return markdownTable(MICRO_HEAD, microBody(rows), 2);
}

/** True when the module at `url` is the script node was started with. */
export function isMain(url: string): boolean {
  const entry = process.argv[1];
  if (entry === undefined) return false;
  try {
    return url === pathToFileURL(realpathSync(entry)).href;
  } catch {
    return false;
  }
}

/** Keeps results observable so the JIT cannot drop the benchmarked work. */
export const sink = { value: 0 };
