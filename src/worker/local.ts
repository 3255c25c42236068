// Commands the proxy answers itself: version, verbosity and stats.
//
//   stats                      mcrelay's counters, then the servers' own totals
//                              (shared/server-figures.ts SUMMED) over the masters
//                              serving reads, as the prober last read them
//   stats servers | reset      per backend figures | mcrelay's counters from zero
//   stats settings             mcrelay's settings, in memcached's format
//   stats [<group>] <server>   forwarded to that one server (a connection of its
//                              own), its reply returned as it came
//   stats <group>              a group about the servers' memory (items, slabs,
//                              sizes, conns, ...) with no server: CLIENT_ERROR usage

import { Cmd } from '../protocol/commands.js';
import type { RequestParser } from '../protocol/request-parser.js';
import * as wire from '../protocol/wire.js';
import { C, type Counters } from '../shared/counters.js';
import { VERSION } from '../version.js';
import { backupNames, masterNames, serverNames, type Config } from '../config/config.js';
import { STATE_NAMES, UP, WARMING, unpackVersion, type HealthTable } from '../shared/health.js';
import { ERROR_CODES, RESTORE_STATES, S, type ServerStats } from '../shared/server-stats.js';
import { F, figure, PER_SERVER, ServerFigures, SUMMED } from '../shared/server-figures.js';
import { endsWithEnd, exchange } from '../backend/server-request.js';
import type { Request } from './request.js';

export const STATS_GENERAL = 0;
export const STATS_SERVERS = 1;
export const STATS_RESET = 2;
export const STATS_SETTINGS = 3;
/** answered at once with LocalCommands.answer */
export const STATS_ANSWER = 4;
/** sent to one server: LocalCommands.forward() */
export const STATS_FORWARD = 5;

/** stats groups memcached answers that are about one server's memory or connections */
const SERVER_GROUPS = new Set(['items', 'slabs', 'sizes', 'conns', 'extstore', 'settings']);
/** stats sub-commands that change a server's settings: a proxy does not pass them on */
const SERVER_TOGGLES = new Set(['sizes_enable', 'sizes_disable']);

/**
 * What `version` says until a server has told the prober its own. Clients read
 * this number (libmemcached refuses a 0.x server, memccapable decides from it
 * what to expect, others gate features on it), so it must be memcached's, not
 * mcrelay's: a 1.6 release, the series whose text and meta protocol mcrelay speaks.
 */
export const FALLBACK_SERVER_VERSION = '1.6.0';

/** An open client as draining sees it (worker/client.ts ClientConnection). */
export interface OpenClient {
  drain(): void;
}

export class LocalCommands {
  private serverNames: string[];
  /** statsKind() STATS_ANSWER: the reply */
  answer: Buffer = wire.ERROR;
  /** statsKind() STATS_FORWARD: the server and the line to send it */
  private forwardTo = 0;
  private forwardLine = '';
  private readonly block = ServerFigures.block();

  constructor(
    private config: Config,
    private readonly counters: Counters,
    private readonly ownRow: Float64Array,
    private readonly startedAt: number,
    private health: HealthTable,
    private serverStats: ServerStats,
    private figures: ServerFigures,
  ) {
    this.serverNames = serverNames(config);
  }

  /** After a reload: the new server list and its tables. */
  reconfigure(config: Config, health: HealthTable, serverStats: ServerStats, figures: ServerFigures): void {
    this.config = config;
    this.health = health;
    this.serverStats = serverStats;
    this.figures = figures;
    this.serverNames = serverNames(config);
  }

  private versionPacked = -1;
  private versionText = FALLBACK_SERVER_VERSION;
  private versionLine = Buffer.alloc(0);

  /** The reply to version or verbosity. */
  reply(cmd: number): Buffer {
    if (cmd !== Cmd.VERSION) return wire.OK;
    this.serverVersion();
    return this.versionLine;
  }

  /**
   * The lowest memcached version among the servers that gave one: a client
   * must not use a feature one of them lacks.
   */
  serverVersion(): string {
    let low = 0;
    for (let i = 0; i < this.serverNames.length; i++) {
      const v = this.health.version(i);
      if (v !== 0 && (low === 0 || v < low)) low = v;
    }
    if (low !== this.versionPacked) {
      this.versionPacked = low;
      this.versionText = low === 0 ? FALLBACK_SERVER_VERSION : unpackVersion(low);
      this.versionLine = Buffer.from(`VERSION ${this.versionText}\r\n`, 'latin1');
    }
    return this.versionText;
  }

  /**
   * Which stats a `stats` line asks for (STATS_*). STATS_ANSWER leaves the reply
   * in `answer`: ERROR for a sub-command memcached does not know either, a
   * CLIENT_ERROR for a form mcrelay cannot answer for all servers at once.
   */
  statsKind(buf: Buffer, parser: RequestParser): number {
    let i = parser.lineStart;
    while (buf[i] === 0x20) i++;
    const args = buf.toString('latin1', i + 5, parser.lineEnd).split(' ').filter((t) => t !== '');
    if (args.length === 0) return STATS_GENERAL;
    if (args.length === 1 && args[0] === 'servers') return STATS_SERVERS;
    if (args.length === 1 && args[0] === 'reset') return STATS_RESET;
    const server = this.serverNames.indexOf(args[args.length - 1]!);
    const rest = server < 0 ? args : args.slice(0, -1);
    const group = rest[0] ?? '';
    if (SERVER_TOGGLES.has(group) || (group === 'detail' && (rest[1] === 'on' || rest[1] === 'off')) || (group === 'reset' && server >= 0)) {
      return this.answerWith(`CLIENT_ERROR stats ${rest.join(' ')} changes a server's settings: mcrelay does not pass it on; send it to the server directly`);
    }
    const forwardable = rest.length === 0 || (rest.length === 1 && SERVER_GROUPS.has(group)) ||
      (group === 'detail' && rest[1] === 'dump' && rest.length === 2) || (group === 'cachedump' && rest.length === 3);
    if (server >= 0) {
      if (!forwardable) return this.answerWith('ERROR');
      this.forwardTo = server;
      this.forwardLine = `stats${rest.length > 0 ? ' ' : ''}${rest.join(' ')}\r\n`;
      return STATS_FORWARD;
    }
    if (rest.length === 1 && group === 'settings') return STATS_SETTINGS;
    if (forwardable) {
      return this.answerWith(`CLIENT_ERROR usage: stats ${rest.join(' ')} <server>, a server as stats servers names it: mcrelay answers this for one server at a time`);
    }
    if (group === 'detail') return this.answerWith('CLIENT_ERROR usage: stats detail dump <server>');
    const last = args[args.length - 1]!;
    if (args.length >= 2 && (last.includes(':') || last.startsWith('/'))) {
      return this.answerWith(`CLIENT_ERROR unknown server ${last}: stats servers lists mcrelay's servers`);
    }
    return this.answerWith('ERROR');
  }

  private answerWith(line: string): number {
    this.answer = line === 'ERROR' ? wire.ERROR : Buffer.from(`${line}\r\n`, 'latin1');
    return STATS_ANSWER;
  }

  /**
   * Sends the line statsKind() found to its server on a connection of its own,
   * and completes `req` with the server's reply (SERVER_ERROR if none came
   * whole within the timeout). `release` drops the reference req holds for it.
   */
  forward(req: Request, release: (req: Request) => void): void {
    const address = [...this.config.masters, ...this.config.backups][this.forwardTo]!;
    void exchange(address, this.forwardLine, this.config.timeoutMs, endsWithEnd).then(({ text }) => {
      const whole = text !== null && (endsWithEnd(text) || /^(ERROR|CLIENT_ERROR|SERVER_ERROR)[^\n]*\r\n$/.test(text));
      req.reply = whole ? Buffer.from(text, 'latin1') : wire.SERVER_ERROR_UNAVAILABLE;
      req.done = true;
      req.client?.replyReady();
      release(req);
    });
  }

  /** The figures, taken when the reply is written (after the requests before it). */
  statsReply(kind: number): Buffer {
    if (kind === STATS_RESET) {
      this.counters.reset();
      return wire.RESET;
    }
    if (kind === STATS_SETTINGS) return this.settings();
    return kind === STATS_SERVERS ? this.serverStatsReply() : this.stats();
  }

  /** stats settings: mcrelay's own, under memcached's names where memcached has the setting. */
  settings(): Buffer {
    const c = this.config;
    const lines: Array<[string, string | number]> = [
      ['maxconns', c.maxConnections],
      ['tcpport', c.listen.path !== null && c.listen.port === 0 ? 0 : c.listen.port],
      ['inter', c.listen.host === '' ? 'NULL' : c.listen.host],
      ['verbosity', c.verbose],
      ['domain_socket', c.listen.path ?? 'NULL'],
      ['umask', c.unixSocketMode.toString(8)],
      ['num_threads', c.workers],
      ['item_size_max', c.maxItemSize],
      ['masters', masterNames(c).join(',')],
      ['backups', c.backups.length === 0 ? 'NULL' : backupNames(c).join(',')],
      ['distribution', c.distribution],
      ['connections_per_server', c.connectionsPerServer],
      ['timeout_ms', c.timeoutMs],
      ['retry_interval_ms', c.retryIntervalMs],
      ['failure_limit', c.failureLimit],
      ['warmup_seconds', c.warmupSeconds],
      ['warmup_done_ratio', c.warmupDoneRatio],
      ['journal_max_keys', c.journalMaxKeys],
      ['backup_coverage_warn', c.backupCoverageWarn],
      ['drain_seconds', c.drainSeconds],
      ['admin', c.admin === null ? 'off' : `${c.admin.host}:${c.admin.port}`],
      // memcached's name for it: the file, or no
      ['auth_enabled_ascii', c.clientUsers === null ? 'no' : c.clientUsers.path],
    ];
    let s = '';
    for (const [k, v] of lines) s += `STAT ${k} ${v}\r\n`;
    return Buffer.from(`${s}END\r\n`, 'latin1');
  }

  stats(): Buffer {
    const c = this.counters;
    const now = Date.now();
    // Closed first: a connection handed over and closed between the two reads
    // then counts in neither, never in closed alone (curr_connections < 0).
    const closed = c.sum(C.CLOSED_CONNECTIONS);
    const handed = c.sum(C.HANDED_CONNECTIONS);
    const lines: Array<[string, string | number]> = [
      ['pid', process.pid],
      ['uptime', Math.floor((now - this.startedAt) / 1000)],
      ['time', Math.floor(now / 1000)],
      ['version', this.serverVersion()],
      ['mcrelay_version', VERSION],
      ['threads', this.config.workers],
      ['curr_connections', handed - closed],
      ['total_connections', c.sinceReset(C.TOTAL_CONNECTIONS)],
      ['rejected_connections', c.sinceReset(C.REJECTED_CONNECTIONS)],
      ['cmd_get', c.sinceReset(C.CMD_GET)],
      ['cmd_set', c.sinceReset(C.CMD_SET)],
      ['cmd_touch', c.sinceReset(C.CMD_TOUCH)],
      ['cmd_flush', c.sinceReset(C.CMD_FLUSH)],
      ['get_hits', c.sinceReset(C.GET_HITS)],
      ['get_misses', c.sinceReset(C.GET_MISSES)],
      ['get_failover', c.sinceReset(C.GET_FAILOVER)],
      ['get_warm_hits', c.sinceReset(C.GET_WARM_HITS)],
      ['backend_errors', c.sinceReset(C.BACKEND_ERRORS)],
      ['backend_timeouts', c.sinceReset(C.BACKEND_TIMEOUTS)],
      ['backup_repairs', c.sinceReset(C.BACKUP_REPAIRS)],
      ['protocol_errors', c.sinceReset(C.PROTOCOL_ERRORS)],
      ['auth_failures', c.sinceReset(C.AUTH_FAILURES)],
      ['bytes_read', c.sinceReset(C.BYTES_READ)],
      ['bytes_written', c.sinceReset(C.BYTES_WRITTEN)],
    ];
    let s = '';
    for (const [k, v] of lines) s += `STAT ${k} ${v}\r\n`;
    // The servers' own totals: over the masters serving reads (the cache clients
    // see), from the prober's last poll; backups are in stats servers.
    const sums = new Array<number>(SUMMED.length).fill(0);
    for (let m = 0; m < this.config.masters.length; m++) {
      const state = this.health.state(m);
      if (state !== UP && state !== WARMING) continue;
      const b = this.figures.copy(m, this.block);
      if (b[F.POLLED_AT] === 0) continue;
      for (let k = 0; k < SUMMED.length; k++) sums[k]! += b[F.FIRST + k]!;
    }
    for (let k = 0; k < SUMMED.length; k++) s += `STAT ${SUMMED[k]} ${sums[k]}\r\n`;
    return Buffer.from(`${s}END\r\n`, 'latin1');
  }

  /** stats servers: one block of lines per backend, "STAT <address>:<field> <value>". */
  serverStatsReply(): Buffer {
    const st = this.serverStats;
    const masters = this.config.masters.length;
    let s = '';
    for (let i = 0; i < this.serverNames.length; i++) {
      const name = this.serverNames[i]!;
      const fields: Array<[string, string | number]> = [
        ['role', i < masters ? 'master' : 'backup'],
        ['state', STATE_NAMES[this.health.state(i)] ?? 'unknown'],
        ['inflight', st.sum(i, S.INFLIGHT)],
        ['requests', st.sum(i, S.REQUESTS)],
        ['errors', st.sum(i, S.ERRORS)],
        ...ERROR_CODES.map((code, k): [string, number] => [`errors_${code}`, st.sum(i, S.ERRORS_BY_CODE + k)]),
        ['timeouts', st.sum(i, S.TIMEOUTS)],
        ['backup_reads', st.sum(i, S.BACKUP_READS)],
        ['journal', st.sum(i, S.JOURNAL)],
        ['warm_reads', st.sum(i, S.WARM_READS)],
        ['warm_fills', st.sum(i, S.WARM_FILLS)],
        ['reconnects', st.sum(i, S.RECONNECTS)],
        ['restarts_seen', st.sum(i, S.RESTARTS)],
        ['flushes', st.sum(i, S.FLUSHES)],
        ['invalidated_keys', st.sum(i, S.INVALIDATED)],
        ['restore_state', RESTORE_STATES[st.sum(i, S.RESTORE_STATE)] ?? 'idle'],
        ['restore_keys_copied', st.sum(i, S.RESTORE_COPIED)],
        ['restore_keys_skipped', st.sum(i, S.RESTORE_SKIPPED)],
        ['restore_seconds', st.sum(i, S.RESTORE_SECONDS).toFixed(1)],
        ['sweep_state', RESTORE_STATES[st.sum(i, S.SWEEP_STATE)] ?? 'idle'],
        ['sweep_keys_walked', st.sum(i, S.SWEEP_WALKED)],
        ['sweep_keys_deleted', st.sum(i, S.SWEEP_DELETED)],
        ['backup_divergences', st.sum(i, S.BACKUP_DIVERGENCES)],
        ['latency_p50_ms', st.percentile(i, 0.5).toFixed(3)],
        ['latency_p99_ms', st.percentile(i, 0.99).toFixed(3)],
      ];
      // The server's own figures, while the prober's last poll of it is current.
      const b = this.figures.copy(i, this.block);
      if (b[F.POLLED_AT] !== 0) for (const f of PER_SERVER) fields.push([f, b[figure(f)]!]);
      if (i >= masters) {
        fields.push(['write_refusals', st.sum(i, S.WRITE_REFUSALS)]);
        if (!Number.isNaN(b[F.COVERAGE]!)) fields.push(['coverage', b[F.COVERAGE]!.toFixed(3)], ['coverage_checked', b[F.COVERAGE_CHECKED]!]);
      }
      for (const [k, v] of fields) s += `STAT ${name}:${k} ${v}\r\n`;
    }
    return Buffer.from(`${s}END\r\n`, 'latin1');
  }

  /** The worker's open clients (for draining). */
  readonly clients = new Set<OpenClient>();
  /** Called when the last client has closed after drain(). */
  onIdle: (() => void) | null = null;

  clientOpened(client: OpenClient): void {
    this.clients.add(client);
  }

  clientClosed(client: OpenClient): void {
    this.ownRow[C.CLOSED_CONNECTIONS]!++;
    this.clients.delete(client);
    if (this.clients.size === 0 && this.onIdle !== null) this.onIdle();
  }
}
