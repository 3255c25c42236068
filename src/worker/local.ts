// Commands the proxy answers itself: version, verbosity and stats.

import { Cmd } from '../protocol/commands.js';
import type { RequestParser } from '../protocol/request-parser.js';
import * as wire from '../protocol/wire.js';
import { C, type Counters } from '../shared/counters.js';
import { VERSION } from '../version.js';
import type { ClientConnection } from './client.js';

const VERSION_LINE = Buffer.from(`VERSION ${VERSION}\r\n`, 'latin1');

export class LocalCommands {
  constructor(
    private readonly counters: Counters,
    private readonly ownRow: Float64Array,
    private readonly startedAt: number,
    private readonly workers: number,
  ) {}

  /** The reply to a local command; null for plain stats, whose figures are taken when it is written. */
  reply(cmd: number, buf: Buffer, parser: RequestParser): Buffer | null {
    if (cmd === Cmd.VERSION) return VERSION_LINE;
    if (cmd === Cmd.VERBOSITY) return wire.OK;
    // stats: only the plain form; memcached answers ERROR to a sub-command it does not know.
    let i = parser.lineStart;
    while (buf[i] === 0x20) i++;
    i += 5;
    while (i < parser.lineEnd && buf[i] === 0x20) i++;
    if (i < parser.lineEnd) return wire.ERROR;
    return null;
  }

  stats(): Buffer {
    const c = this.counters;
    const now = Date.now();
    const handed = c.sum(C.HANDED_CONNECTIONS);
    const closed = c.sum(C.CLOSED_CONNECTIONS);
    const lines: Array<[string, string | number]> = [
      ['pid', process.pid],
      ['uptime', Math.floor((now - this.startedAt) / 1000)],
      ['time', Math.floor(now / 1000)],
      ['version', VERSION],
      ['threads', this.workers],
      ['curr_connections', handed - closed],
      ['total_connections', c.sum(C.TOTAL_CONNECTIONS)],
      ['rejected_connections', c.sum(C.REJECTED_CONNECTIONS)],
      ['cmd_get', c.sum(C.CMD_GET)],
      ['cmd_set', c.sum(C.CMD_SET)],
      ['cmd_touch', c.sum(C.CMD_TOUCH)],
      ['cmd_flush', c.sum(C.CMD_FLUSH)],
      ['get_hits', c.sum(C.GET_HITS)],
      ['get_misses', c.sum(C.GET_MISSES)],
      ['get_failover', c.sum(C.GET_FAILOVER)],
      ['backend_errors', c.sum(C.BACKEND_ERRORS)],
      ['backend_timeouts', c.sum(C.BACKEND_TIMEOUTS)],
      ['backup_repairs', c.sum(C.BACKUP_REPAIRS)],
      ['bytes_read', c.sum(C.BYTES_READ)],
      ['bytes_written', c.sum(C.BYTES_WRITTEN)],
    ];
    let s = '';
    for (const [k, v] of lines) s += `STAT ${k} ${v}\r\n`;
    return Buffer.from(`${s}END\r\n`, 'latin1');
  }

  clientClosed(_client: ClientConnection): void {
    this.ownRow[C.CLOSED_CONNECTIONS]!++;
  }
}
