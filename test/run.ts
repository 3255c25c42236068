// Runs every uvu suite folder in its own process and prints, last, one line
// "N passed, N failed" summing them all (the line CI reads).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const uvu = path.resolve(here, '../../node_modules/uvu/bin.js');
const suites = (process.argv.length > 2 ? process.argv.slice(2) : ['unit', 'integration', 'clients', 'fault']);
const SUITE_TIMEOUT_MS = 15 * 60 * 1000;

function runSuite(dir: string): Promise<{ passed: number; failed: number }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [uvu, path.join(here, dir), '\\.test\\.js$'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); process.stdout.write(d); });
    const timer = setTimeout(() => {
      process.stdout.write(`\n[${dir}] did not finish within ${SUITE_TIMEOUT_MS / 60000} minutes; killed\n`);
      child.kill('SIGKILL');
    }, SUITE_TIMEOUT_MS);
    child.on('exit', (code) => {
      clearTimeout(timer);
      // eslint-disable-next-line no-control-regex
      const plain = out.replace(/\x1b\[[0-9;]*m/g, '');
      const total = Number(/Total:\s+(\d+)/.exec(plain)?.[1] ?? NaN);
      const passed = Number(/Passed:\s+(\d+)/.exec(plain)?.[1] ?? NaN);
      if (Number.isNaN(total) || Number.isNaN(passed)) {
        // A crash before uvu's summary: count the suite as one failure.
        resolve({ passed: 0, failed: 1 });
        return;
      }
      // uvu leaves skipped tests out of Total.
      const failed = total - passed;
      resolve({ passed, failed: failed > 0 || code === 0 ? failed : 1 });
    });
  });
}

let passed = 0;
let failed = 0;
for (const s of suites) {
  process.stdout.write(`\n== ${s}\n`);
  if (!existsSync(path.join(here, s))) {
    process.stdout.write(`no suite folder ${s}/\n`);
    continue;
  }
  const r = await runSuite(s);
  passed += r.passed;
  failed += r.failed;
}
process.stdout.write(`\n${passed} passed, ${failed} failed\n`);
process.exitCode = failed === 0 ? 0 : 1;
