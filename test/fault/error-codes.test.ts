// The stable error codes as an operator reads them: the `code` field of
// mcrelay's log lines, from a running proxy. (Which error each backend failure
// makes, and how it is counted, is test/unit/errors.test.ts; garbage from a
// backend in the log, test/fault/backend-faults.test.ts.) A worker's exit status
// is logged as exitCode, so that code is only ever an error's.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { freePort, HARNESS, startMemcached, startProxy, type Proc } from '../helpers/procs.js';

const procs: Proc[] = [];
test.after.each(async () => {
  for (const p of procs.splice(0)) await p.stop();
});

type Line = Record<string, unknown>;

/** The proxy's JSON log lines with this msg. */
function logged(proxy: Proc, msg: string): Line[] {
  return proxy.output.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Line).filter((l) => l['msg'] === msg);
}

test('a master nothing listens on, no traffic: the prober marks it down with MCRELAY_CONNECT_FAILED', async () => {
  const port = await freePort();
  const proxy = await startProxy(['-s', `127.0.0.1:${port}`, '--workers', '1', '--retry-interval', '100']);
  procs.push(proxy);
  assert.ok(await proxy.waitForOutput('server marked down', 3000), proxy.output);
  const [line] = logged(proxy, 'server marked down');
  assert.is(line!['server'], `127.0.0.1:${port}`);
  assert.is(line!['code'], 'MCRELAY_CONNECT_FAILED');
  assert.is(line!['reason'], `probe failed: connect ECONNREFUSED 127.0.0.1:${port}`);
});

test('a reload of a file that cannot be used is refused with MCRELAY_USAGE', async () => {
  const mc = await startMemcached();
  procs.push(mc);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcrelay-codes-'));
  const file = path.join(dir, 'mcrelay.yml');
  try {
    fs.writeFileSync(file, `masters: [${mc.addr}]\nworkers: 1\n`);
    const proxy = await startProxy(['--config', file]);
    procs.push(proxy);
    assert.ok(await proxy.waitForOutput('mcrelay started'), proxy.output);
    fs.writeFileSync(file, 'masters: []\nworkers: 1\n');
    proxy.signal('SIGHUP');
    assert.ok(await proxy.waitForOutput('reload refused', 3000), proxy.output);
    const [line] = logged(proxy, 'reload refused; the running configuration is unchanged');
    assert.is(line!['code'], 'MCRELAY_USAGE');
    assert.match(String(line!['error']), /masters: expected at least one master server/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("a worker that ends is logged with its exit status as exitCode: code is left to errors", async () => {
  const mc = await startMemcached();
  procs.push(mc);
  const proxy = await startProxy(['-s', mc.addr, '--workers', '2'], { entry: HARNESS });
  procs.push(proxy);
  assert.ok(await proxy.waitForOutput('ready\n'), proxy.output);
  // The harness ends worker 0 as a crash would (Worker.terminate(): status 1).
  proxy.signal('SIGUSR2');
  assert.ok(await proxy.waitForOutput('replaced\n'), proxy.output);
  const lines = logged(proxy, 'worker exited; starting a replacement');
  assert.is(lines.length, 1, proxy.output);
  assert.is(lines[0]!['worker'], 0);
  assert.is(lines[0]!['exitCode'], 1);
  assert.not.ok('code' in lines[0]!, JSON.stringify(lines[0]));
});

test.run();
