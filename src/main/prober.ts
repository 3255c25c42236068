// Finds servers coming back: every retry interval, each DOWN server is asked
// "version"; an answer hands it to main/recovery.ts, which walks it back to UP
// through the shared health table, where every worker sees it at its next
// routing decision.
//
// It also asks each server that is not down, once, whether it answers meta
// commands ("mn"): workers send one-key gets to a server that does as mg, which
// memcached answers in one write per batch where it writes once per text get.
// The question goes on a connection of its own: memcached before 1.6 answers
// ERROR, but a proxy in front of memcached (twemproxy) closes the connection,
// which must not be one carrying clients' requests. A server is asked again
// after it was down (it may come back as another version), and at each
// interval while no answer has come (unreachable, or silent past the timeout).
//
// And it tells a restart from an outage. Every interval it reads each answering
// server's `stats` (pid, and time - uptime: when the process started, by the
// server's own clock); when a down server answers again, the same figures say
// whether it is the process that went away (it kept its data) or a new one (it
// came back empty). A server found restarted while it looked up (its idle
// connections closed and reopened without a failed request) is marked down, so
// that it goes through recovery and warm-up like any other return. The same
// reply's figures (curr_items, bytes, evictions...) go to the shared
// ServerFigures, which `stats`, `stats servers` and /metrics read: one poll per
// server per interval serves both, off the request path.

import type { ServerAddress } from '../config/config.js';
import { DOWN, DRAINED, UP, HealthTable, packVersion } from '../shared/health.js';
import type { ServerFigures } from '../shared/server-figures.js';
import { Code, codeOf } from '../errors.js';
import { log } from '../log.js';
import { endsWithEnd, exchange, lines } from '../backend/server-request.js';

const VERSION_REQUEST = Buffer.from('version\r\n');
const MN_REQUEST = Buffer.from('mn\r\n');
const STATS_REQUEST = Buffer.from('stats\r\n');

/** Which process a server is: its pid and when it started (server clock, seconds). */
export interface Identity { pid: string; started: number }

export class Prober {
  private timer: NodeJS.Timeout | null = null;
  private readonly inProgress: boolean[];
  /** the server's answer to mn is in the health table (answersMeta), or is being asked for */
  private readonly metaAsked: boolean[];

  constructor(
    private readonly servers: readonly ServerAddress[],
    private readonly health: HealthTable,
    private readonly intervalMs: number,
    private readonly timeoutMs: number,
    private readonly failureLimit: number,
    /** a DOWN server answers again; restarted: it is another process than the one that went away (null: not known) */
    private readonly answered: (server: number, restarted: boolean | null) => Promise<void>,
    /** news of masters other proxies saw down (read each interval), and ours to tell */
    private readonly peers: { tick(): Promise<void>; announceDown(): void; beforeRecovery(server: number): Promise<void> } | null = null,
    /** where each answering server's `stats` figures are published (null: not kept) */
    private readonly figures: ServerFigures | null = null,
  ) {
    this.inProgress = servers.map(() => false);
    this.metaAsked = servers.map(() => false);
    this.known = servers.map(() => null);
    this.polling = servers.map(() => false);
    this.silent = servers.map(() => 0);
    this.returning = servers.map(() => undefined);
  }

  /** per server: the process last seen answering (null: not known) */
  private readonly known: Array<Identity | null>;
  private readonly polling: boolean[];
  /** per server: identity polls in a row that timed out */
  private readonly silent: number[];
  /**
   * per server: the restart verdict of a return whose recovery has not reached
   * UP (undefined: none). Kept so that a recovery cut short (failed, or a
   * reload) and begun again still knows the server came back empty: by then
   * `known` is the new process, which the second probe finds unchanged.
   */
  private readonly returning: Array<boolean | null | undefined>;

  private announceTimer: NodeJS.Timeout | null = null;

  /** After a reload: the identities and return verdicts `old` knew, for the servers both know (by name). */
  adopt(old: Prober): void {
    for (let i = 0; i < this.servers.length; i++) {
      const o = old.servers.findIndex((s) => s.name === this.servers[i]!.name);
      if (o < 0) continue;
      this.known[i] = old.known[o]!;
      this.returning[i] = old.returning[o];
    }
  }

  start(): void {
    this.askMeta();
    this.pollIdentity();
    this.timer = setInterval(() => this.tick(), this.intervalMs);
    this.timer.unref();
    if (this.peers !== null) {
      // Other proxies should hear of an outage well before the server returns.
      const peers = this.peers;
      // The first read sets what counts as news: do it now, not an interval later.
      void peers.tick().catch((err: Error) => log.error('peer check failed', { code: codeOf(err), error: err.message }));
      this.announceTimer = setInterval(() => peers.announceDown(), Math.min(50, this.intervalMs));
      this.announceTimer.unref();
    }
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    if (this.announceTimer !== null) clearInterval(this.announceTimer);
    this.timer = null;
    this.announceTimer = null;
  }

  private tick(): void {
    // A master another proxy saw down is probed as soon as that news is read,
    // not an interval later.
    void this.peers?.tick().then(() => this.probeDown(), (err: Error) => log.error('peer check failed', { code: codeOf(err), error: err.message }));
    this.probeDown();
    this.askMeta();
    this.pollIdentity();
  }

  /**
   * Reads the identity of every server that is not down: one that refuses the
   * connection (or stays silent failureLimit times in a row) has failed, one
   * found changed has restarted. Either way it is marked down: a server with no
   * traffic has no request to fail, and would be read empty or stale otherwise.
   */
  private pollIdentity(): void {
    for (let i = 0; i < this.servers.length; i++) {
      if (this.health.state(i) === DOWN || this.health.state(i) === DRAINED) { this.figures?.forget(i); continue; }
      if (this.health.state(i) === UP) this.returning[i] = undefined;
      if (this.polling[i]) continue;
      this.polling[i] = true;
      void identity(this.servers[i]!, this.timeoutMs).then(({ id, failed, timedOut, error, text, version, authRefused }) => {
        this.polling[i] = false;
        if (this.health.state(i) === DOWN) return;
        if (version !== 0) this.health.setVersion(i, version);
        if (text !== null && id !== null) this.figures?.publishStats(i, text, Date.now());
        else this.figures?.forget(i);
        this.silent[i] = timedOut ? this.silent[i]! + 1 : 0;
        if ((failed && !timedOut) || this.silent[i]! >= this.failureLimit) {
          this.silent[i] = 0;
          const name = this.servers[i]!.name;
          const reason = authRefused ?? (timedOut ? `${this.failureLimit} probes timed out` : `probe failed: connect ${error ?? 'closed'} ${name}`);
          const code = authRefused !== null ? Code.BACKEND_AUTH : timedOut ? Code.BACKEND_TIMEOUT : Code.CONNECT_FAILED;
          if (this.health.markDown(i)) log.warn('server marked down', { server: name, code, reason });
          return;
        }
        if (id === null) return;
        const before = this.known[i];
        if (before === null) { this.known[i] = id; return; }
        if (sameProcess(before, id)) return;
        // Kept as it was: the recovery compares with it and counts the restart.
        if (this.health.markDown(i)) {
          log.warn('server marked down', { server: this.servers[i]!.name, reason: 'restarted', pid: id.pid, was: before.pid });
        }
      });
    }
  }

  private askMeta(): void {
    for (let i = 0; i < this.servers.length; i++) {
      if (this.metaAsked[i] || this.health.state(i) === DOWN) continue;
      this.metaAsked[i] = true;
      const server = this.servers[i]!;
      void askMeta(server, this.timeoutMs).then((yes) => {
        // No answer: ask again next interval.
        if (yes === null) { this.metaAsked[i] = false; return; }
        this.health.setAnswersMeta(i, yes);
        if (!yes) log.info('server does not answer meta commands: gets go to it as text', { server: server.name });
      });
    }
  }

  private probeDown(): void {
    for (let i = 0; i < this.servers.length; i++) {
      if (this.health.state(i) !== DOWN || this.inProgress[i]) continue;
      this.inProgress[i] = true;
      void probe(this.servers[i]!, this.timeoutMs).then(async (version) => {
        try {
          if (version === null) return;
          // It may come back as another memcached version: clients are told the lowest.
          if (version !== 0) this.health.setVersion(i, version);
          // Back, perhaps as another memcached: asked about mn again before it serves reads.
          this.health.setAnswersMeta(i, false);
          this.metaAsked[i] = false;
          const { id } = await identity(this.servers[i]!, this.timeoutMs);
          const before = this.known[i]!;
          // Not known (never read before it went away, or no identity now): it may have come back empty.
          let restarted = id === null || before === null ? null : !sameProcess(before, id);
          // The last return's recovery did not finish: what it found still holds.
          const earlier = this.returning[i];
          if (earlier === true || (earlier === null && restarted === false)) restarted = earlier;
          this.returning[i] = restarted;
          if (id !== null) this.known[i] = id;
          await this.peers?.beforeRecovery(i);
          if (this.health.state(i) === DOWN) await this.answered(i, restarted);
        } catch (err) {
          log.error('recovery failed', { server: this.servers[i]!.name, code: codeOf(err), error: (err as Error).message });
        } finally {
          this.inProgress[i] = false;
        }
      });
    }
  }
}

/**
 * null unless the server answers "version" with a VERSION line within the
 * timeout; then the version it gives, packed (0 if it is not a dotted number).
 */
async function probe(address: ServerAddress, timeoutMs: number): Promise<number | null> {
  const { text } = await exchange(address, VERSION_REQUEST, timeoutMs, lines(1));
  return text !== null && text.startsWith('VERSION ') ? packVersion(text.slice(8)) : null;
}

/**
 * The server's pid and start time from its `stats` (id null if it gave none),
 * and the whole reply when it is one (text); failed: no connection, or no
 * answer (timedOut: within the timeout).
 */
export async function identity(address: ServerAddress, timeoutMs: number): Promise<{ id: Identity | null; failed: boolean; timedOut: boolean; error: string | null; text: string | null; version: number; authRefused: string | null }> {
  const { text, timedOut, refused, error, authRefused } = await exchange(address, STATS_REQUEST, timeoutMs, endsWithEnd);
  // Connected, then closed on `stats` (twemproxy does): it has no identity to give, and is up.
  if (text === null) return { id: null, failed: !refused, timedOut, error, text: null, version: 0, authRefused };
  const v = /^STAT version (\S+)\r$/m.exec(text)?.[1];
  const version = v === undefined ? 0 : packVersion(v);
  const pid = /^STAT pid (\d+)\r$/m.exec(text)?.[1];
  const uptime = /^STAT uptime (\d+)\r$/m.exec(text)?.[1];
  const time = /^STAT time (\d+)\r$/m.exec(text)?.[1];
  if (!endsWithEnd(text) || pid === undefined || uptime === undefined || time === undefined) return { id: null, failed: false, timedOut: false, error: null, text: null, version, authRefused: null };
  return { id: { pid, started: Number(time) - Number(uptime) }, failed: false, timedOut: false, error: null, text, version, authRefused: null };
}

/**
 * The same process: same pid, and the same start time give or take the
 * rounding of two whole-second clocks read at different moments.
 */
export function sameProcess(a: Identity, b: Identity): boolean {
  return a.pid === b.pid && Math.abs(a.started - b.started) <= 2;
}

/**
 * Whether the server answers "mn" with MN. It does not if it answers ERROR (an
 * unknown command) or closes the connection without a word; anything else (no
 * connection, no reply within the timeout, "ERROR Too many open connections")
 * is null: not known, to be asked again.
 */
export async function askMeta(address: ServerAddress, timeoutMs: number): Promise<boolean | null> {
  const { text, refused } = await exchange(address, MN_REQUEST, timeoutMs, lines(1));
  if (text === 'MN\r\n') return true;
  if (text === 'ERROR\r\n' || refused) return false;
  return null;
}
