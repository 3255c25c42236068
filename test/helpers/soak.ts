// Load with faults: a mixed load against a full deployment while servers fail,
// checked by the verifier of load.ts. Used by test/fault/soak.test.ts (short)
// and test/fault/soak-run.ts (npm run soak, 60 s).
//
//   load: N connections (set, get, multi-get, delete, incr)
//     --> mcrelay --workers 2 --timeout 300 --retry-interval 200
//           masters m0 m1, backups b0 b1
//
//   timeline (fractions of the run):  0.15 kill -9 m0   0.35 restart m0 (empty)
//                                     0.55 SIGSTOP b0   0.75 SIGCONT b0
//   then the load stops and every key is read once more.
//
// Verdict: no wrong value, no request left unanswered, errors only within a
// detection window after a fault event; misses of acknowledged values are
// counted and reported (a restarted master is empty until warmed).
import { Load, type Problem } from './load.js';
import { sleep, startMemcached, startProxy, type Proc } from './procs.js';

export const TIMEOUT_MS = 300;
export const RETRY_MS = 200;
export const FAILURE_LIMIT = 3;
/** after a fault event, how long errors may be seen: detection (timeouts) plus a probe and a margin */
export const DETECTION_WINDOW_MS = TIMEOUT_MS * FAILURE_LIMIT + RETRY_MS + 1500;
/** a request not answered within this is unanswered */
export const DEADLINE_MS = 3000;

export interface SoakOptions {
  seconds: number;
  connections: number;
  log?: (line: string) => void;
}

export interface SoakEvent { name: string; at: number }

export interface SoakResult {
  events: SoakEvent[];
  summary: string;
  requests: number;
  seconds: number;
  wrong: Problem[];
  unanswered: Problem[];
  errorsInWindow: Problem[];
  errorsOutside: Problem[];
  /** reads that missed an acknowledged value */
  lostReads: Problem[];
  proxyAlive: boolean;
  proxyOutput: string;
}

export async function runSoak(opts: SoakOptions): Promise<SoakResult> {
  const log = opts.log ?? (() => {});
  const procs: Proc[] = [];
  const [m0, m1, b0, b1] = await Promise.all([0, 1, 2, 3].map(() => startMemcached({ memoryMb: 128 })));
  procs.push(m0!, m1!, b0!, b1!);
  const proxy = await startProxy(['-s', m0!.addr, '-s', m1!.addr, '-b', b0!.addr, '-b', b1!.addr, '--workers', '2',
    '--timeout', String(TIMEOUT_MS), '--retry-interval', String(RETRY_MS), '--failure-limit', String(FAILURE_LIMIT)]);
  procs.push(proxy);
  const load = new Load({ port: proxy.port, connections: opts.connections, keysPerConnection: 40, countersPerConnection: 2, deadlineMs: DEADLINE_MS, pauseMs: 2, prefix: 'soak', valueBytes: 64 });
  const v = load.verifier;
  const events: SoakEvent[] = [];
  const total = opts.seconds * 1000;
  const mark = (name: string): void => { events.push({ name, at: v.now() }); log(`  ${(v.now() / 1000).toFixed(1)} s: ${name} (${v.summary()})`); };
  const at = async (fraction: number): Promise<void> => { const wait = fraction * total - v.now(); if (wait > 0) await sleep(wait); };
  let master0 = m0!;
  try {
    load.start();
    mark('load started');
    await at(0.15);
    master0.signal('SIGKILL');
    mark('kill -9 master m0');
    await at(0.35);
    master0 = await startMemcached({ port: master0.port, memoryMb: 128 });
    procs.push(master0);
    mark('master m0 restarted (empty)');
    await at(0.55);
    b0!.signal('SIGSTOP');
    mark('SIGSTOP backup b0');
    await at(0.75);
    b0!.signal('SIGCONT');
    mark('SIGCONT backup b0');
    await at(0.97);
    await load.stop();
    mark('load stopped');
    await load.finalCheck(proxy.port);
    mark('every key read once more');
  } finally {
    await load.stop();
    for (const p of procs) p.signal('SIGCONT');
  }
  const inWindow = (p: Problem): boolean => events.some((e) => e.name !== 'load started' && p.at >= e.at && p.at <= e.at + DETECTION_WINDOW_MS);
  const errors = v.problems.filter((p) => p.kind === 'error');
  const result: SoakResult = {
    events,
    summary: v.summary(),
    requests: v.counts.requests,
    seconds: opts.seconds,
    wrong: v.problems.filter((p) => p.kind === 'wrong'),
    unanswered: v.problems.filter((p) => p.kind === 'unanswered'),
    errorsInWindow: errors.filter(inWindow),
    errorsOutside: errors.filter((p) => !inWindow(p)),
    lostReads: v.problems.filter((p) => p.kind === 'miss'),
    proxyAlive: proxy.alive,
    proxyOutput: proxy.output,
  };
  await Promise.all(procs.map((p) => p.stop()));
  return result;
}

const show = (ps: Problem[], n = 5): string => ps.slice(0, n).map((p) => `\n      ${(p.at / 1000).toFixed(3)} s ${p.detail}`).join('');

export function formatSoak(r: SoakResult): string {
  return [
    `soak: ${r.seconds} s, ${r.summary} (${Math.round(r.requests / r.seconds)} requests/s)`,
    `  events: ${r.events.map((e) => `${(e.at / 1000).toFixed(1)} s ${e.name}`).join('; ')}`,
    `  wrong values: ${r.wrong.length}${show(r.wrong)}`,
    `  unanswered requests: ${r.unanswered.length}${show(r.unanswered)}`,
    `  errors: ${r.errorsInWindow.length} within ${DETECTION_WINDOW_MS} ms of a fault event, ${r.errorsOutside.length} outside${show(r.errorsOutside)}`,
    `  reads that missed an acknowledged value: ${r.lostReads.length}${show(r.lostReads, 3)}`,
    `  mcrelay ${r.proxyAlive ? 'kept running' : 'DIED'}`,
  ].join('\n');
}
