// npm run demo: the deployment of DESIGN.md on loopback, with real memcached
// servers, under a small steady load; a master is killed, then restarted empty,
// and later a fifth master is added to the pool; the terminal shows second by
// second what the clients saw and which server answered, so that the failover,
// the warm recovery and the placement change can be watched.
//
//   clients --> entry 1 (mcrelay)  entry 2 (mcrelay)     identical config files
//                 --config entry-N.yml: masters m1..m4, backups [backup relay]
//               m1 m2 m3 m4 (memcached)      backup relay (mcrelay -s b1 -s b2)
//               (+ m5, added later)             b1 b2 (memcached)
//
// The masters and the backup are in each entry's config file (a temp dir, removed
// at the end), not in flags: SIGHUP re-reads the file but the same flags, so only
// a file can change the pool. To add master 5 the demo starts it, rewrites both
// files with 5 masters and sends SIGHUP to entry 1, then 1 s later to entry 2;
// both switch at the time the first one set (switch_delay_seconds: 3).
//
// Every process it starts is stopped by its PID when it ends, on Ctrl-C and on
// an exception (demo/processes.ts).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  Child, freePort, HOST, killAllNow, memcachedAvailable, setLogDir, startedPids, startMemcached, startProxy, stopAll, waitForPort,
  watchUnexpectedExits,
} from './processes.js';
import { keyName, Load } from './load.js';
import { Router } from '../src/routing/router.js';
import { StatsClient, type EntrySnapshot } from './stats.js';
import { header, LEGEND, narrative, paint, row, type Colors, type MasterColumn } from './display.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const CLI = path.resolve(here, '../src/cli.js');

const USAGE = `Usage: npm run demo -- [options]

Starts 6 memcached servers (4 masters, 2 backups), a backup mcrelay in front of
the 2 backups and 2 identical entry mcrelays in front of the masters (their
masters and backup in a config file each), all on 127.0.0.1; drives a steady
load through the entries; kills a master with kill -9 and later restarts it
empty; then adds a fifth master: starts it, rewrites both config files with 5
masters and reloads the entries (SIGHUP, 1 s apart), which switch together 3 s
after the first reload while the keys that move to it are restored from the
backup; prints what happens second by second. Ctrl-C stops everything it started.

Options:
  --seconds N          how long the load runs (default 70)
  --kill-at S          when the master is killed, seconds into the load (default 8)
  --restart-at S       when it is restarted, empty (default 16)
  --add-master-at S    when master 5 is added (default 40, skipped when the run
                       ends sooner; 0: no master 5)
  --master N           which master is killed, 1..4 (default 2)
  --rate N             requests per second, over both entries (default 200)
  --keys N             key space, all set before the load starts (default 2000)
  --set-ratio R        share of the requests that are sets (default 0.1)
  --memcached PATH     the memcached binary (default: $MEMCACHED or memcached on PATH)
  --log-dir DIR        also append each process's output (mcrelay's JSON log lines)
                       to DIR/<name>.log
  --no-color           plain text even on a terminal
  -h, --help           this text
`;

const DEFAULT_ADD_MASTER_AT = 40;
/** switch_delay_seconds in the entries' config files: both reload within it, 1 s apart. */
const SWITCH_DELAY_SECONDS = 3;

interface Options {
  seconds: number;
  killAt: number;
  restartAt: number;
  /** when master 5 is added, or null: no fifth master */
  addMasterAt: number | null;
  /** why there is no fifth master although --add-master-at was not 0 ('' when there is one) */
  addSkipped: string;
  master: number;
  rate: number;
  keys: number;
  setRatio: number;
  memcached: string;
  logDir: string | null;
  color: boolean;
}

function usageError(msg: string): never {
  process.stderr.write(`demo: ${msg}\n\n${USAGE}`);
  process.exit(2);
}

function parseOptions(argv: string[]): Options {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        seconds: { type: 'string' },
        'kill-at': { type: 'string' },
        'restart-at': { type: 'string' },
        'add-master-at': { type: 'string' },
        master: { type: 'string' },
        rate: { type: 'string' },
        keys: { type: 'string' },
        'set-ratio': { type: 'string' },
        memcached: { type: 'string' },
        'log-dir': { type: 'string' },
        'no-color': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    usageError((e as Error).message);
  }
  if (values.help === true) { process.stdout.write(USAGE); process.exit(0); }
  const num = (name: string, v: string | undefined, dflt: number, min: number, max: number, integer: boolean): number => {
    if (v === undefined) return dflt;
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) {
      usageError(`--${name} ${v}: want ${integer ? 'an integer' : 'a number'} from ${min} to ${max}`);
    }
    return n;
  };
  const addMasterAt = num('add-master-at', values['add-master-at'], DEFAULT_ADD_MASTER_AT, 0, 3600, false);
  const o: Options = {
    seconds: num('seconds', values.seconds, 70, 3, 3600, true),
    killAt: num('kill-at', values['kill-at'], 8, 0.5, 3600, false),
    restartAt: num('restart-at', values['restart-at'], 16, 1, 3600, false),
    addMasterAt: addMasterAt === 0 ? null : addMasterAt,
    addSkipped: '',
    master: num('master', values.master, 2, 1, 4, true),
    rate: num('rate', values.rate, 200, 1, 5000, true),
    keys: num('keys', values.keys, 2000, 1, 1_000_000, true),
    setRatio: num('set-ratio', values['set-ratio'], 0.1, 0, 1, false),
    memcached: values.memcached ?? process.env['MEMCACHED'] ?? 'memcached',
    logDir: values['log-dir'] ?? null,
    color: values['no-color'] !== true && process.stdout.isTTY === true && process.env['NO_COLOR'] === undefined,
  };
  // The default add step is left out of a run too short for it (an explicit one is checked).
  if (values['add-master-at'] === undefined && o.addMasterAt !== null && !(o.restartAt < o.addMasterAt && o.addMasterAt < o.seconds)) {
    o.addSkipped = `no master 5: the run is too short for it at ${o.addMasterAt} s, the default --add-master-at`;
    o.addMasterAt = null;
  }
  if (o.addMasterAt === null && !(o.killAt < o.restartAt && o.restartAt < o.seconds)) {
    usageError(`want --kill-at (${o.killAt}) < --restart-at (${o.restartAt}) < --seconds (${o.seconds})`);
  }
  if (o.addMasterAt !== null && !(o.killAt < o.restartAt && o.restartAt < o.addMasterAt && o.addMasterAt < o.seconds)) {
    usageError(`want --kill-at (${o.killAt}) < --restart-at (${o.restartAt}) < --add-master-at (${o.addMasterAt}) < --seconds (${o.seconds})`);
  }
  return o;
}

// ---- stopping ----

/** Aborted by Ctrl-C (or SIGTERM, SIGHUP) and by a failure: the run ends and cleans up. */
const stop = new AbortController();
let exitCode = 0;
let stopReason = '';

function halt(code: number, why: string): void {
  if (stop.signal.aborted) return;
  exitCode = code;
  stopReason = why;
  stop.abort();
}

/** Sleeps until the time (performance.now() ms) or until the run is stopped. */
function sleepUntil(at: number): Promise<void> {
  return new Promise((resolve) => {
    if (stop.signal.aborted) { resolve(); return; }
    const t = setTimeout(done, Math.max(0, at - performance.now()));
    function done(): void { clearTimeout(t); stop.signal.removeEventListener('abort', done); resolve(); }
    stop.signal.addEventListener('abort', done);
  });
}

function checkpoint(): void {
  if (stop.signal.aborted) throw new Stopped();
}

class Stopped extends Error {}

const SIGNAL_NUMBERS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 };
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    if (stop.signal.aborted) {
      // A second Ctrl-C: no more waiting.
      killAllNow();
      process.exit(128 + SIGNAL_NUMBERS[sig]!);
    }
    halt(128 + SIGNAL_NUMBERS[sig]!, sig === 'SIGINT' ? 'Ctrl-C' : sig);
  });
}
// The last resort: whatever is still running dies with the demo, and the config files go.
process.on('exit', () => { killAllNow(); removeConfigDir(); });

// ---- the entries' config files ----

/** The temp dir holding entry-N.yml, made by startCluster(), removed at the end. */
let configDir: string | null = null;

function removeConfigDir(): void {
  if (configDir === null) return;
  fs.rmSync(configDir, { recursive: true, force: true });
  configDir = null;
}

function entryConfigPath(entry: number): string {
  return path.join(configDir!, `entry-${entry + 1}.yml`);
}

/** Writes an entry's config file whole (a new file renamed over the old), so that a reload never reads half of one. */
function writeEntryConfig(entry: number, masters: string[], backup: string): void {
  const file = entryConfigPath(entry);
  const text = [
    `# entry ${entry + 1} of npm run demo (demo/run.ts); SIGHUP makes it read this file again`,
    'masters:', ...masters.map((a) => `  - ${a}`),
    'backups:', `  - ${backup}`,
    `switch_delay_seconds: ${SWITCH_DELAY_SECONDS}`,
    '',
  ].join('\n');
  fs.writeFileSync(`${file}.new`, text);
  fs.renameSync(`${file}.new`, file);
}

// ---- the run ----

interface Cluster {
  masters: Child[];
  backups: Child[];
  relay: Child;
  entries: Child[];
  adminPorts: number[];
  /** where master 5 listens once it is added */
  fifthPort: number;
}

const COMMON_FLAGS = ['--workers', '1', '--retry-interval', '500', '--timeout', '500', '--warmup-seconds', '20', '--drain-seconds', '1'];

async function startCluster(o: Options, out: (s: string) => void): Promise<Cluster> {
  const taken = new Set<number>();
  const masterPorts: number[] = [];
  for (let i = 0; i < 4; i++) masterPorts.push(await freePort(taken));
  const backupPorts = [await freePort(taken), await freePort(taken)];
  const relayPort = await freePort(taken);
  const entryPorts = [await freePort(taken), await freePort(taken)];
  const adminPorts = [await freePort(taken), await freePort(taken)];
  const fifthPort = await freePort(taken);

  const masters = masterPorts.map((p, i) => startMemcached(o.memcached, `master ${i + 1}`, p));
  const backups = backupPorts.map((p, i) => startMemcached(o.memcached, `backup ${i + 1}`, p));
  for (const c of [...masters, ...backups]) await waitForPort(c, 5000);
  checkpoint();

  const relayFlags = [...backups.flatMap((b) => ['-s', b.addr]), ...COMMON_FLAGS, '--admin', 'off'];
  const relay = startProxy(CLI, 'backup relay', relayPort, relayFlags);
  await waitForPort(relay, 15_000);
  checkpoint();

  // Masters and backup only in the file: a server list given by a flag would replace the file's, on every reload too.
  configDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcrelay-demo-'));
  for (let i = 0; i < entryPorts.length; i++) writeEntryConfig(i, masters.map((m) => m.addr), relay.addr);
  const entries = entryPorts.map((p, i) => startProxy(CLI, `entry ${i + 1}`, p,
    ['--config', entryConfigPath(i), ...COMMON_FLAGS, '--admin', `${HOST}:${adminPorts[i]}`]));
  for (const e of entries) await waitForPort(e, 15_000);
  checkpoint();

  const c = (s: string): string => paint({ enabled: o.color }, 'dim', s);
  for (const m of masters) out(`  ${m.name.padEnd(13)} memcached  ${m.addr.padEnd(16)} pid ${m.pid}`);
  for (const b of backups) out(`  ${b.name.padEnd(13)} memcached  ${b.addr.padEnd(16)} pid ${b.pid}`);
  out(`  ${relay.name.padEnd(13)} mcrelay    ${relay.addr.padEnd(16)} pid ${relay.pid}   ${c('-s backup 1 -s backup 2')}`);
  for (const [i, e] of entries.entries()) {
    out(`  ${e.name.padEnd(13)} mcrelay    ${e.addr.padEnd(16)} pid ${e.pid}   ${c(`masters 1..4, backup relay (entry-${i + 1}.yml), admin ${HOST}:${adminPorts[i]}`)}`);
  }
  out(c(`  entry command: node dist/src/cli.js -l ${HOST} -p <port> --config ${path.join(configDir, 'entry-<n>.yml')} ` +
    `${COMMON_FLAGS.join(' ')} --admin ${HOST}:<port>`));
  out(c(`  entry-<n>.yml: masters: [master 1..4], backups: [backup relay], switch_delay_seconds: ${SWITCH_DELAY_SECONDS}`));
  return { masters, backups, relay, entries, adminPorts, fifthPort };
}

interface Totals {
  gets: number;
  hits: number;
  errors: number;
  dropped: number;
  skipped: number;
  outageFailover: number;
  outageGets: number;
  outageHits: number;
  /** keys copied into the restarted master on a miss */
  warmFills: number;
  /** from the add of master 5 to the end */
  changeGets: number;
  changeHits: number;
  changeErrors: number;
  /** keys copied into master 5 on a miss */
  fifthFills: number;
}

/** The index of master 5 in the master list. */
const FIFTH = 4;

/** How many of the demo's keys jump over the `to` masters places on another master than over `from`. */
function movedKeys(keys: number, from: readonly string[], to: readonly string[]): number {
  const before = new Router('jump', from, []);
  const after = new Router('jump', to, []);
  let n = 0;
  for (let i = 0; i < keys; i++) {
    const k = Buffer.from(keyName(i));
    before.route(k, 0, k.length);
    after.route(k, 0, k.length);
    if (before.master !== after.master) n++;
  }
  return n;
}

/** One of mcrelay's JSON log lines as an object; null for anything else. */
function logRecord(line: string): Record<string, unknown> | null {
  try {
    const v: unknown = JSON.parse(line);
    return typeof v === 'object' && v !== null ? v as Record<string, unknown> : null;
  } catch {
    return null;
  }
}

async function run(o: Options): Promise<void> {
  const colors: Colors = { enabled: o.color };
  const out = (s: string): void => { process.stdout.write(`${s}\n`); };
  const k = o.master - 1;
  const started = performance.now();
  const at = (): number => (performance.now() - loadStart) / 1000;
  let loadStart = started;
  let loadStartWall = Date.now();

  out(paint(colors, 'bold', `mcrelay demo: the deployment of DESIGN.md on ${HOST}`));
  watchUnexpectedExits((c, code, signal) => setTimeout(() => {
    // Ctrl-C in a terminal reaches the children too: an exit that comes with it is no surprise.
    if (stop.signal.aborted) return;
    out(paint(colors, 'red', `!! ${c.name} (pid ${c.pid}) exited unexpectedly (${signal ?? `status ${code}`}); its last output:`));
    out(c.output.trimEnd().split('\n').slice(-15).map((l) => `   ${l}`).join('\n'));
    halt(1, `${c.name} exited unexpectedly`);
  }, 200));
  const cluster = await startCluster(o, out);

  const load = new Load({
    ports: cluster.entries.map((e) => e.port),
    connectionsPerPort: 2,
    opsPerSecond: o.rate,
    keys: o.keys,
    setRatio: o.setRatio,
    onProblem: (msg) => out(narrative(colors, at(), msg, 'red')),
  });
  const stats = cluster.entries.map((e, i) => new StatsClient(e.port, cluster.adminPorts[i]!));
  const timers: NodeJS.Timeout[] = [];
  try {
    await load.connect();
    await load.prefill();
    checkpoint();
    out(`\nPre-filled ${o.keys} keys through the entries (each on its master and on the backup).`);
    out(`Load: ${o.rate} requests/s (${Math.round(100 * (1 - o.setRatio))}% get, ${Math.round(100 * o.setRatio)}% set) ` +
      `over both entries for ${o.seconds} s; kill -9 master ${o.master} at ${o.killAt} s, restart it empty at ${o.restartAt} s` +
      `${o.addMasterAt === null ? '' : `, add master 5 at ${o.addMasterAt} s`}. Ctrl-C stops everything.`);
    if (o.addSkipped !== '') out(paint(colors, 'dim', `(${o.addSkipped})`));
    out('');
    for (const line of LEGEND) out(paint(colors, 'dim', line));
    out('');

    let prev = await Promise.all(stats.map((s) => s.poll(2000)));
    const masterAddrs = cluster.masters.map((m) => m.addr);
    if (o.addMasterAt !== null) masterAddrs.push(`${HOST}:${cluster.fifthPort}`);
    const moved = o.addMasterAt === null ? 0 : movedKeys(o.keys, masterAddrs.slice(0, FIFTH), masterAddrs);
    const servers = [...masterAddrs, cluster.relay.addr];
    // '-': not in the entry's pool (master 5 until the switch).
    const prevState = stats.map(() => new Map<string, string>());
    for (const [e, snap] of prev.entries()) for (const a of servers) prevState[e]!.set(a, snap?.servers.get(a)?.state ?? '-');
    const restoreSeen = stats.map(() => new Map<string, string>());
    // restore_keys_copied of each entry's last restore of each master (a second entry may copy what the first did not).
    const copiedBy = stats.map(() => masterAddrs.map(() => 0));
    const restoredInto = (m: number): number => copiedBy.reduce((sum, entry) => sum + entry[m]!, 0);

    const totals: Totals = {
      gets: 0, hits: 0, errors: 0, dropped: 0, skipped: 0, outageFailover: 0, outageGets: 0, outageHits: 0, warmFills: 0,
      changeGets: 0, changeHits: 0, changeErrors: 0, fifthFills: 0,
    };
    let killed = false;
    let restarted = false;
    let added = false;
    /** when the entries switch to 5 masters, seconds into the load, as the first entry's log says */
    let switchAt = null as number | null;
    /** when each entry logged master 5 recovering (seconds into the load): mostly over before the next stats poll */
    const fifthRecovering = new Map<number, number>();

    // What the entries log about the reload (their stderr): the switch time they agreed on, and the switch.
    for (const [i, entry] of cluster.entries.entries()) {
      entry.onLogLine((line) => {
        const r = added && !stop.signal.aborted ? logRecord(line) : null;
        if (r === null) return;
        const msg = String(r['msg']);
        if (msg === 'placement change scheduled') {
          const when = (Date.parse(String(r['switchAt'])) - loadStartWall) / 1000;
          switchAt ??= when;
          const where = r['agreedOn'] === cluster.relay.addr ? 'the backup relay' : String(r['agreedOn']);
          out(narrative(colors, at(), `entry ${i + 1}: placement change scheduled, it switches at ${when.toFixed(1)} s (in ${String(r['inSeconds'])} s): ` +
            (r['first'] === true
              ? `the first to reload, it set that time in ${where} (now + switch_delay_seconds)`
              : `the time the first entry set in ${where}, so both switch together`), 'blue'));
        } else if (msg === 'server recovering: keys moved to it by a placement change' && r['server'] === masterAddrs[FIFTH]) {
          fifthRecovering.set(i, at());
        } else if (msg === 'configuration reloaded') {
          const n = Array.isArray(r['masters']) ? r['masters'].length : '?';
          out(narrative(colors, at(), `entry ${i + 1} switched to ${n} masters (configuration reloaded): the keys that moved are routed to master 5`, 'blue'));
        } else if (msg.startsWith('placement change') || msg.startsWith('reload')) {
          out(narrative(colors, at(), `entry ${i + 1}: ${msg}${r['error'] === undefined ? '' : `: ${String(r['error'])}`}`, 'red'));
        }
      });
    }

    // ---- the events ----
    const event = (seconds: number, fn: () => Promise<void>): void => {
      timers.push(setTimeout(() => {
        fn().catch((e: unknown) => {
          out(paint(colors, 'red', `!! ${(e as Error).message}`));
          halt(1, 'an event failed');
        });
      }, seconds * 1000));
    };
    event(o.killAt, async () => {
      if (stop.signal.aborted) return;
      const victim = cluster.masters[k]!;
      victim.expectedExit = true;
      victim.signal('SIGKILL');
      await victim.exited;
      killed = true;
      out(narrative(colors, at(), `killed master ${o.master} (${victim.addr}, pid ${victim.pid}) with kill -9: ` +
        'its cached data is gone; reads of its keys move to the backup', 'red'));
    });
    event(o.restartAt, async () => {
      if (stop.signal.aborted) return;
      const port = cluster.masters[k]!.port;
      const fresh = startMemcached(o.memcached, `master ${o.master}`, port);
      cluster.masters[k] = fresh;
      await waitForPort(fresh, 5000);
      restarted = true;
      out(narrative(colors, at(), `restarted master ${o.master} on ${fresh.addr} (pid ${fresh.pid}), empty; ` +
        'the entries probe it every 500 ms', 'red'));
    });
    if (o.addMasterAt !== null) {
      event(o.addMasterAt, async () => {
        if (stop.signal.aborted) return;
        const fifth = startMemcached(o.memcached, 'master 5', cluster.fifthPort);
        cluster.masters.push(fifth);
        await waitForPort(fifth, 5000);
        if (stop.signal.aborted) return;
        for (let i = 0; i < cluster.entries.length; i++) writeEntryConfig(i, masterAddrs, cluster.relay.addr);
        added = true;
        out(narrative(colors, at(), `added master 5 on ${fifth.addr} (pid ${fifth.pid}), empty, and wrote 5 masters into both entries' ` +
          `config files: ${moved} of the ${o.keys} keys (${pct(moved, o.keys)}) move to it, none between masters 1-4`, 'blue'));
        for (const [i, entry] of cluster.entries.entries()) {
          if (i > 0) await sleepUntil(performance.now() + 1000);
          if (stop.signal.aborted) return;
          entry.signal('SIGHUP');
          out(narrative(colors, at(), `reloaded entry ${i + 1} (kill -HUP ${entry.pid}): it reads entry-${i + 1}.yml again`, 'blue'));
        }
      });
    }

    // ---- second by second ----
    load.start();
    loadStart = performance.now();
    loadStartWall = Date.now();
    /** master columns in the table: the fifth from the switch on */
    let shown = FIFTH;
    let headerShown = 0;
    let rowsSinceHeader = 0;
    for (let second = 1; second <= o.seconds; second++) {
      await sleepUntil(loadStart + second * 1000);
      checkpoint();
      const w = load.take();
      const snaps = await Promise.all(stats.map((s) => s.poll(800)));
      checkpoint();

      // What changed state since the last second, grouped over the entries.
      const changes = new Map<string, number[]>();
      for (const [e, snap] of snaps.entries()) {
        for (const a of servers) {
          const now = snap?.servers.get(a)?.state;
          if (now === undefined) continue;
          const before = prevState[e]!.get(a)!;
          if (now === before) continue;
          prevState[e]!.set(a, now);
          const key = `${a}\n${before}\n${now}`;
          changes.set(key, [...(changes.get(key) ?? []), e + 1]);
        }
      }
      const whose = (entries: number[]): string => (entries.length === stats.length ? 'both entries' : `entry ${entries.join('+')}`);
      for (const [key, entries] of changes) {
        const [addr, from, to] = key.split('\n') as [string, string, string];
        const m = masterAddrs.indexOf(addr);
        const name = m >= 0 ? `master ${m + 1}` : 'backup relay';
        // Master 5 is swept in well under a second: its recovering is mostly known from the entries' logs only.
        if (m === FIFTH && from === '-' && to !== 'recovering' && fifthRecovering.size > 0) {
          const logged = [...fifthRecovering.keys()].sort().map((e) => e + 1);
          out(narrative(colors, Math.min(...fifthRecovering.values()), `${describe(name, true, true, '-', 'recovering', whose(logged))} (${logged.length > 1 ? 'their logs' : 'its log'})`, 'cyan'));
          fifthRecovering.clear();
          out(narrative(colors, at(), describe(name, true, true, 'recovering', to, whose(entries)), to === 'up' ? 'green' : 'cyan'));
          continue;
        }
        out(narrative(colors, at(), describe(name, m >= 0, m === FIFTH, from, to, whose(entries)), to === 'up' ? 'green' : to === 'down' ? 'red' : 'cyan'));
      }
      // The eager restore, as the entry that copies reports it.
      for (const [e, snap] of snaps.entries()) {
        for (const [m, a] of masterAddrs.entries()) {
          const v = snap?.servers.get(a);
          if (v === undefined) continue;
          copiedBy[e]![m] = Math.max(copiedBy[e]![m]!, v.restoreCopied);
          // A reload starts the counters afresh: 'idle' then says nothing about a restore that ended.
          if (v.restoreState === 'idle' || v.restoreState === (restoreSeen[e]!.get(a) ?? 'idle')) continue;
          restoreSeen[e]!.set(a, v.restoreState);
          if (v.restoreState === 'running' && v.restoreCopied === 0 && e > 0) continue;
          out(narrative(colors, at(), m === FIFTH
            ? `master 5 restore ${v.restoreState} (entry ${e + 1}): ${v.restoreCopied} keys copied onto it from the backup relay ` +
              '(only keys that moved to it), read or not'
            : `master ${m + 1} restore ${v.restoreState} (entry ${e + 1}): ${v.restoreCopied} keys copied back from the backup relay, ` +
              'read or not, so it stays warm after warm-up ends', 'cyan'));
        }
      }

      if (masterAddrs.length > shown && snaps.some((s) => s?.servers.has(masterAddrs[FIFTH]!) === true)) shown = masterAddrs.length;
      const masters: MasterColumn[] = masterAddrs.slice(0, shown).map((a) => ({
        states: snaps.map((s) => s?.servers.get(a)?.state ?? '?'),
        requestsPerSecond: sumDelta(snaps, prev, a, 'requests'),
      }));
      let failover = 0;
      for (const a of masterAddrs) failover += sumDelta(snaps, prev, a, 'backupReads');
      const fillsInto = masterAddrs.map((a) => sumDelta(snaps, prev, a, 'warmFills'));
      const backupRequests = sumDelta(snaps, prev, cluster.relay.addr, 'requests');
      for (const [i, s] of snaps.entries()) if (s !== null) prev[i] = s;

      totals.gets += w.gets;
      totals.hits += w.hits;
      totals.errors += w.errors;
      totals.dropped += w.dropped;
      totals.skipped += w.skipped;
      totals.warmFills += fillsInto[k]!;
      totals.fifthFills += fillsInto[FIFTH] ?? 0;
      if (killed && !restarted) {
        totals.outageFailover += failover;
        totals.outageGets += w.gets;
        totals.outageHits += w.hits;
      }
      if (o.addMasterAt !== null && second > o.addMasterAt) {
        totals.changeGets += w.gets;
        totals.changeHits += w.hits;
        totals.changeErrors += w.errors + w.dropped;
      }
      if (rowsSinceHeader % 20 === 0 || shown !== headerShown) {
        out(header(colors, shown));
        headerShown = shown;
        rowsSinceHeader = 0;
      }
      rowsSinceHeader++;
      out(row(colors, {
        second, ops: w.gets + w.sets + w.errors, gets: w.gets, hits: w.hits, errors: w.errors + w.dropped,
        masters, backupRequests, failoverReads: failover, warmFills: fillsInto.reduce((a, b) => a + b, 0),
      }));
      if (snaps.some((s) => s === null)) out(paint(colors, 'dim', '        (an entry did not answer stats within 800 ms)'));
    }

    // ---- summary ----
    load.stop();
    await load.settle(2000);
    const last = load.take();
    totals.gets += last.gets;
    totals.hits += last.hits;
    totals.errors += last.errors;
    totals.changeGets += last.gets;
    totals.changeHits += last.hits;
    totals.changeErrors += last.errors + last.dropped;
    out('');
    out(paint(colors, 'bold', `Summary over ${o.seconds} s:`));
    out(`  ${totals.gets} gets, ${pct(totals.hits, totals.gets)} hits; ${totals.errors} error replies, ` +
      `${totals.dropped} requests lost with a connection${totals.skipped > 0 ? `, ${totals.skipped} not sent (backlog)` : ''}`);
    out(`  while master ${o.master} was down (${o.killAt}-${o.restartAt} s): ${totals.outageFailover} reads of its keys answered by the backup; ` +
      `hits ${pct(totals.outageHits, totals.outageGets)}`);
    out(`  after it came back empty: ${totals.warmFills} keys it missed were read from the backup and copied into it; ` +
      'without warm-up (magent) each of those reads would have been a miss');
    out(`  and ${restoredInto(k)} keys were restored into it eagerly (lru_crawler metadump of the backup servers), ` +
      'so keys nobody read during warm-up still hit after it');
    if (o.addMasterAt !== null) {
      const switched = switchAt === null ? 'no switch seen' : `both entries switched at ${switchAt.toFixed(1)} s`;
      out(`  during the change (master 5 added at ${o.addMasterAt} s, ${switched}, to the end): ${totals.changeGets} gets, ` +
        `${pct(totals.changeHits, totals.changeGets)} hits, ${totals.changeErrors} errors or lost requests`);
      out(`  while ${moved} of the ${o.keys} keys (${pct(moved, o.keys)}) moved to master 5: ${restoredInto(FIFTH)} were restored onto it ` +
        `from the backup relay (restore_keys_copied), ${totals.fifthFills} copied into it on a miss`);
    }
  } finally {
    for (const t of timers) clearTimeout(t);
    load.close();
    for (const s of stats) s.close();
  }
}

function describe(name: string, isMaster: boolean, isNew: boolean, from: string, to: string, who: string): string {
  if (to === 'down') {
    return isMaster
      ? `${who} marked ${name} DOWN: reads of its keys now go to the backup relay, writes to the backup only`
      : `${who} marked the ${name} DOWN: no backup copies until it returns`;
  }
  if (to === 'recovering' && isNew) {
    return `${who} switched to 5 masters: ${name} is new and gains the keys that move to it; recovering — it takes their writes, ` +
      'their reads go to the backup relay until copies a placement change could leave stale are swept from it';
  }
  if (to === 'recovering') return `${name} answers again (${who}): recovering — values that may be stale are cleared on it before it serves reads`;
  if (to === 'warming' && isNew) {
    return `${name} serves its keys (${who}): warming — its misses are filled from the backup relay, and a restore copies ` +
      'the keys that moved to it from the backup relay';
  }
  if (to === 'warming') return `${name} back: warming (${who}) — it serves reads again; its misses are filled from the backup`;
  if (to === 'up' && from === 'warming') {
    return `${name} warm: up (${who}) — warm-up over (after --warmup-seconds, or sooner once under 1% of its reads ` +
      `needed the backup, and no sooner than its restore); ${isNew ? 'every key that moved to it is on it' : 'every key the backup had is on it again'}`;
  }
  if (to === 'up') return `${name} up (${who})`;
  return `${name}: ${from} -> ${to} (${who})`;
}

function sumDelta(now: Array<EntrySnapshot | null>, before: Array<EntrySnapshot | null>, addr: string,
  field: 'requests' | 'backupReads' | 'warmFills'): number {
  let s = 0;
  for (let i = 0; i < now.length; i++) {
    const a = now[i]?.servers.get(addr)?.[field];
    if (a === undefined) continue;
    // A server new to the entry, or counters a reload started afresh: all of it is new.
    const b = before[i]?.servers.get(addr)?.[field];
    s += b !== undefined && a >= b ? a - b : a;
  }
  return s;
}

function pct(n: number, d: number): string {
  return d === 0 ? '-' : `${((100 * n) / d).toFixed(2)}%`;
}

// ---- main ----

const opts = parseOptions(process.argv.slice(2));
if (!memcachedAvailable(opts.memcached)) {
  process.stderr.write(`demo: memcached is not installed (or "${opts.memcached}" does not run).\n` +
    'Install it, then run npm run demo again:\n' +
    '  Debian/Ubuntu:  sudo apt-get install memcached\n' +
    '  Fedora/RHEL:    sudo dnf install memcached\n' +
    '  macOS:          brew install memcached\n' +
    'or point the demo at a binary: npm run demo -- --memcached /path/to/memcached\n');
  process.exit(1);
}

if (opts.logDir !== null) setLogDir(opts.logDir);

process.on('uncaughtException', (e) => {
  process.stderr.write(`demo: ${e.stack ?? e.message}\n`);
  halt(1, 'an exception');
});

try {
  await run(opts);
} catch (e) {
  // After Ctrl-C, a failure on the way out (a child that died of the same signal) is no error.
  if (!(e instanceof Stopped) && !stop.signal.aborted) {
    process.stderr.write(`demo: ${(e as Error).stack ?? String(e)}\n`);
    exitCode = 1;
  }
} finally {
  if (stopReason !== '') process.stdout.write(`\nStopping (${stopReason}).\n`);
  await stopAll();
  removeConfigDir();
  process.stdout.write(`Stopped every process the demo started (pids ${startedPids.join(' ')}).\n`);
}
process.exit(exitCode);
