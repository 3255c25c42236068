// uvu swallows an error thrown by a before hook: every test of the file counts
// as not passed and nothing says why (its runner returns from a `finally`).
// Imported for its effect by procs.ts, which every suite with real processes
// loads, this makes `test.before` (and a suite's, through loudHooks) print the
// error in the "FAIL " form that test/run.ts repeats at the end of the log.
import { test, type Test } from 'uvu';

export function loudHooks<T>(t: Test<T>): void {
  const before = t.before;
  t.before = Object.assign((fn: Parameters<typeof before>[0]) => before(async (ctx) => {
    try {
      await fn(ctx);
    } catch (err) {
      process.stderr.write(`\nFAIL  before hook${ctx.__suite__ ? ` of ${ctx.__suite__}` : ''}: ${(err as Error).stack ?? String(err)}\n`);
      throw err;
    }
  }), { each: before.each });
}

loudHooks(test);
