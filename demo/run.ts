// npm run demo: the deployment of DESIGN.md on loopback, with real memcached
// servers, under a small steady load; a master is killed, then restarted empty,
// and the terminal shows second by second what the clients saw and which server
// answered, so that the failover and the warm recovery can be watched.
//
//   clients --> entry 1 (mcrelay)  entry 2 (mcrelay)     identical flags
//                 -s m1 -s m2 -s m3 -s m4 -b <backup relay>
//               m1 m2 m3 m4 (memcached)      backup relay (mcrelay -s b1 -s b2)
//                                               b1 b2 (memcached)
//
// Every process it starts is stopped by its PID when it ends, on Ctrl-C and on
// an exception (demo/processes.ts).
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  Child, freePort, HOST, killAllNow, memcachedAvailable, setLogDir, startedPids, startMemcached, startProxy, stopAll, waitForPort,
  watchUnexpectedExits,
} from './processes.js';
import { Load } from './load.js';
import { StatsClient, type EntrySnapshot } from './stats.js';
import { header, LEGEND, narrative, paint, row, type Colors, type MasterColumn } from './display.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const CLI = path.resolve(here, '../src/cli.js');

const USAGE = `Usage: npm run demo -- [options]

Starts 6 memcached servers (4 masters, 2 backups), a backup mcrelay in front of
the 2 backups and 2 identical entry mcrelays in front of the masters, all on
127.0.0.1; drives a steady load through the entries; kills a master with kill -9
and later restarts it empty; prints what happens second by second. Ctrl-C stops
everything it started.

Options:
  --seconds N       how long the load runs (default 40)
  --kill-at S       when the master is killed, seconds into the load (default 8)
  --restart-at S    when it is restarted, empty (default 16)
  --master N        which master, 1..4 (default 2)
  --rate N          requests per second, over both entries (default 200)
  --keys N          key space, all set before the load starts (default 2000)
  --set-ratio R     share of the requests that are sets (default 0.1)
  --memcached PATH  the memcached binary (default: $MEMCACHED or memcached on PATH)
  --log-dir DIR     also append each process's output (mcrelay's JSON log lines)
                    to DIR/<name>.log
  --no-color        plain text even on a terminal
  -h, --help        this text
`;

interface Options {
  seconds: number;
  killAt: number;
  restartAt: number;
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
  const o: Options = {
    seconds: num('seconds', values.seconds, 40, 3, 3600, true),
    killAt: num('kill-at', values['kill-at'], 8, 0.5, 3600, false),
    restartAt: num('restart-at', values['restart-at'], 16, 1, 3600, false),
    master: num('master', values.master, 2, 1, 4, true),
    rate: num('rate', values.rate, 200, 1, 5000, true),
    keys: num('keys', values.keys, 2000, 1, 1_000_000, true),
    setRatio: num('set-ratio', values['set-ratio'], 0.1, 0, 1, false),
    memcached: values.memcached ?? process.env['MEMCACHED'] ?? 'memcached',
    logDir: values['log-dir'] ?? null,
    color: values['no-color'] !== true && process.stdout.isTTY === true && process.env['NO_COLOR'] === undefined,
  };
  if (!(o.killAt < o.restartAt && o.restartAt < o.seconds)) {
    usageError(`want --kill-at (${o.killAt}) < --restart-at (${o.restartAt}) < --seconds (${o.seconds})`);
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
// The last resort: whatever is still running dies with the demo.
process.on('exit', killAllNow);

// ---- the run ----

interface Cluster {
  masters: Child[];
  backups: Child[];
  relay: Child;
  entries: Child[];
  adminPorts: number[];
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

  const masters = masterPorts.map((p, i) => startMemcached(o.memcached, `master ${i + 1}`, p));
  const backups = backupPorts.map((p, i) => startMemcached(o.memcached, `backup ${i + 1}`, p));
  for (const c of [...masters, ...backups]) await waitForPort(c, 5000);
  checkpoint();

  const relayFlags = [...backups.flatMap((b) => ['-s', b.addr]), ...COMMON_FLAGS, '--admin', 'off'];
  const relay = startProxy(CLI, 'backup relay', relayPort, relayFlags);
  await waitForPort(relay, 15_000);
  checkpoint();

  const entryFlags = [...masters.flatMap((m) => ['-s', m.addr]), '-b', relay.addr, ...COMMON_FLAGS];
  const entries = entryPorts.map((p, i) => startProxy(CLI, `entry ${i + 1}`, p, [...entryFlags, '--admin', `${HOST}:${adminPorts[i]}`]));
  for (const e of entries) await waitForPort(e, 15_000);
  checkpoint();

  const c = (s: string): string => paint({ enabled: o.color }, 'dim', s);
  for (const m of masters) out(`  ${m.name.padEnd(13)} memcached  ${m.addr.padEnd(16)} pid ${m.pid}`);
  for (const b of backups) out(`  ${b.name.padEnd(13)} memcached  ${b.addr.padEnd(16)} pid ${b.pid}`);
  out(`  ${relay.name.padEnd(13)} mcrelay    ${relay.addr.padEnd(16)} pid ${relay.pid}   ${c('-s backup 1 -s backup 2')}`);
  for (const [i, e] of entries.entries()) {
    out(`  ${e.name.padEnd(13)} mcrelay    ${e.addr.padEnd(16)} pid ${e.pid}   ${c(`-s master 1..4 -b backup relay, admin ${HOST}:${adminPorts[i]}`)}`);
  }
  out(c(`  entry command: node dist/src/cli.js -l ${HOST} -p <port> ${entryFlags.join(' ')} --admin ${HOST}:<port>`));
  return { masters, backups, relay, entries, adminPorts };
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
  warmFills: number;
}

async function run(o: Options): Promise<void> {
  const colors: Colors = { enabled: o.color };
  const out = (s: string): void => { process.stdout.write(`${s}\n`); };
  const k = o.master - 1;
  const started = performance.now();
  const at = (): number => (performance.now() - loadStart) / 1000;
  let loadStart = started;

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
      `over both entries for ${o.seconds} s; kill -9 master ${o.master} at ${o.killAt} s, restart it empty at ${o.restartAt} s. ` +
      'Ctrl-C stops everything.\n');
    for (const line of LEGEND) out(paint(colors, 'dim', line));
    out('');

    let prev = await Promise.all(stats.map((s) => s.poll(2000)));
    const masterAddrs = cluster.masters.map((m) => m.addr);
    const servers = [...masterAddrs, cluster.relay.addr];
    const prevState = stats.map(() => new Map<string, string>());
    for (const [e, snap] of prev.entries()) for (const a of servers) prevState[e]!.set(a, snap?.servers.get(a)?.state ?? '?');
    const restoreSeen = stats.map(() => new Map<string, string>());
    let restored = 0;

    const totals: Totals = { gets: 0, hits: 0, errors: 0, dropped: 0, skipped: 0, outageFailover: 0, outageGets: 0, outageHits: 0, warmFills: 0 };
    let killed = false;
    let restarted = false;

    // ---- the two events ----
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

    // ---- second by second ----
    load.start();
    loadStart = performance.now();
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
      // The eager restore, as the entry that copies reports it.
      for (const [e, snap] of snaps.entries()) {
        for (const [m, a] of masterAddrs.entries()) {
          const v = snap?.servers.get(a);
          if (v === undefined || v.restoreState === (restoreSeen[e]!.get(a) ?? 'idle')) continue;
          restoreSeen[e]!.set(a, v.restoreState);
          restored = Math.max(restored, v.restoreCopied);
          if (v.restoreState === 'running' && v.restoreCopied === 0 && e > 0) continue;
          out(narrative(colors, at(), `master ${m + 1} restore ${v.restoreState} (entry ${e + 1}): ${v.restoreCopied} keys copied back from the backup relay, ` +
            'read or not, so it stays warm after warm-up ends', 'cyan'));
        }
      }
      for (const [key, entries] of changes) {
        const [addr, from, to] = key.split('\n') as [string, string, string];
        const who = `${entries.length === stats.length ? 'both entries' : `entry ${entries.join('+')}`}`;
        const m = masterAddrs.indexOf(addr);
        const name = m >= 0 ? `master ${m + 1}` : 'backup relay';
        out(narrative(colors, at(), describe(name, m >= 0, from, to, who), to === 'up' ? 'green' : to === 'down' ? 'red' : 'cyan'));
      }

      const masters: MasterColumn[] = masterAddrs.map((a) => ({
        states: snaps.map((s) => s?.servers.get(a)?.state ?? '?'),
        requestsPerSecond: sumDelta(snaps, prev, a, 'requests'),
      }));
      let failover = 0;
      let fills = 0;
      for (const a of masterAddrs) {
        failover += sumDelta(snaps, prev, a, 'backupReads');
        fills += sumDelta(snaps, prev, a, 'warmFills');
      }
      const backupRequests = sumDelta(snaps, prev, cluster.relay.addr, 'requests');
      for (const [i, s] of snaps.entries()) if (s !== null) prev[i] = s;

      totals.gets += w.gets;
      totals.hits += w.hits;
      totals.errors += w.errors;
      totals.dropped += w.dropped;
      totals.skipped += w.skipped;
      totals.warmFills += fills;
      if (killed && !restarted) {
        totals.outageFailover += failover;
        totals.outageGets += w.gets;
        totals.outageHits += w.hits;
      }
      if ((second - 1) % 20 === 0) out(header(colors, masterAddrs.length));
      out(row(colors, {
        second, ops: w.gets + w.sets + w.errors, gets: w.gets, hits: w.hits, errors: w.errors + w.dropped,
        masters, backupRequests, failoverReads: failover, warmFills: fills,
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
    out('');
    out(paint(colors, 'bold', `Summary over ${o.seconds} s:`));
    out(`  ${totals.gets} gets, ${pct(totals.hits, totals.gets)} hits; ${totals.errors} error replies, ` +
      `${totals.dropped} requests lost with a connection${totals.skipped > 0 ? `, ${totals.skipped} not sent (backlog)` : ''}`);
    out(`  while master ${o.master} was down (${o.killAt}-${o.restartAt} s): ${totals.outageFailover} reads of its keys answered by the backup; ` +
      `hits ${pct(totals.outageHits, totals.outageGets)}`);
    out(`  after it came back empty: ${totals.warmFills} keys it missed were read from the backup and copied into it; ` +
      'without warm-up (magent) each of those reads would have been a miss');
    out(`  and ${restored} keys were restored into it eagerly (lru_crawler metadump of the backup servers), ` +
      'so keys nobody read during warm-up still hit after it');
  } finally {
    for (const t of timers) clearTimeout(t);
    load.close();
    for (const s of stats) s.close();
  }
}

function describe(name: string, isMaster: boolean, from: string, to: string, who: string): string {
  if (to === 'down') {
    return isMaster
      ? `${who} marked ${name} DOWN: reads of its keys now go to the backup relay, writes to the backup only`
      : `${who} marked the ${name} DOWN: no backup copies until it returns`;
  }
  if (to === 'recovering') return `${name} answers again (${who}): recovering — values that may be stale are cleared on it before it serves reads`;
  if (to === 'warming') return `${name} back: warming (${who}) — it serves reads again; its misses are filled from the backup`;
  if (to === 'up' && from === 'warming') {
    return `${name} warm: up (${who}) — warm-up over (after --warmup-seconds, or sooner once under 1% of its reads ` +
      'needed the backup, and no sooner than its restore); every key the backup had is on it again';
  }
  if (to === 'up') return `${name} up (${who})`;
  return `${name}: ${from} -> ${to} (${who})`;
}

function sumDelta(now: Array<EntrySnapshot | null>, before: Array<EntrySnapshot | null>, addr: string,
  field: 'requests' | 'backupReads' | 'warmFills'): number {
  let s = 0;
  for (let i = 0; i < now.length; i++) {
    const a = now[i]?.servers.get(addr)?.[field];
    const b = before[i]?.servers.get(addr)?.[field];
    if (a !== undefined && b !== undefined && a >= b) s += a - b;
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
  process.stdout.write(`Stopped every process the demo started (pids ${startedPids.join(' ')}).\n`);
}
process.exit(exitCode);
