// The operator's signals while mcrelay is still starting (main/signals.ts): a
// SIGHUP or SIGTERM sent before start() has returned, as an operator's reload on
// the "mcrelay started" line is, waits for the start and is then carried out;
// it must not meet Node's default action, which ends the process.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { ROOT } from '../helpers/procs.js';

const CHILD = path.join(ROOT, 'dist/test/helpers/signals-child.js');

interface Run { lines: string[]; code: number | null; signal: NodeJS.Signals | null }

/** Runs the child, sends `signals` once it prints "starting" (before its start ends), and collects what it prints until it exits (10 s at most). */
function run(args: string[], signals: NodeJS.Signals[], after: NodeJS.Signals[] = []): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error('the child did not exit within 10 s')); }, 10_000);
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      const before = out;
      out += d.toString();
      if (!before.includes('starting\n') && out.includes('starting\n')) for (const s of signals) child.kill(s);
      if (!before.includes('reloaded\n') && out.includes('reloaded\n')) for (const s of after) child.kill(s);
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ lines: out.split('\n').filter((l) => l !== ''), code, signal });
    });
  });
}

test('a SIGHUP during the start reloads once the start is over; the process lives on', async () => {
  const r = await run(['500'], ['SIGHUP'], ['SIGTERM']);
  assert.is(r.signal, null, `ended by ${r.signal}: ${r.lines.join(' | ')}`);
  assert.equal(r.lines, ['starting', 'started', 'read config', 'reloaded', 'stopping SIGTERM', 'stopped']);
  assert.is(r.code, 0);
});

test('a SIGTERM during the start stops mcrelay once it has started', async () => {
  const r = await run(['500'], ['SIGTERM']);
  assert.is(r.signal, null, `ended by ${r.signal}: ${r.lines.join(' | ')}`);
  assert.equal(r.lines, ['starting', 'started', 'stopping SIGTERM', 'stopped']);
  assert.is(r.code, 0);
});

test('a start that fails: a SIGHUP sent during it neither reloads nor ends the process; the failure does, with its own status', async () => {
  const r = await run(['500', 'fail'], ['SIGHUP', 'SIGINT']);
  assert.is(r.signal, null, `ended by ${r.signal}: ${r.lines.join(' | ')}`);
  assert.equal(r.lines, ['starting', 'start failed']);
  assert.is(r.code, 3);
});

test.run();
