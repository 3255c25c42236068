// The demo's clients: a steady, bounded load of get (and some set) over a fixed
// key space, spread over the entry proxies, counted per second as a client sees
// it (hits, misses, error replies). Plain memcached text protocol over pipelined
// connections; a connection with too many unanswered requests is skipped, so a
// stalled proxy cannot make the load grow without bound.
import net from 'node:net';
import { HOST, sleep } from './processes.js';

const GET = 0;
const SET = 1;

/** What the clients saw since the last take(). */
export interface LoadWindow {
  gets: number;
  hits: number;
  misses: number;
  sets: number;
  /** replies other than a value, END or STORED (SERVER_ERROR ..., ERROR, ...) */
  errors: number;
  /** requests not sent because their connection had too many unanswered */
  skipped: number;
  /** requests lost with a closed connection */
  dropped: number;
  /** slowest reply, ms */
  maxLatencyMs: number;
}

function emptyWindow(): LoadWindow {
  return { gets: 0, hits: 0, misses: 0, sets: 0, errors: 0, skipped: 0, dropped: 0, maxLatencyMs: 0 };
}

const MAX_PENDING = 200;
const CRLF = Buffer.from('\r\n');

class Connection {
  private socket: net.Socket | null = null;
  private buf: Buffer = Buffer.alloc(0);
  private readonly kinds: number[] = [];
  private readonly sentAt: number[] = [];
  private head = 0;
  private closedByUs = false;
  connected = false;

  constructor(readonly port: number, private readonly w: () => LoadWindow, private readonly onProblem: (msg: string) => void) {}

  async open(): Promise<void> {
    const s = net.connect(this.port, HOST);
    s.setNoDelay(true);
    await new Promise<void>((resolve, reject) => {
      s.once('connect', resolve);
      s.once('error', reject);
    });
    this.socket = s;
    this.connected = true;
    s.on('data', (d: Buffer) => this.onData(d));
    s.on('error', () => { /* followed by close */ });
    s.on('close', () => {
      this.connected = false;
      const lost = this.kinds.length - this.head;
      this.w().dropped += lost;
      this.kinds.length = 0;
      this.sentAt.length = 0;
      this.head = 0;
      this.buf = Buffer.alloc(0);
      if (this.closedByUs) return;
      this.onProblem(`a client connection to 127.0.0.1:${this.port} was closed (${lost} requests unanswered); reconnecting`);
      void this.reconnect();
    });
  }

  private async reconnect(): Promise<void> {
    while (!this.closedByUs) {
      await sleep(250);
      try { await this.open(); return; } catch { /* try again */ }
    }
  }

  get pending(): number { return this.kinds.length - this.head; }

  send(kind: number, text: string): boolean {
    if (!this.connected || this.socket === null) return false;
    if (this.pending >= MAX_PENDING) { this.w().skipped++; return true; }
    this.kinds.push(kind);
    this.sentAt.push(performance.now());
    this.socket.write(text);
    return true;
  }

  close(): void {
    this.closedByUs = true;
    this.socket?.destroy();
  }

  private onData(d: Buffer): void {
    this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
    let pos = 0;
    const w = this.w();
    while (this.head < this.kinds.length) {
      const kind = this.kinds[this.head]!;
      const eol = this.buf.indexOf(CRLF, pos);
      if (eol < 0) break;
      const line = this.buf.toString('latin1', pos, eol);
      let next = eol + 2;
      if (kind === GET) {
        if (line.startsWith('VALUE ')) {
          // VALUE <key> <flags> <bytes>\r\n<data>\r\nEND\r\n
          const size = Number(line.split(' ')[3]);
          const end = next + size + 2;
          const endEol = this.buf.indexOf(CRLF, end);
          if (endEol < 0) break;
          if (this.buf.toString('latin1', end, endEol) !== 'END') {
            w.errors++;
          } else {
            w.hits++;
          }
          next = endEol + 2;
        } else if (line === 'END') {
          w.misses++;
        } else {
          w.errors++;
        }
        w.gets++;
      } else {
        if (line === 'STORED') w.sets++;
        else w.errors++;
      }
      const ms = performance.now() - this.sentAt[this.head]!;
      if (ms > w.maxLatencyMs) w.maxLatencyMs = ms;
      this.head++;
      pos = next;
    }
    if (this.head > 4096 && this.head === this.kinds.length) {
      this.kinds.length = 0;
      this.sentAt.length = 0;
      this.head = 0;
    }
    this.buf = pos === this.buf.length ? Buffer.alloc(0) : this.buf.subarray(pos);
  }
}

export interface LoadOptions {
  ports: number[];
  connectionsPerPort: number;
  opsPerSecond: number;
  keys: number;
  setRatio: number;
  onProblem: (msg: string) => void;
}

export function keyName(i: number): string {
  return `demo:key:${i}`;
}

function setCommand(key: string, value: string): string {
  return `set ${key} 0 0 ${value.length}\r\n${value}\r\n`;
}

export class Load {
  private window = emptyWindow();
  private readonly conns: Connection[] = [];
  private timer: NodeJS.Timeout | null = null;
  private next = 0;
  private seq = 0;
  private started = 0;
  private issued = 0;

  constructor(private readonly opts: LoadOptions) {}

  async connect(): Promise<void> {
    for (const port of this.opts.ports) {
      for (let i = 0; i < this.opts.connectionsPerPort; i++) {
        const c = new Connection(port, () => this.window, this.opts.onProblem);
        await c.open();
        this.conns.push(c);
      }
    }
  }

  /** Sets every key once (through the entries in turn) and waits for the replies. */
  async prefill(): Promise<void> {
    const { keys } = this.opts;
    for (let i = 0; i < keys; i++) {
      this.conn().send(SET, setCommand(keyName(i), `value-${i}-0`));
      if (i % 100 === 99) await this.settle(5000);
    }
    await this.settle(5000);
    this.take();
  }

  private conn(): Connection {
    // Round robin over the connections that are up.
    for (let tries = 0; tries < this.conns.length; tries++) {
      const c = this.conns[this.next++ % this.conns.length]!;
      if (c.connected) return c;
    }
    return this.conns[0]!;
  }

  /** Waits until no request is unanswered (or the time runs out). */
  async settle(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.conns.some((c) => c.pending > 0) && Date.now() < deadline) await sleep(5);
  }

  /** Starts the steady load: every 20 ms, the requests due by then. */
  start(): void {
    this.started = performance.now();
    this.issued = 0;
    this.timer = setInterval(() => this.tick(), 20);
  }

  private tick(): void {
    const { opsPerSecond, keys, setRatio } = this.opts;
    const due = Math.floor(((performance.now() - this.started) / 1000) * opsPerSecond);
    // After a stall (a blocked event loop), do not burst to catch up.
    if (due - this.issued > opsPerSecond) this.issued = due - Math.ceil(opsPerSecond / 10);
    for (; this.issued < due; this.issued++) {
      const k = keyName(Math.floor(Math.random() * keys));
      if (Math.random() < setRatio) this.conn().send(SET, setCommand(k, `value-${++this.seq}`));
      else this.conn().send(GET, `get ${k}\r\n`);
    }
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** The counts since the last call. */
  take(): LoadWindow {
    const w = this.window;
    this.window = emptyWindow();
    return w;
  }

  close(): void {
    this.stop();
    for (const c of this.conns) c.close();
  }
}
