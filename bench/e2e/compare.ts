// The end-to-end comparison: per scenario, start two memcached servers and every
// target, fill the servers, warm every target up, then run the targets in
// alternating rounds (A B C D E A B C D E ...) so that drift of the machine hits
// all of them alike; stop everything before the next scenario.
//
//   scenario -> backends + targets -> fill -> warm-up -> rounds x targets -> summaries
//
// The tls scenario first makes a CA and a server certificate in the log folder
// (certs.ts); the master then also listens for TLS, and the targets are TLS_TARGETS.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeBenchCerts } from './certs.js';
import { chooseLoadTool, loadgen, type LoadTool } from './load.js';
import { atInterrupt, cpuMicros, installHooks, killAllNow, machineBusyMicros, ownCpuMicros, rssBytes } from './processes.js';
import { describeArgs, fillArgs, KEY_MAX, loadArgs, type Scenario } from './scenarios.js';
import { addRatios, median, summarize, type RoundSample, type TargetSummary } from './summary.js';
import {
  mcproxyCommand, nutcrackerCommand, startBackends, startTargets, startWorkersSweep, stopAll, TARGETS, TEXT_ONLY, TLS_TARGETS,
  type Backends, type Running, type TargetId,
} from './targets.js';
import { formatScenario } from './report.js';

export interface CompareOptions {
  scenarios: readonly Scenario[];
  /** rounds for a scenario */
  rounds: (s: Scenario) => number;
  seconds: number;
  warmupSeconds: number;
  targets: readonly TargetId[];
  /** progress lines go here */
  log: (line: string) => void;
  /** default: memtier_benchmark if on PATH, else loadgen (tests choose) */
  loadTool?: LoadTool;
  /** keys 1..keys are filled and loaded; default KEY_MAX (tests make it small) */
  keys?: number;
}

export interface ScenarioResult {
  scenario: Scenario;
  /** the load generator's arguments (memtier_benchmark's) */
  loadArgs: string;
  rounds: number;
  targets: TargetSummary[];
}

/** loadgen against memtier, both on memcached direct (only when memtier is installed). */
export interface LoadgenCheck {
  scenario: string;
  memtierOpsPerSec: number;
  loadgenOpsPerSec: number;
  ratio: number;
}

export interface CompareResult {
  loadTool: string;
  twemproxy: 'measured' | 'absent (nutcracker not on PATH)' | 'not selected';
  mcproxy: string;
  scenarios: ScenarioResult[];
  loadgenCheck: LoadgenCheck[] | null;
}

async function measure(tool: LoadTool, t: Running, b: Backends, args: string[], round: number, logDir: string): Promise<RoundSample> {
  const pid = t.proxy?.pid;
  const backendCpu = (): number => cpuMicros(b.master.proc.pid) + cpuMicros(b.backup.proc.pid);
  const proxy0 = pid !== undefined ? cpuMicros(pid) : NaN;
  const backend0 = backendCpu();
  const machine0 = machineBusyMicros();
  const own0 = ownCpuMicros();
  const t0 = performance.now();
  const load = await tool.run(args, logDir);
  const wallUs = (performance.now() - t0) * 1000;
  const own1 = ownCpuMicros();
  const machine1 = machineBusyMicros();
  const proxy1 = pid !== undefined ? cpuMicros(pid) : NaN;
  const backend1 = backendCpu();
  const ops = Math.max(load.ops, 1);
  return {
    ...load,
    round,
    proxyCpuUsPerOp: (proxy1 - proxy0) / ops,
    proxyRssBytes: pid !== undefined ? rssBytes(pid) : NaN,
    backendCpuUsPerOp: (backend1 - backend0) / ops,
    otherCpuPercent: Math.max(0, (100 * ((machine1 - machine0) - (own1 - own0) - load.externalCpuMicros)) / wallUs),
  };
}

async function runScenario(s: Scenario, tool: LoadTool, o: CompareOptions, logDir: string): Promise<{ result: ScenarioResult; check: LoadgenCheck | null }> {
  let backends: Backends | null = null;
  let targets: Running[] = [];
  const keys = o.keys ?? KEY_MAX;
  const certs = s.tls === true ? makeBenchCerts(join(logDir, `certs-${s.name}`)) : null;
  const args = (port: number, seconds: number): string[] => loadArgs(s, port, seconds, keys, certs?.ca ?? null);
  try {
    backends = await startBackends(logDir, certs);
    // twemproxy and memcached's proxy take no binary protocol (nor TLS) from clients.
    const ids = s.protocol === 'memcache_binary' ? o.targets.filter((t) => !TEXT_ONLY.includes(t))
      : certs !== null ? o.targets.filter((t) => TLS_TARGETS.includes(t)) : o.targets;
    if (s.workersSweep !== undefined) targets = await startWorkersSweep(s.workersSweep, backends, logDir);
    else targets = await startTargets(ids, backends, logDir, certs);
    // Every key stored once on both servers (on their plain listeners), so gets hit as in a warm cache.
    await loadgen.run(fillArgs(s.dataSize, backends.master.port, keys), logDir);
    await loadgen.run(fillArgs(s.dataSize, backends.backup.port, keys), logDir);
    if (o.warmupSeconds > 0) {
      for (const t of targets) await tool.run(args(t.port, o.warmupSeconds), logDir);
    }
    const rounds = o.rounds(s);
    const samples = new Map<TargetId, RoundSample[]>(targets.map((t) => [t.spec.id, []]));
    for (let round = 1; round <= rounds; round++) {
      for (const t of targets) {
        const sample = await measure(tool, t, backends, args(t.port, o.seconds), round, logDir);
        samples.get(t.spec.id)!.push(sample);
        const bad = sample.errors + sample.connectionErrors > 0 || sample.interrupted ? ' (ERRORS)' : '';
        o.log(`  ${s.name} round ${round}/${rounds} ${t.spec.label.padEnd(32)} ${Math.round(sample.opsPerSec).toString().padStart(8)} ops/s` +
          `  p50 ${sample.p50.toFixed(3)} ms  p99 ${sample.p99.toFixed(3)} ms  other CPU ${sample.otherCpuPercent.toFixed(0)} %${bad}`);
      }
    }
    // The load generator against memtier at the same settings (needs memtier).
    let check: LoadgenCheck | null = null;
    if (tool !== loadgen) {
      const direct = targets.find((t) => t.spec.id === 'memcached');
      if (direct !== undefined) {
        const m: number[] = [];
        const l: number[] = [];
        for (let round = 1; round <= rounds; round++) {
          m.push((await tool.run(args(direct.port, o.seconds), logDir)).opsPerSec);
          l.push((await loadgen.run(args(direct.port, o.seconds), logDir)).opsPerSec);
        }
        check = { scenario: s.name, memtierOpsPerSec: median(m), loadgenOpsPerSec: median(l), ratio: median(l) / median(m) };
      }
    }
    const rows = targets.map((t) => summarize(t.spec.id, t.spec.label, samples.get(t.spec.id)!));
    addRatios(rows);
    return { result: { scenario: s, loadArgs: describeArgs(s, o.seconds, keys), rounds, targets: rows }, check };
  } finally {
    await stopAll(targets, backends);
  }
}

export async function compare(o: CompareOptions): Promise<CompareResult> {
  const tool = o.loadTool ?? chooseLoadTool();
  const twemAvailable = nutcrackerCommand() !== null;
  const wantsTwem = o.targets.includes('twemproxy');
  o.log(`load generator: ${tool.name}${tool === loadgen ? ' (memtier_benchmark is not on PATH)' : ` (${tool.path})`}`);
  if (wantsTwem && !twemAvailable) o.log('twemproxy: nutcracker is not on PATH; skipping it (apt-get install nutcracker)');
  const wantsMcproxy = o.targets.includes('mcproxy') || o.targets.includes('mcproxy-backup');
  const mcproxy = wantsMcproxy ? mcproxyCommand() : null;
  if (wantsMcproxy && mcproxy === null) o.log('memcached\'s proxy: no memcached-proxy on PATH and no --mcproxy PATH; skipping it (bench/README.md: how to build it)');
  const logDir = mkdtempSync(join(tmpdir(), 'mcrelay-bench-'));
  installHooks();
  const undo = atInterrupt(() => rmSync(logDir, { recursive: true, force: true }));
  o.log(`server logs: ${logDir}`);
  const scenarios: ScenarioResult[] = [];
  const checks: LoadgenCheck[] = [];
  let ok = false;
  try {
    for (const s of o.scenarios) {
      o.log(`scenario ${s.name}: ${s.description}`);
      const { result, check } = await runScenario(s, tool, o, logDir);
      scenarios.push(result);
      if (check !== null) checks.push(check);
      o.log('');
      o.log(formatScenario(result, 'text'));
    }
    ok = true;
  } finally {
    killAllNow();
    undo();
    // Keep the logs of a failed run for a look.
    if (ok) rmSync(logDir, { recursive: true, force: true });
    else o.log(`server logs kept in ${logDir}`);
  }
  return {
    loadTool: tool.name,
    twemproxy: !wantsTwem ? 'not selected' : twemAvailable ? 'measured' : 'absent (nutcracker not on PATH)',
    mcproxy: !wantsMcproxy ? 'not selected' : mcproxy !== null ? `measured (${mcproxy})` : 'absent (no memcached-proxy on PATH, no --mcproxy)',
    scenarios,
    loadgenCheck: tool === loadgen ? null : checks,
  };
}

export const ALL_TARGETS: readonly TargetId[] = TARGETS.map((t) => t.id);
