// Commands the proxy answers itself: version, verbosity and stats.

import { Cmd } from '../protocol/commands.js';
import type { RequestParser } from '../protocol/request-parser.js';
import * as wire from '../protocol/wire.js';
import { C, type Counters } from '../shared/counters.js';
import { VERSION } from '../version.js';
import type { Config } from '../config/config.js';
import { STATE_NAMES, unpackVersion, type HealthTable } from '../shared/health.js';
import { S, type ServerStats } from '../shared/server-stats.js';
import type { ClientConnection } from './client.js';

export const STATS_GENERAL = 0;
export const STATS_SERVERS = 1;
export const STATS_RESET = 2;

/**
 * What `version` says until a server has told the prober its own. Clients read
 * this number (libmemcached refuses a 0.x server, memccapable decides from it
 * what to expect, others gate features on it), so it must be memcached's, not
 * mcrelay's: a 1.6 release, the series whose text and meta protocol mcrelay speaks.
 */
export const FALLBACK_SERVER_VERSION = '1.6.0';

export class LocalCommands {
  private serverNames: string[];

  constructor(
    private config: Config,
    private readonly counters: Counters,
    private readonly ownRow: Float64Array,
    private readonly startedAt: number,
    private health: HealthTable,
    private serverStats: ServerStats,
  ) {
    this.serverNames = [...config.masters, ...config.backups].map((s) => s.name);
  }

  /** After a reload: the new server list and its tables. */
  reconfigure(config: Config, health: HealthTable, serverStats: ServerStats): void {
    this.config = config;
    this.health = health;
    this.serverStats = serverStats;
    this.serverNames = [...config.masters, ...config.backups].map((s) => s.name);
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
   * Which stats a `stats` line asks for: STATS_GENERAL, STATS_SERVERS, or -1 for
   * a sub-command it does not know (memcached answers ERROR to those).
   */
  statsKind(buf: Buffer, parser: RequestParser): number {
    let i = parser.lineStart;
    while (buf[i] === 0x20) i++;
    i += 5;
    while (i < parser.lineEnd && buf[i] === 0x20) i++;
    if (i === parser.lineEnd) return STATS_GENERAL;
    let e = i;
    while (e < parser.lineEnd && buf[e] !== 0x20) e++;
    const sub = buf.toString('latin1', i, e);
    if (sub === 'servers') return STATS_SERVERS;
    if (sub === 'reset') return STATS_RESET;
    return -1;
  }

  /** The figures, taken when the reply is written (after the requests before it). */
  statsReply(kind: number): Buffer {
    if (kind === STATS_RESET) {
      this.counters.reset();
      return wire.RESET;
    }
    return kind === STATS_SERVERS ? this.serverStatsReply() : this.stats();
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
      ['bytes_read', c.sinceReset(C.BYTES_READ)],
      ['bytes_written', c.sinceReset(C.BYTES_WRITTEN)],
    ];
    let s = '';
    for (const [k, v] of lines) s += `STAT ${k} ${v}\r\n`;
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
        ['timeouts', st.sum(i, S.TIMEOUTS)],
        ['backup_reads', st.sum(i, S.BACKUP_READS)],
        ['journal', st.sum(i, S.JOURNAL)],
        ['warm_reads', st.sum(i, S.WARM_READS)],
        ['warm_fills', st.sum(i, S.WARM_FILLS)],
        ['reconnects', st.sum(i, S.RECONNECTS)],
        ['restarts_seen', st.sum(i, S.RESTARTS)],
        ['flushes', st.sum(i, S.FLUSHES)],
        ['invalidated_keys', st.sum(i, S.INVALIDATED)],
        ['latency_p50_ms', st.percentile(i, 0.5).toFixed(3)],
        ['latency_p99_ms', st.percentile(i, 0.99).toFixed(3)],
      ];
      for (const [k, v] of fields) s += `STAT ${name}:${k} ${v}\r\n`;
    }
    return Buffer.from(`${s}END\r\n`, 'latin1');
  }

  /** The worker's open clients (for draining). */
  readonly clients = new Set<ClientConnection>();
  /** Called when the last client has closed after drain(). */
  onIdle: (() => void) | null = null;

  clientOpened(client: ClientConnection): void {
    this.clients.add(client);
  }

  clientClosed(client: ClientConnection): void {
    this.ownRow[C.CLOSED_CONNECTIONS]!++;
    this.clients.delete(client);
    if (this.clients.size === 0 && this.onIdle !== null) this.onIdle();
  }
}
