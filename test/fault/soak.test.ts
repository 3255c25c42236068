// Load with faults, the CI form (about 45 s; the full 60 s run is `npm run soak`):
// a mixed load from 16 connections against two masters and two backups while a
// master is killed and restarted and a backup is stopped and resumed. See
// test/helpers/soak.ts for the timeline and the verdict.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { formatSoak, runSoak } from '../helpers/soak.js';

test('soak: mixed load through kill -9/restart of a master and SIGSTOP/SIGCONT of a backup: no wrong value, nothing unanswered, errors only while a fault is being detected', async () => {
  const r = await runSoak({ seconds: 40, connections: 16, log: (l) => console.log(l) });
  const report = formatSoak(r);
  console.log(report.split('\n').map((l) => `    ${l}`).join('\n'));
  const broken: string[] = [];
  if (!r.proxyAlive) broken.push('mcrelay died');
  if (r.wrong.length > 0) broken.push(`${r.wrong.length} wrong values`);
  if (r.unanswered.length > 0) broken.push(`${r.unanswered.length} requests unanswered`);
  if (r.errorsOutside.length > 0) broken.push(`${r.errorsOutside.length} errors outside the detection windows`);
  if (r.requests < 10_000) broken.push(`only ${r.requests} requests ran`);
  if (broken.length > 0) assert.unreachable(`${broken.join('; ')}\n${report}`);
});

test.run();
