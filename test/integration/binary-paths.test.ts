// The binary protocol on mcrelay's own paths (issue 14): what memcached alone
// has no counterpart for, so these are checked against what the servers hold.
//
//   binary client --> mcrelay -s m0 -s m1 -b b0 --> m0, m1 (masters), b0 (backup)
//
//   replication  a binary Set/SetQ/Append reaches the backup; a binary Delete
//                removes the key from both; a binary Incr of a key whose backup
//                copy was changed behind mcrelay's back answers the master's
//                value and cas (and the backup's copy is repaired)
//   failover     keys written by binary Set, m1 killed: every key reads back by
//                GetK and by a GetKQ + Noop batch, right value, flags and cas
//   warm-up      m1 restarted empty: during warming a binary Get of a key only
//                the backup holds hits (value, flags) and the key is then on m1
//
// The tests run in order on one cluster.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startMemcached, startProxy, sleep, type Proc } from '../helpers/procs.js';
import { WireClient } from '../helpers/wire.js';
import { metaGetMany, ownership, restartMemcached, stateOf, waitState, withDirect, type Cluster } from '../helpers/cluster.js';

const OP = { GET: 0x00, SET: 0x01, DELETE: 0x04, INCR: 0x05, NOOP: 0x0a, GETK: 0x0c, GETKQ: 0x0d, APPEND: 0x0e, SETQ: 0x11 } as const;

let cluster: Cluster | undefined;
let proxy: Proc;
let client: WireClient | undefined;

test.before(async () => {
  const mcs = await Promise.all([startMemcached(), startMemcached(), startMemcached()]);
  const flags = ['-s', mcs[0]!.addr, '-s', mcs[1]!.addr, '-b', mcs[2]!.addr, '--workers', '2', '--timeout', '300', '--retry-interval', '200',
    // warming lasts the whole test, and the eager restore is too slow to fill the key the warm-up test reads
    '--warmup-seconds', '60', '--warmup-done-ratio', '0', '--restore-keys-per-second', '1'];
  cluster = { masters: mcs.slice(0, 2), backups: mcs.slice(2), entries: [undefined!, undefined!], started: [...mcs], flags };
  proxy = await startProxy(flags);
  cluster.entries = [proxy, proxy];
  cluster.started.push(proxy);
  client = await WireClient.connect(proxy.port);
});

test.after(async () => {
  client?.close();
  if (cluster !== undefined) await Promise.all(cluster.started.map((p) => p.stop('SIGKILL')));
});

// ---- the binary protocol, as a client library speaks it

let nextOpaque = 1;

function req(op: number, key: string, extras: Buffer = Buffer.alloc(0), value = ''): Buffer {
  const body = Buffer.concat([extras, Buffer.from(key, 'latin1'), Buffer.from(value, 'latin1')]);
  const h = Buffer.alloc(24);
  // magic, opcode, key length; extras length; body length; opaque; cas 0
  h.writeUInt32BE(((0x80 << 24) | (op << 16) | Buffer.byteLength(key, 'latin1')) >>> 0, 0);
  h[4] = extras.length;
  h.writeUInt32BE(body.length, 8);
  h.writeUInt32BE(nextOpaque++, 12);
  return Buffer.concat([h, body]);
}
const setExtras = (flags: number): Buffer => { const b = Buffer.alloc(8); b.writeUInt32BE(flags >>> 0, 0); return b; };
const incrExtras = (delta: bigint): Buffer => { const b = Buffer.alloc(20); b.writeBigUInt64BE(delta, 0); return b; };

interface Resp { op: number; status: number; opaque: number; cas: bigint; flags: number | null; key: string; value: Buffer }

/** The whole responses at the start of b. */
function responses(b: Buffer): Resp[] {
  const out: Resp[] = [];
  let i = 0;
  while (i + 24 <= b.length && i + 24 + b.readUInt32BE(i + 8) <= b.length) {
    const keyLen = b.readUInt16BE(i + 2);
    const extLen = b[i + 4]!;
    const bodyLen = b.readUInt32BE(i + 8);
    const body = i + 24;
    out.push({
      op: b[i + 1]!, status: b.readUInt16BE(i + 6), opaque: b.readUInt32BE(i + 12), cas: b.readBigUInt64BE(i + 16),
      flags: extLen === 4 ? b.readUInt32BE(body) : null,
      key: b.toString('latin1', body + extLen, body + extLen + keyLen),
      value: b.subarray(body + extLen + keyLen, body + bodyLen),
    });
    i = body + bodyLen;
  }
  return out;
}

/** Sends the requests at once; reads until `done` holds for the responses (or 5 s pass). */
async function exchange(requests: Buffer[], done: (r: Resp[]) => boolean): Promise<Resp[]> {
  client!.write(Buffer.concat(requests));
  const b = await client!.readUntil((x) => done(responses(x)), 5000);
  const r = responses(b);
  assert.ok(done(r), `responses: ${b.length} bytes, ${r.length} whole${client!.closed ? ', connection closed' : ''}`);
  return r;
}

const count = (n: number) => (r: Resp[]): boolean => r.length >= n;
const untilNoop = (r: Resp[]): boolean => r.some((x) => x.op === OP.NOOP);

async function one(request: Buffer): Promise<Resp> {
  return (await exchange([request], count(1)))[0]!;
}

/** Retries `f` until it is true, for up to ms; the last result. */
async function eventually(f: () => Promise<boolean>, ms = 2000): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await f()) return true;
    if (Date.now() > deadline) return false;
    await sleep(20);
  }
}

/** A server's own copy of a key (value, flags, cas), or null. */
async function held(p: Proc, key: string): Promise<{ value: string; flags: number; cas?: string } | null> {
  return (await withDirect(p.port, (c) => metaGetMany(c, [key], 1, 'v f c'))).get(key) ?? null;
}

async function stat(name: string): Promise<number> {
  const raw = await withDirect(proxy.port, (c) => c.request('stats\r\n', 'END\r\n'));
  return Number(new RegExp(`STAT ${name} (\\d+)\r\n`).exec(raw)?.[1]);
}

// ---- the keys: written by binary Set, each with its own flags

const KEYS = Array.from({ length: 200 }, (_, i) => `bp:${i}`);
const valueOf = (k: string): string => `value of ${k} ${'v'.repeat(Number(k.slice(3)) % 30)}`;
const flagsOf = (k: string): number => (Number(k.slice(3)) * 2654435761) >>> 0;
/** key -> index of its master, asked of the servers */
let owner = new Map<string, number>();

test('binary Sets: each stored with a cas, and copied to the backup', async () => {
  const r = await exchange(KEYS.map((k) => req(OP.SET, k, setExtras(flagsOf(k)), valueOf(k))), count(KEYS.length));
  assert.ok(r.every((x) => x.op === OP.SET && x.status === 0 && x.cas !== 0n), `every Set stored with a cas: ${JSON.stringify(r.find((x) => x.status !== 0 || x.cas === 0n))}`);
  owner = await ownership(cluster!.masters, KEYS);
  assert.is(owner.size, KEYS.length, 'every key on a master');
  const onEach = [0, 1].map((m) => KEYS.filter((k) => owner.get(k) === m).length);
  assert.ok(onEach.every((n) => n >= 20), `keys on both masters: ${onEach.join(', ')}`);
  // Each Set's cas is its master's for the item.
  const byMaster = await Promise.all(cluster!.masters.map((m) => withDirect(m.port, (c) => metaGetMany(c, KEYS.filter((k) => owner.get(k) === cluster!.masters.indexOf(m)), 500, 'v f c'))));
  KEYS.forEach((k, i) => assert.is(String(r[i]!.cas), byMaster[owner.get(k)!]!.get(k)?.cas, `${k}: the cas its master holds`));
  // The backup holds every key (its copy lands beside the master's: wait for the last ones).
  const b0 = cluster!.backups[0]!;
  assert.ok(await eventually(async () => {
    const got = await withDirect(b0.port, (c) => metaGetMany(c, KEYS, 500, 'v f'));
    return KEYS.every((k) => got.get(k)?.value === valueOf(k) && got.get(k)?.flags === flagsOf(k));
  }), 'the backup holds every key with its value and flags');
});

// ---- replication, a diverging backup

test('replication: SetQ and Append reach the backup; Delete removes the key from both', async () => {
  const [m0, b0] = [cluster!.masters[0]!, cluster!.backups[0]!];
  const key = KEYS.find((k) => owner.get(k) === 0)!;
  const r = await exchange([req(OP.SETQ, key, setExtras(77), 'quiet'), req(OP.APPEND, key, undefined, '+more'), req(OP.NOOP, '')], untilNoop);
  assert.is(r.length, 2, 'SetQ says nothing, Append and Noop answer');
  assert.is(r[0]!.op, OP.APPEND);
  assert.is(r[0]!.status, 0);
  assert.is(String(r[0]!.cas), (await held(m0, key))?.cas, 'the Append\'s cas is the master\'s');
  assert.ok(await eventually(async () => (await held(b0, key))?.value === 'quiet+more'), 'the backup has the appended value');
  assert.is((await held(b0, key))?.flags, 77, 'and the SetQ\'s flags');

  const del = await one(req(OP.DELETE, key));
  assert.is(del.status, 0, 'deleted');
  assert.is(del.cas, 0n, 'a delete answers cas 0, as memcached');
  assert.ok(await eventually(async () => (await held(m0, key)) === null && (await held(b0, key)) === null), 'gone from master and backup');
  const get = await one(req(OP.GET, key));
  assert.is(get.status, 1, 'a miss through mcrelay');
});

test('replication: Incr of a key whose backup copy was changed answers the master\'s value; the backup is repaired', async () => {
  const [m0, b0] = [cluster!.masters[0]!, cluster!.backups[0]!];
  const key = KEYS.filter((k) => owner.get(k) === 0)[1]!;
  assert.is((await one(req(OP.SET, key, setExtras(0), '10'))).status, 0);
  assert.ok(await eventually(async () => (await held(b0, key))?.value === '10'), 'the backup has 10');
  await withDirect(b0.port, (c) => c.request(`set ${key} 0 0 3\r\n500\r\n`));
  assert.is((await held(b0, key))?.value, '500', 'the backup copy diverged');
  const repairs = await stat('backup_repairs');

  const r = await one(req(OP.INCR, key, incrExtras(5n)));
  assert.is(r.status, 0);
  assert.is(r.value.readBigUInt64BE(0), 15n, 'the master\'s counter, not the backup\'s (505)');
  const m = await held(m0, key);
  assert.is(m?.value, '15');
  assert.is(String(r.cas), m?.cas, 'the master\'s cas');
  // Master and backup answered 15 and 505: the backup's copy goes.
  assert.ok(await eventually(async () => (await held(b0, key)) === null), 'the diverged backup copy is deleted');
  assert.ok(await stat('backup_repairs') > repairs, 'counted in backup_repairs');
});

// ---- failover

test('failover: m1 killed, every key reads back by GetK and by a GetKQ + Noop batch, with its flags and a cas', async () => {
  const m1 = cluster!.masters[1]!;
  // the keys the replication tests changed are left out
  const keys = KEYS.filter((k) => k !== KEYS.find((x) => owner.get(x) === 0) && k !== KEYS.filter((x) => owner.get(x) === 0)[1]);
  await m1.stop();
  await waitState([proxy], m1.addr, ['down'], 5000);
  const fromBackup = new Set(keys.filter((k) => owner.get(k) === 1));
  assert.ok(fromBackup.size >= 20, `${fromBackup.size} keys of m1 to read from the backup`);
  const backupCas = await withDirect(cluster!.backups[0]!.port, (c) => metaGetMany(c, [...fromBackup], 500, 'v f c'));

  const check = (r: Resp[], how: string): void => {
    const byKey = new Map(r.filter((x) => x.op !== OP.NOOP).map((x) => [x.key, x]));
    for (const k of keys) {
      const x = byKey.get(k);
      assert.ok(x !== undefined && x.status === 0, `${how} ${k} (master ${owner.get(k)}): ${x === undefined ? 'no response' : `status ${x.status}`}`);
      assert.is(x.value.toString('latin1'), valueOf(k), `${how} ${k}: value`);
      assert.is(x.flags, flagsOf(k), `${how} ${k}: flags`);
      assert.ok(x.cas !== 0n, `${how} ${k}: a cas`);
      if (fromBackup.has(k)) assert.is(String(x.cas), backupCas.get(k)?.cas, `${how} ${k}: the backup's cas`);
    }
  };
  const single = await exchange(keys.map((k) => req(OP.GETK, k)), count(keys.length));
  assert.is(single.length, keys.length, 'one response per GetK');
  check(single, 'GetK');
  const batch = await exchange([...keys.map((k) => req(OP.GETKQ, k)), req(OP.NOOP, '')], untilNoop);
  assert.is(batch.length, keys.length + 1, 'every GetKQ hit, then the Noop');
  assert.is(batch[batch.length - 1]!.op, OP.NOOP, 'the Noop last');
  check(batch, 'GetKQ');
});

// ---- warm-up

test('warm-up: m1 back empty; a binary Get of a key only the backup holds hits, and the key is then on m1', async () => {
  const restarted = await restartMemcached(cluster!, cluster!.masters[1]!);
  await waitState([proxy], restarted.addr, ['warming'], 10_000);
  // A key of m1 the (slow) eager restore has not copied back yet.
  let key: string | undefined;
  for (const k of KEYS.filter((x) => owner.get(x) === 1)) {
    if ((await held(restarted, k)) === null) { key = k; break; }
  }
  assert.ok(key !== undefined, 'a key of m1 not on it yet');
  assert.is((await held(cluster!.backups[0]!, key))?.value, valueOf(key), 'the backup holds it');
  const hits = await stat('get_warm_hits');

  const r = await one(req(OP.GET, key));
  assert.is(r.status, 0, `${key}: a hit, not a miss`);
  assert.is(r.value.toString('latin1'), valueOf(key), 'its value');
  assert.is(r.flags, flagsOf(key), 'its flags');
  assert.ok(await stat('get_warm_hits') > hits, 'a warm-up hit (get_warm_hits)');
  const filled = await held(restarted, key);
  assert.is(filled?.value, valueOf(key), 'the key is on m1 now');
  assert.is(filled?.flags, flagsOf(key), 'with its flags');
  assert.is(String(r.cas), filled?.cas, 'and the Get answered m1\'s cas (read again after the fill)');
  assert.is(await stateOf(proxy.port, restarted.addr), 'warming', 'all of it while m1 was warming');
});

test.run();
