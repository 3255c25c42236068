// runLoad: the load generator as a function. Starts -t worker threads, each opens
// its -c connections; once every connection of every thread is up, all threads
// start together, run until --test-time or -n is reached, and report; the main
// thread merges their counters and histograms.
import { Worker } from 'node:worker_threads';
import type { FromWorker, ThreadResult, ToWorker, WorkerInit } from './messages.js';
import { resolveOptions, type LoadOptions } from './options.js';
import { summarize, type LoadResult } from './stats.js';

export type { LoadOptions } from './options.js';
export type { LoadResult, TypeStats, LatencyStats } from './stats.js';

export interface Progress {
  /** Seconds since the threads started. */
  elapsed: number;
  ops: number;
  bytes: number;
}

export interface RunHooks {
  /** Called about once a second with the totals so far. */
  onProgress?: (p: Progress) => void;
}

/** Time allowed beyond the run's own safety cap for connecting and reporting. */
const MAIN_CAP_SLACK_MS = 15_000;

const WORKER_URL = new URL('./worker.js', import.meta.url);

export async function runLoad(input: Partial<LoadOptions> = {}, hooks: RunHooks = {}): Promise<LoadResult> {
  const options = resolveOptions(input);
  const workers: Worker[] = [];
  const progress: Array<{ ops: number; bytes: number }> = [];
  let startedAt = 0;
  let capTimer: NodeJS.Timeout | undefined;

  try {
    const results = await new Promise<ThreadResult[]>((resolve, reject) => {
      const results: ThreadResult[] = [];
      let ready = 0;
      let done = 0;
      let failed = false;
      const failRun = (err: Error): void => {
        if (failed) return;
        failed = true;
        reject(err);
      };
      capTimer = setTimeout(() => {
        failRun(new Error(`load run exceeded its safety cap of ${options.safetyCapSeconds}s (+${MAIN_CAP_SLACK_MS / 1000}s)`));
      }, options.safetyCapSeconds * 1000 + MAIN_CAP_SLACK_MS);

      for (let i = 0; i < options.threads; i++) {
        const init: WorkerInit = { options, threadIndex: i };
        const w = new Worker(WORKER_URL, { workerData: init });
        workers.push(w);
        progress.push({ ops: 0, bytes: 0 });
        w.on('message', (m: FromWorker) => {
          switch (m.type) {
            case 'ready':
              if (++ready === options.threads) {
                startedAt = performance.now();
                for (const x of workers) x.postMessage({ type: 'go' } satisfies ToWorker);
              }
              break;
            case 'error':
              failRun(new Error(m.message));
              break;
            case 'progress': {
              progress[i] = { ops: m.ops, bytes: m.bytes };
              if (hooks.onProgress && i === 0) {
                let ops = 0;
                let bytes = 0;
                for (const p of progress) { ops += p.ops; bytes += p.bytes; }
                hooks.onProgress({ elapsed: (performance.now() - startedAt) / 1000, ops, bytes });
              }
              break;
            }
            case 'done':
              results[i] = m.result;
              if (++done === options.threads) resolve(results);
              break;
          }
        });
        w.on('error', (err) => failRun(err));
        w.on('exit', (code) => {
          if (results[i] === undefined) failRun(new Error(`load thread ${i} exited (code ${code}) before reporting`));
        });
      }
    });
    return summarize(options, results);
  } finally {
    clearTimeout(capTimer);
    await Promise.all(workers.map((w) => w.terminate()));
  }
}
