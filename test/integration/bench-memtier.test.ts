// The bench's memtier_benchmark path (bench/e2e/load.ts): what it reads from
// memtier's --json-out-file document, and, when memtier is on PATH, a real run
// whose CPU is the load's, not the machine's "other". CI has no memtier: there
// the stored document (memtier 2f74d61 against memcached 1.6) is the check.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chooseLoadTool, fromMemtierJson, type MemtierJson } from '../../bench/e2e/load.js';
import { childrenCpuMicros, ticksPerSecond, which } from '../../bench/e2e/processes.js';
import { ROOT, startMemcached, type Proc } from '../helpers/procs.js';

const stored = (): MemtierJson => JSON.parse(readFileSync(path.join(ROOT, 'test/fixtures/memtier-2f74d61.json'), 'utf8')) as MemtierJson;

test('a stored memtier document: "Interrupted": "false" (a string) is not an interruption; counts and percentiles read', () => {
  const doc = stored();
  assert.is(doc['ALL STATS'].Runtime?.Interrupted, 'false', 'the document as memtier writes it');
  const s = fromMemtierJson(doc, 12.5, 125_000);
  assert.is(s.interrupted, false);
  assert.is(s.ops, 32642);
  assert.is(s.opsPerSec, 32622.79);
  assert.is(s.p50, 0.143);
  assert.is(s.p99, 0.343);
  assert.is(s.p999, 3.663);
  assert.is(s.errors + s.connectionErrors, 0);
  assert.ok(Math.abs(s.hitRatio - 7337.68 / (7337.68 + 22318.85)) < 1e-9);
  assert.is(s.loadCpuPercent, 12.5);
  assert.is(s.externalCpuMicros, 125_000);
});

test('a memtier run that was interrupted reads as one, whether it wrote a string or a boolean', () => {
  for (const v of ['true', true] as const) {
    const doc = stored();
    doc['ALL STATS'].Runtime!.Interrupted = v;
    assert.is(fromMemtierJson(doc, 0, 0).interrupted, true, JSON.stringify(v));
  }
});

test('childrenCpuMicros reads cutime + cstime after a command name with spaces and a parenthesis', () => {
  // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime ...
  const stat = '4242 (sh (x) y) S 1 4242 4242 0 -1 4194304 100 200 0 0 7 3 250 50 20 0 1 0 99 0 0\n';
  assert.is(childrenCpuMicros(stat), ((250 + 50) * 1e6) / ticksPerSecond());
});

if (which('memtier_benchmark') !== null) {
  test('memtier on PATH: a real run is chosen as the load, finishes uninterrupted, and its own CPU is measured', async () => {
    let m: Proc | null = null;
    const logs = mkdtempSync(path.join(tmpdir(), 'mcrelay-memtier-test-'));
    try {
      m = await startMemcached();
      const tool = chooseLoadTool();
      assert.is(tool.name, 'memtier_benchmark');
      const s = await tool.run(['--protocol=memcache_text', '-s', '127.0.0.1', '-p', String(m.port), '-t', '1', '-c', '4',
        '--ratio=1:10', '--data-size=100', '--key-maximum=1000', '--test-time=1', '--hide-histogram'], logs);
      assert.is(s.interrupted, false);
      assert.is(s.errors + s.connectionErrors, 0);
      assert.ok(s.ops > 100, `ops ${s.ops}`);
      // A second of load at pipeline 1 keeps memtier busy for a good part of it.
      assert.ok(s.externalCpuMicros > 0 && s.loadCpuPercent > 1, `memtier CPU ${s.externalCpuMicros} µs, ${s.loadCpuPercent} %`);
    } finally {
      await m?.stop();
      rmSync(logs, { recursive: true, force: true });
    }
  });
}

test.run();
