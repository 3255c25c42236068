// Brings servers back: every retry interval, each DOWN server is asked "version";
// an answer marks it UP in the shared health table, where every worker sees it at
// its next routing decision.

import net from 'node:net';
import type { ServerAddress } from '../config/config.js';
import { DOWN, HealthTable, UP } from '../shared/health.js';
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
  ) {
    this.inProgress = servers.map(() => false);
  }

  start(): void {
    this.timer = setInterval(() => this.tick(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  private tick(): void {
    for (let i = 0; i < this.servers.length; i++) {
      if (this.health.state(i) !== DOWN || this.inProgress[i]) continue;
      this.inProgress[i] = true;
      void probe(this.servers[i]!, this.timeoutMs).then((ok) => {
        this.inProgress[i] = false;
        if (ok && this.health.state(i) === DOWN && this.health.setState(i, UP)) {
          log.info('server marked up', { server: this.servers[i]!.name });
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
