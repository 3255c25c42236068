// The bench's placement line (bench/e2e/placement.ts) run small: 2,000 keys on
// 4 masters, magent -> jump by SIGHUP, the headline load before and during
// (memtier_benchmark if on PATH, else bench/loadgen, as CI has). What it reports
// must add up: every master's restore over and done, the keys it restored or
// skipped (the load wrote them first) the keys that moved, ~3/4 of them.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { movedKeys, placementBench } from '../../bench/e2e/placement.js';

const KEYS = 2000;

test('placement line: magent -> jump on 4 masters; the moved keys are restored, every restore done, the load measured', async () => {
  const lines: string[] = [];
  const r = await placementBench((l) => lines.push(l), { keys: KEYS, beforeSeconds: 1, stretchSeconds: 1, timeoutSeconds: 20 });
  assert.is(r.masters, 4);
  assert.is(r.keys, KEYS);
  const masters = Object.keys(r.restoreStates);
  assert.is(masters.length, 4, 'a state for each master');
  assert.equal(Object.values(r.restoreStates), ['done', 'done', 'done', 'done'], 'every master restored');
  assert.is(r.keysMoved, movedKeys(KEYS, 'magent', 'jump', masters, []), 'moved keys as routed by both placements');
  // Two unrelated hashes over 4 masters: a key stays with probability 1/4.
  assert.ok(r.keysMoved > 0.68 * KEYS && r.keysMoved < 0.82 * KEYS, `keys moved: ${r.keysMoved} of ${KEYS}`);
  // Not exactly: the backup's dump is read while the load writes and reads, and
  // lru_crawler metadump is no snapshot (a run here found 1515 of 1517).
  const accounted = r.keysCopied + r.keysSkipped;
  assert.ok(Math.abs(accounted - r.keysMoved) <= 0.05 * r.keysMoved, `restored ${r.keysCopied} + skipped ${r.keysSkipped} = ${accounted}, moved ${r.keysMoved}`);
  assert.is(r.restoresNotDone, 0);
  assert.ok(r.keysCopied > 0, 'keys restored');
  assert.ok(r.seconds > 0 && r.seconds < 20 && r.longestRestoreSeconds <= r.seconds, `${r.seconds} s, longest restore ${r.longestRestoreSeconds} s`);
  assert.ok(Math.abs(r.keysPerSecond - r.keysCopied / r.seconds) < 1e-6);
  assert.ok(r.opsBefore > 0 && r.opsDuring > 0, `ops/s before ${r.opsBefore}, during ${r.opsDuring}`);
  assert.ok(Math.abs(r.share - r.opsDuring / r.opsBefore) < 1e-9);
  // Every key was filled and the change loses none: the gets hit, before and during.
  assert.ok(r.hitRatioBefore > 0.999, `hits before ${r.hitRatioBefore}`);
  assert.ok(r.hitRatioDuring > 0.99, `hits during ${r.hitRatioDuring}`);
  assert.ok(lines.length >= 2, lines.join('\n'));
  assert.match(lines[1]!, `${r.keysMoved} keys moved, ${r.keysCopied} restored`);
});

test.run();
