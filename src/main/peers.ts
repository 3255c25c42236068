// Telling the other entry proxies that a master went down, through the backups.
//
// Entry proxies do not talk to each other, and each has its own view of server
// health: a proxy that sent no traffic to a master during a partition would read
// its stale values the moment it answers again. So a proxy that marks a master
// down also bumps a counter in every backup server, "mcrelay:down:<host:port>";
// every proxy reads those counters each retry interval and marks the master down
// itself when one has grown since it last looked, which sends it through the same
// recovery (flush, then warm-up) before it reads from that master again.
//
// One small get per backup per interval; nothing on the request path.

import net from 'node:net';
import type { ServerAddress } from '../config/config.js';
import { DOWN, HealthTable } from '../shared/health.js';
import { log } from '../log.js';

const PREFIX = 'mcrelay:down:';

export class Peers {
  /** per master: the highest counter seen (null until first read) */
  private readonly seen: Array<number | null>;
  /** per master: the announcement of the current outage (null: not announced) */
  private readonly announced: Array<Promise<void> | null>;
  private busy = false;

  constructor(
    private readonly masters: readonly ServerAddress[],
    private readonly backups: readonly ServerAddress[],
    private readonly health: HealthTable,
    private readonly timeoutMs: number,
  ) {
    this.seen = masters.map(() => null);
    this.announced = masters.map(() => null);
  }

  /** Announces masters this proxy has just seen go down (called often: it is local until one has). */
  announceDown(): void {
    if (this.backups.length === 0) return;
    for (let i = 0; i < this.masters.length; i++) {
      if (this.health.state(i) === DOWN) void this.announce(i);
      else this.announced[i] = null;
    }
  }

  /**
   * Called by the prober when a DOWN master answers, before its recovery starts.
   * First this outage is announced, however short it was (announceDown may not
   * have run yet). Then the counters are read once more: the other proxies'
   * announcements of this same outage are absorbed while the master is still
   * DOWN here; read a moment later, they would look like news of a new outage
   * and send the recovering master back to DOWN for another interval.
   */
  async beforeRecovery(i: number): Promise<void> {
    if (i >= this.masters.length || this.backups.length === 0) return;
    await this.announce(i);
    await this.readNews();
  }

  /** Called every retry interval by the prober: reads the other proxies' news. */
  async tick(): Promise<void> {
    if (this.busy || this.backups.length === 0) return;
    this.busy = true;
    try {
      await this.readNews();
    } finally {
      this.busy = false;
    }
  }

  /** Bumps a master's counter once per outage; resolves when done or failed. */
  private announce(i: number): Promise<void> {
    return this.announced[i] ??= this.bump(i).then(
      (n) => { if (n !== null) this.seen[i] = Math.max(this.seen[i] ?? 0, n); },
      (err: Error) => log.error('peer announce failed', { server: this.masters[i]!.name, error: err.message }),
    );
  }

  /** Marks down every master whose counter grew since this proxy last looked. */
  private async readNews(): Promise<void> {
    const counts = await this.read();
    for (let i = 0; i < this.masters.length; i++) {
      const n = counts[i]!;
      const before = this.seen[i]!;
      if (n === null) continue;
      this.seen[i] = Math.max(before ?? 0, n);
      if (before !== null && n > before && this.health.markDown(i)) {
        this.announced[i] = Promise.resolve();
        log.warn('server marked down', { server: this.masters[i]!.name, reason: 'another proxy saw it down' });
      }
    }
  }

  /** Bumps the master's counter on every backup; returns the highest value. */
  private async bump(i: number): Promise<number | null> {
    const key = PREFIX + this.masters[i]!.name;
    let best: number | null = null;
    for (const b of this.backups) {
      let reply = await exchange(b, `incr ${key} 1\r\n`, this.timeoutMs);
      if (reply !== null && reply.startsWith('NOT_FOUND')) {
        reply = await exchange(b, `add ${key} 0 0 1\r\n1\r\n`, this.timeoutMs);
        if (reply !== null && reply.startsWith('NOT_STORED')) reply = await exchange(b, `incr ${key} 1\r\n`, this.timeoutMs);
        else if (reply !== null && reply.startsWith('STORED')) reply = '1\r\n';
      }
      const n = reply === null ? NaN : Number(reply.trim());
      if (Number.isFinite(n)) best = Math.max(best ?? 0, n);
    }
    return best;
  }

  /** Reads every master's counter from every backup; the highest of each, or null. */
  private async read(): Promise<Array<number | null>> {
    const out: Array<number | null> = this.masters.map(() => null);
    const keys = this.masters.map((m) => PREFIX + m.name);
    for (const b of this.backups) {
      const reply = await exchange(b, `get ${keys.join(' ')}\r\n`, this.timeoutMs, 'END\r\n');
      if (reply === null) continue;
      const re = /VALUE (\S+) \d+ \d+\r\n(\d+)\r\n/g;
      for (let m = re.exec(reply); m !== null; m = re.exec(reply)) {
        const i = keys.indexOf(m[1]!);
        if (i >= 0) out[i] = Math.max(out[i] ?? 0, Number(m[2]));
      }
      // A backup that had no counter yet still counts as read: 0.
      for (let i = 0; i < out.length; i++) if (out[i] === null) out[i] = 0;
    }
    return out;
  }
}

/** One request on a fresh connection; the reply text, or null on any failure or timeout. */
function exchange(address: ServerAddress, request: string, timeoutMs: number, terminator = '\r\n'): Promise<string | null> {
  return new Promise((resolve) => {
    const socket = address.path !== null ? net.connect(address.path) : net.connect(address.port, address.host);
    let got = '';
    const done = (r: string | null): void => { clearTimeout(timer); socket.destroy(); resolve(r); };
    const timer = setTimeout(() => done(null), timeoutMs);
    socket.on('connect', () => socket.write(request));
    socket.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      if (got.endsWith(terminator) || /^(ERROR|CLIENT_ERROR|SERVER_ERROR)/.test(got)) done(got);
    });
    socket.on('error', () => done(null));
    socket.on('close', () => done(got === '' ? null : got));
  });
}
