// libmemcached's protocol checker, memccapable (libmemcached-tools), through
// mcrelay: its 27 text tests (-a) and its 27 binary tests (-b) must all pass,
// as they do against memcached. It exits non-zero when a test fails and prints
// one "[pass]"/"[FAIL]" line per test.
import { spawnSync } from 'node:child_process';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startMemcached, startProxy, type Proc } from '../helpers/procs.js';

const REQUIRED = process.env['MCRELAY_CLIENTS_REQUIRED'] === '1';
const installed = spawnSync('memccapable', ['--help'], { stdio: 'ignore' }).error === undefined;

let M: Proc | undefined;
let proxy: Proc | undefined;

test.before(async () => {
  if (!installed) return;
  M = await startMemcached();
  proxy = await startProxy(['-s', M.addr, '--workers', '1']);
});

test.after(async () => {
  await Promise.all([proxy?.stop(), M?.stop()]);
});

for (const [flag, name] of [['-a', 'text'], ['-b', 'binary']] as const) {
  test(`memccapable ${flag}: every ${name} test passes through mcrelay`, () => {
    if (!installed) {
      console.log('    memccapable is not installed (libmemcached-tools): left out');
      if (REQUIRED) assert.unreachable('memccapable is not installed (libmemcached-tools)');
      return;
    }
    const r = spawnSync('memccapable', ['-h', '127.0.0.1', '-p', String(proxy!.port), flag], { encoding: 'utf8', timeout: 60_000 });
    const out = `${r.stdout}${r.stderr}`;
    const passed = out.match(/\[pass\]/g)?.length ?? 0;
    const failed = out.match(/\[FAIL\]/gi)?.length ?? 0;
    assert.is(failed, 0, `${failed} tests failed:\n${out}`);
    assert.ok(passed >= 27, `only ${passed} tests passed:\n${out}`);
    assert.is(r.status, 0, out);
  });
}

test.run();
