// Warm recovery (issue 4) on the deployment of DESIGN.md: four masters, two
// backups, two entry proxies with identical flags (test/helpers/cluster.ts).
//
//   e1, e2: mcrelay --workers 2 --timeout 300 --retry-interval 200 -s m0..m3 -b b0 -b b1
//
//   restart      kill -9 a master; overwrite and delete some of its keys through e2;
//                restart it empty: every read returns the latest value or a miss
//                for a deleted key, 99.9% of live keys hit at once (warmed from the
//                backup), filled keys keep their TTL and flags, gets/cas and mg/ms C
//                work on the master while it warms.
//   fill race    a warm-up fill through one entry racing a delete through the other
//                must not bring the deleted value back.
//   stats        `stats servers`: state, journal length, warm fills, backup reads.
//   partition    the same as restart with SIGSTOP/SIGCONT (the master keeps its old
//                data), writes through both entries: a reader loop through both
//                entries during the whole scenario never sees a stale value.
//   one entry    the master's outage seen by one entry only (the other sent it
//                nothing): the other entry must not read stale values (partition)
//                nor miss (restart) when it returns.
//   write race   both entries keep overwriting and reading keys while the master
//                goes and comes back: a write may cost a miss, never a stale read.
//   backup       a backup stopped while its keys are written comes back; its master
//                dies: the backup serves no value it missed the update of.
//   overflow     --journal-max-keys 10: the returning master is flushed instead,
//                with a warning, and serves nothing stale.
//
// Each scenario has its own cluster. A read "judged" goes through the ledger
// (test/helpers/ledger.ts): a value is stale if a newer write of the key was
// acknowledged before the read was sent.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { performance } from 'node:perf_hooks';
import { sleep, type Proc } from '../helpers/procs.js';
import { WireClient } from '../helpers/wire.js';
import { readReplies } from '../helpers/mc.js';
import {
  metaGetMany, ownership, restartMemcached, serverStats, startCluster, stopCluster, waitState, withDirect,
  type Cluster, type Held, type ServerTable,
} from '../helpers/cluster.js';
import { Ledger, readAndJudge, writeAndRecord, type ReadKind, type Stale, type Verdict, type WriteOp } from '../helpers/ledger.js';

const TTLS = [0, 60, 3600] as const;

/** n keys with mixed TTLs (none, 60 s, 3600 s) and client flags. */
function makeItems(prefix: string, n: number): WriteOp[] {
  return Array.from({ length: n }, (_, i) => ({
    key: `${prefix}:${i}`,
    value: `${prefix}-v${i}-${'x'.repeat(i % 40)}`,
    flags: (i % 5) * 3,
    exptime: TTLS[i % 3]!,
  }));
}

let live: Cluster | undefined;
const clients: WireClient[] = [];

async function connect(p: Proc): Promise<WireClient> {
  const c = await WireClient.connect(p.port);
  clients.push(c);
  return c;
}

async function teardown(): Promise<void> {
  for (const c of clients.splice(0)) c.close();
  await stopCluster(live);
  live = undefined;
}

test.after(teardown);

/** One full read of `keys` through c in batches; returns every verdict. */
async function pass(c: WireClient, keys: readonly string[], kind: ReadKind, perRead: number, ledger: Ledger, via: string): Promise<Map<string, Verdict>> {
  const out = new Map<string, Verdict>();
  // At least 10 reads or 200 keys in flight: pipelined, bounded.
  const step = Math.max(perRead * 10, 200);
  for (let i = 0; i < keys.length; i += step) {
    const chunk = keys.slice(i, i + step);
    if (kind === 'mg') {
      for (const [k, v] of await readAndJudge(c, chunk, 'mg', ledger, via)) out.set(k, v);
      continue;
    }
    const sentAt = performance.now();
    const lines: string[] = [];
    for (let j = 0; j < chunk.length; j += perRead) lines.push(`${kind} ${chunk.slice(j, j + perRead).join(' ')}\r\n`);
    c.write(Buffer.from(lines.join(''), 'latin1'));
    const replies = await readReplies(c, lines.length, 10_000);
    const found = new Map<string, string>();
    for (const r of replies) {
      if (r.line !== 'END') throw new Error(`${via}: ${kind} answered ${r.line}`);
      for (const v of r.values) found.set(v.key, v.data.toString('latin1'));
    }
    for (const k of chunk) out.set(k, ledger.judge(k, found.get(k) ?? null, sentAt, via));
  }
  return out;
}

function count(verdicts: Map<string, Verdict>, keys: readonly string[], v: Verdict): number {
  let n = 0;
  for (const k of keys) if (verdicts.get(k) === v) n++;
  return n;
}

function describeStale(stale: readonly Stale[], marks: Record<string, number>): string {
  const rel = (t: number): string => Object.entries(marks).map(([name, at]) => `${(t - at).toFixed(0)} ms after ${name}`).join(', ');
  const byVia = new Map<string, number>();
  for (const s of stale) byVia.set(s.via, (byVia.get(s.via) ?? 0) + 1);
  const first = stale.reduce((m, s) => Math.min(m, s.sentAt), Infinity);
  const last = stale.reduce((m, s) => Math.max(m, s.sentAt), -Infinity);
  const summary = stale.length === 0 ? '' :
    `by reader: ${[...byVia].map(([v, n]) => `${v} ${n}`).join(', ')}; reads sent from ${rel(first)} to ${rel(last)}\n    `;
  return summary + stale.slice(0, 6).map((s) =>
    `${s.via} ${s.key}: got ${JSON.stringify(s.got)} (${s.prev}), but ${s.want === null ? 'its delete' : JSON.stringify(s.want)} was acknowledged ${(s.sentAt - s.ackedAt).toFixed(0)} ms before the read was sent ${rel(s.sentAt)}`).join('\n    ');
}

/** The log lines each entry wrote about one server (state changes). */
function serverLog(entries: readonly Proc[], addr: string): string {
  return entries.map((e, i) => e.output.split('\n').filter((l) => l.includes(addr))
    .map((l) => {
      let j: { time: string; level: string; msg: string; reason?: string; invalidated?: string };
      try { j = JSON.parse(l) as typeof j; } catch { return `    entry ${i + 1} ${l}`; }
      return `    entry ${i + 1} ${j.time.slice(11)} ${j.level} ${j.msg}${j.reason ? ` (${j.reason})` : ''}${j.invalidated ? ` invalidated: ${j.invalidated}` : ''}`;
    }).join('\n')).join('\n');
}

/**
 * Reads the focus keys in a loop through every client until stopped (or for at
 * most maxMs): multi-key get, gets and pipelined mg in turn, every key judged.
 */
class Reader {
  private stopped = false;
  private running: Promise<void> | null = null;
  private error: Error | null = null;
  rounds = 0;

  constructor(
    private readonly via: Array<[WireClient, string]>,
    private readonly focus: readonly string[],
    private readonly ledger: Ledger,
    private readonly maxMs = 30_000,
  ) {}

  start(): void {
    this.running = this.loop().catch((err: Error) => { this.error = err; });
  }

  private async loop(): Promise<void> {
    const deadline = performance.now() + this.maxMs;
    let at = 0;
    while (!this.stopped && performance.now() < deadline) {
      const kinds: ReadKind[] = ['get', 'mg', 'get', 'gets'];
      const kind = kinds[this.rounds % kinds.length]!;
      const batch = this.focus.slice(at, at + 100);
      at = at + 100 >= this.focus.length ? 0 : at + 100;
      await Promise.all(this.via.map(([c, name]) => readAndJudge(c, batch, kind, this.ledger, `${name} reader ${kind}`)));
      this.rounds++;
    }
  }

  async finish(): Promise<void> {
    this.stopped = true;
    await this.running;
    if (this.error !== null) throw this.error;
  }
}

/**
 * Overwrites the focus keys in a loop through every client until stopped (or
 * for at most maxMs), 20 keys per client per round, each value unique
 * (key#entry#round); every write entered in the ledger.
 */
class Writer {
  private stopped = false;
  private running: Promise<void> | null = null;
  private error: Error | null = null;
  rounds = 0;
  readonly bad: string[] = [];

  constructor(
    private readonly via: Array<[WireClient, string]>,
    private readonly focus: readonly string[],
    private readonly ledger: Ledger,
    private readonly maxMs = 30_000,
  ) {}

  start(): void {
    this.running = this.loop().catch((err: Error) => { this.error = err; });
  }

  private async loop(): Promise<void> {
    const deadline = performance.now() + this.maxMs;
    let at = 0;
    while (!this.stopped && performance.now() < deadline) {
      const n = this.rounds;
      await Promise.all(this.via.map(async ([c, name], j) => {
        const keys = Array.from({ length: 20 }, (_, i) => this.focus[(at + j * 20 + i) % this.focus.length]!);
        const ops = keys.map((k) => ({ key: k, value: `${k}#${name.replace(' ', '')}#${n}`, flags: 5, exptime: 3600 }));
        this.bad.push(...await writeAndRecord(c, ops, this.ledger, 20));
      }));
      at = (at + 20 * this.via.length) % this.focus.length;
      this.rounds++;
    }
  }

  async finish(): Promise<void> {
    this.stopped = true;
    await this.running;
    if (this.error !== null) throw this.error;
  }
}

// ------------------------------------------------------------------ restart

/** `stats servers` of both entries, taken at moments of the restart scenario for the stats test. */
const snapshots: Record<string, { e1: ServerTable; e2: ServerTable; killed: string; backupOfKilled: string[] }> = {};

test('restart: a killed master restarted empty is warmed from the backup; no stale value, 99.9% hits, TTLs and flags kept', async () => {
  const t0 = performance.now();
  const c = live = await startCluster(['--warmup-seconds', '30']);
  try {
    const [e1, e2] = c.entries;
    const [c1, c2] = [await connect(e1), await connect(e2)];
    const items = makeItems('ra', 20_000);
    const keys = items.map((i) => i.key);
    const exptimeOf = new Map(items.map((i) => [i.key, i.exptime!]));
    const ledger = new Ledger();
    assert.equal(await writeAndRecord(c1, items, ledger, 500), [], '20,000 sets through entry 1 STORED');
    const masterOf = await ownership(c.masters, keys);
    const backupOf = await ownership(c.backups, keys);
    assert.is(masterOf.size, keys.length, 'every key on a master');
    assert.is(backupOf.size, keys.length, 'every key on a backup');
    const K = 1;
    const mine = keys.filter((k) => masterOf.get(k) === K);
    assert.ok(mine.length > 4000, `master ${K} holds ${mine.length} keys`);
    const casKeys = mine.slice(0, 20);
    const over = mine.slice(20, 520);
    const del = mine.slice(520, 1020);
    const t1 = performance.now();

    // ---- the outage
    const killed = c.masters[K]!;
    await killed.stop('SIGKILL');
    const outageWrites: WriteOp[] = [
      ...over.map((k, i) => ({ key: k, value: `new-${k}`, flags: 42, exptime: i % 2 === 0 ? 0 : 3600 })),
      ...del.map((k) => ({ key: k, value: null })),
    ];
    for (const w of outageWrites) if (w.value !== null) exptimeOf.set(w.key, w.exptime!);
    assert.equal(await writeAndRecord(c2, outageWrites, ledger, 100), [], 'overwrites and deletes during the outage answered by the backup');
    // before the restart: its keys read from the backup, through both entries
    for (const [cl, name] of [[c1, 'entry 1'], [c2, 'entry 2']] as const) {
      const v = await pass(cl, mine, 'get', 100, ledger, `${name} during the outage`);
      assert.is(count(v, mine, 'stale'), 0, `${name} during the outage: stale values:\n    ${describeStale(ledger.stale, { start: t0 })}`);
      const liveMine = mine.filter((k) => ledger.current(k) !== null);
      assert.is(count(v, liveMine, 'hit'), liveMine.length, `${name} during the outage: every live key of the dead master hits (from the backup)`);
    }
    snapshots.outage = { e1: (await serverStats(e1.port)).table, e2: (await serverStats(e2.port)).table, killed: killed.addr, backupOfKilled: [...new Set(mine.map((k) => c.backups[backupOf.get(k)!]!.addr))] };

    // ---- back, empty
    const restarted = await restartMemcached(c, killed);
    const tBack = performance.now();
    const waited = await waitState([e1, e2], restarted.addr, ['warming', 'up'], 5000);
    const states = await Promise.all([e1, e2].map(async (e) => (await serverStats(e.port)).table.get(restarted.addr)?.get('state')));
    assert.equal(states, ['warming', 'warming'], 'the restarted master is warming on both entries (--warmup-seconds 30)');
    snapshots.back = { e1: (await serverStats(e1.port)).table, e2: (await serverStats(e2.port)).table, killed: killed.addr, backupOfKilled: snapshots.outage.backupOfKilled };

    // gets during warming: the cas id is the master's, and cas through the proxy answers STORED
    for (const k of casKeys.slice(0, 10)) {
      c1.write(`gets ${k}\r\n`);
      const [r] = await readReplies(c1, 1);
      assert.is(r!.values.length, 1, `gets ${k} while warming hits`);
      const v = r!.values[0]!;
      assert.is(v.data.toString('latin1'), ledger.current(k), `gets ${k}: value`);
      assert.ok(v.cas !== null, `gets ${k}: a cas id`);
      const nv = `cas-${k}`;
      ledger.begin(k, nv);
      c1.write(`cas ${k} ${v.flags} 0 ${nv.length} ${v.cas}\r\n${nv}\r\n`);
      const [s] = await readReplies(c1, 1);
      ledger.ack(k, performance.now());
      exptimeOf.set(k, 0);
      assert.is(s!.line, 'STORED', `cas ${k} with the cas id gets gave while warming`);
      const held = await withDirect(restarted.port, (d) => metaGetMany(d, [k]));
      assert.is(held.get(k)?.value, nv, `cas ${k}: the master holds the new value`);
    }
    // the same with mg c / ms C
    for (const k of casKeys.slice(10)) {
      const got = (await metaGetMany(c2, [k], 1, 'c v')).get(k);
      assert.ok(got !== null && got !== undefined && got.cas !== undefined, `mg ${k} c v while warming: ${JSON.stringify(got)}`);
      assert.is(got!.value, ledger.current(k), `mg ${k}: value`);
      const nv = `mscas-${k}`;
      ledger.begin(k, nv);
      const s = await c2.request(`ms ${k} ${nv.length} C${got!.cas}\r\n${nv}\r\n`);
      ledger.ack(k, performance.now());
      exptimeOf.set(k, 0);
      assert.is(s, 'HD\r\n', `ms ${k} C<cas from mg while warming>`);
    }

    // ---- the first pass after the master is back
    const tPass = performance.now();
    const first = await pass(c1, keys, 'get', 100, ledger, 'entry 1 first pass');
    assert.is(ledger.stale.length, 0, `stale values:\n    ${describeStale(ledger.stale, { restart: tBack })}`);
    const liveMine = mine.filter((k) => ledger.current(k) !== null);
    const hits = count(first, liveMine, 'hit');
    console.log(`    restart: warming seen ${waited} ms after the restart; first pass ${(performance.now() - tPass).toFixed(0)} ms, ${hits}/${liveMine.length} live keys of the restarted master hit`);
    assert.ok(hits >= 0.999 * liveMine.length, `first pass: ${hits} of ${liveMine.length} live keys of the restarted master hit (need 99.9%); missed e.g. ${liveMine.filter((k) => first.get(k) !== 'hit').slice(0, 5).join(' ')}`);
    const liveAll = keys.filter((k) => ledger.current(k) !== null);
    assert.ok(count(first, liveAll, 'hit') >= 0.999 * liveAll.length, `first pass: ${count(first, liveAll, 'hit')} of ${liveAll.length} live keys hit`);
    for (const k of del) assert.is(first.get(k), 'miss', `deleted ${k} misses`);

    // ---- what the fill left on the master: value, flags, TTL as on the backup
    await sleep(200);
    const onMaster = await withDirect(restarted.port, (d) => metaGetMany(d, liveMine));
    const onBackup = new Map<string, Held | null>();
    for (let b = 0; b < c.backups.length; b++) {
      const ks = liveMine.filter((k) => backupOf.get(k) === b);
      for (const [k, v] of await withDirect(c.backups[b]!.port, (d) => metaGetMany(d, ks))) onBackup.set(k, v);
    }
    const notFilled = liveMine.filter((k) => onMaster.get(k) === null);
    assert.ok(notFilled.length <= 0.001 * liveMine.length, `${notFilled.length} of ${liveMine.length} keys read were not copied into the master, e.g. ${notFilled.slice(0, 5).join(' ')}`);
    const wrong: string[] = [];
    for (const k of liveMine) {
      const m = onMaster.get(k);
      const b = onBackup.get(k);
      if (m === null || m === undefined) continue;
      const show = (h: Held | null | undefined): string => (h ? `${JSON.stringify(h.value)} f${h.flags} t${h.ttl}` : 'miss');
      if (m.value !== ledger.current(k)) wrong.push(`${k}: master ${show(m)}, latest ${JSON.stringify(ledger.current(k))}`);
      else if (b === null || b === undefined) wrong.push(`${k}: master ${show(m)}, backup miss`);
      else if (m.flags !== b.flags) wrong.push(`${k}: flags: master ${show(m)}, backup ${show(b)}`);
      else if (exptimeOf.get(k) === 0 && m.ttl !== -1) wrong.push(`${k}: no TTL was set, master ${show(m)}`);
      else if (Math.abs(m.ttl - b.ttl) > 2) wrong.push(`${k}: TTL: master ${show(m)}, backup ${show(b)}`);
    }
    assert.equal(wrong.slice(0, 10), [], `${wrong.length} filled keys differ from their backup copy`);

    // ---- more passes, both entries, every read kind
    const more: Array<[WireClient, ReadKind, number, string]> = [
      [c2, 'get', 100, 'entry 2 multi-get'], [c1, 'get', 7, 'entry 1 get of 7 keys'], [c2, 'get', 1, 'entry 2 single gets'],
      [c1, 'mg', 1, 'entry 1 mg'], [c2, 'gets', 50, 'entry 2 gets'],
    ];
    for (const [cl, kind, per, name] of more) {
      const v = await pass(cl, keys, kind, per, ledger, name);
      assert.is(ledger.stale.length, 0, `${name}: stale values:\n    ${describeStale(ledger.stale, { restart: tBack })}`);
      assert.is(count(v, liveAll, 'hit'), liveAll.length, `${name}: every live key hits (missed e.g. ${liveAll.filter((k) => v.get(k) !== 'hit').slice(0, 5).join(' ')})`);
      for (const k of del) assert.is(v.get(k), 'miss', `${name}: deleted ${k} misses`);
    }
    snapshots.after = { e1: (await serverStats(e1.port)).table, e2: (await serverStats(e2.port)).table, killed: killed.addr, backupOfKilled: snapshots.outage.backupOfKilled };
    console.log(`    restart scenario: write+locate ${(t1 - t0).toFixed(0)} ms, total ${(performance.now() - t0).toFixed(0)} ms`);
  } finally {
    await teardown();
  }
});

test('restart: a warm-up fill racing a delete through the other entry does not bring the deleted value back', async () => {
  // Entry 1 reads keys the restarted master misses (lookup on the backup, then
  // add into the master) while entry 2 deletes the same keys. A delete that lands
  // on the master before the fill and on the backup after the lookup must not
  // leave the old value on the master.
  const c = live = await startCluster(['--warmup-seconds', '30']);
  try {
    const [e1, e2] = c.entries;
    const [c1, c2] = [await connect(e1), await connect(e2)];
    const items = makeItems('rd', 12_000);
    const keys = items.map((i) => i.key);
    const ledger = new Ledger();
    assert.equal(await writeAndRecord(c1, items, ledger, 500), [], 'sets STORED');
    const masterOf = await ownership(c.masters, keys);
    const K = 0;
    const mine = keys.filter((k) => masterOf.get(k) === K);
    // both entries have connections to the master, so both see it die
    await pass(c2, mine, 'get', 100, ledger, 'entry 2 before the kill');
    const killed = c.masters[K]!;
    await killed.stop('SIGKILL');
    await waitState([e1, e2], killed.addr, ['down'], 5000);
    const restarted = await restartMemcached(c, killed);
    await waitState([e1, e2], restarted.addr, ['warming'], 5000);
    const tBack = performance.now();
    // batches of 20: entry 1 reads them, entry 2 deletes them a moment later
    for (let i = 0, n = 0; i < mine.length; i += 20, n++) {
      const batch = mine.slice(i, i + 20);
      const read = readAndJudge(c1, batch, n % 2 === 0 ? 'get' : 'mg', ledger, 'entry 1 warm read');
      if (n % 3 !== 0) await new Promise((r) => setImmediate(r));
      const dels = writeAndRecord(c2, batch.map((k) => ({ key: k, value: null })), ledger, 20);
      const [, bad] = await Promise.all([read, dels]);
      // a delete may find nothing left to delete on the server that answers
      assert.ok(bad.every((b) => b.endsWith('NOT_FOUND')), `deletes: ${bad.slice(0, 3).join(', ')}`);
    }
    assert.is(ledger.stale.length, 0, `stale values while racing:\n    ${describeStale(ledger.stale, { restart: tBack })}`);
    await sleep(300);
    const held = await withDirect(restarted.port, (d) => metaGetMany(d, mine));
    const back = mine.filter((k) => held.get(k) !== null);
    const v = await pass(c2, mine, 'get', 100, ledger, 'entry 2 after the race');
    const served = mine.filter((k) => v.get(k) !== 'miss');
    assert.equal({ onMaster: back.length, servedThroughEntry2: served.length }, { onMaster: 0, servedThroughEntry2: 0 },
      `deleted keys back on the master after a warm-up fill, e.g. ${back.slice(0, 5).join(' ')}`);
  } finally {
    await teardown();
  }
});

// ------------------------------------------------------------------ stats

test('stats servers: per server state, journal length, warm fills, reads served by the backup', () => {
  assert.ok(snapshots.outage && snapshots.back && snapshots.after, 'needs the restart scenario');
  const { killed } = snapshots.outage!;
  const problems: string[] = [];
  const field = (t: ServerTable, addr: string, re: RegExp): [string, number] | null => {
    for (const [name, value] of t.get(addr) ?? new Map<string, string>()) if (re.test(name)) return [name, Number(value)];
    return null;
  };
  // every server has a state with one of the four names, on both entries
  for (const [when, snap] of Object.entries(snapshots)) {
    for (const e of ['e1', 'e2'] as const) {
      const t = snap[e];
      if (t.size !== 6) problems.push(`${when} ${e}: ${t.size} servers in stats servers, want 6`);
      for (const [addr, row] of t) {
        if (!['up', 'down', 'recovering', 'warming'].includes(row.get('state') ?? '')) problems.push(`${when} ${e}: ${addr}:state ${row.get('state')}`);
      }
    }
  }
  if (snapshots.outage!.e2.get(killed)?.get('state') !== 'down') problems.push(`during the outage, entry 2 shows ${killed}:state ${snapshots.outage!.e2.get(killed)?.get('state')}, want down`);
  // journal length: entry 2 wrote 1000 keys of the dead master
  const journal = field(snapshots.outage!.e2, killed, /journal/);
  if (journal === null) problems.push(`no journal length in stats servers (fields of ${killed}: ${[...(snapshots.outage!.e2.get(killed)?.keys() ?? [])].join(', ')})`);
  else if (!(journal[1] >= 1000)) problems.push(`during the outage, entry 2 shows ${killed}:${journal[0]} ${journal[1]}, want >= 1000 (1000 keys written)`);
  else {
    const later = field(snapshots.after!.e2, killed, /journal/);
    if (later === null || later[1] !== 0) problems.push(`after recovery, entry 2 shows ${killed}:${journal[0]} ${later?.[1]}, want 0`);
  }
  // reads served by the backup: both entries read the dead master's keys during the outage
  for (const e of ['e1', 'e2'] as const) {
    const br = field(snapshots.outage![e], killed, /backup_reads/);
    if (br === null) problems.push(`${e}: no backup reads figure for ${killed}`);
    else if (!(br[1] >= 4000)) problems.push(`${e}: ${killed}:${br[0]} ${br[1]} during the outage, want >= 4000 (its keys were all read once)`);
  }
  // warm fills: entry 1's first pass filled thousands of keys
  const fills = field(snapshots.after!.e1, killed, /fill/);
  if (fills === null) problems.push(`no warm fills figure in stats servers (fields of ${killed}: ${[...(snapshots.after!.e1.get(killed)?.keys() ?? [])].join(', ')})`);
  else if (!(fills[1] >= 3000)) problems.push(`entry 1 shows ${killed}:${fills[0]} ${fills[1]} after the first pass, want >= 3000`);
  assert.equal(problems, [], problems.join('\n'));
});

// ------------------------------------------------------------------ partition

/**
 * One partition run on a cluster of its own: n keys written through entry 1,
 * master P stopped while 500 of its keys are overwritten and 500 deleted (half
 * through each entry: each entry journals only what went through it, and
 * whichever entry serves the master first must not serve the keys the other
 * one wrote), then resumed; a reader loop through both entries the whole time,
 * then full passes. Returns what went wrong.
 */
async function partitionRun(prefix: string, n: number, P: number): Promise<string[]> {
  const t0 = performance.now();
  const problems: string[] = [];
  const c = live = await startCluster(['--warmup-seconds', '30']);
  try {
    const [e1, e2] = c.entries;
    const [c1, c2, r1, r2] = [await connect(e1), await connect(e2), await connect(e1), await connect(e2)];
    const items = makeItems(prefix, n);
    const keys = items.map((i) => i.key);
    const ledger = new Ledger();
    assert.equal(await writeAndRecord(c1, items, ledger, 500), [], 'sets STORED');
    const masterOf = await ownership(c.masters, keys);
    const mine = keys.filter((k) => masterOf.get(k) === P);
    const over = mine.slice(0, 500);
    const del = mine.slice(500, 1000);
    const others = keys.filter((k) => masterOf.get(k) !== P).slice(0, 200);
    // the reader goes over the changed keys most, some unchanged ones and other masters' keys
    const focus = [...over, ...del, ...mine.slice(1000, 1200), ...others];
    const reader = new Reader([[r1, 'entry 1'], [r2, 'entry 2']], focus, ledger);
    const frozen = c.masters[P]!;
    const marks: Record<string, number> = {};
    /** which entry wrote each key during the partition */
    const writer = new Map<string, string>();
    reader.start();
    try {
      await sleep(300);
      marks.SIGSTOP = performance.now();
      await frozen.pause();
      try {
        const writes: WriteOp[] = [
          ...over.map((k) => ({ key: k, value: `new-${k}`, flags: 7, exptime: 0 })),
          ...del.map((k) => ({ key: k, value: null })),
        ];
        writes.forEach((w, i) => writer.set(w.key, i % 2 === 0 ? 'entry 1' : 'entry 2'));
        const [bad1, bad2] = await Promise.all([
          writeAndRecord(c1, writes.filter((_, i) => i % 2 === 0), ledger, 50),
          writeAndRecord(c2, writes.filter((_, i) => i % 2 === 1), ledger, 50),
        ]);
        assert.equal([...bad1, ...bad2], [], 'overwrites and deletes during the partition answered');
        await waitState([e1, e2], frozen.addr, ['down'], 5000);
        await sleep(500);
      } finally {
        frozen.signal('SIGCONT');
        marks.SIGCONT = performance.now();
      }
      const waited = await waitState([e1, e2], frozen.addr, ['warming', 'up'], 5000);
      marks.serving = performance.now();
      console.log(`    partition ${prefix}: serving again on both entries ${waited} ms after SIGCONT`);
      await sleep(1000);
    } finally {
      await reader.finish();
    }
    const stale = ledger.stale.splice(0);
    console.log(`    partition ${prefix}: reader made ${reader.rounds} rounds of 2 x 100 keys; ${stale.length} stale values`);
    if (stale.length > 0) {
      const byWriter = new Map<string, number>();
      for (const x of stale) {
        const w = `read through ${x.via.slice(0, 7)}, written through ${writer.get(x.key)}`;
        byWriter.set(w, (byWriter.get(w) ?? 0) + 1);
      }
      problems.push(`partition ${prefix} (master ${P}): the reader saw ${stale.length} stale values (${[...byWriter].map(([w, k]) => `${w}: ${k}`).join('; ')}); ${describeStale(stale, marks)}\n  log:\n${serverLog([e1, e2], frozen.addr)}`);
    }

    const liveAll = keys.filter((k) => ledger.current(k) !== null);
    const passes: Array<[WireClient, ReadKind, number, string]> = [
      [c1, 'get', 100, 'entry 1 multi-get'], [c2, 'get', 100, 'entry 2 multi-get'], [c1, 'get', 1, 'entry 1 single gets'],
      [c2, 'mg', 1, 'entry 2 mg'], [c1, 'gets', 20, 'entry 1 gets'],
    ];
    for (const [cl, kind, per, name] of passes) {
      const v = await pass(cl, keys, kind, per, ledger, name);
      const st = ledger.stale.splice(0);
      if (st.length > 0) problems.push(`partition ${prefix}, ${name} after recovery: ${st.length} stale values; ${describeStale(st, marks)}`);
      const notNew = over.filter((k) => v.get(k) !== 'hit');
      if (notNew.length > 0) problems.push(`partition ${prefix}, ${name}: ${notNew.length} overwritten keys do not show the new value, e.g. ${notNew.slice(0, 3).join(' ')}`);
      const back = del.filter((k) => v.get(k) !== 'miss');
      if (back.length > 0) problems.push(`partition ${prefix}, ${name}: ${back.length} deleted keys do not miss`);
      const hits = count(v, liveAll, 'hit');
      if (hits < 0.999 * liveAll.length) problems.push(`partition ${prefix}, ${name}: ${hits} of ${liveAll.length} live keys hit (need 99.9%)`);
    }
    console.log(`    partition ${prefix}: ${(performance.now() - t0).toFixed(0)} ms`);
    return problems;
  } finally {
    await teardown();
  }
}

test('partition: SIGSTOP/SIGCONT of a master that keeps its old data: not one stale value before, during or after recovery', async () => {
  // Three runs on fresh clusters: whether a race between the two entries'
  // recoveries shows depends on the phase of their probe timers, fixed for the
  // life of a proxy process, so each run is a fresh draw. The first run has the
  // issue's 20,000 keys.
  const problems = [
    ...await partitionRun('pb', 20_000, 2),
    ...await partitionRun('pc', 8000, 1),
    ...await partitionRun('pd', 8000, 3),
  ];
  assert.equal(problems, [], problems.join('\n'));
});

test('partition seen by one entry only: the other entry serves no stale value when the master answers again', async () => {
  // Entry 1 sends nothing to the master while it is stopped, so it cannot see it
  // down by itself; entry 2 writes its keys meanwhile (to the backup). The
  // partition lasts a second past entry 2 marking the master down (five retry
  // intervals). The moment the master runs again, entry 1 reads its keys.
  const c = live = await startCluster(['--warmup-seconds', '30']);
  try {
    const [e1, e2] = c.entries;
    const [c1, c2, r1] = [await connect(e1), await connect(e2), await connect(e1)];
    const items = makeItems('po', 4000);
    const keys = items.map((i) => i.key);
    const ledger = new Ledger();
    assert.equal(await writeAndRecord(c1, items, ledger, 500), [], 'sets STORED');
    const masterOf = await ownership(c.masters, keys);
    const P = 0;
    const mine = keys.filter((k) => masterOf.get(k) === P);
    const over = mine.slice(0, 100);
    const del = mine.slice(100, 200);
    const frozen = c.masters[P]!;
    const marks: Record<string, number> = {};
    await frozen.pause();
    try {
      const writes: WriteOp[] = [...over.map((k) => ({ key: k, value: `new-${k}` })), ...del.map((k) => ({ key: k, value: null }))];
      assert.equal(await writeAndRecord(c2, writes, ledger, 20), [], 'writes during the partition answered');
      await waitState([e2], frozen.addr, ['down'], 5000);
      await sleep(1000);
      marks.e1state = performance.now();
      console.log(`    one-entry partition: entry 1 shows the master ${(await serverStats(e1.port)).table.get(frozen.addr)?.get('state')} before SIGCONT`);
    } finally {
      frozen.signal('SIGCONT');
      marks.SIGCONT = performance.now();
      delete marks.e1state;
    }
    const reader = new Reader([[r1, 'entry 1']], [...over, ...del], ledger, 1500);
    reader.start();
    await reader.finish();
    assert.is(ledger.stale.length, 0, `entry 1 served ${ledger.stale.length} stale values; ${describeStale(ledger.stale, marks)}\n  log:\n${serverLog([e1, e2], frozen.addr)}`);
  } finally {
    await teardown();
  }
});

test('restart seen by one entry only: the other entry warms the empty master too (no misses)', async () => {
  // Entry 2 has sent nothing to the master before it is killed and restarted
  // empty, so it has no connection to lose; entry 1 has. Reads through entry 2
  // must still find the keys (from the backup), not miss them as magent would.
  const c = live = await startCluster(['--warmup-seconds', '30']);
  try {
    const [e1, e2] = c.entries;
    const [c1, c2] = [await connect(e1), await connect(e2)];
    const items = makeItems('ro', 4000);
    const keys = items.map((i) => i.key);
    const ledger = new Ledger();
    assert.equal(await writeAndRecord(c1, items, ledger, 500), [], 'sets STORED');
    const masterOf = await ownership(c.masters, keys);
    const K = 2;
    const mine = keys.filter((k) => masterOf.get(k) === K);
    const killed = c.masters[K]!;
    await killed.stop('SIGKILL');
    await waitState([e1], killed.addr, ['down'], 5000);
    const restarted = await restartMemcached(c, killed);
    await waitState([e1], restarted.addr, ['warming'], 5000);
    const states = await Promise.all([e1, e2].map(async (e) => (await serverStats(e.port)).table.get(restarted.addr)?.get('state')));
    const v = await pass(c2, mine, 'get', 100, ledger, 'entry 2');
    assert.is(ledger.stale.length, 0, 'no stale values');
    const hits = count(v, mine, 'hit');
    assert.ok(hits >= 0.999 * mine.length, `entry 2 (state of the master: ${states[1]}; entry 1: ${states[0]}): ${hits} of ${mine.length} keys of the restarted master hit\n  log:\n${serverLog([e1, e2], restarted.addr)}`);
  } finally {
    await teardown();
  }
});

test('writes racing recovery: keys overwritten through both entries while a master returns are never read stale', async () => {
  // "A write racing this step may cost a miss, never a stale read." Both entries
  // keep overwriting and reading the same keys of one master while it is stopped
  // (killed and restarted empty, in the second run) and while it comes back.
  const problems: string[] = [];
  for (const mode of ['SIGSTOP', 'kill -9', 'SIGSTOP'] as const) {
    const c = live = await startCluster(['--warmup-seconds', '30']);
    try {
      const [e1, e2] = c.entries;
      const [c1, c2, r1, r2] = [await connect(e1), await connect(e2), await connect(e1), await connect(e2)];
      const items = makeItems('wr', 4000);
      const keys = items.map((i) => i.key);
      // While the two entries' views of the returning master differ, one may read
      // the key from the backup while the other has just acknowledged a write that
      // the master answered: the client's reply never waits for the backup (issue
      // 2), so the backup's copy may be a round trip behind. That window (README,
      // known limits) is allowed; anything staler is not.
      const ledger = new Ledger(50);
      assert.equal(await writeAndRecord(c1, items, ledger, 500), [], 'sets STORED');
      const masterOf = await ownership(c.masters, keys);
      const P = 1;
      // few keys, so that each is written and read many times around the recovery
      const focus = keys.filter((k) => masterOf.get(k) === P).slice(0, 40);
      const reader = new Reader([[r1, 'entry 1'], [r2, 'entry 2']], focus, ledger);
      const writer = new Writer([[c1, 'entry 1'], [c2, 'entry 2']], focus, ledger);
      const server = c.masters[P]!;
      const marks: Record<string, number> = {};
      reader.start();
      writer.start();
      try {
        await sleep(300);
        marks[mode] = performance.now();
        if (mode === 'SIGSTOP') await server.pause(); else await server.stop('SIGKILL');
        try {
          await waitState([e1, e2], server.addr, ['down'], 5000);
          await sleep(500);
        } finally {
          if (mode === 'SIGSTOP') server.signal('SIGCONT'); else await restartMemcached(c, server);
          marks.back = performance.now();
        }
        await waitState([e1, e2], server.addr, ['warming', 'up'], 5000);
        marks.serving = performance.now();
        await sleep(1500);
      } finally {
        await writer.finish();
        await sleep(200);
        await reader.finish();
      }
      console.log(`    writes racing recovery (${mode}): ${writer.rounds} write rounds, ${reader.rounds} read rounds; ${ledger.hits} hits, ${ledger.misses} misses, ${ledger.stale.length} stale`);
      if (writer.bad.length > 0) problems.push(`${mode}: ${writer.bad.length} writes not STORED, e.g. ${writer.bad.slice(0, 3).join(', ')}`);
      if (ledger.stale.length > 0) problems.push(`${mode}: ${ledger.stale.length} stale reads; ${describeStale(ledger.stale, marks)}\n  log:\n${serverLog([e1, e2], server.addr)}`);
      // once the writes stop, every key reads as its last write
      const stale = ledger.stale.length;
      for (const [cl, name] of [[c1, 'entry 1'], [c2, 'entry 2']] as const) {
        const v = await pass(cl, focus, 'get', 50, ledger, `${name} after`);
        const notLatest = focus.filter((k) => v.get(k) !== 'hit');
        if (notLatest.length > 0) problems.push(`${mode}, ${name} after the writes: ${notLatest.length} keys do not read as their last write (misses or stale), e.g. ${notLatest.slice(0, 3).join(' ')}`);
      }
      if (ledger.stale.length > stale) problems.push(`${mode}, after: ${describeStale(ledger.stale.slice(stale), marks)}`);
    } finally {
      await teardown();
    }
  }
  assert.equal(problems, [], problems.join('\n'));
});

// ------------------------------------------------------------------ a backup comes back

test('backup: a backup stopped while its keys were written serves no stale value once its master dies', async () => {
  const t0 = performance.now();
  const c = live = await startCluster([]);
  try {
    const [e1, e2] = c.entries;
    const [c1, c2] = [await connect(e1), await connect(e2)];
    const items = makeItems('bc', 8000);
    const keys = items.map((i) => i.key);
    const ledger = new Ledger();
    assert.equal(await writeAndRecord(c1, items, ledger, 500), [], 'sets STORED');
    const masterOf = await ownership(c.masters, keys);
    const backupOf = await ownership(c.backups, keys);
    const B = 0;
    const perMaster = [0, 1, 2, 3].map((m) => keys.filter((k) => masterOf.get(k) === m && backupOf.get(k) === B).length);
    const M = perMaster.indexOf(Math.max(...perMaster));
    const sel = keys.filter((k) => masterOf.get(k) === M && backupOf.get(k) === B);
    assert.ok(sel.length >= 600, `${sel.length} keys on master ${M} and backup ${B}`);
    const over = sel.slice(0, 300);
    const del = sel.slice(300, 600);
    const backup = c.backups[B]!;
    await backup.pause();
    try {
      const writes: WriteOp[] = [
        ...over.map((k) => ({ key: k, value: `new-${k}`, flags: 9, exptime: 3600 })),
        ...del.map((k) => ({ key: k, value: null })),
      ];
      // Spread over more than failure-limit x timeout, so that each entry counts
      // enough timeouts of the stopped backup to mark it down; the later writes
      // then reach only the master (and the journal).
      const chunks = 12;
      const per = Math.ceil(writes.length / chunks);
      for (let i = 0; i < chunks; i++) {
        const part = writes.slice(i * per, (i + 1) * per);
        const [bad1, bad2] = await Promise.all([
          writeAndRecord(c1, part.filter((_, j) => j % 2 === 0), ledger, 25),
          writeAndRecord(c2, part.filter((_, j) => j % 2 === 1), ledger, 25),
        ]);
        assert.equal([...bad1, ...bad2], [], 'writes answered by the master while the backup is stopped');
        await sleep(130);
      }
      await waitState([e1, e2], backup.addr, ['down'], 5000);
    } finally {
      backup.signal('SIGCONT');
    }
    const waited = await waitState([e1, e2], backup.addr, ['up'], 5000);
    console.log(`    backup: up again on both entries ${waited} ms after SIGCONT`);
    // what the backup itself holds now
    const held = await withDirect(backup.port, (d) => metaGetMany(d, [...over, ...del]));
    const staleOnBackup = [...over, ...del].filter((k) => held.get(k) !== null && held.get(k)!.value !== ledger.current(k));
    assert.equal(staleOnBackup.slice(0, 5), [], `${staleOnBackup.length} keys on the backup hold a value it missed the update of`);

    const tKill = performance.now();
    await c.masters[M]!.stop('SIGKILL');
    const passes: Array<[WireClient, ReadKind, number, string]> = [
      [c1, 'get', 100, 'entry 1 multi-get'], [c2, 'get', 100, 'entry 2 multi-get'], [c2, 'get', 1, 'entry 2 single gets'], [c1, 'mg', 1, 'entry 1 mg'],
    ];
    for (const [cl, kind, per, name] of passes) {
      const v = await pass(cl, sel, kind, per, ledger, name);
      assert.is(ledger.stale.length, 0, `${name}: stale values from the backup:\n    ${describeStale(ledger.stale, { 'master kill': tKill })}`);
      for (const k of del) assert.is(v.get(k), 'miss', `${name}: deleted ${k} misses`);
      const untouched = sel.slice(600);
      assert.is(count(v, untouched, 'hit'), untouched.length, `${name}: keys not written during the stop still hit`);
    }
    console.log(`    backup scenario: ${(performance.now() - t0).toFixed(0)} ms`);
  } finally {
    await teardown();
  }
});

// ------------------------------------------------------------------ journal overflow

test('journal overflow (--journal-max-keys 10): the returning master is flushed instead, with a warning; no stale value', async () => {
  const t0 = performance.now();
  const c = live = await startCluster(['--journal-max-keys', '10', '--warmup-seconds', '30']);
  try {
    const [e1, e2] = c.entries;
    const [c1, c2, r1, r2] = [await connect(e1), await connect(e2), await connect(e1), await connect(e2)];
    const items = makeItems('jo', 4000);
    const keys = items.map((i) => i.key);
    const ledger = new Ledger();
    assert.equal(await writeAndRecord(c1, items, ledger, 500), [], 'sets STORED');
    const masterOf = await ownership(c.masters, keys);
    const P = 3;
    const mine = keys.filter((k) => masterOf.get(k) === P);
    const over = mine.slice(0, 100);
    const reader = new Reader([[r1, 'entry 1'], [r2, 'entry 2']], [...over, ...mine.slice(100, 300)], ledger);
    const frozen = c.masters[P]!;
    const marks: Record<string, number> = {};
    reader.start();
    try {
      marks.SIGSTOP = performance.now();
      await frozen.pause();
      try {
        // 50 keys through each entry: both journals (5 keys per worker) overflow.
        const writes = over.map((k) => ({ key: k, value: `new-${k}`, flags: 1, exptime: 0 }));
        const [bad1, bad2] = await Promise.all([
          writeAndRecord(c1, writes.filter((_, i) => i % 2 === 0), ledger, 10),
          writeAndRecord(c2, writes.filter((_, i) => i % 2 === 1), ledger, 10),
        ]);
        assert.equal([...bad1, ...bad2], [], 'overwrites during the partition answered');
        await waitState([e1, e2], frozen.addr, ['down'], 5000);
      } finally {
        frozen.signal('SIGCONT');
        marks.SIGCONT = performance.now();
      }
      await waitState([e1, e2], frozen.addr, ['warming', 'up'], 5000);
      marks.serving = performance.now();
      await sleep(1000);
    } finally {
      await reader.finish();
    }
    // Both requirements are checked and reported together.
    const problems: string[] = [];
    // flushed, not invalidated key by key (the keys nobody touched come back by the restore, so the count says it)
    const flushes = await Promise.all([e1, e2].map(async (e) => Number((await serverStats(e.port)).table.get(frozen.addr)?.get('flushes'))));
    if (flushes.every((n) => !(n >= 1))) problems.push(`the master was not flushed: flushes ${flushes.join(', ')}`);
    if (ledger.stale.length > 0) problems.push(`the reader saw ${ledger.stale.length} stale values; ${describeStale(ledger.stale, marks)}`);
    for (const [cl, kind, per, name] of [[c1, 'get', 100, 'entry 1'], [c2, 'get', 1, 'entry 2']] as const) {
      const before = ledger.stale.length;
      const v = await pass(cl, keys, kind, per, ledger, name);
      if (ledger.stale.length > before) problems.push(`${name} pass after recovery: ${describeStale(ledger.stale.slice(before), marks)}`);
      const notNew = over.filter((k) => v.get(k) !== 'hit');
      if (notNew.length > 0) problems.push(`${name} pass after recovery: ${notNew.length} overwritten keys do not show the new value, e.g. ${notNew.slice(0, 3).join(' ')}`);
    }
    // the overflow is said: a warning in the log, or a figure in stats servers
    const warned = [e1, e2].flatMap((e) => e.output.split('\n')).filter((l) => /"level":"warn"/.test(l) && /journal|overflow|flush/i.test(l));
    const stats = await serverStats(e2.port);
    const statLines = stats.raw.split('\r\n').filter((l) => l.includes(frozen.addr) && /overflow|flush/i.test(l));
    if (warned.length === 0 && statLines.length === 0) problems.push('neither entry (both journals overflowed) logged a warning, nor shows it in stats servers (their logs say "invalidated: journal", not a flush)');
    assert.equal(problems, [], `${problems.join('\n  ')}\n  log:\n${serverLog([e1, e2], frozen.addr)}`);
    console.log(`    overflow scenario: ${(performance.now() - t0).toFixed(0)} ms`);
  } finally {
    await teardown();
  }
});

test.run();
