// The bench's tls scenario (issue 18 item 7) run small: 2,000 keys, one round of
// 1 s per target, no warm-up, through compare() as `npm run bench -- --scenario
// tls` runs it. With bench/loadgen (as CI has), and with memtier_benchmark when
// it is on PATH. Its targets, started alone: TLS on both, and nothing else.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { makeBenchCerts } from '../../bench/e2e/certs.js';
import { ALL_TARGETS, compare, type CompareResult } from '../../bench/e2e/compare.js';
import { chooseLoadTool, loadgen, type LoadTool } from '../../bench/e2e/load.js';
import { exchange, which } from '../../bench/e2e/processes.js';
import { goals } from '../../bench/e2e/report.js';
import { findScenario, TLS } from '../../bench/e2e/scenarios.js';
import { startBackends, startTargets, stopAll, type Backends, type Running } from '../../bench/e2e/targets.js';

const KEYS = 2000;

async function runTls(tool: LoadTool): Promise<{ c: CompareResult; lines: string[] }> {
  const lines: string[] = [];
  const c = await compare({
    scenarios: [findScenario(TLS)], rounds: () => 1, seconds: 1, warmupSeconds: 0, targets: ALL_TARGETS,
    log: (l) => lines.push(l), loadTool: tool, keys: KEYS,
  });
  return { c, lines };
}

/** What every run of the scenario must show, whichever tool made the load. */
function assertTlsRun(c: CompareResult, lines: string[]): void {
  assert.is(c.scenarios.length, 1);
  const s = c.scenarios[0]!;
  assert.is(s.scenario.name, TLS);
  assert.match(s.loadArgs, '--tls --cacert=CA.pem');
  assert.match(s.loadArgs, `--key-maximum=${KEYS}`);
  // twemproxy and memcached's proxy (if installed) and the other mcrelay variants sit this one out.
  assert.equal(s.targets.map((t) => t.id), ['memcached', 'mcrelay-w1'], lines.join('\n'));
  assert.equal(s.targets.map((t) => t.label), ['memcached direct, TLS', 'mcrelay --workers 1, TLS']);
  for (const t of s.targets) {
    assert.is(t.errors, 0, `${t.label}: errors\n${lines.join('\n')}`);
    assert.ok(t.opsPerSec > 500, `${t.label}: ${t.opsPerSec} ops/s`);
    // Every key was filled on the master's plain listener: the gets over TLS find them.
    assert.ok(t.hitRatio > 0.999, `${t.label}: hits ${t.hitRatio}`);
    assert.ok(t.p99 > 0 && t.p99 >= t.p50, `${t.label}: p50 ${t.p50}, p99 ${t.p99}`);
  }
  const [direct, relay] = s.targets;
  assert.ok(Number.isNaN(direct!.proxyCpuUsPerOp), 'memcached direct has no proxy');
  assert.ok(relay!.proxyCpuUsPerOp > 0, `mcrelay's CPU per op: ${relay!.proxyCpuUsPerOp}`);
  assert.ok(Math.abs(relay!.opsVsMemcached - relay!.opsPerSec / direct!.opsPerSec) < 1e-9);
  const goal = goals(c, null).find((g) => g.goal === 'tls: mcrelay over TLS >= 0.8x memcached over TLS (18)');
  assert.ok(goal !== undefined && goal.met === relay!.opsVsMemcached >= 0.8, JSON.stringify(goal));
  assert.is(goal!.measured, `${relay!.opsVsMemcached.toFixed(2)}x`);
}

test('tls scenario with bench/loadgen: memcached -Z and mcrelay --tls-cert, the gets hit, CPU per op and the goal measured', async () => {
  const { c, lines } = await runTls(loadgen);
  assert.is(c.loadTool, loadgen.name);
  assert.is(c.loadgenCheck, null);
  assertTlsRun(c, lines);
});

if (which('memtier_benchmark') !== null) {
  test('tls scenario with memtier_benchmark (on PATH): the same, and loadgen over TLS compared with it on memcached -Z', async () => {
    const tool = chooseLoadTool();
    assert.is(tool.name, 'memtier_benchmark');
    const { c, lines } = await runTls(tool);
    assertTlsRun(c, lines);
    assert.is(c.loadgenCheck?.length, 1);
    const k = c.loadgenCheck![0]!;
    assert.is(k.scenario, TLS);
    assert.ok(k.memtierOpsPerSec > 500 && k.loadgenOpsPerSec > 500, JSON.stringify(k));
  });
}

test('tls targets: TLS only on memcached direct and mcrelay, the master plain on its other listener; no other target started', async () => {
  const logDir = mkdtempSync(path.join(tmpdir(), 'mcrelay-bench-tls-test-'));
  let b: Backends | null = null;
  let targets: Running[] = [];
  try {
    const certs = makeBenchCerts(path.join(logDir, 'certs'));
    b = await startBackends(logDir, certs);
    targets = await startTargets(['memcached', 'mcrelay-w1', 'mcrelay-w2', 'twemproxy'], b, logDir, certs);
    assert.equal(targets.map((t) => t.spec.id), ['memcached', 'mcrelay-w1']);
    assert.is(targets[0]!.port, b.master.tlsPort);
    assert.match(await exchange(b.master.port, 'version\r\n', 2000), /^VERSION /, 'the master\'s plain listener');
    for (const t of targets) {
      assert.match(await exchange(t.port, 'version\r\n', 2000, undefined, certs.ca), /^VERSION /, `${t.spec.label} over TLS`);
      // Plaintext to a TLS port: refused (a reset or a close), never answered.
      const plain = await exchange(t.port, 'version\r\n', 2000).catch((err: Error) => `refused: ${err.message}`);
      assert.not.match(plain, 'VERSION', `${t.spec.label} answered plaintext: ${plain}`);
    }
    // The CA in the load's hands is the one that signed the server: another one is refused.
    const other = makeBenchCerts(path.join(logDir, 'other'));
    const wrong = await exchange(targets[1]!.port, 'version\r\n', 2000, undefined, other.ca).catch((err: Error) => `refused: ${err.message}`);
    assert.match(wrong, /^refused: .*certificate/);
  } finally {
    await stopAll(targets, b);
    rmSync(logDir, { recursive: true, force: true });
  }
});

test.run();
