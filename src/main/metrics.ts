// The Prometheus exposition that the admin listener (main/admin.ts) serves at
// GET /metrics: a registry whose metrics read the shared tables at scrape time.
//
//   Registry.metrics() --> each metric's collect() --> Counters, ServerStats,
//                          HealthTable, ServerFigures, as they are now
//
// Metrics are prom-client objects in a registry of our own (not the global one),
// filled by collect() callbacks at scrape time, plus prom-client's default
// process and Node.js metrics (process_*, nodejs_*: these describe the whole
// process for CPU and memory, but the main thread only for heap and event loop),
// less its nodejs_active_*_total gauges: a gauge named _total reads as a counter
// (promtool refuses it), and the per-type gauges beside them add up to the same.
//
// Metric names (prefix mcrelay_):
//   connections_current, connections_total, connections_rejected_total,
//   cmd_get_total, cmd_set_total, cmd_touch_total, cmd_flush_total,
//   get_hits_total, get_misses_total, get_failover_total, get_warm_hits_total,
//   bytes_read_total, bytes_written_total,
//   backend_errors_total, backend_timeouts_total, backup_repairs_total,
//   workers, workers_live, draining, build_info{version}
//   per worker {worker="0".."N-1"}: worker_cmd_get_total, worker_cmd_set_total,
//     worker_connections
//   per server {server="host:port", role="master"|"backup"}: server_inflight,
//     server_requests_total, server_errors_total, server_timeouts_total,
//     server_errors_by_code_total{code}: server_errors_total split by the
//     failure's code (shared/server-stats.ts ERROR_CODES, every one shown),
//     server_backup_reads_total, server_warm_fills_total, server_reconnects_total,
//     server_restarts_seen_total, server_flushes_total, server_invalidated_keys_total,
//     server_backup_divergences_total, server_restore_*,
//     server_latency_seconds: a histogram (_bucket{le}, _sum, _count) whose
//     buckets are the shared log2 ones (le = 16 us, 32 us, ... 8.4 s, +Inf),
//     server_state{state}: one series per state name (up, down, ...), 1 for
//     the server's current state and 0 for the others, so
//     `mcrelay_server_state{state="down"} == 1` selects the servers that are down.
//   per server, the server's own figures from the prober's last `stats` poll
//     (absent while it has none: down, or not answering): server_current_items,
//     server_current_bytes, server_limit_bytes, server_items_total,
//     server_items_evicted_total, server_items_evicted_unfetched_total,
//     server_items_expired_unfetched_total, server_items_reclaimed_total,
//     server_store_no_memory_total, server_store_too_large_total
//   per backup: server_write_refusals_total (SERVER_ERROR to replicated writes),
//     server_backup_coverage (main/coverage.ts; absent until measured)

import { collectDefaultMetrics, Counter, Gauge, Registry, type Metric } from 'prom-client';

import { C, type Counters } from '../shared/counters.js';
import { STATE_NAMES, type HealthTable } from '../shared/health.js';
import { ERROR_CODES, LATENCY_BUCKETS, RESTORE_STATES, S, type ServerStats } from '../shared/server-stats.js';
import { F, figure, type PER_SERVER, type ServerFigures } from '../shared/server-figures.js';
import type { Distribution } from '../config/config.js';
import type { Drains } from './drain.js';
import { VERSION } from '../version.js';

/** What the admin listener reads; every field is read again at each request. */
export interface AdminSources {
  readonly counters: Counters;
  readonly serverStats: ServerStats;
  readonly health: HealthTable;
  /** the servers' own stats and the backups' coverage (main thread's prober) */
  readonly figures: ServerFigures;
  /** a backup's coverage under this is degraded redundancy */
  readonly backupCoverageWarn: number;
  /** in health-table order: the masters, then the backups */
  readonly servers: ReadonlyArray<{ readonly name: string; readonly role: 'master' | 'backup' }>;
  /** how keys map to the servers (GET /config) */
  readonly distribution: Distribution;
  /** worker threads configured; worker i writes counters row i + 1 */
  readonly workers: number;
  /** workers started and accepting clients */
  liveWorkers(): number;
  /** true from SIGTERM/SIGINT on */
  draining(): boolean;
  /** planned maintenance of masters (null: not started yet) */
  drains(): Drains | null;
}

type Get = () => AdminSources;

export function buildRegistry(get: Get): Registry {
  const registry = new Registry();
  const registers = [registry];
  collectDefaultMetrics({ register: registry });
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
    registry.removeSingleMetric(name);
  }

  // ---- process-wide totals: the sum of every thread's row ----
  const total = (name: string, help: string, counter: number): void => {
    new Counter({
      name: `mcrelay_${name}`, help, registers,
      collect() { this.reset(); this.inc(get().counters.sum(counter)); },
    });
  };
  total('connections_total', 'Client connections accepted', C.TOTAL_CONNECTIONS);
  total('connections_rejected_total', 'Client connections refused at max_connections', C.REJECTED_CONNECTIONS);
  total('get_warm_hits_total', 'Reads a warming master missed that its backup answered', C.GET_WARM_HITS);
  total('cmd_get_total', 'Keys requested by get, gets, gat and gats', C.CMD_GET);
  total('cmd_set_total', 'Storage commands (set, add, replace, append, prepend, cas)', C.CMD_SET);
  total('cmd_touch_total', 'touch commands', C.CMD_TOUCH);
  total('cmd_flush_total', 'flush_all commands', C.CMD_FLUSH);
  total('get_hits_total', 'Keys found', C.GET_HITS);
  total('get_misses_total', 'Keys not found', C.GET_MISSES);
  total('get_failover_total', 'Keys read from the backup because the master was down', C.GET_FAILOVER);
  total('bytes_read_total', 'Bytes read from clients', C.BYTES_READ);
  total('bytes_written_total', 'Bytes written to clients', C.BYTES_WRITTEN);
  total('backend_errors_total', 'Backend connection failures and protocol errors', C.BACKEND_ERRORS);
  total('backend_timeouts_total', 'Backend requests that timed out', C.BACKEND_TIMEOUTS);
  total('backup_repairs_total', 'Writes repaired on a backup', C.BACKUP_REPAIRS);
  total('auth_failures_total', 'Clients refused before they authenticated (auth_file): wrong credentials, a malformed auth set, or another command first', C.AUTH_FAILURES);

  new Gauge({
    name: 'mcrelay_connections_current', help: 'Client connections open now', registers,
    collect() {
      const c = get().counters;
      this.set(Math.max(0, c.sum(C.HANDED_CONNECTIONS) - c.sum(C.CLOSED_CONNECTIONS)));
    },
  });
  new Gauge({
    name: 'mcrelay_workers', help: 'Worker threads configured', registers,
    collect() { this.set(get().workers); },
  });
  new Gauge({
    name: 'mcrelay_workers_live', help: 'Worker threads started and accepting clients', registers,
    collect() { this.set(get().liveWorkers()); },
  });
  new Gauge({
    name: 'mcrelay_draining', help: '1 while shutting down (not accepting), else 0', registers,
    collect() { this.set(get().draining() ? 1 : 0); },
  });
  new Gauge({
    name: 'mcrelay_build_info', help: 'Always 1; the version is a label', labelNames: ['version'], registers,
    collect() { this.set({ version: VERSION }, 1); },
  });

  // ---- per worker: its own row (row 0 is the main thread's) ----
  const eachWorker = (fn: (worker: string, row: Float64Array) => void): void => {
    const s = get();
    const rows = Math.min(s.workers, s.counters.rows - 1);
    for (let w = 0; w < rows; w++) fn(String(w), s.counters.row(w + 1));
  };
  new Counter({
    name: 'mcrelay_worker_cmd_get_total', help: 'Keys requested by get commands, per worker', labelNames: ['worker'], registers,
    collect() { this.reset(); eachWorker((worker, row) => this.inc({ worker }, row[C.CMD_GET]!)); },
  });
  new Counter({
    name: 'mcrelay_worker_cmd_set_total', help: 'Storage commands, per worker', labelNames: ['worker'], registers,
    collect() { this.reset(); eachWorker((worker, row) => this.inc({ worker }, row[C.CMD_SET]!)); },
  });
  new Gauge({
    name: 'mcrelay_worker_connections', help: 'Client connections open now, per worker', labelNames: ['worker'], registers,
    collect() {
      this.reset();
      eachWorker((worker, row) => this.set({ worker }, Math.max(0, row[C.HANDED_CONNECTIONS]! - row[C.CLOSED_CONNECTIONS]!)));
    },
  });

  // ---- per backend server, summed over the workers ----
  const eachServer = (fn: (labels: { server: string; role: string }, i: number, s: AdminSources) => void): void => {
    const s = get();
    const n = Math.min(s.servers.length, s.serverStats.servers, s.health.size);
    for (let i = 0; i < n; i++) fn({ server: s.servers[i]!.name, role: s.servers[i]!.role }, i, s);
  };
  const serverLabels = ['server', 'role'];
  const serverTotal = (name: string, help: string, field: number): void => {
    new Counter({
      name: `mcrelay_server_${name}`, help, labelNames: serverLabels, registers,
      collect() { this.reset(); eachServer((labels, i, s) => this.inc(labels, s.serverStats.sum(i, field))); },
    });
  };
  serverTotal('requests_total', 'Replies received from the server', S.REQUESTS);
  serverTotal('errors_total', 'Connection failures and protocol errors', S.ERRORS);
  serverTotal('timeouts_total', 'Requests to the server that timed out', S.TIMEOUTS);
  new Counter({
    name: 'mcrelay_server_errors_by_code_total', help: 'server_errors_total by the error code of each failure (MCRELAY_*)',
    labelNames: [...serverLabels, 'code'], registers,
    collect() {
      this.reset();
      eachServer((labels, i, s) => ERROR_CODES.forEach((code, k) => this.inc({ ...labels, code }, s.serverStats.sum(i, S.ERRORS_BY_CODE + k))));
    },
  });
  serverTotal('backup_reads_total', "Reads of this server's keys answered by its backup", S.BACKUP_READS);
  serverTotal('warm_fills_total', 'Keys copied from the backup into this server while it warmed up', S.WARM_FILLS);
  serverTotal('reconnects_total', 'Connections the server closed or reset while idle (or under reads that were sent again), reopened', S.RECONNECTS);
  serverTotal('restarts_seen_total', 'Returns after an outage in which the server had restarted', S.RESTARTS);
  serverTotal('flushes_total', 'flush_all sent to the server by a recovery', S.FLUSHES);
  serverTotal('write_refusals_total', 'Replicated writes the backup refused with SERVER_ERROR (out of memory...) while its master stored them', S.WRITE_REFUSALS);
  serverTotal('invalidated_keys_total', 'Keys deleted on the server by recoveries: written elsewhere during its outages', S.INVALIDATED);
  serverTotal('backup_divergences_total', 'Keys this backup held with a value its master did not (found after writes through several entries), deleted here', S.BACKUP_DIVERGENCES);
  // Figures of the last (or current) restore: gauges, each restore starts them at 0.
  for (const [name, help, field] of [
    ['restore_keys_copied', 'Keys copied into the server by its last restore, from the other pool', S.RESTORE_COPIED],
    ['restore_keys_skipped', 'Keys its last restore found present already, gone, or changed during the copy', S.RESTORE_SKIPPED],
    ['restore_seconds', "How long the server's last (or current) restore has run", S.RESTORE_SECONDS],
    ['sweep_keys_walked', "Items of the server's dump its last (or current) placement sweep has walked", S.SWEEP_WALKED],
    ['sweep_keys_deleted', 'Copies its last placement sweep deleted: keys it did not own under every placement since the one before', S.SWEEP_DELETED],
  ] as const) {
    new Gauge({
      name: `mcrelay_server_${name}`, help, labelNames: serverLabels, registers,
      collect() { this.reset(); eachServer((labels, i, s) => this.set(labels, s.serverStats.sum(i, field))); },
    });
  }
  for (const [name, help, field] of [
    ['restore_state', 'Restore of a returning server: 1 for its current state, 0 for the others', S.RESTORE_STATE],
    ['sweep_state', 'Placement sweep of a server that gained or lost keys by a reload: 1 for its current state, 0 for the others', S.SWEEP_STATE],
  ] as const) {
    new Gauge({
      name: `mcrelay_server_${name}`, help, labelNames: [...serverLabels, 'state'], registers,
      collect() {
        this.reset();
        eachServer((labels, i, s) => {
          const now = s.serverStats.sum(i, field);
          RESTORE_STATES.forEach((state, k) => this.set({ ...labels, state }, k === now ? 1 : 0));
        });
      },
    });
  }
  new Gauge({
    name: 'mcrelay_server_inflight', help: 'Requests sent to the server and not yet answered', labelNames: serverLabels, registers,
    collect() { this.reset(); eachServer((labels, i, s) => this.set(labels, s.serverStats.sum(i, S.INFLIGHT))); },
  });
  registry.registerMetric(latencyHistogram(eachServer));
  new Gauge({
    name: 'mcrelay_server_backup_coverage', help: "Share of its masters' sampled recent keys the backup holds (backups, once measured)",
    labelNames: serverLabels, registers,
    collect() {
      this.reset();
      eachServer((labels, i, s) => {
        const c = i < s.figures.servers ? s.figures.get(i, F.COVERAGE) : NaN;
        if (!Number.isNaN(c)) this.set(labels, c);
      });
    },
  });

  // ---- per backend server, its own figures (memcached_exporter's names) ----
  const ownFigure = (kind: 'gauge' | 'counter', name: string, help: string, field: (typeof PER_SERVER)[number]): void => {
    const at = figure(field);
    const collect = function (this: Gauge | Counter): void {
      this.reset();
      eachServer((labels, i, s) => {
        if (i >= s.figures.servers || s.figures.get(i, F.POLLED_AT) === 0) return;
        if (this instanceof Gauge) this.set(labels, s.figures.get(i, at));
        else this.inc(labels, s.figures.get(i, at));
      });
    };
    if (kind === 'gauge') new Gauge({ name: `mcrelay_server_${name}`, help, labelNames: serverLabels, registers, collect });
    else new Counter({ name: `mcrelay_server_${name}`, help, labelNames: serverLabels, registers, collect });
  };
  ownFigure('gauge', 'current_items', "Items the server holds (its curr_items)", 'curr_items');
  ownFigure('gauge', 'current_bytes', "Bytes the server's items take (its bytes)", 'bytes');
  ownFigure('gauge', 'limit_bytes', "The server's memory limit (its limit_maxbytes)", 'limit_maxbytes');
  ownFigure('counter', 'items_total', 'Items stored since the server started (its total_items)', 'total_items');
  ownFigure('counter', 'items_evicted_total', 'Items the server evicted to make room (its evictions)', 'evictions');
  ownFigure('counter', 'items_evicted_unfetched_total', 'Items evicted without ever being read (its evicted_unfetched)', 'evicted_unfetched');
  ownFigure('counter', 'items_expired_unfetched_total', 'Items expired without ever being read (its expired_unfetched)', 'expired_unfetched');
  ownFigure('counter', 'items_reclaimed_total', 'Expired items whose memory was reused (its reclaimed)', 'reclaimed');
  ownFigure('counter', 'store_no_memory_total', 'Stores refused for want of memory, e.g. with -M (its store_no_memory)', 'store_no_memory');
  ownFigure('counter', 'store_too_large_total', 'Stores refused as too large (its store_too_large)', 'store_too_large');

  new Gauge({
    name: 'mcrelay_server_state', help: 'Server state: 1 for the current state, 0 for the others',
    labelNames: [...serverLabels, 'state'], registers,
    collect() {
      this.reset();
      eachServer((labels, i, s) => {
        const now = s.health.state(i);
        STATE_NAMES.forEach((state, n) => this.set({ ...labels, state }, n === now ? 1 : 0));
        // A state this build has no name for still shows.
        if (now < 0 || now >= STATE_NAMES.length) this.set({ ...labels, state: String(now) }, 1);
      });
    },
  });

  return registry;
}

type EachServer = (fn: (labels: { server: string; role: string }, i: number, s: AdminSources) => void) => void;

/** The first le bound is the upper end of this log2 bucket (2^4 us = 16 us); the faster buckets count in it. */
const FIRST_BUCKET = 3;

/**
 * Reply latency per server as a Prometheus histogram. The workers already
 * counted every reply into the shared log2 buckets (bucket b: [2^b, 2^(b+1))
 * microseconds), which prom-client's Histogram cannot be given: this is a metric
 * of the registry's own shape (name, help, type, get()) whose get() turns those
 * counts into cumulative le buckets at scrape time.
 */
function latencyHistogram(eachServer: EachServer): Metric {
  const name = 'mcrelay_server_latency_seconds';
  const metric = {
    name,
    help: 'Reply latency since start, from log2 buckets',
    type: 'histogram',
    aggregator: 'sum',
    reset(): void { /* the shared buckets only grow */ },
    get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: MetricValue[] }> {
      const values: MetricValue[] = [];
      eachServer((labels, i, s) => {
        const st = s.serverStats;
        let count = 0;
        for (let b = 0; b < LATENCY_BUCKETS - 1; b++) {
          count += st.sum(i, S.LATENCY + b);
          if (b >= FIRST_BUCKET) values.push({ metricName: `${name}_bucket`, labels: { ...labels, le: 2 ** (b + 1) / 1e6 }, value: count });
        }
        count += st.sum(i, S.LATENCY + LATENCY_BUCKETS - 1);
        values.push({ metricName: `${name}_bucket`, labels: { ...labels, le: '+Inf' }, value: count });
        values.push({ metricName: `${name}_sum`, labels, value: st.sum(i, S.LATENCY_SUM) / 1000 });
        values.push({ metricName: `${name}_count`, labels, value: count });
      });
      return Promise.resolve({ name, help: metric.help, type: metric.type, aggregator: metric.aggregator, values });
    },
  };
  return metric as unknown as Metric;
}

interface MetricValue { metricName: string; labels: Record<string, string | number>; value: number }
