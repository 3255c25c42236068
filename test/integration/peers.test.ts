// Outage news between entry proxies (src/main/peers.ts), with a real memcached
// as the backup that carries the counters and another as the master.
//
// Proxy A sees the master go down and come back; proxy B sent it nothing and
// learns of each outage only from A's counter in the backup. However short the
// outage (here: the probe may answer before A's periodic announce has run),
// B must hear of it before A starts the master's recovery. And when both saw
// the same outage, B's announcement must not look like news of a new one to A
// once A's recovery of the master has begun.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startMemcached, sleep, type Proc } from '../helpers/procs.js';
import { withDirect } from '../helpers/cluster.js';
import { inspect } from '../helpers/mc.js';
import { parseServerAddress, type ServerAddress } from '../../src/config/config.js';
import { DOWN, HealthTable, RECOVERING, UP } from '../../src/shared/health.js';
import { Peers } from '../../src/main/peers.js';
import { OutageJournal } from '../../src/main/outage-journal.js';
import { Prober } from '../../src/main/prober.js';

const started: Proc[] = [];

function address(p: Proc): ServerAddress {
  const a = parseServerAddress(p.addr);
  if (typeof a === 'string') throw new Error(a);
  return a;
}

/** A master and a backup (real memcached); proxies A and B as their main threads see them. */
async function setup() {
  const master = await startMemcached();
  started.push(master);
  const backup = await startMemcached();
  started.push(backup);
  const [m, b] = [address(master), address(backup)];
  const healthA = new HealthTable(2);
  const healthB = new HealthTable(2);
  return { master, backup, m, b, healthA, healthB, a: new Peers([m], [b], healthA, 500), peerB: new Peers([m], [b], healthB, 500) };
}

test('every outage, however short, is announced before the returning master is recovered', async () => {
  let prober: Prober | undefined;
  try {
    const { m, b, healthA, healthB, a, peerB } = await setup();
    await peerB.tick(); // B's first read: what counts as news from now on

    const OUTAGES = 20;
    let recovered = 0;
    const unheard: number[] = [];
    let wake: (() => void) | null = null;
    // Interval 20 ms: the probe answers about as often before A's periodic
    // announce (same period) as after it.
    prober = new Prober([m, b], healthA, 20, 500, 3, async (server) => {
      if (server !== 0 || !healthA.advance(0, DOWN, RECOVERING)) return;
      // What recovery relies on: by now B has the news.
      await peerB.tick();
      if (healthB.state(0) !== DOWN) unheard.push(recovered + 1);
      healthB.setState(0, UP);
      healthA.advance(0, RECOVERING, UP);
      recovered++;
      wake?.();
    }, a);
    prober.start();
    for (let k = 0; k < OUTAGES; k++) {
      await sleep(60 + Math.floor(Math.random() * 25)); // let A see the master up; vary the phase
      const back = new Promise<void>((resolve) => { wake = resolve; });
      healthA.markDown(0);
      await Promise.race([back, sleep(3000)]);
    }
    assert.is(recovered, OUTAGES, 'every outage ended in a recovery');
    assert.equal(unheard, [], `outages proxy B never heard of (of ${OUTAGES})`);
  } finally {
    prober?.stop();
    await Promise.all(started.splice(0).map((p) => p.stop()));
  }
});

/** The master's outage counter as the backup holds it. */
async function counter(backup: Proc, master: Proc): Promise<number> {
  const item = await withDirect(backup.port, (c) => inspect(c, `mcrelay:down:${master.addr}`));
  return item === null ? 0 : Number(item.value);
}

async function until(what: string, f: () => Promise<boolean>): Promise<void> {
  const t0 = Date.now();
  while (!(await f())) {
    if (Date.now() - t0 > 3000) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

test('an outage both proxies saw does not send the master back down once its recovery has begun; a later one does', async () => {
  try {
    const { master, backup, healthA, healthB, a, peerB } = await setup();
    await a.tick();
    await peerB.tick();

    // Both see the master go down; A announces first, B a moment later.
    healthA.markDown(0);
    a.announceDown();
    await until('A\'s announcement', async () => (await counter(backup, master)) === 1);
    healthB.markDown(0);
    peerB.announceDown();
    await until('B\'s announcement', async () => (await counter(backup, master)) === 2);

    // The master answers A's probe: what the prober does before recovery starts.
    await a.beforeRecovery(0);
    assert.ok(healthA.advance(0, DOWN, RECOVERING), 'A starts the recovery');
    await a.tick();
    assert.is(healthA.state(0), RECOVERING, 'B\'s announcement of the same outage is not news');
    healthA.advance(0, RECOVERING, UP);
    a.announceDown(); // A sees it up: a later outage is a new one

    // B recovers too, then sees the master down again: that is news for A.
    healthB.setState(0, UP);
    peerB.announceDown();
    healthB.markDown(0);
    peerB.announceDown();
    await until('B\'s second announcement', async () => (await counter(backup, master)) === 3);
    await a.tick();
    assert.is(healthA.state(0), DOWN, 'a new outage seen by B marks the master down at A');
  } finally {
    await Promise.all(started.splice(0).map((p) => p.stop()));
  }
});

test('a counter wiped between two outages (flush_all, backup restart): the next outage is still news to the proxy that sent nothing', async () => {
  try {
    const { master, backup, healthA, healthB, a, peerB } = await setup();
    await a.tick();
    await peerB.tick();
    let b = backup;
    const outage = async (what: string): Promise<void> => {
      healthA.markDown(0);
      a.announceDown();
      await until(`A's announcement (${what})`, async () => (await counter(b, master)) > 0);
      await peerB.tick();
      assert.is(healthB.state(0), DOWN, `B hears of the outage after ${what}`);
      // Both recover.
      await a.beforeRecovery(0);
      healthA.setState(0, UP);
      a.announceDown();
      healthB.setState(0, UP);
      peerB.announceDown();
      await peerB.tick();
      assert.is(healthB.state(0), UP, `B takes nothing more as news (${what})`);
    };
    await outage('the first outage');
    const before = await counter(b, master);
    await withDirect(b.port, (c) => c.request('flush_all\r\n'));
    await peerB.tick(); // B reads the wiped counter: not news by itself
    assert.is(healthB.state(0), UP, 'a wiped counter alone is not an outage');
    await outage('a flush_all');
    assert.ok(await counter(b, master) > before, `the number went on from ${before}, not back to 1`);
    await b.stop();
    b = await startMemcached({ port: b.port });
    started.push(b);
    await peerB.tick();
    await outage('a backup restart');
  } finally {
    await Promise.all(started.splice(0).map((p) => p.stop()));
  }
});

test('keys journaled in a later outage before its announcement has a number go under that outage, where the other proxy reads them', async () => {
  try {
    const { m, b, healthA, healthB } = await setup();
    // Each proxy's main thread: its peers (the counters) and its journal.
    const journalA = new OutageJournal([m], [b], 500);
    const journalB = new OutageJournal([m], [b], 500);
    const a = new Peers([m], [b], healthA, 500, journalA);
    const peerB = new Peers([m], [b], healthB, 500, journalB);
    journalA.attach(a);
    journalB.attach(peerB);
    await a.tick();
    await peerB.tick();
    await journalB.readLostBaseline();

    /** One outage written through A only; B hears of it from the counter, then both recover. */
    const outage = async (keys: string[]): Promise<string[]> => {
      healthA.markDown(0);
      // A write fails and is journaled as the master goes down: the publisher
      // (every 50 ms) may run before the announcer (every 50 ms) has the number.
      journalA.add(m.name, keys, false);
      await journalA.publish();
      a.announceDown();
      await a.beforeRecovery(0);
      await journalA.publish();
      assert.ok(journalA.idle, 'A published every key');
      await peerB.tick();
      assert.is(healthB.state(0), DOWN, 'B heard of the outage');
      const gotA = await journalA.gather(0);
      const gotB = await journalB.gather(0);
      assert.is(gotB.flush, null, 'B does not need to flush');
      for (const [j, g, p, h] of [[journalA, gotA, a, healthA], [journalB, gotB, peerB, healthB]] as const) {
        j.recovered(0, g);
        p.recovered(0);
        h.setState(0, UP);
        p.announceDown();
      }
      return gotB.keys;
    };
    assert.equal(await outage(['first:1', 'first:2']), ['first:1', 'first:2'], 'B deletes what A journaled in the first outage');
    // The second outage: A knows a number from the first one, which B has read past.
    assert.equal(await outage(['second:1', 'second:2']), ['second:1', 'second:2'], 'B deletes what A journaled in the second outage');
  } finally {
    await Promise.all(started.splice(0).map((p) => p.stop()));
  }
});

test.run();
