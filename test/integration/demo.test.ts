// npm run demo, shortened: it runs the deployment, shows the kill and the warm
// recovery, then adds a fifth master (both entries reloaded, one switch) with
// the hits kept, exits 0, and leaves none of the processes it started behind,
// nor its config files; Ctrl-C stops it early, also cleanly; without memcached
// it says how to install it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
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

test('demo: kill and restart a master, then add a fifth; failover, warm recovery and the switch shown, exit 0, nothing left', async () => {
  const r = await runDemo(['--seconds', '18', '--kill-at', '3', '--restart-at', '6', '--add-master-at', '10']);
  assert.is(r.code, 0, `exit status; stderr:\n${r.err}\nstdout:\n${r.out}`);
  assert.match(r.out, /killed master 2 \(127\.0\.0\.1:\d+, pid \d+\) with kill -9/);
  assert.match(r.out, /marked master 2 DOWN/);
  assert.match(r.out, /restarted master 2 on 127\.0\.0\.1:\d+ \(pid \d+\), empty/);
  assert.match(r.out, /master 2 back: warming/);
  // The add: master 5 started, both entries reloaded, one switch time, master 5 serving.
  assert.match(r.out, /added master 5 on 127\.0\.0\.1:\d+ \(pid \d+\), empty/);
  assert.match(r.out, /reloaded entry 1 \(kill -HUP \d+\)/);
  assert.match(r.out, /reloaded entry 2 \(kill -HUP \d+\)/);
  const scheduled = [...r.out.matchAll(/entry (\d): placement change scheduled, it switches at ([\d.]+) s/g)];
  assert.equal(scheduled.map((m) => m[1]).sort(), ['1', '2'], r.out);
  assert.is(scheduled[0]![2], scheduled[1]![2], `one switch time: ${r.out}`);
  assert.match(r.out, /entry 1 switched to 5 masters/);
  assert.match(r.out, /entry 2 switched to 5 masters/);
  assert.match(r.out, /master 5 (serves its keys \(.*\): warming|warm: up)/);
  // One row a second, with the dead master shown as such, and a fifth master column from the switch on.
  const rows = r.out.split('\n').filter((l) => /^\s+\d+s\s/.test(l));
  assert.is(rows.length, 18, r.out);
  assert.ok(rows.some((l) => /\|.*DOWN/.test(l)), r.out);
  assert.ok(rows.some((l) => /\|.*warm/.test(l)), r.out);
  assert.match(r.out, /^ time .* master 4 +master 5 +\| backup relay$/m);
  assert.is(rows[0]!.split('|')[1]!.trim().split(/\s+/).length, 8, rows[0]);
  assert.is(rows.at(-1)!.split('|')[1]!.trim().split(/\s+/).length, 10, rows.at(-1));
  // The backup kept the dead master's keys, and the moved keys: the clients saw (almost) no miss.
  const summary = /(\d+) gets, ([\d.]+)% hits/.exec(r.out);
  assert.ok(summary !== null, r.out);
  assert.ok(Number(summary[1]) > 1500, summary[0]);
  assert.ok(Number(summary[2]) >= 99, summary[0]);
  const change = /during the change \(master 5 added at 10 s, .*\): (\d+) gets, ([\d.]+)% hits/.exec(r.out);
  assert.ok(change !== null, r.out);
  assert.ok(Number(change[1]) > 700, change[0]);
  assert.ok(Number(change[2]) >= 99, change[0]);
  assert.match(r.out, /keys \([\d.]+%\) moved to master 5: \d+ were restored onto it/);
  const pids = printedPids(r.out);
  // 6 memcached, 3 mcrelay, the restarted master, master 5.
  assert.ok(pids.length >= 11, `pids: ${pids.join(' ')}`);
  assert.equal(pids.filter(alive), [], 'processes left running');
  const dir = /--config (\S+)\/entry-<n>\.yml/.exec(r.out)?.[1];
  assert.ok(dir !== undefined, r.out);
  assert.not.ok(fs.existsSync(dir), `${dir} left behind`);
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
