// Shared by the micro-benchmarks: runs a tinybench Bench whose tasks each do a
// batch of operations per call (timing one parse would measure the timer), and
// turns the results into rows of ops/s, ns/op and spread.
//
// A suite runs in rounds, each a fresh Bench over all its tasks, so that the
// tasks alternate as the end-to-end targets do: the build machine's speed moves
// by tens of percent within seconds (a fixed loop timed every 300 ms: 5.3 to 9.6
// ms), and one second of sampling can fall entirely into a slow patch. A row is
// the median round, with the rounds' spread.
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { Bench } from 'tinybench';
import { int, markdownTable, num, textTable } from '../table.js';

export interface MicroOptions {
  /** ms of sampling per task and round */
  time: number;
  /** ms of warm-up per task and round */
  warmupTime: number;
  /** rounds over all the suite's tasks */
  rounds: number;
}

export const DEFAULT_MICRO: MicroOptions = { time: 1000, warmupTime: 200, rounds: 3 };

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
  /** half the range of the rounds' ns/op, in percent of the median */
  spread: number;
  samples: number;
  error?: string;
}

export async function runSuite(suite: string, tasks: readonly MicroTask[], options: MicroOptions = DEFAULT_MICRO): Promise<MicroRow[]> {
  const perRound: number[][] = tasks.map(() => []);
  const samples = tasks.map(() => 0);
  const errors: Array<string | undefined> = tasks.map(() => undefined);
  for (let round = 0; round < options.rounds; round++) {
    const bench = new Bench({ time: options.time, warmupTime: options.warmupTime });
    for (const t of tasks) bench.add(t.name, t.fn);
    await bench.run();
    tasks.forEach((t, i) => {
      const r = bench.tasks[i]!.result;
      if (r.state !== 'completed') {
        errors[i] ??= r.state === 'errored' ? String(r.error) : r.state;
        return;
      }
      perRound[i]!.push((r.latency.mean * 1e6) / t.batch);
      samples[i]! += r.latency.samplesCount;
    });
  }
  return tasks.map((t, i) => {
    const error = errors[i];
    if (error !== undefined) return { suite, task: t.name, opsPerSec: 0, nsPerOp: 0, spread: 0, samples: 0, error };
    const ns = perRound[i]!.sort((a, b) => a - b);
    const nsPerOp = ns[(ns.length - 1) >> 1]!;
    return {
      suite,
      task: t.name,
      opsPerSec: 1e9 / nsPerOp,
      nsPerOp,
      spread: (100 * (ns[ns.length - 1]! - ns[0]!)) / 2 / nsPerOp,
      samples: samples[i]!,
    };
  });
}

const MICRO_HEAD = ['suite', 'task', 'ops/s', 'ns/op', '± %', 'samples'];

function microBody(rows: readonly MicroRow[]): string[][] {
  return rows.map((r) => r.error !== undefined
    ? [r.suite, r.task, r.error, '', '', '']
    : [r.suite, r.task, int(r.opsPerSec), num(r.nsPerOp, 1), num(r.spread, 1), String(r.samples)]);
}

/** suite, task, ops/s, ns/op, ± % (half the rounds' range), samples */
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
