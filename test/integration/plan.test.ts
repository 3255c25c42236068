// mcrelay plan (issue 20, item 4): how many keys per server a change of the
// server pool would move, read from the servers before anything is applied.
//
//   cluster J: mcrelay --distribution jump -s m0..m3 -b b0 -b b1 --admin A,
//              4,000 keys written through it (so on the masters and the backups)
//   cluster M: mcrelay --distribution magent -s n0..n2 (no backups) --admin B,
//              1,500 keys
//   spare:     a memcached in no pool, the server a new config adds
//
// Each plan is checked against the test's own count: every key written, routed
// by both placements with Router, per server held now / gained / lost.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Router, type Distribution } from '../../src/routing/router.js';
import type { Plan } from '../../src/plan.js';
import { CLI, freePort, sleep, startMemcached, startProxy, type Proc } from '../helpers/procs.js';
import { WireClient } from '../helpers/wire.js';
import { roundTrip, setMany } from '../helpers/mc.js';

interface Cluster { masters: Proc[]; backups: Proc[]; proxy: Proc; admin: string; keys: string[]; distribution: Distribution }

const procs: Proc[] = [];
let dir = '';
let J: Cluster;
let M: Cluster;
let spare: Proc;

/** Keys of many shapes: bytes memcached's metadump escapes (%, /, 0xE9) come back as the same key. */
function keysFor(prefix: string, n: number): string[] {
  return Array.from({ length: n }, (_, i) => (i % 10 === 0 ? `${prefix}/%${i}:\u00e9` : `${prefix}:${i}`));
}

async function startOne(distribution: Distribution, masters: number, backups: number, prefix: string, n: number): Promise<Cluster> {
  const ms: Proc[] = [];
  const bs: Proc[] = [];
  for (let i = 0; i < masters; i++) { const p = await startMemcached(); procs.push(p); ms.push(p); }
  for (let i = 0; i < backups; i++) { const p = await startMemcached(); procs.push(p); bs.push(p); }
  const admin = `127.0.0.1:${await freePort()}`;
  const proxy = await startProxy([
    ...ms.flatMap((m) => ['-s', m.addr]), ...bs.flatMap((b) => ['-b', b.addr]),
    '--distribution', distribution, '--workers', '1', '--admin', admin,
  ]);
  procs.push(proxy);
  const keys = keysFor(prefix, n);
  const c = await WireClient.connect(proxy.port);
  try {
    assert.equal(await setMany(c, keys.map((k) => [k, `v-${k}`])), [], 'every write stored');
  } finally {
    c.close();
  }
  // Every key on the pool plan reads: the backups (written to the pair), else the masters.
  const pool = bs.length > 0 ? bs : ms;
  for (let i = 0; i < 100 && await items(pool) < n; i++) await sleep(50);
  assert.is(await items(pool), n, 'curr_items over the pool plan reads');
  return { masters: ms, backups: bs, proxy, admin, keys, distribution };
}

async function items(pool: Proc[]): Promise<number> {
  let sum = 0;
  for (const p of pool) {
    const c = await WireClient.connect(p.port);
    try {
      c.write('stats\r\n');
      const text = (await c.readUntil((b) => b.toString('latin1').endsWith('END\r\n'), 3000)).toString('latin1');
      sum += Number(/STAT curr_items (\d+)/.exec(text)![1]);
    } finally {
      c.close();
    }
  }
  return sum;
}

test.before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'mcrelay-plan-'));
  J = await startOne('jump', 4, 2, 'pj', 4000);
  M = await startOne('magent', 3, 0, 'pm', 1500);
  spare = await startMemcached();
  procs.push(spare);
});

test.after(async () => {
  await Promise.all(procs.map((p) => p.stop()));
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
});

interface Layout { distribution: Distribution; masters: string[]; backups: string[] }

const layoutOf = (c: Cluster): Layout => ({ distribution: c.distribution, masters: c.masters.map((p) => p.addr), backups: c.backups.map((p) => p.addr) });

let files = 0;
function configFile(l: Layout): string {
  const f = path.join(dir, `c${files++}.yml`);
  const list = (xs: string[]): string => `[${xs.map((x) => `"${x}"`).join(', ')}]`;
  writeFileSync(f, `switch_delay_seconds: 0\ndistribution: ${l.distribution}\nmasters: ${list(l.masters)}\n${l.backups.length > 0 ? `backups: ${list(l.backups)}\n` : ''}`);
  return f;
}

function plan(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, 'plan', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('exit', (code) => { clearTimeout(timer); resolve({ code, out, err }); });
  });
}

async function planJson(args: string[]): Promise<Plan> {
  const r = await plan([...args, '--json']);
  assert.is(r.code, 0, r.err);
  assert.is(r.err, '');
  return JSON.parse(r.out) as Plan;
}

interface Row { server: string; status: string; now: number; gain: number; lose: number; after: number }

/** The test's own count: each key routed by both layouts, by server name. */
function expected(keys: string[], cur: Layout, next: Layout): { masters: Row[]; mastersMoved: number; backups: Row[]; backupsMoved: number } {
  const a = new Router(cur.distribution, cur.masters, cur.backups);
  const b = new Router(next.distribution, next.masters, next.backups);
  const count = (was: string[], will: string[], pick: (r: Router) => number): { rows: Row[]; moved: number } => {
    const names = [...will, ...was.filter((s) => !will.includes(s))];
    const rows = new Map(names.map((s) => [s, {
      server: s, status: !was.includes(s) ? 'new' : !will.includes(s) ? 'removed' : 'kept', now: 0, gain: 0, lose: 0, after: 0,
    }]));
    let moved = 0;
    for (const k of keys) {
      const buf = Buffer.from(k, 'latin1');
      a.route(buf, 0, buf.length);
      b.route(buf, 0, buf.length);
      const from = was[pick(a)];
      const to = will[pick(b)];
      if (from !== undefined) rows.get(from)!.now++;
      if (from === to) continue;
      moved++;
      if (from !== undefined) rows.get(from)!.lose++;
      if (to !== undefined) rows.get(to)!.gain++;
    }
    for (const r of rows.values()) r.after = r.now + r.gain - r.lose;
    return { rows: [...rows.values()], moved };
  };
  const m = count(cur.masters, next.masters, (r) => r.master);
  const bk = count(cur.backups, next.backups, (r) => r.backup);
  return { masters: m.rows, mastersMoved: m.moved, backups: bk.rows, backupsMoved: bk.moved };
}

function total(rows: Row[]): { now: number; gain: number; lose: number; after: number } {
  const sum = (f: (r: Row) => number): number => rows.reduce((n, r) => n + f(r), 0);
  return { now: sum((r) => r.now), gain: sum((r) => r.gain), lose: sum((r) => r.lose), after: sum((r) => r.after) };
}

/** The plan's figures equal the test's count, exactly, for both pools. */
function assertExact(p: Plan, keys: string[], cur: Layout, next: Layout): ReturnType<typeof expected> {
  const want = expected(keys, cur, next);
  assert.ok(p.exact, 'a full count');
  assert.equal(p.unreadable, []);
  assert.is(p.masters.keys, keys.length, 'keys counted');
  assert.equal(p.masters.servers, want.masters, 'masters');
  assert.equal(p.masters.total, total(want.masters), 'masters added up');
  assert.is(p.masters.moved, want.mastersMoved, 'keys that change master');
  assert.is(p.masters.fraction, want.mastersMoved / keys.length);
  if (cur.backups.length + next.backups.length === 0) assert.is(p.backups, null);
  else {
    assert.equal(p.backups!.servers, want.backups, 'backups');
    assert.equal(p.backups!.total, total(want.backups), 'backups added up');
    assert.is(p.backups!.moved, want.backupsMoved, 'keys that change backup');
  }
  // Read from the current backups (else masters): every key once, none stray.
  const sources = cur.backups.length > 0 ? cur.backups : cur.masters;
  assert.equal(p.sources.map((s) => s.server), sources);
  assert.is(p.sources.reduce((n, s) => n + s.counted, 0), keys.length);
  assert.ok(p.sources.every((s) => s.complete && s.strays === 0 && s.error === null && s.read === s.counted));
  return want;
}

test('a fifth master added to 4 (jump), read via --current: exact per-server counts, about 1/5 of the keys move, only to the new one', async () => {
  const cur = layoutOf(J);
  const next = { ...cur, masters: [...cur.masters, spare.addr] };
  const p = await planJson(['--config', configFile(next), '--current', configFile(cur)]);
  const want = assertExact(p, J.keys, cur, next);
  assert.is(p.keysFrom, 'backups');
  const fraction = want.mastersMoved / J.keys.length;
  assert.ok(fraction > 0.15 && fraction < 0.25, `jump 4 -> 5 moves ${fraction}`);
  // Jump moves keys only onto the added server.
  assert.equal(p.masters.servers.map((s) => s.gain), [0, 0, 0, 0, want.mastersMoved]);
  assert.is(p.masters.servers[4]!.status, 'new');
  assert.is(p.backups!.moved, 0, 'the backups do not change');
});

test('the same via the running mcrelay admin listener (GET /config): the same figures; the text table shows them', async () => {
  const cur = layoutOf(J);
  const next = { ...cur, masters: [...cur.masters, spare.addr] };
  const newFile = configFile(next);
  const byAdmin = await planJson(['--config', newFile, '--admin', J.admin]);
  const byFile = await planJson(['--config', newFile, '--current', configFile(cur)]);
  assert.equal(byAdmin.current, { ...byFile.current, from: `admin listener ${J.admin}` });
  assert.equal(byAdmin.masters, byFile.masters);
  assert.equal(byAdmin.backups, byFile.backups);
  assertExact(byAdmin, J.keys, cur, next);

  const text = await plan(['--config', newFile, '--admin', J.admin]);
  assert.is(text.code, 0, text.err);
  const want = expected(J.keys, cur, next);
  const lines = text.out.split('\n');
  const row = (r: Row): string => `${r.server.padEnd(15)}${[r.now, r.gain, r.lose, r.after].map((n) => String(n).padStart(9)).join('')}${r.status === 'kept' ? '' : `  ${r.status}`}`;
  assert.is(lines[0], `current: 4 masters, 2 backups, jump (admin listener ${J.admin})`);
  assert.is(lines[1], `new:     5 masters, 2 backups, jump (file ${newFile})`);
  assert.is(lines[2], 'keys:    4000 counted on the current 2 backups: a full count');
  const masterTable = lines.indexOf(`${'masters'.padEnd(15)}${['now', 'gain', 'lose', 'after'].map((h) => h.padStart(9)).join('')}`);
  assert.ok(masterTable > 0, text.out);
  assert.equal(lines.slice(masterTable + 1, masterTable + 6), want.masters.map(row));
  const moved = want.mastersMoved;
  assert.is(lines[masterTable + 6], `${'total'.padEnd(15)}${[4000, moved, moved, 4000].map((n) => String(n).padStart(9)).join('')}`);
  assert.ok(lines.includes(`4000 keys: ${moved} (${(moved / 40).toFixed(1)}%) move to another master, 0 (0.0%) to another backup`), text.out);
});

test('a master removed (m1 of 4): exact counts; it is listed as removed and holds nothing after', async () => {
  const cur = layoutOf(J);
  const next = { ...cur, masters: cur.masters.filter((_, i) => i !== 1) };
  const p = await planJson(['--config', configFile(next), '--admin', J.admin]);
  const want = assertExact(p, J.keys, cur, next);
  const removed = p.masters.servers.find((s) => s.server === cur.masters[1])!;
  assert.is(removed.status, 'removed');
  assert.is(removed.after, 0);
  assert.ok(removed.now > 0);
  // Jump over the 3 left re-numbers their buckets: more than m1's keys move.
  assert.ok(want.mastersMoved > removed.now, `${want.mastersMoved} move, m1 held ${removed.now}`);
});

test('a backup added (2 -> 3): the backup table counts what moves; no master changes', async () => {
  const cur = layoutOf(J);
  const next = { ...cur, backups: [...cur.backups, spare.addr] };
  const p = await planJson(['--config', configFile(next), '--admin', J.admin]);
  const want = assertExact(p, J.keys, cur, next);
  assert.is(p.masters.moved, 0);
  assert.ok(want.backupsMoved > 0.25 * J.keys.length && want.backupsMoved < 0.42 * J.keys.length, `${want.backupsMoved}`);
  assert.is(p.backups!.servers[2]!.gain, want.backupsMoved);
});

test('magent -> jump on the same 3 masters without backups: keys read from the masters, exact counts, most move', async () => {
  const cur = layoutOf(M);
  const next = { ...cur, distribution: 'jump' as const };
  for (const current of [['--admin', M.admin], ['--current', configFile(cur)]]) {
    const p = await planJson(['--config', configFile(next), ...current]);
    assert.is(p.keysFrom, 'masters');
    const want = assertExact(p, M.keys, cur, next);
    assert.ok(want.mastersMoved > 0.5 * M.keys.length, `${want.mastersMoved} of ${M.keys.length}`);
    assert.is(p.current.distribution, 'magent');
    assert.is(p.new.distribution, 'jump');
  }
});

test('--sample N: N keys read per backup, scaled by its curr_items to an estimate; the output says so', async () => {
  const cur = layoutOf(J);
  const next = { ...cur, masters: [...cur.masters, spare.addr] };
  const newFile = configFile(next);
  const p = await planJson(['--config', newFile, '--admin', J.admin, '--sample', '300']);
  assert.is(p.exact, false);
  assert.is(p.sample, 300);
  const onBackups = await Promise.all(J.backups.map((b) => items([b])));
  assert.equal(p.sources.map((s) => [s.read, s.counted, s.items, s.complete]), onBackups.map((n) => [300, 300, n, false]));
  // 300 of each backup's n keys, each scaled by n / 300: the estimate of all keys is exact.
  assert.is(p.masters.keys, J.keys.length);
  assert.equal([p.masters.total.now, p.masters.total.after], [J.keys.length, J.keys.length], 'added up before rounding');
  const real = expected(J.keys, cur, next).mastersMoved / J.keys.length;
  assert.ok(Math.abs(p.masters.fraction - real) < 0.08, `sampled ${p.masters.fraction}, real ${real}`);
  const text = await plan(['--config', newFile, '--admin', J.admin, '--sample', '300']);
  assert.is(text.code, 0, text.err);
  assert.match(text.out, 'keys:    600 counted on the current 2 backups, up to 300 per server: scaled to about 4000, an estimate');
  assert.match(text.out, /^about 4000 keys: about \d+ \(\d+\.\d%\) move to another master/m);
  assert.match(text.out, new RegExp(`^total {10}${'4000'.padStart(9)} +\\d+ +\\d+${'4000'.padStart(9)}$`, 'm'));
  // A sample larger than a server holds is its full count.
  const all = await planJson(['--config', newFile, '--admin', J.admin, '--sample', '100000']);
  assertExact(all, J.keys, cur, next);
});

test('a backup that cannot be read: named, exit 1, the other one counted', async () => {
  const cur = layoutOf(J);
  const closed = `127.0.0.1:${await freePort()}`;
  const broken = { ...cur, backups: [cur.backups[0]!, closed] };
  const r = await plan(['--config', configFile(cur), '--current', configFile(broken), '--json']);
  assert.is(r.code, 1, r.err);
  assert.is(r.err, `mcrelay plan: cannot read ${closed} (ECONNREFUSED): its keys are not counted\n`);
  const p = JSON.parse(r.out) as Plan;
  assert.equal(p.unreadable, [closed]);
  // The keys of backup 0 under the broken layout (where b0 is still backup 0 of 2).
  const a = new Router('jump', broken.masters, broken.backups);
  const mine = J.keys.filter((k) => { const b = Buffer.from(k, 'latin1'); a.route(b, 0, b.length); return a.backup === 0; });
  assert.is(p.masters.keys, mine.length);
  assert.is(p.sources[0]!.counted, mine.length);
  const text = await plan(['--config', configFile(cur), '--current', configFile(broken)]);
  assert.is(text.code, 1);
  assert.match(text.out, `keys:    ${mine.length} counted on 1 of the current 2 backups: a full count\nnot read: ${closed} (ECONNREFUSED); only what was read is counted`);
});

test('an admin listener that does not answer: exit 1, named', async () => {
  const closed = `127.0.0.1:${await freePort()}`;
  const r = await plan(['--config', configFile(layoutOf(J)), '--admin', closed]);
  assert.is(r.code, 1);
  assert.is(r.out, '');
  assert.match(r.err, new RegExp(`^mcrelay plan: admin listener ${closed}: connect ECONNREFUSED [^\\n]*\\n$`));
});

test('bad usage: exit 2, one line naming the problem, nothing read', async () => {
  const good = configFile(layoutOf(J));
  const missing = path.join(dir, 'missing.yml');
  const noMasters = path.join(dir, 'no-masters.yml');
  writeFileSync(noMasters, 'workers: 2\n');
  const cases: Array<[string[], string]> = [
    [[], '--config NEW.yml is required'],
    [['--config', missing], `--config ${missing}: cannot read the config file: no such file`],
    [['--config', good, '--current', missing], `--current ${missing}: cannot read the config file: no such file`],
    [['--config', noMasters, '--current', good], `--config ${noMasters}: at least one master server`],
    [['--config', good, '--bogus'], "unknown option '--bogus'"],
    [['--config', good, 'extra'], "unexpected argument 'extra'"],
    [['--config', good, '--sample', '0'], "invalid value '0' for --sample"],
    [['--config', good, '--sample', 'x'], "invalid value 'x' for --sample"],
    [['--config', good, '--current', good, '--admin', J.admin], '--current and --admin both name the current placement'],
    [['--config', good, '--admin', 'nowhere'], "--admin wants HOST:PORT, got 'nowhere'"],
    [['--config'], '--config wants a value'],
  ];
  for (const [args, problem] of cases) {
    const r = await plan(args);
    assert.is(r.code, 2, `${args.join(' ')}: ${r.err}`);
    assert.is(r.out, '');
    assert.ok(r.err.startsWith(`mcrelay plan: ${problem}`), `${args.join(' ')}: ${r.err}`);
    assert.is(r.err.split('\n').length, 2, `one line: ${r.err}`);
  }
  const help = await plan(['--help']);
  assert.is(help.code, 0);
  assert.match(help.out, /^usage: mcrelay plan --config NEW\.yml/);
});

test('GET /config of the running mcrelays: their lists and distribution as configured', async () => {
  for (const c of [J, M]) {
    const res = await fetch(`http://${c.admin}/config`);
    assert.is(res.status, 200);
    assert.equal(await res.json(), layoutOf(c));
  }
  // The data port is unaffected by all the dumps above.
  const w = await WireClient.connect(J.proxy.port);
  try {
    assert.is((await roundTrip(w, `get ${J.keys[1]}\r\n`)).values[0]?.data.toString('latin1'), `v-${J.keys[1]}`);
  } finally {
    w.close();
  }
});

test('GET /config follows a reload (SIGHUP): the plan of the next change starts from what runs now', async () => {
  const before = { distribution: 'magent' as Distribution, masters: [M.masters[0]!.addr], backups: [] };
  const file = configFile(before);
  const admin = `127.0.0.1:${await freePort()}`;
  const proxy = await startProxy(['--config', file, '--admin', admin, '--workers', '1']);
  procs.push(proxy);
  assert.equal(await (await fetch(`http://${admin}/config`)).json(), before);
  const after = { distribution: 'jump' as Distribution, masters: M.masters.map((m) => m.addr), backups: [spare.addr] };
  writeFileSync(file, readFileSync(configFile(after)));
  proxy.signal('SIGHUP');
  assert.ok(await proxy.waitForOutput('configuration reloaded', 10_000), proxy.output);
  assert.equal(await (await fetch(`http://${admin}/config`)).json(), after);
  // Planning the reloaded pool against itself: nothing moves (keys read from the spare, now its backup).
  const p = await planJson(['--config', file, '--admin', admin]);
  assert.equal(p.current.masters, after.masters);
  assert.is(p.keysFrom, 'backups');
  assert.is(p.masters.moved, 0);
  assert.is(p.backups!.moved, 0);
});

test.run();
