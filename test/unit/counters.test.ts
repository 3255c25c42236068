// The shared counters' and server stats' layouts: one row (block) per thread,
// each on a 128-byte boundary of its own, summed and reset as `stats`, `stats
// servers` and `stats reset` read them.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { C, COUNTER_COUNT, Counters } from '../../src/shared/counters.js';
import { S, ServerStats } from '../../src/shared/server-stats.js';

test('every row starts on a 128-byte boundary, and no two rows share a 128-byte block', () => {
  const c = new Counters(5, true);
  const blocks = new Set<number>();
  for (let r = 0; r < c.rows; r++) {
    const row = c.row(r);
    assert.is(row.length, COUNTER_COUNT);
    assert.is(row.byteOffset % 128, 0, `row ${r} at byte ${row.byteOffset}`);
    const first = row.byteOffset >> 7;
    const last = (row.byteOffset + row.byteLength - 1) >> 7;
    for (let b = first; b <= last; b++) {
      assert.not.ok(blocks.has(b), `row ${r} shares block ${b}`);
      blocks.add(b);
    }
  }
});

test('sums over the rows; a reset counts from zero but leaves the connection gauges; a second view of the buffer agrees', () => {
  const c = new Counters(3, true);
  for (let r = 0; r < 3; r++) {
    c.row(r)[C.CMD_GET]! += 10 * (r + 1);
    c.row(r)[C.HANDED_CONNECTIONS]! += r + 1;
    c.row(r)[C.PROTOCOL_ERRORS]! += 1;
  }
  assert.is(c.sum(C.CMD_GET), 60);
  assert.is(c.sinceReset(C.PROTOCOL_ERRORS), 3);
  c.reset();
  c.row(1)[C.CMD_GET]! += 5;
  assert.is(c.sinceReset(C.CMD_GET), 5);
  assert.is(c.sum(C.CMD_GET), 65, 'the rows themselves never go down (Prometheus counters)');
  assert.is(c.sinceReset(C.HANDED_CONNECTIONS), 6);
  const view = new Counters(c.buffer, true);
  assert.is(view.rows, 3);
  assert.is(view.sinceReset(C.CMD_GET), 5);
});

test('server stats: every (thread, server) block on a 128-byte boundary of its own; sums over the threads', () => {
  const st = new ServerStats(3, 2);
  const blocks = new Set<number>();
  for (let w = 0; w <= 3; w++) {
    for (let sv = 0; sv < 2; sv++) {
      const b = st.block(w, sv);
      assert.is(b.byteOffset % 128, 0, `block (${w}, ${sv}) at byte ${b.byteOffset}`);
      for (let x = b.byteOffset >> 7; x <= (b.byteOffset + b.byteLength - 1) >> 7; x++) {
        assert.not.ok(blocks.has(x), `block (${w}, ${sv}) shares 128-byte block ${x}`);
        blocks.add(x);
      }
      b[S.REQUESTS]! += w + 1;
    }
  }
  assert.is(st.sum(1, S.REQUESTS), 1 + 2 + 3 + 4);
  assert.is(new ServerStats(3, 2, st.buffer).sum(0, S.REQUESTS), 10, 'a second view of the buffer agrees');
});

test.run();
