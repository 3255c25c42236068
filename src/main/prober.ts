// Finds servers coming back: every retry interval, each DOWN server is asked
// "version"; an answer hands it to main/recovery.ts, which walks it back to UP
// through the shared health table, where every worker sees it at its next
// routing decision.

import net from 'node:net';
import type { ServerAddress } from '../config/config.js';
import { DOWN, HealthTable } from '../shared/health.js';
import { log } from '../log.js';

const VERSION_REQUEST = Buffer.from('version\r\n');

export class Prober {
  private timer: NodeJS.Timeout | null = null;
  private readonly inProgress: boolean[];

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
  }

  private announceTimer: NodeJS.Timeout | null = null;

  start(): void {
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
  }

  private probeDown(): void {
    for (let i = 0; i < this.servers.length; i++) {
      if (this.health.state(i) !== DOWN || this.inProgress[i]) continue;
      this.inProgress[i] = true;
      void probe(this.servers[i]!, this.timeoutMs).then(async (ok) => {
        try {
          if (!ok) return;
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
export function probe(address: ServerAddress, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = address.path !== null ? net.connect(address.path) : net.connect(address.port, address.host);
    let got = '';
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.on('connect', () => socket.write(VERSION_REQUEST));
    socket.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      if (got.includes('\r\n')) done(got.startsWith('VERSION '));
    });
    socket.on('error', () => done(false));
    socket.on('close', () => done(false));
  });
}
