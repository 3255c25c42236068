// The placement line of the bench (issue 20): a reload that changes where keys
// live, magent's distribution to jump on 4 masters; how fast the moved keys are
// restored onto their new masters, and what that costs the clients.
//
//   4 memcached masters + 1 backup, mcrelay --workers 1 --config FILE
//     (distribution: magent, switch_delay_seconds: 0, restore at its default pace)
//   fill 100,000 keys through mcrelay -> headline load 5 s (before)
//   rewrite the file with distribution: jump, SIGHUP
//   headline load in 2 s runs until every master's restore is over (during)
//   -> keys moved (routed by both placements), keys restored (restore_keys_copied
//      summed over the masters), seconds from the SIGHUP until every restore is
//      over, keys/s, ops/s during / before, hit rate during
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULTS, type Distribution } from '../../src/config/config.js';
import { Router } from '../../src/routing/router.js';
import { chooseLoadTool, type LoadSample } from './load.js';
import { installHooks, logTail, stopProcess, type Started } from './processes.js';
import { serverFigures } from './restore.js';
import { fillArgs, findScenario, HEADLINE, KEY_MAX, KEY_MIN, loadArgs } from './scenarios.js';
import { startMcrelayWithConfig, startMemcached } from './targets.js';

export interface PlacementOptions {
  /** keys filled: memtier-1..memtier-N (default 100,000, every key of the other lines) */
  keys?: number;
  /** seconds of load before the change (default 5) */
  beforeSeconds?: number;
  /** seconds of each load run during it (default 2) */
  stretchSeconds?: number;
  /** the restores not over after this long from the SIGHUP fail the line (default 120) */
  timeoutSeconds?: number;
}

export interface PlacementResult {
  loadTool: string;
  masters: number;
  keys: number;
  /** restore.keys_per_second in force: mcrelay's default, per restoring server */
  restoreKeysPerSecondSetting: number;
  /** keys whose master is not the same under magent and jump */
  keysMoved: number;
  /** restore_keys_copied summed over the masters */
  keysCopied: number;
  /** restore_keys_skipped summed: mostly keys the load wrote on their new master before the restore reached them */
  keysSkipped: number;
  /** from the SIGHUP until every master's restore was over (sweeps included) */
  seconds: number;
  /** the longest restore_seconds of a master (its restore alone, after its sweep) */
  longestRestoreSeconds: number;
  /** keysCopied / seconds */
  keysPerSecond: number;
  /** each master's restore_state at the end: done, or failed / unavailable (what it copied is still counted) */
  restoreStates: Record<string, string>;
  /** masters whose restore did not end done */
  restoresNotDone: number;
  /** "server marked down" lines mcrelay logged from the SIGHUP to the end of the load during the change, by server */
  markedDown: Record<string, number>;
  opsBefore: number;
  opsDuring: number;
  /** opsDuring / opsBefore */
  share: number;
  /** hits / gets of the load before and during (NaN if the tool reports no hits) */
  hitRatioBefore: number;
  hitRatioDuring: number;
}

const MASTERS = 4;
const OVER = new Set(['done', 'failed', 'unavailable']);
const POLL_MS = 100;

/** The keys of memtier-KEY_MIN..memtier-keys (the load's default prefix) whose master differs between the two placements. */
export function movedKeys(keys: number, from: Distribution, to: Distribution, masters: readonly string[], backups: readonly string[]): number {
  const a = new Router(from, masters, backups);
  const b = new Router(to, masters, backups);
  let moved = 0;
  for (let i = KEY_MIN; i <= keys; i++) {
    const k = Buffer.from(`memtier-${i}`, 'latin1');
    a.route(k, 0, k.length);
    b.route(k, 0, k.length);
    if (a.master !== b.master) moved++;
  }
  return moved;
}

function configYaml(port: number, masters: readonly string[], backup: string, distribution: Distribution): string {
  return [
    `listen: 127.0.0.1:${port}`, 'admin: off', `distribution: ${distribution}`, 'switch_delay_seconds: 0',
    'masters:', ...masters.map((m) => `  - ${m}`), 'backups:', `  - ${backup}`, '',
  ].join('\n');
}

/** Load runs of `seconds` until `over()`; their ops/s and hit ratio weighted by time and by ops. */
async function loadUntil(run: (seconds: number) => Promise<LoadSample>, seconds: number, over: () => boolean): Promise<{ opsPerSec: number; hitRatio: number }> {
  let ops = 0;
  let hitOps = 0;
  let hitWeighted = 0;
  let s = 0;
  while (!over()) {
    const r = await run(seconds);
    ops += r.opsPerSec * seconds;
    s += seconds;
    if (!Number.isNaN(r.hitRatio)) { hitWeighted += r.hitRatio * r.ops; hitOps += r.ops; }
  }
  return { opsPerSec: s > 0 ? ops / s : NaN, hitRatio: hitOps > 0 ? hitWeighted / hitOps : NaN };
}

async function waitForLog(p: Started, text: string, refused: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const log = readFileSync(p.logFile, 'latin1');
    if (log.includes(text)) return;
    if (log.includes(refused) || Date.now() > deadline) throw new Error(`placement: mcrelay did not log '${text}':\n${logTail(p)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function placementBench(log: (line: string) => void, o: PlacementOptions = {}): Promise<PlacementResult> {
  installHooks();
  const keys = o.keys ?? KEY_MAX;
  const beforeSeconds = o.beforeSeconds ?? 5;
  const stretch = o.stretchSeconds ?? 2;
  const timeoutMs = (o.timeoutSeconds ?? 120) * 1000;
  const logDir = mkdtempSync(join(tmpdir(), 'mcrelay-bench-placement-'));
  const tool = chooseLoadTool();
  const headline = findScenario(HEADLINE);
  const started: Started[] = [];
  try {
    const masters: string[] = [];
    for (let i = 0; i < MASTERS; i++) {
      const m = await startMemcached(`memcached-master-${i}`, logDir);
      started.push(m.proc);
      masters.push(`127.0.0.1:${m.port}`);
    }
    const b = await startMemcached('memcached-backup', logDir);
    started.push(b.proc);
    const backup = `127.0.0.1:${b.port}`;
    const file = join(logDir, 'mcrelay.yml');
    const relay = await startMcrelayWithConfig('mcrelay-w1-placement', file, (port) => configYaml(port, masters, backup, 'magent'), 1, logDir);
    started.push(relay.proc);
    const run = (seconds: number): Promise<LoadSample> => tool.run(loadArgs(headline, relay.port, seconds, keys), logDir);

    await tool.run(fillArgs(headline.dataSize, relay.port, keys), logDir);
    const before = await run(beforeSeconds);
    log(`placement: ${keys} keys on ${MASTERS} masters (magent); load before ${Math.round(before.opsPerSec)} ops/s`);
    const keysMoved = movedKeys(keys, 'magent', 'jump', masters, [backup]);

    const stateBefore = new Map<string, string | undefined>();
    const figs0 = await serverFigures(relay.port);
    for (const m of masters) stateBefore.set(m, figs0.get(`${m}:restore_state`));

    const logFrom = readFileSync(relay.proc.logFile, 'latin1').length;
    writeFileSync(file, configYaml(relay.port, masters, backup, 'jump'));
    const t0 = performance.now();
    relay.proc.child.kill('SIGHUP');
    // Each master's restore after the SIGHUP: over once its state is a final one it was not in before, or it was seen running.
    const w = { overAt: null as number | null, timedOut: false, failed: false, figs: figs0 };
    const seenRunning = new Set<string>();
    const watch = (async () => {
      await waitForLog(relay.proc, 'configuration reloaded', 'reload refused', 10_000);
      for (;;) {
        w.figs = await serverFigures(relay.port);
        let all = true;
        for (const m of masters) {
          const st = w.figs.get(`${m}:restore_state`) ?? 'idle';
          if (st === 'running') seenRunning.add(m);
          if (!OVER.has(st) || (!seenRunning.has(m) && st === stateBefore.get(m))) all = false;
        }
        if (all) { w.overAt = performance.now(); return; }
        if (performance.now() - t0 > timeoutMs) { w.timedOut = true; return; }
        await new Promise((r) => setTimeout(r, POLL_MS));
      }
    })();
    void watch.catch(() => { w.failed = true; });
    const during = await loadUntil(run, stretch, () => w.overAt !== null || w.timedOut || w.failed);
    await watch;
    const { overAt, figs } = w;
    const restoreStates: Record<string, string> = {};
    for (const m of masters) restoreStates[m] = figs.get(`${m}:restore_state`) ?? 'idle';
    if (overAt === null) {
      throw new Error(`placement: the restores were not over ${timeoutMs / 1000} s after the SIGHUP: ${JSON.stringify(restoreStates)}\n${logTail(relay.proc)}`);
    }
    const markedDown: Record<string, number> = {};
    for (const line of readFileSync(relay.proc.logFile, 'latin1').slice(logFrom).split('\n')) {
      const server = line.includes('"msg":"server marked down"') ? /"server":"([^"]+)"/.exec(line)?.[1] : undefined;
      if (server !== undefined) markedDown[server] = (markedDown[server] ?? 0) + 1;
    }
    const sum = (field: string): number => masters.reduce((n, m) => n + Number(figs.get(`${m}:${field}`) ?? 0), 0);
    const seconds = (overAt - t0) / 1000;
    const keysCopied = sum('restore_keys_copied');
    const r: PlacementResult = {
      loadTool: tool.name, masters: MASTERS, keys, restoreKeysPerSecondSetting: DEFAULTS.restoreKeysPerSecond,
      keysMoved, keysCopied, keysSkipped: sum('restore_keys_skipped'),
      seconds, longestRestoreSeconds: Math.max(...masters.map((m) => Number(figs.get(`${m}:restore_seconds`) ?? 0))),
      keysPerSecond: keysCopied / seconds, restoreStates,
      restoresNotDone: masters.filter((m) => restoreStates[m] !== 'done').length, markedDown,
      opsBefore: before.opsPerSec, opsDuring: during.opsPerSec, share: during.opsPerSec / before.opsPerSec,
      hitRatioBefore: before.hitRatio, hitRatioDuring: during.hitRatio,
    };
    log(`placement: magent -> jump: ${keysMoved} keys moved, ${keysCopied} restored (${r.keysSkipped} skipped), all ${MASTERS} restores over ` +
      `${seconds.toFixed(1)} s after the SIGHUP (longest ${r.longestRestoreSeconds.toFixed(1)} s) = ${Math.round(r.keysPerSecond)} keys/s; ` +
      `load during it ${Math.round(r.opsDuring)} ops/s = ${(100 * r.share).toFixed(0)} % of before, hits ${percent(r.hitRatioDuring)} (before ${percent(r.hitRatioBefore)}) (${tool.name})`);
    const trouble = troubleNote(r);
    if (trouble !== '') log(`placement: ${trouble}`);
    return r;
  } finally {
    for (const p of started.reverse()) await stopProcess(p, 0).catch(() => {});
    rmSync(logDir, { recursive: true, force: true });
  }
}

/** What went wrong during the change, in words ('' when nothing): restores not done, servers marked down. */
export function troubleNote(r: PlacementResult): string {
  const out: string[] = [];
  const notDone = Object.entries(r.restoreStates).filter(([, st]) => st !== 'done');
  if (notDone.length > 0) out.push(`${notDone.length} of ${r.masters} restores did not finish (${notDone.map(([m, st]) => `${m} ${st}`).join(', ')})`);
  const down = Object.entries(r.markedDown ?? {});
  if (down.length > 0) out.push(`marked down during the change: ${down.map(([m, n]) => `${m} ${n}x`).join(', ')}`);
  return out.join('; ');
}

/** A ratio in %, '-' when not measured (NaN, or left out of a stored run's JSON). */
export function percent(ratio: number): string {
  return Number.isFinite(ratio) ? `${(100 * ratio).toFixed(2)} %` : '-';
}
