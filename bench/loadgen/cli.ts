#!/usr/bin/env node
// node dist/bench/loadgen/cli.js [memtier_benchmark options]
// Progress goes to stderr, the summary table to stdout, like memtier_benchmark.
import { LoadOptionsError, parseArgs, usage } from './options.js';
import { formatSummary, writeJsonOutFile } from './report.js';
import { runLoad } from './run.js';

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs(argv);
  } catch (err) {
    if (err instanceof LoadOptionsError) {
      process.stderr.write(`error: ${err.message}\n`);
      process.stderr.write(usage());
      return 2;
    }
    throw err;
  }
  if (parsed.help) {
    process.stdout.write(usage());
    return 0;
  }
  const o = parsed.options;
  process.stderr.write('[RUN #1] Preparing benchmark client...\n');
  let prevOps = 0;
  let prevElapsed = 0;
  const result = await runLoad(o, {
    onProgress: ({ elapsed, ops, bytes }) => {
      const cur = elapsed > prevElapsed ? (ops - prevOps) / (elapsed - prevElapsed) : 0;
      const avg = elapsed > 0 ? ops / elapsed : 0;
      const done = o.requests > 0
        ? (100 * ops) / (o.requests * o.clients * o.threads)
        : (100 * elapsed) / o.testTime;
      prevOps = ops;
      prevElapsed = elapsed;
      process.stderr.write(
        `[RUN #1 ${Math.min(100, done).toFixed(0)}%, ${elapsed.toFixed(0).padStart(3)} secs] ${o.threads} threads: ` +
        `${String(ops).padStart(11)} ops, ${cur.toFixed(0).padStart(7)} (avg: ${avg.toFixed(0).padStart(7)}) ops/sec, ` +
        `${(bytes / 1024 / Math.max(elapsed, 1e-9)).toFixed(2)}KB/sec (avg)\r`,
      );
    },
  });
  process.stderr.write('\n\n');
  process.stdout.write(formatSummary(result));
  if (o.jsonOutFile) {
    writeJsonOutFile(o.jsonOutFile, result);
    process.stderr.write(`JSON results written to ${o.jsonOutFile}\n`);
  }
  return result.interrupted || result.totals.ops === 0 ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err: unknown) => {
    process.stderr.write(`error: ${(err as Error)?.message ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
