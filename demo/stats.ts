// What an entry proxy says about itself: `stats` and `stats servers` over the
// memcached protocol (as any operator would ask); the warm-up fill counts come
// from the admin listener's /metrics when `stats servers` has no warm_fills.
import net from 'node:net';
import { HOST } from './processes.js';

export interface ServerView {
  state: string;
  requests: number;
  backupReads: number;
  warmFills: number;
  /** the eager restore of a returning server: its state and keys copied so far */
  restoreState: string;
  restoreCopied: number;
}

export interface EntrySnapshot {
  general: Map<string, string>;
  /** by server address, as the proxy names it (host:port) */
  servers: Map<string, ServerView>;
}

const END = Buffer.from('END\r\n');

/** One connection to an entry that asks `stats` and `stats servers` each time it is polled. */
export class StatsClient {
  private socket: net.Socket | null = null;
  private buf: Buffer = Buffer.alloc(0);
  private waiter: (() => void) | null = null;

  constructor(readonly port: number, readonly adminPort: number | null) {}

  private async open(): Promise<net.Socket> {
    const s = net.connect(this.port, HOST);
    await new Promise<void>((resolve, reject) => {
      s.once('connect', resolve);
      s.once('error', reject);
    });
    s.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.waiter?.();
    });
    s.on('error', () => { /* followed by close */ });
    s.on('close', () => { if (this.socket === s) this.socket = null; this.waiter?.(); });
    this.socket = s;
    this.buf = Buffer.alloc(0);
    return s;
  }

  /** Both stats replies, or null if the entry did not answer within timeoutMs. */
  async poll(timeoutMs: number): Promise<EntrySnapshot | null> {
    try {
      const s = this.socket ?? await this.open();
      this.buf = Buffer.alloc(0);
      s.write('stats\r\nstats servers\r\n');
      const text = await this.readEnds(2, timeoutMs);
      if (text === null) {
        // A late reply would land in the next poll: start over on a new connection.
        s.destroy();
        this.socket = null;
        return null;
      }
      const [general, servers] = text.split('END\r\n');
      const snap: EntrySnapshot = { general: new Map(), servers: new Map() };
      for (const line of general!.split('\r\n')) {
        const t = line.split(' ');
        if (t[0] === 'STAT' && t.length >= 3) snap.general.set(t[1]!, t.slice(2).join(' '));
      }
      let hasWarmFills = false;
      for (const line of servers!.split('\r\n')) {
        // STAT 127.0.0.1:11211:requests 42
        const t = line.split(' ');
        if (t[0] !== 'STAT' || t.length < 3) continue;
        const colon = t[1]!.lastIndexOf(':');
        const addr = t[1]!.slice(0, colon);
        const field = t[1]!.slice(colon + 1);
        let v = snap.servers.get(addr);
        if (v === undefined) { v = { state: '?', requests: 0, backupReads: 0, warmFills: 0, restoreState: 'idle', restoreCopied: 0 }; snap.servers.set(addr, v); }
        if (field === 'state') v.state = t[2]!;
        else if (field === 'requests') v.requests = Number(t[2]);
        else if (field === 'backup_reads') v.backupReads = Number(t[2]);
        else if (field === 'warm_fills') { v.warmFills = Number(t[2]); hasWarmFills = true; }
        else if (field === 'restore_state') v.restoreState = t[2]!;
        else if (field === 'restore_keys_copied') v.restoreCopied = Number(t[2]);
      }
      if (!hasWarmFills && this.adminPort !== null) await this.addWarmFills(snap, timeoutMs);
      return snap;
    } catch {
      return null;
    }
  }

  private async readEnds(n: number, timeoutMs: number): Promise<string | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      let count = 0;
      for (let at = this.buf.indexOf(END); at >= 0; at = this.buf.indexOf(END, at + END.length)) {
        // END at the start of a line only.
        if (at === 0 || (this.buf[at - 2] === 0x0d && this.buf[at - 1] === 0x0a)) count++;
      }
      if (count >= n) return this.buf.toString('latin1');
      const left = deadline - Date.now();
      if (left <= 0 || this.socket === null) return null;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiter = () => { clearTimeout(t); this.waiter = null; resolve(); };
      });
    }
  }

  /** warm_fills per server from /metrics, for a proxy whose `stats servers` does not show it. */
  private async addWarmFills(snap: EntrySnapshot, timeoutMs: number): Promise<void> {
    const res = await fetch(`http://${HOST}:${this.adminPort}/metrics`, { signal: AbortSignal.timeout(timeoutMs) });
    const body = await res.text();
    // mcrelay_server_warm_fills_total{server="127.0.0.1:11212",role="master"} 12
    const re = /^mcrelay_server_warm_fills_total\{([^}]*)\} ([0-9.e+]+)$/gm;
    for (let m = re.exec(body); m !== null; m = re.exec(body)) {
      const server = /server="([^"]*)"/.exec(m[1]!)?.[1];
      const v = server === undefined ? undefined : snap.servers.get(server);
      if (v !== undefined) v.warmFills = Number(m[2]);
    }
  }

  close(): void {
    this.socket?.destroy();
    this.socket = null;
  }
}
