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

import net from 'node:net';
import type { ServerAddress } from '../config/config.js';
import { DOWN, HealthTable } from '../shared/health.js';
import { log } from '../log.js';

const VERSION_REQUEST = Buffer.from('version\r\n');
const MN_REQUEST = Buffer.from('mn\r\n');

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
    private readonly answered: (server: number) => Promise<void>,
    /** news of masters other proxies saw down (read each interval), and ours to tell */
    private readonly peers: { tick(): Promise<void>; announceDown(): void; beforeRecovery(server: number): Promise<void> } | null = null,
  ) {
    this.inProgress = servers.map(() => false);
    this.metaAsked = servers.map(() => false);
  }

  private announceTimer: NodeJS.Timeout | null = null;

  start(): void {
    this.askMeta();
    this.timer = setInterval(() => this.tick(), this.intervalMs);
    this.timer.unref();
    if (this.peers !== null) {
      // Other proxies should hear of an outage well before the server returns.
      const peers = this.peers;
      // The first read sets what counts as news: do it now, not an interval later.
      void peers.tick().catch((err: Error) => log.error('peer check failed', { error: err.message }));
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
    void this.peers?.tick().then(() => this.probeDown(), (err: Error) => log.error('peer check failed', { error: err.message }));
    this.probeDown();
    this.askMeta();
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
      void probe(this.servers[i]!, this.timeoutMs).then(async (ok) => {
        try {
          if (!ok) return;
          // Back, perhaps as another memcached: asked about mn again before it serves reads.
          this.health.setAnswersMeta(i, false);
          this.metaAsked[i] = false;
          await this.peers?.beforeRecovery(i);
          if (this.health.state(i) === DOWN) await this.answered(i);
        } catch (err) {
          log.error('recovery failed', { server: this.servers[i]!.name, error: (err as Error).message });
        } finally {
          this.inProgress[i] = false;
        }
      });
    }
  }
}

/** True if the server answers "version" with a VERSION line within the timeout. */
async function probe(address: ServerAddress, timeoutMs: number): Promise<boolean> {
  const { line } = await ask(address, VERSION_REQUEST, timeoutMs);
  return line !== null && line.startsWith('VERSION ');
}

/**
 * Whether the server answers "mn" with MN. It does not if it answers ERROR (an
 * unknown command) or closes the connection without a word; anything else (no
 * connection, no reply within the timeout, "ERROR Too many open connections")
 * is null: not known, to be asked again.
 */
export async function askMeta(address: ServerAddress, timeoutMs: number): Promise<boolean | null> {
  const { line, closed } = await ask(address, MN_REQUEST, timeoutMs);
  if (line === 'MN') return true;
  if (line === 'ERROR' || (line === null && closed)) return false;
  return null;
}

/**
 * Sends `request` on a connection of its own and resolves with the first reply
 * line (null if none came), and whether the server closed or reset the
 * connection after the request was sent, before sending anything.
 */
function ask(address: ServerAddress, request: Buffer, timeoutMs: number): Promise<{ line: string | null; closed: boolean }> {
  return new Promise((resolve) => {
    const socket = address.path !== null ? net.connect(address.path) : net.connect(address.port, address.host);
    let got = '';
    let sent = false;
    const done = (line: string | null, closed: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ line, closed });
    };
    const timer = setTimeout(() => done(null, false), timeoutMs);
    socket.on('connect', () => { sent = true; socket.write(request); });
    socket.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      const nl = got.indexOf('\r\n');
      if (nl !== -1) done(got.slice(0, nl), false);
    });
    // Closed or reset once the request was out, with nothing said: the server refused it.
    socket.on('error', () => done(null, sent && got === ''));
    socket.on('close', () => done(null, sent && got === ''));
  });
}
