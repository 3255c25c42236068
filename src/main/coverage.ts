// How much of what the masters hold each backup holds too: the share of reads a
// failover would still hit.
//
//   workers: every stride-th replicated write's key (worker/write-sampler.ts)
//     --'sampled', each retry interval--> add(): up to ADMITTED per backup per
//     interval join its sample after that interval's check (at most KEPT, the
//     oldest go first)
//   each retry interval, check(): every sampled key of a backup whose master
//     serves reads is looked up with `me <key>` on the master and on the
//     backup, one pipelined batch per server on a connection of its own. me
//     bumps no LRU (the check must not keep its own sample alive) and, unlike
//     any mg, does not take a stale item's recache token (W) from the client
//     that reads it next
//     coverage = held by both / held by the master; keys the master no longer
//     holds (deleted, expired, evicted) leave the sample
//   --> ServerFigures (stats servers, /metrics, /ready), and a warn line at most
//       once a minute per backup while coverage < backup_coverage_warn
//
// The sample spans the last KEPT / ADMITTED intervals of writes (16 s at the
// default 1 s), so a backup that keeps only its latest second of writes shows
// as low coverage, not as a healthy one that happens to hold the newest keys.

import { serverNames, type Config } from '../config/config.js';
import { validKey } from '../protocol/request-rules.js';
import { codeOf } from '../errors.js';
import { log } from '../log.js';
import { HealthTable, UP, WARMING } from '../shared/health.js';
import { F, type ServerFigures } from '../shared/server-figures.js';
import type { Sampled } from '../worker/write-sampler.js';
import { exchange, lines } from '../backend/server-request.js';

/** Sampled keys kept per backup. */
const KEPT = 256;
/** New keys joining a backup's sample per interval. */
const ADMITTED = 16;
/** Fewer keys held by their masters than this say nothing about a backup. */
const MIN_CHECKED = 8;
const WARN_EVERY_MS = 60_000;

interface Sample { master: number; key: string }

export class Coverage {
  private readonly names: string[];
  private readonly masterCount: number;
  /** per server (backups only): its sample, oldest first */
  private readonly samples: Sample[][];
  /** per server: keys that arrived this interval, before admission */
  private readonly incoming: Sample[][];
  private readonly lastWarn: number[];
  private timer: NodeJS.Timeout | null = null;
  private checking = false;

  constructor(
    private readonly config: Config,
    private readonly health: HealthTable,
    private readonly figures: ServerFigures,
  ) {
    this.names = serverNames(config);
    this.masterCount = config.masters.length;
    this.samples = this.names.map(() => []);
    this.incoming = this.names.map(() => []);
    this.lastWarn = this.names.map(() => 0);
  }

  /** Keys a worker sampled (by server name: it may predate a reload). */
  add(entries: readonly Sampled[]): void {
    for (const e of entries) {
      const b = this.names.indexOf(e.backup);
      const m = this.names.indexOf(e.master);
      if (b < this.masterCount || m < 0 || m >= this.masterCount) continue;
      // A key of other bytes is asked as base64 (me ... b), which memcached takes up to 250 characters.
      if (Buffer.byteLength(e.key, 'latin1') > 187 && !validKey(Buffer.from(e.key, 'latin1'), 0, Buffer.byteLength(e.key, 'latin1'))) continue;
      this.incoming[b]!.push({ master: m, key: e.key });
    }
  }

  start(): void {
    this.timer = setInterval(() => { void this.check(); }, this.config.retryIntervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** After a reload: the samples, coverage figures and warning times of the backups both know, by name. */
  adopt(old: Coverage): void {
    for (let i = this.masterCount; i < this.names.length; i++) {
      const o = old.names.indexOf(this.names[i]!);
      if (o < old.masterCount) continue;
      this.lastWarn[i] = old.lastWarn[o]!;
      const c = old.figures.get(o, F.COVERAGE);
      if (!Number.isNaN(c)) this.figures.publishCoverage(i, c, old.figures.get(o, F.COVERAGE_CHECKED));
      for (const s of old.samples[o]!) {
        const m = this.names.indexOf(old.names[s.master]!);
        if (m >= 0 && m < this.masterCount) this.samples[i]!.push({ master: m, key: s.key });
      }
    }
  }

  private admit(b: number): void {
    const fresh = this.incoming[b]!;
    const sample = this.samples[b]!;
    // Evenly over the interval's keys, which the workers sampled evenly over its writes.
    const n = Math.min(ADMITTED, fresh.length);
    for (let j = 0; j < n; j++) sample.push(fresh[Math.floor((j * fresh.length) / n)]!);
    fresh.length = 0;
    if (sample.length > KEPT) sample.splice(0, sample.length - KEPT);
  }

  private async check(): Promise<void> {
    if (this.checking) return;
    this.checking = true;
    try {
      const backups: Array<Promise<void>> = [];
      for (let b = this.masterCount; b < this.names.length; b++) {
        if (this.samples[b]!.length > 0 && this.health.state(b) === UP) backups.push(this.checkBackup(b));
      }
      await Promise.all(backups);
      // Only now: a key is first asked an interval after it was written, when
      // its writes (queued on the workers' connections) have surely landed.
      for (let b = this.masterCount; b < this.names.length; b++) this.admit(b);
    } catch (err) {
      log.error('backup coverage check failed', { code: codeOf(err), error: (err as Error).message });
    } finally {
      this.checking = false;
    }
  }

  private async checkBackup(b: number): Promise<void> {
    const servers = [...this.config.masters, ...this.config.backups];
    const asked = this.samples[b]!.filter((s) => { const st = this.health.state(s.master); return st === UP || st === WARMING; });
    if (asked.length === 0) return;
    const byMaster = new Map<number, Sample[]>();
    for (const s of asked) {
      let list = byMaster.get(s.master);
      if (list === undefined) byMaster.set(s.master, list = []);
      list.push(s);
    }
    const held = new Set<Sample>();
    const lost = new Set<Sample>();
    const [backupHas] = await Promise.all([
      holds(servers[b]!, asked, this.config.timeoutMs),
      ...[...byMaster].map(async ([m, list]) => {
        const has = await holds(servers[m]!, list, this.config.timeoutMs);
        if (has === null) return;
        list.forEach((s, j) => (has[j] ? held : lost).add(s));
      }),
    ]);
    // The master no longer has it: nothing for the backup to cover.
    this.samples[b] = this.samples[b]!.filter((s) => !lost.has(s));
    if (backupHas === null || held.size < MIN_CHECKED) return;
    let covered = 0;
    asked.forEach((s, j) => { if (held.has(s) && backupHas[j]) covered++; });
    const coverage = covered / held.size;
    this.figures.publishCoverage(b, coverage, held.size);
    const now = Date.now();
    if (coverage < this.config.backupCoverageWarn && now - this.lastWarn[b]! >= WARN_EVERY_MS) {
      this.lastWarn[b] = now;
      log.warn('backup holds too few of its masters\' keys: a failover would miss the rest', {
        server: this.names[b], coverage: Number(coverage.toFixed(3)), checked: held.size, threshold: this.config.backupCoverageWarn,
      });
    }
  }
}

/** Whether `server` holds each key, in order; null if it did not answer every lookup. */
async function holds(server: Config['masters'][number], keys: readonly Sample[], timeoutMs: number): Promise<boolean[] | null> {
  let request = '';
  for (const { key } of keys) {
    const bytes = Buffer.from(key, 'latin1');
    request += validKey(bytes, 0, bytes.length) ? `me ${key}\r\n` : `me ${bytes.toString('base64')} b\r\n`;
  }
  const { text } = await exchange(server, request, timeoutMs, lines(keys.length));
  if (text === null) return null;
  const replies = text.split('\r\n');
  const out: boolean[] = [];
  for (let j = 0; j < keys.length; j++) {
    const r = replies[j];
    if (r !== undefined && r.startsWith('ME ')) out.push(true);
    else if (r === 'EN') out.push(false);
    else return null;
  }
  return out;
}
