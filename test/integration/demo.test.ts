// npm run demo, shortened: it runs the deployment, shows the kill and the warm
// recovery, exits 0, and leaves none of the processes it started behind; Ctrl-C
// stops it early, also cleanly; without memcached it says how to install it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const DEMO = path.join(ROOT, 'dist/demo/run.js');

interface Run { code: number | null; signal: NodeJS.Signals | null; out: string; err: string }

/** Runs the demo; `onOutput` may act on what it printed so far (e.g. send Ctrl-C). */
function runDemo(args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; onOutput?: (out: string, pid: number) => void } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [DEMO, '--no-color', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: opts.env ?? process.env,
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); opts.onOutput?.(out, child.pid!); });
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 90_000);
    child.on('exit', (code, signal) => { clearTimeout(timer); resolve({ code, signal, out, err }); });
  });
}

/** Every PID the demo printed: the table at the start, the restarted master, the final list. */
function printedPids(out: string): number[] {
  const pids = new Set<number>();
  for (const m of out.matchAll(/pid (\d+)/g)) pids.add(Number(m[1]));
  const list = /\(pids ([\d ]+)\)/.exec(out);
  for (const p of list?.[1]?.trim().split(/\s+/) ?? []) pids.add(Number(p));
  return [...pids];
}

function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}

test('demo: kill and restart a master, failover and warm recovery shown, exit 0, nothing left running', async () => {
  const r = await runDemo(['--seconds', '12', '--kill-at', '3', '--restart-at', '6']);
  assert.is(r.code, 0, `exit status; stderr:\n${r.err}\nstdout:\n${r.out}`);
  assert.match(r.out, /killed master 2 \(127\.0\.0\.1:\d+, pid \d+\) with kill -9/);
  assert.match(r.out, /marked master 2 DOWN/);
  assert.match(r.out, /restarted master 2 on 127\.0\.0\.1:\d+ \(pid \d+\), empty/);
  assert.match(r.out, /master 2 back: warming/);
  // One row a second, with the dead master shown as such.
  const rows = r.out.split('\n').filter((l) => /^\s+\d+s\s/.test(l));
  assert.is(rows.length, 12, r.out);
  assert.ok(rows.some((l) => /\|.*DOWN/.test(l)), r.out);
  assert.ok(rows.some((l) => /\|.*warm/.test(l)), r.out);
  // The backup kept the dead master's keys: the clients saw (almost) no miss.
  const summary = /(\d+) gets, ([\d.]+)% hits/.exec(r.out);
  assert.ok(summary !== null, r.out);
  assert.ok(Number(summary[1]) > 1000, summary[0]);
  assert.ok(Number(summary[2]) >= 99, summary[0]);
  const pids = printedPids(r.out);
  // 6 memcached, 3 mcrelay, the restarted master.
  assert.ok(pids.length >= 10, `pids: ${pids.join(' ')}`);
  assert.equal(pids.filter(alive), [], 'processes left running');
});

test('demo: Ctrl-C stops it and everything it started', async () => {
  let sent = false;
  const r = await runDemo(['--seconds', '30'], {
    onOutput: (out, pid) => {
      if (!sent && /^\s+2s\s/m.test(out)) { sent = true; process.kill(pid, 'SIGINT'); }
    },
  });
  assert.ok(sent, r.out);
  assert.is(r.code, 130, `exit status; stderr:\n${r.err}`);
  assert.match(r.out, /Stopping \(Ctrl-C\)/);
  const pids = printedPids(r.out);
  assert.ok(pids.length >= 9, `pids: ${pids.join(' ')}`);
  assert.equal(pids.filter(alive), [], 'processes left running');
});

test('demo: without memcached it says how to install it and exits 1', async () => {
  const r = await runDemo([], { env: { ...process.env, PATH: '/nonexistent' } });
  assert.is(r.code, 1);
  assert.match(r.err, /apt-get install memcached/);
});

test.run();
