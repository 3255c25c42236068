// A fault-injecting TCP relay, placed between mcrelay and a real memcached:
//
//   mcrelay --requests--> FaultRelay --> memcached
//   mcrelay <--replies--- FaultRelay <-- memcached      (faults apply here)
//
// The fault can be switched at any time and applies at once to every open
// connection and to new ones:
//   pass             forward both ways
//   delay(ms)        hold every reply chunk back ms milliseconds (order kept)
//   blackhole        accept, read requests, forward nothing either way
//   reset            forward half of the next reply chunk, then reset the connection (RST)
//   cut(close)       forward half of the next reply chunk, then forward nothing more;
//                    close: end the connection (FIN) instead of hanging
//   garbage          replace every reply chunk with bytes no memcached would send
// It counts connections and who closed each first, so a test can tell that
// mcrelay dropped a connection that went bad.
import net from 'node:net';

export type Fault =
  | { kind: 'pass' }
  | { kind: 'delay'; ms: number }
  | { kind: 'blackhole' }
  | { kind: 'reset' }
  | { kind: 'cut'; close: boolean }
  | { kind: 'garbage' };

export const PASS: Fault = { kind: 'pass' };

const GARBAGE = Buffer.from('HTTP/1.1 502 Bad Gateway\r\nX: \x00\x01\x02garbage\r\n\r\n', 'latin1');

interface Pair {
  client: net.Socket;
  upstream: net.Socket;
  /** the reply side went dead on purpose (cut): nothing more is forwarded */
  dead: boolean;
  /** delayed replies not yet written, in order, each with when it is due (performance.now()) */
  held: Array<{ at: number; d: Buffer }>;
  /** the timer that writes the head of `held` when it is due */
  timer: NodeJS.Timeout | null;
}

export class FaultRelay {
  readonly server: net.Server;
  port = 0;
  fault: Fault = PASS;
  private readonly pairs = new Set<Pair>();
  /** connections accepted so far */
  accepted = 0;
  /** connections the proxy side closed first (mcrelay dropping a connection) */
  closedByClient = 0;
  /** connections the relay itself broke (reset, cut) */
  brokenByRelay = 0;
  /** every byte the proxy side sent, over all connections in arrival order (latin1) */
  requests = '';

  constructor(readonly targetPort: number, readonly targetHost = '127.0.0.1') {
    this.server = net.createServer((client) => this.accept(client));
  }

  async listen(port = 0): Promise<this> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => { this.server.off('error', reject); resolve(); });
    });
    this.port = (this.server.address() as net.AddressInfo).port;
    return this;
  }

  get addr(): string { return `127.0.0.1:${this.port}`; }
  get open(): number { return this.pairs.size; }

  /** Switches the fault; it applies to what is forwarded from now on. */
  set(fault: Fault): void {
    this.fault = fault;
  }

  private accept(client: net.Socket): void {
    this.accepted++;
    client.setNoDelay(true);
    const upstream = net.connect(this.targetPort, this.targetHost);
    upstream.setNoDelay(true);
    const pair: Pair = { client, upstream, dead: false, held: [], timer: null };
    this.pairs.add(pair);
    let clientClosedFirst: boolean | null = null;
    const done = (): void => {
      if (!this.pairs.delete(pair)) return;
      if (pair.timer !== null) clearTimeout(pair.timer);
      pair.held = [];
      if (clientClosedFirst === true) this.closedByClient++;
      client.destroy();
      upstream.destroy();
    };
    client.on('error', () => {});
    upstream.on('error', () => {});
    client.on('close', () => { clientClosedFirst ??= true; done(); });
    upstream.on('close', () => { clientClosedFirst ??= false; done(); });
    client.on('data', (d: Buffer) => {
      this.requests += d.toString('latin1');
      if (this.fault.kind === 'blackhole' || pair.dead) return;
      upstream.write(d);
    });
    upstream.on('data', (d: Buffer) => this.reply(pair, d, () => { clientClosedFirst ??= false; }));
  }

  private reply(pair: Pair, d: Buffer, relayCloses: () => void): void {
    if (pair.dead) return;
    const f = this.fault;
    switch (f.kind) {
      case 'pass':
        // Replies still held by a delay that has just been switched off go first: TCP keeps order.
        if (pair.held.length > 0) this.later(pair, d, 0);
        else pair.client.write(d);
        return;
      case 'delay':
        this.later(pair, d, f.ms);
        return;
      case 'blackhole':
        return;
      case 'garbage':
        pair.client.write(GARBAGE);
        return;
      case 'reset':
        pair.dead = true;
        this.brokenByRelay++;
        relayCloses();
        pair.client.write(d.subarray(0, Math.max(1, d.length >> 1)), () => pair.client.resetAndDestroy());
        return;
      case 'cut':
        pair.dead = true;
        this.brokenByRelay++;
        pair.client.write(d.subarray(0, Math.max(1, d.length >> 1)));
        if (f.close) { relayCloses(); pair.client.end(); }
        return;
    }
  }

  /** Writes d to the proxy side after ms, and never before a reply held before it. */
  private later(pair: Pair, d: Buffer, ms: number): void {
    pair.held.push({ at: performance.now() + ms, d });
    if (pair.timer === null) this.release(pair);
  }

  private release(pair: Pair): void {
    pair.timer = null;
    const now = performance.now();
    while (pair.held.length > 0 && pair.held[0]!.at <= now) {
      const { d } = pair.held.shift()!;
      if (!pair.client.destroyed) pair.client.write(d);
    }
    if (pair.held.length > 0) pair.timer = setTimeout(() => this.release(pair), Math.max(1, pair.held[0]!.at - now));
  }

  /** Drops every open connection (as a restart of the relay would). */
  dropAll(): void {
    for (const p of [...this.pairs]) { p.client.destroy(); p.upstream.destroy(); }
  }

  /** Resets (RST) every open connection to the proxy side, as a firewall forgetting idle flows would; returns how many. */
  resetAll(): number {
    const n = this.pairs.size;
    for (const p of [...this.pairs]) { p.client.resetAndDestroy(); p.upstream.destroy(); }
    return n;
  }

  async close(): Promise<void> {
    this.dropAll();
    await new Promise((r) => this.server.close(r));
  }
}
