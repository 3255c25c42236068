// issue 23, part 3: a delete through one entry racing a warm-up fill through the
// other, with the two entries in different phases of the master's recovery.
//
//   e1 (--warmup-seconds 60): warming   --> master M, backup B
//   e2 (--warmup-seconds 0):  up        --> master M, backup B through a relay
//                                           that holds e2's requests back 10 ms
//
// e1 reads keys M lacks (looked up on B, added to M, then B checked again) while
// e2 deletes them. Sent to both at once, e2's delete would reach M before e1's
// fill and B after e1's check: the deleted value would stay on M. After every
// delete is acknowledged, no read through either entry may return a value.
import net from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startMemcached, startProxy, type Proc } from '../helpers/procs.js';
import { WireClient } from '../helpers/wire.js';
import { readReplies } from '../helpers/mc.js';
import { metaGetMany, waitState, withDirect } from '../helpers/cluster.js';
import { Ledger, readAndJudge, writeAndRecord } from '../helpers/ledger.js';

const RUNS = 20;
const KEYS_PER_RUN = 200;
const BATCH = 20;
const DELAY_MS = 10;

/** Forwards requests to a server DELAY_MS late (in order), replies at once. */
class DelayRelay {
  readonly server: net.Server;
  port = 0;
  private readonly sockets = new Set<net.Socket>();

  constructor(private readonly target: number) {
    this.server = net.createServer((client) => {
      const upstream = net.connect(this.target, '127.0.0.1');
      for (const s of [client, upstream]) { this.sockets.add(s); s.on('error', () => { client.destroy(); upstream.destroy(); }); }
      client.on('data', (d: Buffer) => { setTimeout(() => { if (!upstream.destroyed) upstream.write(d); }, DELAY_MS); });
      upstream.on('data', (d: Buffer) => { if (!client.destroyed) client.write(d); });
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
  }

  async listen(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this;
  }

  close(): void {
    for (const s of this.sockets) s.destroy();
    this.server.close();
  }
}

test(`warm-up fill through a warming entry racing deletes through an entry that is up: ${RUNS} runs, 0 stale reads`, async () => {
  const procs: Proc[] = [];
  const clients: WireClient[] = [];
  let relay: DelayRelay | undefined;
  try {
    let master = await startMemcached();
    const backup = await startMemcached();
    procs.push(master, backup);
    relay = await new DelayRelay(backup.port).listen();
    const common = ['-s', master.addr, '--workers', '2', '--timeout', '300', '--retry-interval', '100'];
    const e1 = await startProxy([...common, '-b', backup.addr, '--warmup-seconds', '60']);
    const e2 = await startProxy([...common, '-b', `127.0.0.1:${relay.port}`, '--warmup-seconds', '0']);
    procs.push(e1, e2);
    const c1 = await WireClient.connect(e1.port);
    const c2 = await WireClient.connect(e2.port);
    clients.push(c1, c2);
    const ledger = new Ledger();
    let raced = 0;
    let stale = 0;
    const problems: string[] = [];
    for (let run = 0; run < RUNS; run++) {
      const keys = Array.from({ length: KEYS_PER_RUN }, (_x, i) => `wr${run}:${i}`);
      assert.equal(await writeAndRecord(c2, keys.map((k) => ({ key: k, value: `${k}-v` })), ledger, 100), [], 'sets STORED');
      // Both entries talk to the master, so both see it die.
      for (const c of [c1, c2]) { c.write('get wr:probe\r\n'); await readReplies(c, 1); }
      await master.stop('SIGKILL');
      await waitState([e1, e2], master.addr, ['down'], 5000);
      master = await startMemcached({ port: master.port });
      procs.push(master);
      await waitState([e1], master.addr, ['warming'], 5000);
      await waitState([e2], master.addr, ['up'], 5000);
      for (let i = 0; i < keys.length; i += BATCH) {
        const batch = keys.slice(i, i + BATCH);
        const reads = readAndJudge(c1, batch, i % (2 * BATCH) === 0 ? 'get' : 'mg', ledger, 'e1 warm read');
        const dels = writeAndRecord(c2, batch.map((k) => ({ key: k, value: null })), ledger, BATCH);
        const [, bad] = await Promise.all([reads, dels]);
        assert.ok(bad.every((b) => b.endsWith('NOT_FOUND')), `deletes: ${bad.slice(0, 3).join(', ')}`);
        raced += batch.length;
      }
      // Every delete is acknowledged: a value read now, through either entry, is stale.
      for (const [c, via] of [[c1, 'e1'], [c2, 'e2']] as const) {
        for (let i = 0; i < keys.length; i += 100) await readAndJudge(c, keys.slice(i, i + 100), 'get', ledger, `${via} after`);
      }
      const held = await withDirect(master.port, (d) => metaGetMany(d, keys));
      const back = keys.filter((k) => held.get(k) !== null);
      if (ledger.stale.length > 0 || back.length > 0) {
        problems.push(`run ${run}: ${ledger.stale.length} stale reads (e.g. ${ledger.stale.slice(0, 2).map((s) => `${s.via} ${s.key} got ${s.got}`).join('; ')}), ${back.length} deleted keys on the master (e.g. ${back.slice(0, 3).join(' ')})`);
        stale += ledger.stale.length;
        ledger.stale.splice(0);
      }
    }
    console.log(`    ${RUNS} runs, ${raced} keys raced, ${stale} stale reads`);
    assert.equal(problems, []);
  } finally {
    for (const c of clients) c.close();
    relay?.close();
    await Promise.all(procs.map((p) => p.stop()));
  }
});

test.run();
